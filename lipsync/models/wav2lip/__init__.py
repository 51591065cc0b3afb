"""lipsync.models.wav2lip."""
