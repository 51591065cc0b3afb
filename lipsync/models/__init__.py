"""lipsync.models."""
