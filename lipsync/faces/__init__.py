"""Face detection and tracking: frames in, one ``FaceFrame`` (the box to re-sync) per frame out.

``create_detector`` builds a detector (``auto`` picks the best one available offline);
``FaceTracker`` turns per-frame detections into padded, smoothed boxes exactly as the reference
Wav2Lip does, streaming, following one person when there are several (``speaker.SpeakerLock``); ``run_detection`` ties the two over an iterable of frames;
``fixed_box_track`` is the reference's ``--box`` (no detection).
"""

from __future__ import annotations

from ..models._download import download, ensure_file
from ..models.registry import REGISTRY, RemoteFile
from .detectors import (
    DETECT_MAX_SIDE,
    FaceDetector,
    InsightFaceDetector,
    YuFaceDetector,
    YuNetDetector,
    available_detectors,
    create_detector,
    default_models_dir,
    openmp_threads,
)
from .region import RegionDetector
from .run import detect_frames, fixed_box_track, run_detection
from .smooth import smooth_boxes_reference
from .track import FaceTracker

__all__ = [
    "DETECT_MAX_SIDE",
    "REGISTRY",
    "FaceDetector",
    "FaceTracker",
    "InsightFaceDetector",
    "RegionDetector",
    "RemoteFile",
    "YuFaceDetector",
    "YuNetDetector",
    "available_detectors",
    "create_detector",
    "default_models_dir",
    "detect_frames",
    "download",
    "ensure_file",
    "fixed_box_track",
    "openmp_threads",
    "run_detection",
    "smooth_boxes_reference",
]
