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
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import cv2
import numpy as np

from ..errors import DependencyError, InputError, LipSyncError, ModelError
from ..types import Detection, DetectorName, Frame, choices
from ..models._download import ensure_file
from ..models.folders import default_models_dir
from ..models.registry import REGISTRY

__all__ = [
    "FULL_FRAME_EVERY",
    "FaceDetector",
    "InsightFaceDetector",
    "RegionDetector",
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


FULL_FRAME_EVERY = 20
"""``RegionDetector``'s default: the whole frame is searched every 20th frame (0.8 s at 25 fps),
so a face that enters the picture beside the ones followed is found within that; in between only
around the faces (a frame where none of them is found is searched whole at once). At 720p a
whole-frame search costs as much as five region searches; every 10th frame it took half of the
detection's CPU."""

REGION_MARGIN = 0.35
"""Around each face, a region this many face widths (heights) wider (taller) on every side is
searched: a head can move a third of its width between two frames and still be found there
(else the whole frame is searched)."""

CARRIED_FRAMES = 2
"""``RegionDetector``'s default: after each search, this many frames are not searched; their faces
are the last ones moved by how the picture around each moved since the frame before (phase
correlation of a small grey patch: ~1.4 ms instead of a ~9 ms region search at 720p). Measured
by ``bench/quality`` (fast turn at 15 px a frame, max error): 6.6 px with none carried, 3.9 px
with 1, 4.1 px with 2; the moving and still heads within 0.1 px of each other."""

CARRY_PATCH = 128
"""Side (pixels) of the grey patch around a face whose shift carries the face to the next frame."""

CARRY_MATCH = 0.3
"""Least phase-correlation peak (0..1) for a carried face: below it the patch changed too much
(the face turned away, left, was covered) and the frame is searched instead. A face shifted by
15 px peaks at ~0.9."""

REGION_GRID = 32
"""Regions start and end on multiples of this (pixels at the scale they are searched at): the
coarsest stride of the YuNet family's feature maps."""

def _iou(a: Detection, b: Detection) -> float:
    w = min(a.x2, b.x2) - max(a.x1, b.x1)
    h = min(a.y2, b.y2) - max(a.y1, b.y1)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (a.area + b.area - inter)


class RegionDetector:
    """A detector that searches the whole frame only every ``full_every``-th call, and in between
    only the regions around the faces it found last (``margin`` around each).

    Why: detection costs in proportion to the pixels searched; a face region is 3-4 times
    smaller than the frame (720p detected at 640 px). Each region is cut from the frame and downscaled exactly as a whole-frame
    detection downscales it (``max_side``; only the region is resampled, not the frame), so a
    face is seen at the same scale and on the same grid of the network's anchors either way (at
    720p they may still differ by a pixel or two, so the faces a whole-frame search finds are
    detected again in their regions: every box comes from a region search). A frame where no
    face is found in the regions is searched whole at once. The regions also cover the faces the
    last two whole-frame searches found where no face is now: someone who turned away or stepped
    out for a moment is found again when they come back, not at the next whole search.
    After each search (whole or regions), the next ``carried`` frames are not searched: their
    faces are the last ones moved by the shift of the picture around each face from the frame
    before (``_Carry``), which costs a sixth of a region search and follows a move exactly where
    interpolating between searches would cut its corners (a lag); the searches in between catch
    turns, changes of size and drift. A face whose picture changed too much is searched for
    instead, and nothing is carried while a face the recent whole searches saw is missing (it may
    be back in the next frame). Which frames are carried depends only on the frames since the last
    scheduled whole-frame search, so a frame range started there detects exactly as a whole run.
    ``detector``: a backend with a ``max_side`` (yuface, yunet); the frames must keep one size.
    """

    def __init__(self, detector: FaceDetector, full_every: int = FULL_FRAME_EVERY,
                 margin: float = REGION_MARGIN, carried: int = CARRIED_FRAMES) -> None:
        if full_every < 1:
            raise InputError(f"full_every must be >= 1; got {full_every}.")
        if carried < 0:
            raise InputError(f"carried must be >= 0; got {carried}.")
        self.detector = detector
        self.name = detector.name
        self.full_every = int(full_every)
        self.margin = float(margin)
        self.max_side = int(getattr(detector, "max_side", DETECT_MAX_SIDE))
        self.carried = int(carried)
        self._calls = 0
        self._since_whole = 0
        self._carry: list[_Carry] = []
        self._last: list[Detection] = []
        self._whole: deque[list[Detection]] = deque(maxlen=2)
        self.whole_frames = 0
        """How many calls searched the whole frame (for measurements)."""
        self.region_pixels = 0
        """Pixels searched in regions so far, at the detector's scale (for measurements)."""
        self.carried_frames = 0
        """How many calls carried the last faces instead of searching (for measurements)."""

    def detect(self, frame: Frame, whole: bool | None = None) -> list[Detection]:
        """The faces in ``frame``; ``whole``: search the whole frame (True) or the regions (False,
        the whole frame when there are none or nothing is found there); None: every
        ``full_every``-th call searches the whole frame (counted from this detector's first call)."""
        count, self._calls = self._calls, self._calls + 1
        if whole is None:
            whole = count % self.full_every == 0
        self._since_whole = 0 if whole else self._since_whole + 1
        before = self._last
        found = self._search_or_carry(frame, whole)
        if not whole:
            self._whole = deque((_followed(faces, before, found) for faces in self._whole), maxlen=2)
        # Carried only while every face of the recent whole searches is here: else the next frame
        # is searched, where someone who stepped out may be back.
        carry_next = self.carried > 0 and (self._since_whole + 1) % (self.carried + 1) != 0 and not self._remembered()
        self._carry = [_Carry(frame, face) for face in found] if carry_next else []
        return found

    def _search_or_carry(self, frame: Frame, whole: bool) -> list[Detection]:
        if self._carry and not whole:
            moved = [carry.to(frame) for carry in self._carry]
            if all(face is not None for face in moved):
                self.carried_frames += 1
                self._last = [face for face in moved if face is not None]
                return self._last
        if self._last and not whole:
            found = self._in_regions(frame)
            if found:
                self._last = found
                return found
        self.whole_frames += 1
        self._last = self.detector.detect(frame)
        if whole:  # only the scheduled searches: what the regions remember depends on the frames alone
            self._whole.append(self._last)
        # The faces found are detected again in their regions, so every box comes from the same
        # kind of search (a region and the whole frame can differ by a pixel or two, which would
        # show as a jump every full_every frames).
        found = self._in_regions(frame) if self._last and self.full_every > 1 else []
        if found:
            self._last = found
        return self._last

    def _remembered(self) -> list[Detection]:
        return _remembered_faces(self._last, self._whole)

    def _in_regions(self, frame: Frame) -> list[Detection]:
        height, width = frame.shape[:2]
        scale = min(1.0, self.max_side / float(max(height, width)))
        found: list[Detection] = []
        for face in self._last + self._remembered():
            for moved in self._search(frame, face, scale):
                same = [o for o in found if _iou(moved, o) >= 0.5]  # seen from two overlapping regions
                if all(o.score < moved.score for o in same):
                    found = [o for o in found if o not in same] + [moved]
        return found

    def _search(self, frame: Frame, face: Detection, scale: float) -> list[Detection]:
        """The faces in the region around ``face``, cut from ``frame`` and searched at ``scale``
        (the whole-frame search's: ``_prepare``'s size for the whole frame, times this region's
        share of it, so the pixels are the ones that search would see)."""
        height, width = frame.shape[:2]
        small_w, small_h = max(1, round(width * scale)), max(1, round(height * scale))
        sx, sy = small_w / float(width), small_h / float(height)
        x1, y1, x2, y2 = face.x1 * sx, face.y1 * sy, face.x2 * sx, face.y2 * sy
        mx, my = (x2 - x1) * self.margin, (y2 - y1) * self.margin
        # On the detector's own grid (its coarsest stride): the face meets the network's
        # anchors where a whole-frame detection meets them, so both give the same box.
        g = REGION_GRID
        left, top = max(0, int(x1 - mx) // g * g), max(0, int(y1 - my) // g * g)
        right, bottom = min(small_w, -(-int(np.ceil(x2 + mx)) // g) * g), min(small_h, -(-int(np.ceil(y2 + my)) // g) * g)
        if right - left < 8 or bottom - top < 8:
            return []
        # The frame pixels under that part of the downscaled frame, downscaled alone (at 720p,
        # 1080p and 4K the factor is a whole number, and these are exactly that part's pixels).
        fl, ft = int(np.floor(left / sx)), int(np.floor(top / sy))
        fr, fb = min(width, int(np.ceil(right / sx))), min(height, int(np.ceil(bottom / sy)))
        region = frame[ft:fb, fl:fr]
        size = (max(1, round((fr - fl) * sx)), max(1, round((fb - ft) * sy)))
        if size != (fr - fl, fb - ft):
            region = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
        self.region_pixels += size[0] * size[1]
        kx, ky = (fr - fl) / float(size[0]), (fb - ft) / float(size[1])  # region pixel -> frame pixels
        out = []
        for d in self.detector.detect(region):
            points = None
            if d.landmarks is not None:
                points = (d.landmarks * np.float32([kx, ky]) + np.float32([fl, ft])).astype(np.float32)
            out.append(Detection(d.x1 * kx + fl, d.y1 * ky + ft, d.x2 * kx + fl, d.y2 * ky + ft, d.score, points))
        return out


class _Carry:
    """A face carried to the next frame by the shift of the picture around it: a grey patch of
    ``CARRY_PATCH`` px around the face (its box and half its size on each side) is cut from this
    frame and, by ``to``, from the next at the same place; their phase correlation (OpenCV) is
    how far the face moved. Good for what moves in one frame (a head moves its box a few % of
    its size); the searches in between catch turns, scale and drift."""

    def __init__(self, frame: Frame, face: Detection) -> None:
        height, width = frame.shape[:2]
        w, h = face.x2 - face.x1, face.y2 - face.y1
        self.face = face
        self.left, self.top = max(0, int(face.x1 - w / 2)), max(0, int(face.y1 - h / 2))
        self.right, self.bottom = min(width, int(np.ceil(face.x2 + w / 2))), min(height, int(np.ceil(face.y2 + h / 2)))
        self.patch = self._patch(frame)

    def _patch(self, frame: Frame, dx: int = 0, dy: int = 0) -> np.ndarray | None:
        """The grey patch of the rectangle moved by (dx, dy) frame pixels; None when it is too
        small or the move takes it out of the frame."""
        left, top, right, bottom = self.left + dx, self.top + dy, self.right + dx, self.bottom + dy
        if right - left < 16 or bottom - top < 16 or min(left, top) < 0 or right > frame.shape[1] or bottom > frame.shape[0]:
            return None
        # Every step-th pixel first (at most 2x the patch's size is left to average down): a
        # large face's patch then costs no more than a small one's.
        step = max(1, min(right - left, bottom - top) // (2 * CARRY_PATCH))
        cut = cv2.cvtColor(frame[top:bottom:step, left:right:step], cv2.COLOR_RGB2GRAY)
        small = cv2.resize(cut, (CARRY_PATCH, CARRY_PATCH),
                           interpolation=cv2.INTER_AREA if min(cut.shape) >= CARRY_PATCH else cv2.INTER_LINEAR)
        return small.astype(np.float32)

    def _shift(self, after: np.ndarray | None) -> tuple[float, float, float]:
        """(dx, dy) in frame pixels from this patch to ``after``, and the correlation's peak."""
        if self.patch is None or after is None:
            return 0.0, 0.0, 0.0
        (dx, dy), peak = cv2.phaseCorrelate(self.patch, after, _hanning())
        return dx * (self.right - self.left) / CARRY_PATCH, dy * (self.bottom - self.top) / CARRY_PATCH, peak

    def to(self, frame: Frame) -> Detection | None:
        """The face in ``frame`` (the next frame), moved by the patch's shift; None when the
        patches do not match (peak below ``CARRY_MATCH``) or the face is too small to carry."""
        dx, dy, peak = self._shift(self._patch(frame))
        if not peak >= CARRY_MATCH:  # also NaN, from a flat patch
            return None
        # The window stays put while the picture moves under it, which shortens the estimate of
        # a large move (a 5 px move of a sharp-edged square read as 3.8): once more, from the
        # patch cut where the face now is, and the rest added.
        ix, iy = round(dx), round(dy)
        if (ix, iy) != (0, 0):
            rx, ry, again = self._shift(self._patch(frame, ix, iy))
            if again >= CARRY_MATCH:
                dx, dy = ix + rx, iy + ry
        d = self.face
        points = None if d.landmarks is None else (d.landmarks + np.float32([dx, dy])).astype(np.float32)
        return Detection(d.x1 + dx, d.y1 + dy, d.x2 + dx, d.y2 + dy, d.score, points)


_HANNING: list[np.ndarray] = []


def _hanning() -> np.ndarray:
    """The window phase correlation weighs the patch with (made once)."""
    if not _HANNING:
        _HANNING.append(cv2.createHanningWindow((CARRY_PATCH, CARRY_PATCH), cv2.CV_32F))
    return _HANNING[0]


def _followed(remembered: list[Detection], before: list[Detection], now: list[Detection]) -> list[Detection]:
    """The faces of a whole-frame search (``remembered``) moved along with the faces followed
    since: one that was found in the frame before (``before``) becomes the face of this frame
    (``now``) that overlaps that one most, or stays where it was last seen. So a head that moves
    away from where the last whole search saw it is not taken for a second, missing face."""
    out = []
    for face in remembered:
        seen = max(before, key=lambda b: _iou(face, b), default=None)
        if seen is None or _iou(face, seen) < 0.3:
            out.append(face)
            continue
        follow = max(now, key=lambda n: _iou(seen, n), default=None)
        out.append(follow if follow is not None and _iou(seen, follow) >= 0.3 else seen)
    return out


def _remembered_faces(last: list[Detection], whole: Iterable[list[Detection]]) -> list[Detection]:
    """Faces of recent whole-frame searches (``whole``) where none of ``last`` is now."""
    out: list[Detection] = []
    for face in (f for found in whole for f in found):
        if all(_iou(face, other) < 0.3 for other in (*last, *out)):
            out.append(face)
    return out


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
