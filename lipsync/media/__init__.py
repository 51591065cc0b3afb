"""Media files: decoding video and audio (``video``, ``audio``; the audio placed on the file's own
timeline by ``_audio_timeline``), encoding (``VideoWriter``),
atomic file writing (``atomic``) and the file formats and frame rates (``formats``)."""
