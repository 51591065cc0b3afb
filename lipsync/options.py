"""Every setting of a job, grouped by concern: one frozen dataclass per stage it steers.

    LipSyncOptions
     ├── source     SourceOptions     which frames of the video, at which rate
     ├── sync       SyncOptions       audio and video of different length, sync offset
     ├── faces      FaceOptions       detection, choice of face, padding, smoothing, frames without a face
     ├── model      ModelOptions      which weights, on which device, how many faces per call
     ├── composite  CompositeOptions  how the generated face goes back into the frame
     ├── restore    RestoreOptions    optional face restoration of the generated face
     ├── encode     EncodeOptions     the output file
     ├── run        RunOptions        how the stages share the machine (speed only, never the result)
     └── reference  bool              the original Wav2Lip's behaviour wherever it differs

    ClusterOptions                    where a job runs (a Ray cluster), never what it makes: not
                                      part of LipSyncOptions, so it never enters a batch's resume key

Each default lives here and nowhere else. Every front-end builds these objects: the command line
derives its flags from the fields (``lipsync.cli.options``), the ComfyUI nodes their widgets
(``nodes/_options.py``), so a new setting is one field here. A field's ``metadata`` says how it
is shown: ``help`` (CLI help and node tooltip), ``flag`` (the CLI flag when it is not
``--field-name``), ``node`` (the node input name when it is not the field name), ``min`` /
``max`` / ``step`` for numbers, ``choices`` for a ``Literal`` type.

This module imports neither torch nor the host.
"""

from __future__ import annotations

from dataclasses import MISSING, Field, dataclass, field, fields, replace
from typing import Any, get_type_hints

from .errors import InputError
from .types import (
    Blend,
    Box,
    ColorMatch,
    CompositeMode,
    DetectorName,
    FaceChoice,
    LengthPolicy,
    MissingFacePolicy,
    ModelFamily,
    Precision,
    Resampler,
    Smoothing,
    choices,
)

__all__ = [
    "GROUPS",
    "SETTING_GROUPS",
    "ClusterOptions",
    "CompositeOptions",
    "EncodeOptions",
    "FaceOptions",
    "LipSyncOptions",
    "ModelOptions",
    "RestoreOptions",
    "RunOptions",
    "SourceOptions",
    "SyncOptions",
    "default_of",
    "setting",
]


