"""Wav2Lip 96: the network (``network``), its weights (``checkpoint``, ``fetch``), the mel features
(``features``), the reference preprocessing (``preprocess``) and the ``Generator`` (``generator``)."""
