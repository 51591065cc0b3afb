"""lipsync.media."""