def setting(default: Any, help: str, **shown: Any) -> Any:  # noqa: A002 - argparse's word
    """A dataclass field with its default and how front-ends show it (see the module docstring)."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("option defaults are immutable values")
    return field(default=default, metadata={"help": help, **shown})


def default_of(group: type, name: str) -> Any:
    """The default of field ``name`` of the options class ``group``."""
    for f in fields(group):
        if f.name == name:
            if f.default is MISSING:
                raise KeyError(f"{group.__name__}.{name} has no default")
            return f.default
    raise KeyError(f"{group.__name__} has no field {name!r}")


def _check_choice(group: object, f: Field[Any]) -> None:
    literal = f.metadata.get("choices")
    value = getattr(group, f.name)
    if literal is not None and value not in choices(literal):
        raise InputError(f"Unknown {f.name} {value!r}; choose one of: {', '.join(choices(literal))}.")


class _Group:
    """What every options class shares: checking the ``Literal`` choices."""

    def check(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            _check_choice(self, f)


@dataclass(frozen=True)
class SourceOptions(_Group):
    """Which frames of the video are used, at which rate, and how they fill the audio's length
    (the selection has VideoHelperSuite's names)."""

    fps: float | None = setting(None, "frames per second of the output: a still image's rate (default 25), or to "
                                "override the file's; 0 or empty = the video's own rate",
                                min=0.0, max=240.0, step=0.01)
    frame_load_cap: int = setting(0, "use at most this many frames of the video (0 = all)", min=0)
    skip_first_frames: int = setting(0, "skip this many frames at the start of the video", min=0)
    select_every_nth: int = setting(1, "use every n-th frame of the video (the frame rate is divided by n)", min=1)
    length_policy: LengthPolicy = setting(
        "auto", "audio and video of different length: auto = trim when the audio is shorter, ping-pong when longer; "
        "loop, pingpong or freeze extend the video; trim stops at the shorter", choices=LengthPolicy)

    def check(self) -> None:
        super().check()
        if self.fps is not None and not (0.1 <= self.fps <= 240):
            raise InputError(f"fps {self.fps} is out of range; use a value between 0.1 and 240.")
        if self.select_every_nth < 1:
            raise InputError("select_every_nth must be at least 1.")
        if self.frame_load_cap < 0 or self.skip_first_frames < 0:
            raise InputError("frame_load_cap and skip_first_frames cannot be negative.")


@dataclass(frozen=True)
class SyncOptions(_Group):
    """How the audio lines up with the frames."""

    audio_offset_ms: float = setting(0.0, "shift the sync in milliseconds (positive: the mouth moves later)",
                                     flag="--audio-offset", metavar="MS", min=-2000.0, max=2000.0, step=5.0)


@dataclass(frozen=True)
class FaceOptions(_Group):
    """Finding the face to re-sync in each frame (``lipsync.faces``)."""

    box: Box | None = setting(None, "fixed face box in pixels, the same in every frame; skips detection (as the "
                              "original's --box)", node="fixed_box")
    detector: DetectorName = setting("auto", "face detector (auto: the best one available)", choices=DetectorName)
    pads: tuple[int, int, int, int] = setting(
        (0, 10, 0, 0), "grow the detected box by these pixels: top, bottom, left, right (the reference's 10 below "
        "includes the chin)", node=("pad_top", "pad_bottom", "pad_left", "pad_right"), min=0, max=1024)
    face_choice: FaceChoice = setting("largest", "which person to re-sync when there are several; the one picked in the first "
                                      "frame with faces is followed by position and size (never switched for being "
                                      "larger): largest = the largest face, index = the face_index-th from the left, "
                                      "point = the face at face_point; closest = largest (its former name)",
                                      flag="--face", node="face", choices=FaceChoice)
    face_index: int = setting(0, "with face choice index: 0 = the leftmost face", min=0, max=64)
    face_point: tuple[int, int] = setting(
        (0, 0), "with face choice point: x y in pixels of the first frame (as displayed); the face holding that point, "
        "else the nearest one, is followed", node=("face_x", "face_y"), metavar=("X", "Y"), min=0, max=16384)
    missing_face: MissingFacePolicy = setting(
        "passthrough", "frames without a face: passthrough leaves them as they are, hold reuses the last box, "
        "interpolate draws a line between the boxes around the gap, fail stops with an error naming the frame",
        choices=MissingFacePolicy)
    detect_every: int = setting(1, "run the detector on every n-th frame and interpolate the boxes in between "
                                "(n times less detection, less precise on fast moves)", min=1, max=100)
    smoothing: Smoothing = setting("steady", "face box smoothing: steady (no jitter on a still head, follows real "
                                   "moves at once) or reference (the original's mean of the next boxes)",
                                   choices=Smoothing)
    smooth_window: int = setting(5, "with reference smoothing: average each box with the next ones over this many "
                                 "frames (the original's 5); 1 = no smoothing", min=1, max=50)

    def check(self) -> None:
        super().check()
        if self.detect_every < 1:
            raise InputError("detect_every must be at least 1.")
        if len(self.face_point) != 2 or min(self.face_point) < 0:
            raise InputError(f"face_point must be two pixel coordinates x y >= 0; got {tuple(self.face_point)}.")
        if self.box is not None and not self.box.is_valid():
            raise InputError(
                f"The face box {self.box.as_tuple()} is empty: give TOP BOTTOM LEFT RIGHT with TOP<BOTTOM and LEFT<RIGHT."
            )


@dataclass(frozen=True)
class ModelOptions(_Group):
    """Which weights run, where (the nodes take the model from a loader node and the device from the host)."""

    family: ModelFamily = setting("wav2lip", "which model: wav2lip (a 96x96 mouth, quick on a CPU; weights for "
                                  "non-commercial research only) or musetalk (MuseTalk 1.5: a sharper 256x256 lower "
                                  "face, weights for any use, needs a GPU to be quick and the musetalk extra)",
                                  flag="--model", choices=ModelFamily)
    checkpoint: str | None = setting(None, "the model's weights: a Wav2Lip file (.pth, .safetensors, .onnx) or a "
                                     "MuseTalk folder (musetalkV15/, sd-vae/, whisper/); default: the first "
                                     "known file in MODELS/wav2lip/, or MODELS/musetalk/")
    models_dir: str | None = setting(None, "models folder: wav2lip/, musetalk/, facedetect/, insightface/, "
                                     "facerestore_models/ (default: $LIPSYNC_MODELS, else ./models)")
    device: str = setting("auto", "auto, cpu, cuda, cuda:N or mps")
    fp16: bool = setting(False, "half precision (GPU only)")
    precision: Precision = setting(
        "fast", "the network's arithmetic on a CPU: exact = float32 as trained (the reference's numbers; the command line "
        "runs it through OpenVINO where installed, within 1e-4 of them and ~1.1x faster, except with --reference); fast = "
        "bfloat16 (~2.4x faster where the CPU has BF16, output closer to exact than a 1-level change of the input "
        "frames makes it); fastest = int8 (~4.4x, visibly less exact; calibrated once on the first job's faces and cached beside the "
        "weights). Falls back to the next one the CPU can do, with a note. Ignored on a GPU (see fp16)",
        choices=Precision, node="cpu_precision")


@dataclass(frozen=True)
class CompositeOptions(_Group):
    """Putting the generated face back into the frame (``lipsync.composite``)."""

    mode: CompositeMode = setting("mouth", "mouth: only the lower face changes, soft edges; reference: "
                                  "the whole box pasted hard, as the original", choices=CompositeMode)
    feather: float = setting(0.15, "mouth mode: width of the soft edge, as a fraction of the face box width",
                             min=0.0, max=0.5, step=0.01)
    resample: Resampler = setting("lanczos", "mouth mode: how the generated face is resized to the box",
                                  choices=Resampler)
    color_match: ColorMatch = setting("off", "mouth mode: lab matches the generated region's colours to the "
                                      "original (mean/std in L*a*b* under the mask)", choices=ColorMatch)
    blend: Blend = setting("feather", "mouth mode: feather (soft edge) or seamless (Poisson cloning, then the soft "
                           "edge)", choices=Blend)


@dataclass(frozen=True)
class RestoreOptions(_Group):
    """Optional face restoration of each generated face before it is pasted (``lipsync.restore``)."""

    restore: str | None = setting(None, "face restorer (GFPGAN / RestoreFormer .pth or .safetensors; CodeFormer "
                                  "needs spandrel-extra-arches, non-commercial), applied inside the mouth mask",
                                  node="restore_model", metavar="MODEL")
    restore_strength: float = setting(1.0, "how much of the restored face replaces the generated one (0-1)",
                                      min=0.0, max=1.0, step=0.05)
    restore_fidelity: float = setting(0.5, "CodeFormer only: 0 = most restored, 1 = closest to the input",
                                      min=0.0, max=1.0, step=0.05)

    def check(self) -> None:
        super().check()
        if not (0.0 <= self.restore_strength <= 1.0 and 0.0 <= self.restore_fidelity <= 1.0):
            raise InputError(
                f"restore_strength and restore_fidelity must be between 0 and 1; got {self.restore_strength} "
                f"and {self.restore_fidelity}."
            )


@dataclass(frozen=True)
class EncodeOptions(_Group):
    """The output file (``lipsync.media``)."""

    lossless: bool = setting(False, "FFV1 (RGB) + FLAC in .mkv: bit-exact frames")


@dataclass(frozen=True)
class RunOptions(_Group):
    """How the stages share the machine: these change the speed, never the pixels."""

    batch_size: int = setting(8, "faces per network call (8 is the fastest on a CPU; larger is faster on a GPU "
                              "and takes more memory)", min=1, max=512)
    chunk_batches: int = setting(4, "network batches per chunk of frames in flight", min=1, max=64)
    overlap: bool = setting(True, "decode and detect ahead, composite and encode behind the network, in two "
                            "threads (off: every stage in one thread, for measurements)", flag="--no-overlap")

    def check(self) -> None:
        super().check()
        if self.batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {self.batch_size}.")
        if self.chunk_batches < 1:
            raise InputError(f"chunk_batches must be at least 1, got {self.chunk_batches}.")


GROUPS: dict[str, type] = {
    "source": SourceOptions,
    "sync": SyncOptions,
    "faces": FaceOptions,
    "model": ModelOptions,
    "composite": CompositeOptions,
    "restore": RestoreOptions,
    "encode": EncodeOptions,
    "run": RunOptions,
}
"""The option groups by their attribute name in ``LipSyncOptions``."""

@dataclass(frozen=True)
class ClusterOptions(_Group):
    """Running on a Ray cluster (``lipsync.cluster``, the ``[cluster]`` extra): a batch's items, or
    one long video's frame ranges, on several workers. Changes where the work runs, never the pixels."""

    cluster: str | None = setting(
        None, "run on a Ray cluster: its address (auto, HOST:6379 or ray://HOST:10001), or local[:N] to start one on "
        "this machine with N CPUs; empty = no cluster. Needs pip install 'comfyui-resync[cluster]'; inputs and "
        "outputs must lie on storage every node mounts at the same path", metavar="ADDRESS|local[:N]")
    workers: int = setting(0, "cluster workers (each loads the model once); 0 = as many as the cluster's free CPUs "
                           "(or GPUs, with gpus_per_worker) hold", min=0, max=1024)
    gpus_per_worker: float = setting(0.0, "GPUs per cluster worker; fractions pack several workers onto one large "
                                     "GPU (0.25 = four per GPU); 0 = CPU workers", min=0.0, max=8.0, step=0.05)
    cpus_per_worker: float = setting(1.0, "CPU cores per cluster worker (decode, detection, encode; the network too "
                                     "on a CPU worker)", min=0.25, max=256.0, step=0.25)
    retries: int = setting(2, "how often an item (or frame range) is retried when its cluster worker dies; an "
                           "item's own error (bad file, no face) is never retried", min=0, max=20)
    segments: int = setting(0, "one long video on a cluster: render it in this many frame ranges, joined without "
                            "re-encoding; 0 = two per worker (the batch command runs whole items instead)",
                            min=0, max=10_000)

    def check(self) -> None:
        super().check()
        if self.workers < 0 or self.retries < 0 or self.segments < 0:
            raise InputError("workers, retries and segments cannot be negative.")
        if self.gpus_per_worker < 0 or self.cpus_per_worker <= 0:
            raise InputError(
                f"gpus_per_worker must be >= 0 and cpus_per_worker > 0; got {self.gpus_per_worker} and "
                f"{self.cpus_per_worker}."
            )
        address = (self.cluster or "").strip()
        if address.startswith("local"):
            count = address[len("local"):]
            if count and not (count.startswith(":") and count[1:].isdigit() and int(count[1:]) > 0):
                raise InputError(f"Cluster address {address!r}: write local or local:N with N CPUs (e.g. local:4).")


SETTING_GROUPS: dict[str, type] = {**GROUPS, "cluster": ClusterOptions}
"""Every options class a front-end shows, by name: the job's ``GROUPS`` and where it runs
(``cluster``, which the job's options do not hold)."""

_OWNER = {f.name: group for group, klass in GROUPS.items() for f in fields(klass)}
"""The group of each field name (field names are unique across groups)."""


@dataclass(frozen=True)
class LipSyncOptions:
    """All settings of a job, by concern. ``reference=True`` switches to the original Wav2Lip's
    behaviour wherever it differs: its window rule (the audio's last frames dropped), loop, the
    hard box paste, its 5-frame smoothing and float32 arithmetic (precision exact). ``resolved()`` applies it, in this one place.

    ``LipSyncOptions.of(missing_face="hold", lossless=True)`` builds one from field names of any
    group.
    """

    source: SourceOptions = field(default_factory=SourceOptions)
    sync: SyncOptions = field(default_factory=SyncOptions)
    faces: FaceOptions = field(default_factory=FaceOptions)
    model: ModelOptions = field(default_factory=ModelOptions)
    composite: CompositeOptions = field(default_factory=CompositeOptions)
    restore: RestoreOptions = field(default_factory=RestoreOptions)
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    run: RunOptions = field(default_factory=RunOptions)
    reference: bool = False

    @classmethod
    def of(cls, *, reference: bool = False, **settings: Any) -> LipSyncOptions:
        """Options from flat field names (``box=…, lossless=True``), each sent to its group."""
        owner = _OWNER
        unknown = sorted(set(settings) - set(owner))
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(unknown)}")
        parts: dict[str, dict[str, Any]] = {}
        for name, value in settings.items():
            parts.setdefault(owner[name], {})[name] = value
        return cls(**{g: GROUPS[g](**kw) for g, kw in parts.items()}, reference=reference)

    def replace(self, **settings: Any) -> LipSyncOptions:
        """A copy with fields of any group changed by their flat names."""
        groups: dict[str, Any] = {}
        owner = _OWNER
        for name, value in settings.items():
            if name == "reference":
                continue
            if name not in owner:
                raise TypeError(f"unknown option {name!r}")
            g = owner[name]
            groups[g] = replace(groups.get(g, getattr(self, g)), **{name: value})
        return replace(self, **groups, reference=settings.get("reference", self.reference))

    def flat(self) -> dict[str, Any]:
        """Every setting by its field name (they are unique across groups), plus ``reference``."""
        out: dict[str, Any] = {"reference": self.reference}
        for name in GROUPS:
            group = getattr(self, name)
            out.update((f.name, getattr(group, f.name)) for f in fields(group))
        return out

    def resolved(self) -> LipSyncOptions:
        """Checked (InputError with the reason), with ``reference`` applied."""
        for name in GROUPS:
            getattr(self, name).check()
        if not self.reference:
            return self
        return replace(
            self,
            composite=replace(self.composite, mode="reference"),
            faces=replace(self.faces, smoothing="reference"),
            source=replace(self.source, length_policy="loop"),
            model=replace(self.model, precision="exact"),
        )


def field_types(group: type) -> dict[str, Any]:
    """The resolved type of each field of an options class (for front-ends that convert text)."""
    return get_type_hints(group)
