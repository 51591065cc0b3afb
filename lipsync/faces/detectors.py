"""Face detectors behind one small interface: RGB frame in, ``Detection`` list out.

Three backends, chosen by ``create_detector``:

- ``yuface``: libfacedetection (YuNet) with its weights compiled into the wheel. Nothing to
  download, so it works offline; wheels exist for Python <= 3.11.
- ``yunet``: the same network family run by OpenCV's ``cv2.FaceDetectorYN``; the ~230 KB MIT
  model is downloaded once into ``<models_dir>/facedetect/``. Works on any Python with OpenCV.
- ``insightface``: SCRFD from InsightFace's ``buffalo_l`` pack (most accurate, optional
  dependency; the pack lives in ``<models_dir>/insightface/models/buffalo_l/``, the layout
  ComfyUI node packs share).

Every backend returns landmarks in the SCRFD order (subject's right eye, left eye, nose, right
mouth corner, left mouth corner; the subject's right is the image's left), in frame pixels.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import cv2
import numpy as np

from ..errors import DependencyError, InputError, LipSyncError, ModelError
from ..models._download import ensure_file
from ..models.folders import default_models_dir
from ..models.registry import REGISTRY
from ..types import Detection, DetectorName, Frame, choices

__all__ = [
    "FaceDetector",
    "InsightFaceDetector",
    "YuFaceDetector",
    "YuNetDetector",
    "available_detectors",
    "create_detector",
    "default_models_dir",
    "openmp_threads",
]

_T = TypeVar("_T")

DETECT_MAX_SIDE = 640
"""Frames larger than this (longest side) are detected on a downscaled copy: these detectors
are trained on faces up to ~300 px, and the cost grows with the pixel count."""

_INSIGHTFACE_DET_FILE = {
    "buffalo_l": "det_10g.onnx",
    "buffalo_m": "det_2.5g.onnx",
    "buffalo_s": "det_500m.onnx",
    "buffalo_sc": "det_500m.onnx",
    "antelopev2": "scrfd_10g_bnkps.onnx",
}


@runtime_checkable
class FaceDetector(Protocol):
    """What the tracker needs from a detector. ``detect`` takes an RGB uint8 (H, W, 3) frame."""

    name: str

    def detect(self, frame: Frame) -> list[Detection]: ...


def _prepare(frame: Frame, max_side: int) -> tuple[np.ndarray, float]:
    """A contiguous BGR copy of ``frame``, downscaled so its longest side is <= ``max_side``.

    Returns the image and the factor that maps its coordinates back to the frame's.
    """
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
        shape = getattr(frame, "shape", None)
        raise InputError(f"A face detector needs an RGB (H, W, 3) frame; got shape {shape}.")
    if frame.dtype != np.uint8:
        raise InputError(f"A face detector needs a uint8 frame; got dtype {frame.dtype}.")
    height, width = frame.shape[:2]
    longest = max(height, width)
    image = frame
    back = 1.0
    if longest > max_side:
        scale = max_side / float(longest)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        back = width / float(size[0])
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR), back


class _OpenMPLimit:
    """Run a call with the OpenMP runtimes limited to ``threads`` in the calling thread only.

    yuface parallelises each detection with OpenMP over every core. In the streaming pipeline it
    runs beside the network, whose torch threads want the same cores; one thread then spends less
    CPU for the same detection (41 vs 56 ms for a 720p frame, detected at 640 px, here). Which
    runtime yuface's calls reach depends on what was loaded first (once torch is imported, its
    libgomp), so every loaded OpenMP runtime is limited, through threadpoolctl; the limit is per
    thread in OpenMP and is undone after the call, so torch in the same thread (ComfyUI runs every
    node in one thread) keeps its own setting. Without threadpoolctl the call runs as it is.
    """

    def __init__(self, threads: int) -> None:
        self.threads = int(threads)
        self._controller: Any = None
        self._ready = False

    def __call__(self, fn: Callable[[], _T]) -> _T:
        if not self._ready:  # on first use, when the runtimes yuface calls into are loaded
            self._ready = True
            try:
                from threadpoolctl import ThreadpoolController

                self._controller = ThreadpoolController().select(user_api="openmp")
            except Exception:  # noqa: BLE001 - missing or failing: detection still works, unlimited
                self._controller = None
        if self._controller is None:
            return fn()
        with self._controller.limit(limits=self.threads):
            return fn()


def _detection(box_xywh: np.ndarray, landmarks: np.ndarray, score: float, back: float) -> Detection:
    """A Detection in frame pixels from an x, y, w, h box and 10 landmark numbers (x, y pairs)."""
    x, y, w, h = (float(v) * back for v in box_xywh[:4])
    points = np.asarray(landmarks, dtype=np.float32).reshape(5, 2) * np.float32(back)
    return Detection(x1=x, y1=y, x2=x + w, y2=y + h, score=float(score), landmarks=points)


@contextlib.contextmanager
def openmp_threads(detector: FaceDetector | None, threads: int | None) -> Iterator[None]:
    """Let ``detector`` use at most ``threads`` OpenMP threads per detection for a while (yuface;
    the other backends keep their own thread pools). None: leave it as it is."""
    if threads is None or not isinstance(detector, YuFaceDetector):
        yield
        return
    before = detector.threads
    detector.threads = threads
    try:
        yield
    finally:
        detector.threads = before


_FACEDETECT_BUFFER = 0x9000
"""Bytes libfacedetection writes its results into (its documented DETECT_BUFFER_SIZE)."""
_FACEDETECT_SYMBOL = "_Z14facedetect_cnnPhS_iii"
"""``facedetect_cnn(unsigned char*, unsigned char*, int, int, int)``, C++ (Itanium) name."""
_FACEDETECT_LOCK = threading.Lock()  # the library sets up its weights on the first call


def _facedetect_cnn(package_dir: Path) -> Callable[[np.ndarray], np.ndarray] | None:
    """libfacedetection's own entry point, called through ctypes: (N, 15) int rows.

    The ``yuface`` extension holds the GIL for the whole detection (~40 ms for a 640 px frame),
    and while it does, no other Python thread moves: the network's thread cannot even start its
    next layer, so in the streaming pipeline every detection stalled the network. ctypes lets go
    of the GIL during the call. Same library, same input, same numbers (a test compares them);
    None where the wheel's library or symbol is not found (another platform or build).
    """
    import ctypes

    for lib_path in sorted(package_dir.glob("libfacedetection*.so*")) + sorted(package_dir.glob("libfacedetection*.dylib")):
        try:
            fn = getattr(ctypes.CDLL(str(lib_path)), _FACEDETECT_SYMBOL)
        except (OSError, AttributeError):
            continue
        fn.restype = ctypes.c_void_p
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]

        def detect(image: np.ndarray, fn: Any = fn) -> np.ndarray:
            image = np.ascontiguousarray(image)
            result = np.zeros(_FACEDETECT_BUFFER, np.uint8)
            with _FACEDETECT_LOCK:
                fn(result.ctypes.data, image.ctypes.data, image.shape[1], image.shape[0], image.strides[0])
            count = int(result[:4].view(np.int32)[0])
            count = max(0, min(count, (_FACEDETECT_BUFFER - 4) // 32))
            return result[4 : 4 + 32 * count].view(np.int16).reshape(count, 16)[:, :15].astype(np.int32)

        return detect
    return None


class YuFaceDetector:
    """libfacedetection through the ``yuface`` wheel (weights compiled in, no download).

    The detector wants BGR and returns int16 rows: confidence 0..100, box x, y, w, h and
    landmarks in the order image-left eye, image-right eye, nose, image-left mouth corner,
    image-right mouth corner, which is already the SCRFD order (the subject's right first).
    The library is called directly, without the GIL (see ``_facedetect_cnn``), where it can be;
    otherwise through ``yuface.detect``.

    ``threads``: OpenMP threads per detection (None, the default: as many as the runtime likes;
    the streaming pipeline sets 1 while the network shares the CPU, see ``_OpenMPLimit`` and
    ``openmp_threads``).
    """

    name = "yuface"

    def __init__(self, score_threshold: float = 0.5, max_side: int = DETECT_MAX_SIDE, threads: int | None = None) -> None:
        try:
            import yuface
        except ImportError as exc:
            raise DependencyError(
                "The yuface face detector needs the yuface package (wheels for Python <= 3.11): "
                "pip install yuface, or choose the yunet or insightface detector."
            ) from exc
        self._detect: Callable[..., Any] = yuface.detect
        self._direct = _facedetect_cnn(Path(yuface.__file__).parent)
        self.score_threshold = float(score_threshold)
        self.max_side = int(max_side)
        self._limit: _OpenMPLimit | None = None
        self.threads = threads

    @property
    def threads(self) -> int | None:
        return self._limit.threads if self._limit is not None else None

    @threads.setter
    def threads(self, value: int | None) -> None:
        self._limit = _OpenMPLimit(value) if value else None

    def _rows(self, image: np.ndarray) -> np.ndarray:
        """(N, 15) rows of the faces above the threshold (yuface's own rule: confidence > it)."""
        if self._direct is not None:
            rows = self._direct(image)
            return rows[rows[:, 0] > self.score_threshold * 100]
        confs, boxes, landmarks = self._detect(image, conf=self.score_threshold)
        return np.concatenate([np.reshape(confs, (-1, 1)), np.reshape(boxes, (-1, 4)), np.reshape(landmarks, (-1, 10))], axis=1)

    def detect(self, frame: Frame) -> list[Detection]:
        image, back = _prepare(frame, self.max_side)
        rows = self._rows(image) if self._limit is None else self._limit(lambda: self._rows(image))
        return [_detection(row[1:5], row[5:15], float(row[0]) / 100.0, back) for row in rows]


class YuNetDetector:
    """OpenCV's ``cv2.FaceDetectorYN`` with opencv_zoo's YuNet 2023mar model (MIT, ~230 KB).

    The model is downloaded on construction into ``<models_dir>/facedetect/`` unless it is
    already there. Output rows are x, y, w, h, five landmarks (same order as yuface, i.e. the
    SCRFD order) and the score.
    """

    name = "yunet"

    def __init__(
        self,
        models_dir: str | os.PathLike[str] | None = None,
        *,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        max_side: int = DETECT_MAX_SIDE,
    ) -> None:
        if not hasattr(cv2, "FaceDetectorYN"):
            raise DependencyError(
                "The yunet face detector needs OpenCV >= 4.5.4 with FaceDetectorYN: "
                "pip install -U opencv-python-headless."
            )
        folder = Path(models_dir).expanduser() if models_dir else default_models_dir()
        self.model_path = ensure_file("yunet_2023mar", folder / "facedetect")
        try:
            self._net = cv2.FaceDetectorYN.create(
                str(self.model_path), "", (320, 320),
                float(score_threshold), float(nms_threshold), 5000,
            )
        except cv2.error as exc:
            raise ModelError(
                f"OpenCV cannot load the YuNet model {self.model_path} ({exc}); delete the file "
                f"so it is downloaded again from {REGISTRY['yunet_2023mar'].url}."
            ) from exc
        self._input_size: tuple[int, int] = (320, 320)
        self.max_side = int(max_side)

    def detect(self, frame: Frame) -> list[Detection]:
        image, back = _prepare(frame, self.max_side)
        size = (image.shape[1], image.shape[0])
        if size != self._input_size:
            self._net.setInputSize(size)
            self._input_size = size
        _, faces = self._net.detect(image)
        if faces is None:
            return []
        return [_detection(row[0:4], row[4:14], float(row[14]), back) for row in faces]


class InsightFaceDetector:
    """SCRFD from an InsightFace model pack (``buffalo_l`` by default); optional dependency.

    ``root`` is InsightFace's root folder: the pack is read from ``<root>/models/<pack>/``.
    InsightFace downloads the pack there when it is missing, which fails offline; the error then
    says which file to put where. Its ``kps`` are already in the SCRFD order.
    """

    name = "insightface"

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        pack: str = "buffalo_l",
        *,
        det_size: tuple[int, int] = (640, 640),
        score_threshold: float = 0.5,
    ) -> None:
        try:
            from insightface.app import FaceAnalysis
        except ImportError as exc:
            raise DependencyError(
                "The insightface face detector needs the insightface package: "
                "pip install insightface onnxruntime (or choose the yuface or yunet detector)."
            ) from exc
        self.root = Path(root).expanduser() if root else Path("~/.insightface").expanduser()
        self.pack = pack
        det_file = self.root / "models" / pack / _INSIGHTFACE_DET_FILE.get(pack, "det_10g.onnx")
        try:
            # InsightFace prints every model it loads; keep the caller's stdout clean.
            with contextlib.redirect_stdout(io.StringIO()):
                app = FaceAnalysis(name=pack, root=str(self.root), allowed_modules=["detection"])
                app.prepare(ctx_id=0, det_thresh=float(score_threshold), det_size=det_size)
        except Exception as exc:  # third-party code: network, zip, onnxruntime and assert errors
            raise ModelError(
                f"Could not load the InsightFace '{pack}' detection model ({type(exc).__name__}: "
                f"{exc}); if this machine is offline, download {pack}.zip from "
                f"https://github.com/deepinsight/insightface/releases and unzip it so that "
                f"{det_file} exists."
            ) from exc
        self._app = app

    def detect(self, frame: Frame) -> list[Detection]:
        # No downscale here: InsightFace letterboxes the frame into det_size itself.
        image, _ = _prepare(frame, 1 << 30)
        result: list[Detection] = []
        for face in self._app.get(image):
            x1, y1, x2, y2 = (float(v) for v in face.bbox[:4])
            kps = None if face.kps is None else np.asarray(face.kps, dtype=np.float32).reshape(5, 2)
            result.append(Detection(x1, y1, x2, y2, float(face.det_score), kps))
        return result


def _importable(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (cheap and side-effect free)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _insightface_root(models_dir: str | os.PathLike[str] | None) -> Path:
    """InsightFace's root for a models folder: ``<models_dir>/insightface`` (ComfyUI's layout)."""
    if models_dir:
        return Path(models_dir).expanduser() / "insightface"
    return Path("~/.insightface").expanduser()


def _insightface_ready(models_dir: str | os.PathLike[str] | None, pack: str = "buffalo_l") -> bool:
    """insightface is importable and its detection model is already on disk (no download)."""
    det = _insightface_root(models_dir) / "models" / pack / _INSIGHTFACE_DET_FILE[pack]
    return _importable("insightface") and det.is_file()


def available_detectors(models_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """The detector names whose Python packages are installed, best first.

    ``yunet`` is listed whenever OpenCV has FaceDetectorYN (its model is fetched on first use);
    ``insightface`` whenever the package is importable (its pack may still need a download).
    """
    names: list[str] = []
    if _importable("insightface"):
        names.append("insightface")
    if _importable("yuface"):
        names.append("yuface")
    if hasattr(cv2, "FaceDetectorYN"):
        names.append("yunet")
    return names


def create_detector(
    name: DetectorName, *, models_dir: str | os.PathLike[str] | None = None
) -> FaceDetector:
    """Build the detector called ``name``; ``auto`` picks the best one usable without a download.

    ``auto``: insightface if it is installed and ``buffalo_l`` is on disk, else yuface if it is
    installed, else yunet (which downloads its small model once). The returned detector's
    ``.name`` says which backend was chosen.
    """
    known = choices(DetectorName)
    if name not in known:
        raise InputError(f"Unknown face detector {name!r}; choose one of: {', '.join(known)}.")
    if name == "yuface":
        return YuFaceDetector()
    if name == "yunet":
        return YuNetDetector(models_dir)
    if name == "insightface":
        return InsightFaceDetector(_insightface_root(models_dir))
    return _create_auto(models_dir)


def _create_auto(models_dir: str | os.PathLike[str] | None) -> FaceDetector:
    """The ``auto`` choice; a backend that fails to load falls through to the next one."""
    if _insightface_ready(models_dir):
        with contextlib.suppress(LipSyncError):
            return InsightFaceDetector(_insightface_root(models_dir))
    if _importable("yuface"):
        with contextlib.suppress(DependencyError):
            return YuFaceDetector()
    return YuNetDetector(models_dir)
