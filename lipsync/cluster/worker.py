"""What runs on a cluster node: a worker that loads the model and detector once, then makes
batch items, detects faces in frame ranges or renders frame ranges; and the board their progress
goes to.

``Worker`` is a plain class: ``pool`` makes it a Ray actor. Every method returns an ``Outcome``
instead of raising for the work's own errors (a bad file, no face), so the driver tells them
apart from a worker that died (Ray's actor error), which is the only thing retried.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LipSyncError
from ..options import LipSyncOptions
from ._ray import library_fingerprint
from .weights import GeneratorPayload, unpack_generator

__all__ = ["Outcome", "ProgressBoard", "Worker", "WorkerSetup"]


@dataclass(frozen=True)
class WorkerSetup:
    """What every worker of one run gets: the job's ``options``, the driver's library
    ``fingerprint`` (a worker with other code refuses), ``paths`` it must see (inputs, the output
    folder: shared storage at the same path), and its ``name`` prefix."""

    options: LipSyncOptions
    fingerprint: str
    paths: tuple[str, ...]
    writable: str


@dataclass
class Outcome:
    """The result of one piece of work: ``value`` or ``error`` (its kind and sentence), with who
    made it, how long it took and the worker process's CPU time for it (all its threads)."""

    value: Any = None
    error: str = ""
    kind: str = ""
    worker: str = ""
    node: str = ""
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class ProgressBoard:
    """Where workers post ``(done, total)`` per piece of work; the driver reads it all at once."""

    def __init__(self) -> None:
        self.state: dict[str, tuple[int, int]] = {}

    def post(self, key: str, done: int, total: int) -> None:
        self.state[key] = (done, total)

    def read(self) -> dict[str, tuple[int, int]]:
        return dict(self.state)


def _refusal(setup: WorkerSetup, node: str) -> str:
    """Why this worker cannot take part ("" when it can)."""
    mine = library_fingerprint()
    if mine != setup.fingerprint:
        return (
            f"the worker on {node} runs lipsync {mine}, the driver {setup.fingerprint}: install the same version of the "
            "pack on every node (the same checkout or the same wheel)."
        )
    missing = [p for p in setup.paths if not os.path.exists(p)]
    if missing:
        return (
            f"the worker on {node} does not see {missing[0]}: inputs and outputs must lie on storage every node mounts "
            "at the same path (NFS, a shared volume)."
        )
    probe = Path(setup.writable) / f".resync-probe-{socket.gethostname()}-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"the worker on {node} cannot write into {setup.writable} ({exc.strerror or exc}); mount it writable."
    return ""


class Worker:
    """One cluster worker: the model (from ``weights``) and the detector, loaded once."""

    def __init__(self, setup: WorkerSetup, weights: GeneratorPayload, detector: Any, name: str, board: Any) -> None:
        from ..engine.batch.run import AudioCache

        self.name, self.board, self.options = name, board, setup.options
        self.node = socket.gethostname()
        self.refusal = _refusal(setup, self.node)
        self.generator: Any = None
        self.detector = detector
        self.audio = AudioCache()
        if self.refusal:
            return
        model = setup.options.model
        self.generator = unpack_generator(weights, model.device, model.fp16)
        if detector is None and setup.options.faces.box is None:
            from ..faces import create_detector

            self.detector = create_detector(setup.options.faces.detector, models_dir=model.models_dir)
        self.startup_cpu = time.process_time()

    def hello(self) -> dict[str, Any]:
        """Who this is, why it refuses to work ("" when it does not), and the CPU seconds its
        process took to start (Python, torch, the model, the detector)."""
        return {"worker": self.name, "node": self.node, "pid": os.getpid(), "refusal": self.refusal,
                "startup_cpu": getattr(self, "startup_cpu", time.process_time())}

    def _progress(self, key: str) -> Callable[[int, int], None]:
        def post(done: int, total: int) -> None:
            self.board.post.remote(key, done, total)

        return post

    def _run(self, work: Callable[[], Any]) -> Outcome:
        if self.refusal:
            return Outcome(error=self.refusal, kind="ClusterError", worker=self.name, node=self.node)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            value = work()
            return Outcome(value=value, worker=self.name, node=self.node, seconds=time.perf_counter() - t0,
                           cpu_seconds=time.process_time() - c0)
        except Exception as exc:  # noqa: BLE001 - the work's own error: reported, never retried
            text = str(exc) if isinstance(exc, LipSyncError) else f"unexpected {type(exc).__name__}: {exc}"
            return Outcome(error=text, kind=type(exc).__name__, worker=self.name, node=self.node,
                           seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0,
                           extra={"exception": exc})

    def run_item(self, key: str, item: Any, audio: Any, audio_key: str, staged: str,
                 metadata: dict[str, str] | None) -> Outcome:
        """Make one batch item at ``staged``: its ``LipSyncResult``. ``audio``: the item's voice (a
        path, or a Waveform sent once through the object store), prepared once per ``audio_key``."""
        from ..engine.batch.run import reason, render_item

        def work() -> Any:
            prepared = self.audio.get(audio, self.generator, key=audio_key)
            return render_item(item, Path(staged), self.generator, self.options, prepared, detector=self.detector,
                               progress=self._progress(key), should_stop=None, metadata=metadata)

        outcome = self._run(work)
        if outcome.error:
            Path(staged).unlink(missing_ok=True)
            outcome.error = reason(outcome.extra.pop("exception", Exception(outcome.error)), item)
        outcome.extra.pop("exception", None)
        return outcome

    def detect(self, key: str, plan: Any, frames: tuple[int, int]) -> Outcome:
        """The detections of output frames ``frames`` of ``plan`` (``lipsync.engine.lipsync.detect_range``)."""
        from ..engine.lipsync import detect_range
        from ..media.video import index_keyframes

        def work() -> list[Any]:
            index_keyframes(plan.video)
            return detect_range(plan, self.options, self.detector, frames)

        return self._strip(self._run(work))

    def render(self, key: str, plan: Any, prepared: Any, part: str, frames: tuple[int, int],
               faces: Sequence[Any]) -> Outcome:
        """Render output frames ``frames`` of ``plan`` with the tracked ``faces`` into the
        video-only file ``part``: (frames written, frames with a face)."""
        from ..engine.lipsync import lipsync_video
        from ..media.video import index_keyframes

        def work() -> tuple[int, int]:
            index_keyframes(plan.video)
            done = lipsync_video(plan.video, prepared, part, self.generator, self.options, frames=frames, faces=faces,
                                 audio_track=False, progress=self._progress(key))
            return done.frames, done.frames_with_face

        outcome = self._strip(self._run(work))
        if outcome.error:
            Path(part).unlink(missing_ok=True)
        return outcome

    @staticmethod
    def _strip(outcome: Outcome) -> Outcome:
        outcome.extra.pop("exception", None)
        return outcome
