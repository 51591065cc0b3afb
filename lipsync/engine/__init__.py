"""lipsync.engine."""
