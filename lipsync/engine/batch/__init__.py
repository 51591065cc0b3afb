"""lipsync.engine.batch."""
