"""Wav2Lip 96: the network (``network``), its weights (``checkpoint``, ``fetch``), the mel features
(``features``), the reference preprocessing (``preprocess``) and the ``Generator`` (``generator``);
on a CPU, its precisions and runtimes (``cpu``). Only ``network`` needs torch at import time.
``sizes``: the input sizes, for code that runs without torch."""
