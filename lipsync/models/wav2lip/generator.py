"""The Wav2Lip family behind the ``Generator`` interface (``lipsync.models.base``), with a torch
and an ONNX backend.

``Wav2LipGenerator`` does what every Wav2Lip network shares: the 96² crop, the mel features,
the 6-channel input (``preprocess``), batching and the reference's uint8 step. A backend only
implements the raw network call ``network(mel (B, 80, 16) float32, faces (B, 6, 96, 96)
float32) -> (B, 3, 96, 96) float32`` (BGR, [0, 1]): ``TorchGenerator``, ``OnnxGenerator``, or
any callable given to ``Wav2LipGenerator(network)`` (the tests' stand-ins); on a CPU in reduced
precision ``OpenVinoGenerator`` or a bfloat16 ``TorchGenerator`` (``lipsync.models.wav2lip.cpu``).

The torch backend reads its device and dtype from the module's parameters on every call, so a
host that moves the module between devices (ComfyUI's model manager) is simply followed.

Torch is imported where it is used, not by this module: a CPU job whose OpenVINO model is
already converted (``cpu``) never loads it. Which runtime runs which precision is said in
``load_generator`` and ``lipsync.models.wav2lip.cpu``.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from ...errors import InputError, ModelError
from ...types import Precision
from ..base import CPU, AudioFeatures, CropSpec, Device, Generator
from . import cpu
from ..safe_load import require_file
from .checkpoint import CHECKPOINT_HELP, read_state_dict, require_onnxruntime
from .features import MelFeatures
from .preprocess import model_inputs, predict, to_uint8_reference
from .sizes import IMG_SIZE, MEL_STEP, NUM_MELS

if TYPE_CHECKING:
    import torch

    from .network import Wav2Lip

__all__ = [
    "LICENCE",
    "ExactRuntime",
    "Generator",
    "OnnxGenerator",
    "OpenVinoGenerator",
    "Wav2LipGenerator",
    "TorchGenerator",
    "build_module",
    "load_generator",
    "resolve_device",
]

F32 = npt.NDArray[np.float32]

ExactRuntime = Literal["torch", "openvino"]
"""What runs ``exact`` on a CPU: ``torch`` float32 (the reference's numbers bit for bit) or
``openvino`` f32 (within 1e-4 of it, faster; torch where OpenVINO is not installed)."""


LICENCE = "Wav2Lip weights: research and non-commercial use only (trained on LRS2)."
CROP = CropSpec(size=IMG_SIZE, bottom_margin=0, masked_from=0.5, interpolation="bilinear")
_PARAMS = 36_298_035
_ACTIVATION_BYTES_PER_FACE = 24 * 2**20
"""Peak activations of one 96² face through the network in float32 (measured order of magnitude)."""


class Wav2LipGenerator:
    """A Wav2Lip network as a ``Generator``; ``network`` is the raw call (see the module docstring).

    Subclasses (``TorchGenerator``, ``OnnxGenerator``) override ``__call__`` instead."""

    family = "wav2lip"
    licence = LICENCE
    crop = CROP
    name = "wav2lip"
    note: str | None = None
    """One line for the user when the generator runs otherwise than asked (e.g. a precision the CPU lacks)."""
    _network: Callable[[F32, F32], F32] | None = None

    def __init__(self, network: Callable[[F32, F32], F32] | None = None, name: str | None = None) -> None:
        self._network = network
        if name is not None:
            self.name = name
        elif network is not None:
            self.name = getattr(network, "name", getattr(network, "__name__", self.name))

    def __call__(self, mel: F32, faces: F32, rows_from: int = 0) -> F32:
        if self._network is None:
            raise NotImplementedError("a Wav2LipGenerator needs a network, or a subclass that implements __call__")
        return self._network(mel, faces, rows_from) if rows_from > 0 and self.partial_rows else self._network(mel, faces)

    def run_batches(self, batches: Sequence[tuple[F32, F32]], rows_from: int = 0) -> list[F32]:
        """``[self(mel, faces) for mel, faces in batches]`` (the torch backend runs CPU batches at
        once); ``rows_from`` > 0 is passed on where the network can leave out rows
        (``partial_rows``; see ``generate``)."""
        run = getattr(self._network, "run_batches", None)
        cut = (rows_from,) if rows_from > 0 and self.partial_rows else ()
        if run is not None:
            return list(run(batches, *cut))
        return [self(mel, faces, *cut) for mel, faces in batches]

    @property
    def partial_rows(self) -> bool:
        """Whether ``generate`` computes only what rows ``rows_from`` on need (``rows.RowCut``);
        else it computes whole faces and still returns rows above ``rows_from`` as the crop's."""
        return bool(getattr(self._network, "partial_rows", False))

    @property
    def device(self) -> Device:
        """The CPU, without torch (``lipsync.models.base.Device``)."""
        return CPU

    def prepare_audio(self, wav16k: F32) -> AudioFeatures:
        return MelFeatures.from_wav16k(wav16k)

    def generate(self, crops_bgr: npt.NDArray[np.uint8], features: np.ndarray, batch_size: int, *,
                 reference: bool = False, rows_from: int = 0) -> F32:
        """(B, 3, 96, 96) float32 BGR faces for 96² BGR crops and (B, 80, 16) mel windows
        (``reference`` changes nothing here: the batches already run as the original's).

        ``rows_from``: the first row of the faces the caller reads (0: all). Rows from it on are
        the network's, bit for bit as in whole faces; the rows above are the crops' own pixels
        (BGR in [0, 1]), and a network that can (``partial_rows``) leaves out what only they need:
        the mouth paste reads from about row 43 (``lipsync.composite.first_face_row``), which
        saves about a fifth of the network's work (``rows.RowCut``)."""
        return predict(self, np.asarray(features, dtype=np.float32), crops_bgr, batch_size, rows_from)

    def to_uint8_reference(self, faces: F32) -> npt.NDArray[np.uint8]:
        return to_uint8_reference(faces)

    def memory_estimate(self, batch_size: int) -> int:
        return _PARAMS * 4 + max(1, batch_size) * _ACTIVATION_BYTES_PER_FACE


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` → cuda, then mps, then cpu. A device that is not there → InputError."""
    import torch

    if isinstance(device, torch.device):
        return device
    name = device.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise InputError(f"Unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps.") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"Device {device!r} asked for, but this torch has no CUDA device; use --device cpu.")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError(f"Device {device!r} asked for, but MPS is not available here; use --device cpu.")
    return dev


def build_module(state: dict[str, torch.Tensor]) -> Wav2Lip:
    """A Wav2Lip module in eval mode holding ``state`` (fp16 weights are widened to fp32)."""
    from .network import Wav2Lip

    module = Wav2Lip()
    module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return module.eval().requires_grad_(False)


MAX_CPU_WORKERS = 4
"""At most this many batches run at once on a CPU (see ``TorchGenerator.run_batches``)."""


class TorchGenerator(Wav2LipGenerator):
    """The network through torch, on whatever device/dtype the module currently sits.

    ``workers`` (CPU only): how many batches ``run_batches`` runs at once, each in its own
    thread with a share of torch's threads; default: one per torch thread, at most
    ``MAX_CPU_WORKERS``. On a GPU batches always run one after the other.
    """

    def __init__(self, module: Wav2Lip, name: str = "wav2lip", workers: int | None = None) -> None:
        super().__init__(name=name)
        self.module = module
        self.name = name
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _cpu_pool(self) -> ThreadPoolExecutor | None:
        """The worker threads for CPU batches (made on first use), or None for one at a time."""
        import torch

        with self._pool_lock:
            if self._pool is None:
                total = max(1, torch.get_num_threads())
                workers = self.workers if self.workers is not None else min(total, MAX_CPU_WORKERS)
                if workers <= 1:
                    return None
                per_worker = max(1, total // workers)
                # torch.set_num_threads is per thread under OpenMP: only the workers change.
                self._pool = ThreadPoolExecutor(
                    workers, thread_name_prefix="lipsync-net", initializer=torch.set_num_threads, initargs=(per_worker,)
                )
            return self._pool

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def memory_estimate(self, batch_size: int) -> int:
        param = next(self.module.parameters())
        return (_PARAMS + max(1, batch_size) * _ACTIVATION_BYTES_PER_FACE // 4) * param.element_size()

    def run_batches(self, batches: Sequence[tuple[F32, F32]], rows_from: int = 0) -> list[F32]:
        """``[self(mel, faces, rows_from) for mel, faces in batches]``, several at once on a CPU.

        Why: torch splits every layer of one batch over all cores, and on a CPU the other stages
        of the pipeline (decoding, detection, encoding) run on those same cores. Each time one of
        them takes a core, the layer waits for its slowest part: on 2 cores the network ran ~1.6x
        slower beside them than alone. Whole batches on one core each lose only the time
        actually taken, and alone they are as fast (25.9 vs 23.5 frames/s here, batch 8, 2 cores).
        On a CPU every batch goes through the workers, even a lone one, so a frame's result never
        depends on how the frames were grouped (a torch thread count of its own would round
        differently, ~1e-7).
        """
        param = next(self.module.parameters())
        pool = self._cpu_pool() if param.device.type == "cpu" else None
        if pool is None:
            return [self(mel, faces, rows_from) for mel, faces in batches]
        return list(pool.map(lambda batch: self(*batch, rows_from), batches))

    @property
    def partial_rows(self) -> bool:
        from .network import Wav2Lip  # torch is loaded already: the module is a torch module

        return isinstance(self.module, Wav2Lip)

    def __call__(self, mel: F32, faces: F32, rows_from: int = 0) -> F32:
        """The module on one batch; ``rows_from`` > 0: rows ``first_row`` .. 95 only
        (``Wav2Lip.forward``)."""
        import torch

        param = next(self.module.parameters())
        device, dtype = param.device, param.dtype
        mel_t = torch.from_numpy(np.ascontiguousarray(mel)).reshape(-1, 1, NUM_MELS, MEL_STEP)
        faces_t = torch.from_numpy(np.ascontiguousarray(faces))
        cut = (rows_from,) if rows_from > 0 and self.partial_rows else ()
        with torch.inference_mode():
            out = self.module(mel_t.to(device, dtype), faces_t.to(device, dtype), *cut)
        return out.float().cpu().numpy()


class OnnxGenerator(Wav2LipGenerator):
    """An ONNX conversion of Wav2Lip 96 (e.g. ``wav2lip_gan_96.onnx``) through onnxruntime.

    Conversions name their inputs differently; the face input is the one with 6 channels, the
    other one is the mel window.
    """

    def __init__(self, path: str | os.PathLike[str], device: torch.device) -> None:
        ort = require_onnxruntime()
        p = Path(path)
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(p), providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise ModelError(f"Cannot load {p.name} with onnxruntime: {str(exc).splitlines()[0]}") from exc
        inputs = self.session.get_inputs()
        if len(inputs) != 2:
            raise ModelError(f"{p.name} has {len(inputs)} inputs; a Wav2Lip ONNX model has 2 (mel, face).")
        face = [i for i in inputs if len(i.shape) == 4 and i.shape[1] == 6]
        if len(face) != 1:
            shapes = ", ".join(f"{i.name}{i.shape}" for i in inputs)
            raise ModelError(f"{p.name} does not look like Wav2Lip 96 (inputs {shapes}; expected one of (B, 6, 96, 96)).")
        self._face_name = face[0].name
        self._mel_name = next(i.name for i in inputs if i.name != self._face_name)
        if face[0].shape[2] not in (IMG_SIZE, "height", None) and isinstance(face[0].shape[2], int):
            raise ModelError(f"{p.name} takes {face[0].shape[2]}px faces; only 96px Wav2Lip is supported.")
        self.name = p.stem
        import torch  # the caller gave a torch.device: torch is loaded already

        self._device = device if "CUDAExecutionProvider" in providers else torch.device("cpu")

    @property
    def device(self) -> torch.device:
        return self._device

    def __call__(self, mel: F32, faces: F32) -> F32:
        mel4 = np.ascontiguousarray(mel, dtype=np.float32).reshape(-1, 1, NUM_MELS, MEL_STEP)
        out = self.session.run(None, {self._mel_name: mel4, self._face_name: np.ascontiguousarray(faces, dtype=np.float32)})
        return np.asarray(out[0], dtype=np.float32)


class OpenVinoGenerator(Wav2LipGenerator):
    """Wav2Lip on the CPU through OpenVINO, in f32 (``exact``), bf16 (``fast``) or int8
    (``fastest``): the runtime part is ``cpu.OpenVinoNetwork`` (conversion, NNCF calibration,
    the cache beside the weights). Its ``device`` is ``lipsync.models.base.CPU`` (no torch).

    ``fastest`` calibrates on the first faces it is given (the first ``generate`` call) unless
    ``calibrate`` was called; a cached int8 model is used as it is.
    """

    def __init__(self, network: cpu.OpenVinoNetwork, name: str = "wav2lip", note: str | None = None) -> None:
        super().__init__(network, name=name)
        self.network = network
        self.precision = network.precision
        self.note = note

    @property
    def ready(self) -> bool:
        """Whether the network is compiled (``fastest`` before its calibration: not yet)."""
        return self.network.ready

    def calibrate(self, crops_bgr: npt.NDArray[np.uint8], mel: F32, batch_size: int = 8) -> None:
        """Calibrate ``fastest`` on (B, 96, 96, 3) uint8 BGR crops of real faces and their (B, 80, 16)
        mel windows of real speech (see ``cpu.OpenVinoNetwork.calibrate``)."""
        faces = model_inputs(np.asarray(crops_bgr))
        mel = np.asarray(mel, dtype=np.float32)
        self.network.calibrate([(mel[i : i + batch_size], faces[i : i + batch_size])
                                for i in range(0, len(faces), batch_size)])

    def memory_estimate(self, batch_size: int) -> int:
        return super().memory_estimate(batch_size) // {"exact": 1, "fast": 2, "fastest": 4}[self.precision]


def _cpu_generator(path: str | os.PathLike[str], precision: Precision, exact_runtime: ExactRuntime) -> Generator:
    """The generator of ``precision`` on this CPU, or the next one it can do (its ``note`` says so)."""
    name = Path(path).stem
    if precision == "exact" and exact_runtime == "torch":
        return TorchGenerator(build_module(read_state_dict(path)), name=name)
    with_ov, with_nncf = cpu.openvino_available()
    got, note = cpu.plan_precision(precision, cpu.cpu_capabilities(), with_ov, with_nncf)
    generator: Wav2LipGenerator
    if with_ov and (got != "exact" or exact_runtime == "openvino"):
        require_file(path, "Wav2Lip checkpoint", CHECKPOINT_HELP)
        threads = cpu.cpu_threads()
        # float32 runs one batch at a time on all the threads: beside the pipeline's decode and
        # encode threads that measured 6 % faster end to end than two streams (bench/bench_cpu.py);
        # bf16 and int8 were no faster that way.
        streams = 1 if got == "exact" else min(threads, MAX_CPU_WORKERS)
        network = cpu.OpenVinoNetwork(lambda: build_module(read_state_dict(path)), got, weights=path,
                                      streams=streams, threads=threads)
        generator = OpenVinoGenerator(network, name=name)
    elif got == "exact":
        generator = TorchGenerator(build_module(read_state_dict(path)), name=name)
    else:
        generator = TorchGenerator(cpu.bf16_module(build_module(read_state_dict(path))), name=name)
    generator.note = note
    return generator


_GPU_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia", "/dev/kfd", "/dev/dxg")
"""Device files of an NVIDIA, AMD (ROCm) or WSL GPU driver on Linux."""


def _surely_cpu(device: str | torch.device) -> bool:
    """Whether ``device`` means the CPU, known without importing torch: ``cpu``, or ``auto`` on
    Linux with no GPU driver's device file (then torch could find no accelerator). Elsewhere
    (macOS: MPS; Windows) ``resolve_device`` asks torch."""
    if not isinstance(device, str):
        return getattr(device, "type", None) == "cpu"
    name = device.strip().lower()
    if name == "cpu":
        return True
    return name == "auto" and sys.platform.startswith("linux") and not any(os.path.exists(p) for p in _GPU_NODES)


def load_generator(
    path: str | os.PathLike[str],
    device: str | torch.device = "auto",
    dtype: torch.dtype | None = None,
    precision: Precision = "exact",
    *,
    exact_runtime: ExactRuntime = "torch",
) -> Generator:
    """Load a checkpoint (.pth/.pt/.safetensors via torch, .onnx via onnxruntime) ready to run.

    ``dtype`` defaults to float32; float16 is offered on CUDA (the CPU has no fast fp16 convs).
    ``precision`` (CPU only, torch checkpoints): ``exact`` float32, ``fast`` bfloat16, ``fastest``
    int8, where the CPU has them (``lipsync.models.wav2lip.cpu``; the generator's ``note`` says
    when it falls back). ``fast`` and ``fastest`` run on OpenVINO where it is installed.
    ``exact_runtime``: what runs ``exact`` (also when ``fast`` falls back to it) on a CPU:
    ``torch`` (the default) is torch's float32 module, the reference's numbers bit for bit (the
    parity tests, ``--reference``, the quality bench's baseline and the cluster's shipped weights
    use it); ``openvino`` is OpenVINO in f32 where it is installed (within 1e-4 of torch on the
    parity fixture, ~1.3–1.7× faster; the command line's ``--precision exact``), else torch.

    On a CPU whose OpenVINO model is cached, nothing here imports torch (``cpu``); reading
    a torch checkpoint, converting it, a GPU, ONNX and ``dtype`` do.
    """
    onnx = Path(path).suffix.lower() == ".onnx"
    if not onnx and dtype is None and _surely_cpu(device):
        return _cpu_generator(path, precision, exact_runtime)
    import torch

    dev = resolve_device(device)
    if onnx:
        if not Path(path).is_file():
            raise ModelError(f"Wav2Lip model not found: {path}. {CHECKPOINT_HELP}")
        return OnnxGenerator(path, dev)
    dtype = dtype or torch.float32
    if dtype == torch.float16 and dev.type == "cpu":
        raise InputError("float16 needs a GPU (cuda or mps); on the CPU use float32.")
    if dev.type == "cpu" and (precision != "exact" or dtype == torch.float32):
        return _cpu_generator(path, precision, exact_runtime)
    module = build_module(read_state_dict(path)).to(dev, dtype)
    return TorchGenerator(module, name=Path(path).stem)
