"""Every error the library raises on purpose.

    LipSyncError                    base: catch this to catch everything below
     ├── InputError                 the user's input is unusable (says which file and what to do)
     │    ├── VideoError            video file missing, unreadable, corrupt, no video stream
     │    ├── AudioError            audio file missing, unreadable, empty, NaN/inf samples
     │    └── FaceNotFoundError     policy "fail" and a frame without a face
     ├── ModelError                 checkpoint missing, truncated, unsafe or of another architecture
     ├── DependencyError            an optional package (insightface, onnxruntime, ...) is missing
     ├── OutputError                the output cannot be written (folder, disk full, ...)
     ├── ClusterError               a Ray cluster cannot run the work (unreachable, a worker that
     │                              refuses: other library version, storage it does not see)
     └── Cancelled                  the caller's should-stop callback asked to stop

Messages are one or two sentences: what failed, with the values, and what to do about it.
They are shown to users as they are (CLI stderr, ComfyUI's error dialog), so no tracebacks
are needed to understand them.
"""

from __future__ import annotations

__all__ = [
    "AudioError",
    "Cancelled",
    "ClusterError",
    "DependencyError",
    "FaceNotFoundError",
    "InputError",
    "LipSyncError",
    "ModelError",
    "OutputError",
    "VideoError",
]


class LipSyncError(Exception):
    """Base class of the errors this library raises on purpose."""


class InputError(LipSyncError):
    """An input given by the user cannot be used."""


class VideoError(InputError):
    """A video (or still image) cannot be read."""


class AudioError(InputError):
    """An audio file or waveform cannot be used."""


class FaceNotFoundError(InputError):
    """No face in a frame while the missing-face policy is "fail"."""


class ModelError(LipSyncError):
    """A checkpoint is missing, unreadable, unsafe or of another architecture."""


class DependencyError(LipSyncError):
    """An optional dependency is not installed."""


class OutputError(LipSyncError):
    """The output file cannot be written."""


class Cancelled(LipSyncError):
    """The job was stopped by the caller; nothing was written under the output name."""


class ClusterError(LipSyncError):
    """A Ray cluster cannot run the work: its address does not answer, a worker refuses (another
    library version, input/output storage it does not see), or workers keep dying."""
