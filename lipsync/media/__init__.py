"""Media files: decoding video and audio (``video``, ``audio``), encoding (``VideoWriter``),
atomic file writing (``atomic``) and the file formats and frame rates (``formats``)."""
