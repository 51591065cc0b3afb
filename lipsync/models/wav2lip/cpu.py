"""Wav2Lip on a CPU: ``exact`` (float32), ``fast`` (bfloat16), ``fastest`` (int8).

Which runtime runs which precision, found at run time:

- with OpenVINO (the optional extra ``pip install comfyui-resync[openvino]``, i.e. ``openvino``
  and ``nncf``): ``OpenVinoNetwork`` (behind ``generator.OpenVinoGenerator``). The torch module is converted once
  (``openvino.convert_model``) and compiled with ``INFERENCE_PRECISION_HINT`` bf16 (``fast``)
  or f32 (``exact``, when the caller allows it: ``load_generator(..., exact_runtime="openvino")``,
  which the command line does unless ``--reference``; within 1e-4 of torch's float32 on the
  parity fixture, ~1.1× faster); ``fastest`` quantizes it to int8 with NNCF, calibrated on
  real crops and mel windows (the first job's, or ``calibrate``), keeping the first and last
  layers (``INT8_KEEP``) in bf16. What the CPU can do is OpenVINO's own
  ``OPTIMIZATION_CAPABILITIES`` (BF16, INT8);
- without OpenVINO: ``exact`` is ``TorchGenerator`` in float32; ``fast`` and ``fastest`` are
  torch in bfloat16 with BatchNorm folded into the convolutions, channels-last (``bf16_module``
  in a ``TorchGenerator``), where ``/proc/cpuinfo`` lists a BF16 instruction set.

``exact`` through torch float32 (``TorchGenerator``) stays the reference's numbers bit for bit:
it is ``load_generator``'s default (``exact_runtime="torch"``), what the parity tests, the
``--reference`` mode, the quality bench's baseline, the ComfyUI nodes and the cluster's workers
run.

A precision the CPU cannot do falls back to the next one it can (fastest → fast → exact); the
generator's ``note`` says so in one line. The converted and quantized models are cached as
OpenVINO IR beside the weights or in the user cache, named by the weights' sha256
(``ir_cache``); a cached model is read without torch: a job that finds one never imports torch.
Each compiled model can leave out the face rows its caller does not read (``rows``).

Measured on the shared random checkpoint (bench/bench_cpu.py, bench/quality): see the README.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import io
import logging
import os
import re
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ...errors import DependencyError, ModelError
from ...types import Precision
from .ir_cache import CACHE_FOLDER, IrCache, user_cache_dir, weights_sha256
from .rows import cut_openvino_model, row_cut
from .sizes import IMG_SIZE, MEL_STEP, NUM_MELS

if TYPE_CHECKING:
    from .network import Wav2Lip

__all__ = [
    "CACHE_FOLDER",
    "INT8_KEEP",
    "OpenVinoNetwork",
    "bf16_module",
    "cpu_capabilities",
    "cpu_threads",
    "fold_batchnorm",
    "openvino_available",
    "plan_precision",
    "user_cache_dir",
    "weights_sha256",
]

log = logging.getLogger(__name__)
"""Says when a network is converted or calibrated (the slow first use); the CLI shows its INFO lines."""

F32 = npt.NDArray[np.float32]
Batches = Sequence[tuple[F32, F32]]

INT8_KEEP = (r".*audio_encoder\..*", r".*output_block.*")
"""Layers ``fastest`` keeps in bf16 (NNCF ignored-scope patterns on OpenVINO's node names): the
audio encoder (small: 1 channel in, 16 columns; OpenVINO 2026.4's CPU plugin finds no kernel for
its int8 convolutions beside bf16) and the output block (the face's pixels)."""

CALIBRATION_FACES = 64
"""At most this many faces calibrate the int8 model."""

_CACHE_FORMAT = 1
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


# --- what the CPU can do


def _openvino() -> Any | None:
    try:
        import openvino
    except ImportError:
        return None
    return openvino


def _nncf_available() -> bool:
    """Whether NNCF is installed, found without importing it (importing NNCF imports torch)."""
    return importlib.util.find_spec("nncf") is not None


def _nncf_version() -> str:
    """NNCF's version, from its installed metadata (without importing it)."""
    try:
        return importlib.metadata.version("nncf")
    except importlib.metadata.PackageNotFoundError:
        import nncf

        return str(nncf.__version__)


def _cpuinfo_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return set()
    match = re.search(r"^flags\s*:(.*)$", text, re.MULTILINE)
    return set(match.group(1).split()) if match else set()


def cpu_capabilities(core: Any | None = None) -> set[str]:
    """``{"bf16", "int8"}`` or a part of it: the reduced precisions this CPU computes fast.

    With OpenVINO: its CPU plugin's ``OPTIMIZATION_CAPABILITIES`` (which honours
    ``ONEDNN_MAX_CPU_ISA``, e.g. ``AVX2`` simulates a CPU without BF16/VNNI); else the
    instruction-set flags of ``/proc/cpuinfo`` (empty where there is none)."""
    ov = _openvino()
    if ov is not None:
        try:
            caps = set((core or ov.Core()).get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
        except RuntimeError:
            caps = set()
        return {name for name, cap in (("bf16", "BF16"), ("int8", "INT8")) if cap in caps}
    flags = _cpuinfo_flags()
    found = set()
    if any(f in flags for f in _BF16_FLAGS):
        found.add("bf16")
    if any(f in flags for f in _INT8_FLAGS):
        found.add("int8")
    return found


def plan_precision(asked: Precision, capabilities: set[str], openvino: bool, nncf: bool) -> tuple[Precision, str | None]:
    """(the precision that will run, the note saying why it is not ``asked``, or None)."""
    if asked == "exact":
        return "exact", None
    if asked == "fastest":
        if openvino and nncf and "int8" in capabilities and "bf16" in capabilities:
            return "fastest", None
        if not (openvino and nncf):
            why = "int8 needs OpenVINO and NNCF (pip install openvino nncf)"
        else:
            why = "this CPU has no fast int8 with bf16 (VNNI and BF16)"
        got, _ = plan_precision("fast", capabilities, openvino, nncf)
        return got, f"precision fastest: {why}; using {got}."
    if "bf16" in capabilities:
        return "fast", None
    return "exact", "precision fast: this CPU has no BF16 instructions; using exact (float32)."


# --- the torch bf16 path (no OpenVINO)


def fold_batchnorm(module: Wav2Lip) -> Wav2Lip:
    """``module`` with every BatchNorm folded into the convolution before it (in place, eval only)."""
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for block in module.modules():
        seq = getattr(block, "conv_block", None)
        if isinstance(seq, nn.Sequential) and len(seq) == 2 and isinstance(seq[1], nn.BatchNorm2d):
            conv = seq[0]
            fused = fuse_conv_bn_eval(conv, seq[1], transpose=isinstance(conv, nn.ConvTranspose2d))
            block.conv_block = nn.Sequential(fused)
    return module


def bf16_module(module: Wav2Lip) -> Wav2Lip:
    """``module`` (float32) made bfloat16, BatchNorm folded, channels-last: torch's fast CPU path
    where OpenVINO is missing (a ``TorchGenerator`` casts the inputs to its dtype)."""
    import torch

    return fold_batchnorm(module).to(torch.bfloat16, memory_format=torch.channels_last)


def openvino_available() -> tuple[bool, bool]:
    """(OpenVINO importable, NNCF importable)."""
    ov = _openvino() is not None
    return ov, ov and _nncf_available()


def cpu_threads() -> int:
    """How many threads the network may use on this CPU, without importing torch: torch's own
    count where torch is already loaded (``torch.get_num_threads``, which follows
    ``OMP_NUM_THREADS`` and ``torch.set_num_threads``), else ``OMP_NUM_THREADS``, else the CPUs
    this process may run on."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return max(1, int(torch.get_num_threads()))
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "")))
    except ValueError:
        pass
    affinity = getattr(os, "sched_getaffinity", None)
    return max(1, len(affinity(0)) if affinity is not None else (os.cpu_count() or 1))


# --- OpenVINO


def _versions(ov: Any, int8: bool) -> str:
    """The part of a cache name that changes with the runtime (and NNCF for int8)."""
    version = "ov" + ov.get_version().split("-")[0]
    if int8:
        version += "-nncf" + _nncf_version()
    return f"{version}-f{_CACHE_FORMAT}"


_HINTS: dict[str, str] = {"exact": "f32", "fast": "bf16", "fastest": "bf16"}
"""OpenVINO's ``INFERENCE_PRECISION_HINT`` per precision (``fastest``: the layers NNCF left
unquantized run in bf16)."""


def _is_torch_module(obj: object) -> bool:
    """Whether ``obj`` is a torch module (without importing torch: none exists before it is loaded)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


class OpenVinoNetwork:
    """The Wav2Lip network compiled by OpenVINO for the CPU, in f32 (``exact``), bf16 (``fast``)
    or int8 (``fastest``): ``network(mel (B, 80, 16), faces (B, 6, 96, 96))`` → (B, 3, 96, 96)
    float32, like the torch module.

    ``module``: the float32 torch network, or a function that reads it (called only when no
    converted model is cached: a cached one is read without torch); ``weights``: its file,
    which names the cache (None: no cache, converted in memory). ``run_batches`` runs ``streams`` batches at a time (each on its
    share of ``threads``; None: OpenVINO's own count; at least two are queued), as ``TorchGenerator`` does on a CPU. The int8 model is made on first
    use, calibrated on the batches of the first call (or ``calibrate``), and cached; later
    loads read it.
    """

    def __init__(self, module: Wav2Lip | Callable[[], Wav2Lip], precision: Precision, *,
                 weights: str | os.PathLike[str] | None = None, streams: int = 2, threads: int | None = None) -> None:
        ov = _openvino()
        if ov is None:
            raise DependencyError(f"Precision {precision} through OpenVINO needs it: pip install openvino nncf.")
        if precision not in _HINTS:
            raise ValueError(f"OpenVinoNetwork runs exact, fast or fastest, not {precision!r}")
        self._ov = ov
        self._core = ov.Core()
        self.precision: Precision = precision
        self._module: Wav2Lip | Callable[[], Wav2Lip] | None = module
        self._lock = threading.Lock()
        self.streams = max(1, int(streams))
        self._threads = None if threads is None else max(self.streams, int(threads))
        self._cache: dict[str, IrCache] = {}
        if weights is not None:
            sha = weights_sha256(weights)
            self._cache["f32"] = IrCache(Path(weights), sha, _versions(ov, False))
            if precision == "fastest":
                self._cache["int8"] = IrCache(Path(weights), sha, _versions(ov, True))
        self._queue: Any = None
        self.partial_rows = False
        """Whether ``run_batches`` can leave out the rows above ``rows_from`` (``rows.cut_openvino_model``)."""
        if precision != "fastest":
            self._compile(self._float_model())
        else:
            cached = self._cache["int8"].find("int8") if "int8" in self._cache else None
            if cached is not None:
                self._compile(self._core.read_model(str(cached), str(cached.with_suffix(".bin"))))

    @property
    def ready(self) -> bool:
        """Whether the network is compiled (``fastest`` waits for its calibration batches)."""
        return self._queue is not None

    def _float_model(self) -> Any:
        """The float32 OpenVINO model: from the cache, else converted from the torch module (and cached)."""
        cache = self._cache.get("f32")
        cached = cache.find("f32") if cache is not None else None
        if cached is not None:
            return self._core.read_model(str(cached), str(cached.with_suffix(".bin")))
        if self._module is None:
            raise ModelError("The float32 network is no longer held; load the generator again.")
        import torch  # converting traces the torch module: only when nothing is cached

        module = self._module if _is_torch_module(self._module) else self._module()  # type: ignore[operator]
        log.info("converting the network for OpenVINO (once; it is cached for later jobs)")
        example = (torch.zeros(1, 1, NUM_MELS, MEL_STEP), torch.zeros(1, 6, IMG_SIZE, IMG_SIZE))
        with warnings.catch_warnings(), _quiet_torch_import():  # the converter traces with torch.jit, which warns it is deprecated
            warnings.simplefilter("ignore", FutureWarning)
            model = self._ov.convert_model(
                module, example_input=example,
                input=[("mel", [-1, 1, NUM_MELS, MEL_STEP]), ("faces", [-1, 6, IMG_SIZE, IMG_SIZE])],
            )
        if cache is not None:
            cache.store(model, "f32")
        return model

    def _compile(self, model: Any) -> None:
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": _HINTS[self.precision],
            "PERFORMANCE_HINT": "THROUGHPUT",
            "NUM_STREAMS": self.streams,
        }
        if self._threads is not None:
            config["INFERENCE_NUM_THREADS"] = self._threads
        self.partial_rows = cut_openvino_model(model)
        compiled = self._core.compile_model(model, "CPU", config)
        self._queue = self._ov.AsyncInferQueue(compiled, max(2, self.streams))  # a batch always waits its turn
        self._module = None  # the torch weights are not needed any more

    def calibrate(self, batches: Batches) -> None:
        """Make (or load) the int8 model of ``fastest``: NNCF post-training quantization,
        calibrated on (mel (B, 80, 16), faces (B, 6, 96, 96)) ``batches`` of real faces and speech
        (at most ``CALIBRATION_FACES`` faces), ``INT8_KEEP`` left in bf16. No-op once ready."""
        with self._lock:
            if self._queue is not None:
                return
            with _quiet_torch_import():
                try:
                    import nncf
                except ImportError as exc:
                    raise DependencyError("Precision fastest needs NNCF: pip install nncf.") from exc
            data, count = [], 0
            for mel, faces in batches:
                if count >= CALIBRATION_FACES:
                    break
                data.append(_inputs(mel, faces))
                count += len(faces)
            if not data:
                raise ValueError("calibrating int8 needs at least one batch of faces")
            float_model = self._float_model()
            log.info("calibrating the int8 network on the first %d faces (once; it is cached for later jobs)", count)
            nncf.set_log_level(logging.WARNING)  # its per-layer notes are not for users
            with contextlib.redirect_stdout(io.StringIO()):  # nor its progress bars, which go to stdout
                quantized = nncf.quantize(
                    float_model, nncf.Dataset(data), subset_size=len(data),
                    ignored_scope=nncf.IgnoredScope(patterns=list(INT8_KEEP)),
                )
            cache = self._cache.get("int8")
            if cache is not None:
                cache.store(quantized, "int8")
            self._compile(quantized)

    def run_batches(self, batches: Batches, rows_from: int = 0) -> list[F32]:
        """The network on each (mel, faces) batch, ``streams`` at a time (``fastest``: calibrated
        on these batches first when it is not ready). ``rows_from`` > 0 (with ``partial_rows``):
        only what output rows ``rows_from`` on need is computed; each result is then rows
        ``first_row`` .. 95 of the faces (``rows.RowCut``), those from ``rows_from`` the whole
        network's bit for bit."""
        if self._queue is None:
            self.calibrate(batches)
        cut = [np.array(row_cut(rows_from).offsets, dtype=np.int64)] if self.partial_rows else []
        results: list[F32 | None] = [None] * len(batches)

        def done(request: Any, index: int) -> None:
            results[index] = np.array(request.get_output_tensor(0).data, dtype=np.float32)

        with self._lock:
            self._queue.set_callback(done)
            for index, (mel, faces) in enumerate(batches):
                self._queue.start_async([*_inputs(mel, faces), *cut], userdata=index)
            self._queue.wait_all()
        return [r for r in results if r is not None]

    def __call__(self, mel: F32, faces: F32, rows_from: int = 0) -> F32:
        return self.run_batches([(mel, faces)], rows_from)[0]


class _NoCudaNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "No CUDA runtime is found" not in record.getMessage()


@contextlib.contextmanager
def _quiet_torch_import():  # noqa: ANN202 - a context manager
    """Importing NNCF imports torch, whose C++-extension module tells a CPU-only machine that it
    has no CUDA: not news to someone who asked for a CPU precision."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    notice = _NoCudaNotice()
    logger.addFilter(notice)
    try:
        yield
    finally:
        logger.removeFilter(notice)


def _inputs(mel: F32, faces: F32) -> tuple[F32, F32]:
    return (np.ascontiguousarray(mel, dtype=np.float32).reshape(-1, 1, NUM_MELS, MEL_STEP),
            np.ascontiguousarray(faces, dtype=np.float32))
