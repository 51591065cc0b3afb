"""One long video on a Ray cluster, in frame ranges, joined into the file a single run makes.

    driver: probe, audio features once ─► K frame ranges on the chunk grid
    workers: detect faces in each range (seeking to its keyframe)        ─┐
    driver: track over all detections at once (no seam: the smoother and ─┘
            the face choice carry their state across every boundary)
    workers: render each range with its tracked faces and the audio windows of the whole voice
             into a video-only part (each part starts on a keyframe)
    driver: join the parts by copying packets (``lipsync.media.join``), audio muxed once

Ranges start on multiples of the engine's chunk size, so every network batch holds the frames a
single run puts in it; with ``lossless`` the joined frames are bit-identical to a single run's.
With H.264 each part is its own encode (the first frame of each part is a keyframe, a few more
bits than a single run spends there); the frames are continuous, the timestamps too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from itertools import chain, pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import errors
from ..engine.lipsync import LipSyncResult, PreparedAudio, no_face_warning, plan_job, prepare_audio
from ..engine.stages import buffer_sizes, face_tracker, track_detections
from ..engine.summary import describe_inputs
from ..errors import LipSyncError
from ..faces import fixed_box_track
from ..media.join import join_parts
from ..media.video import picture_changes
from ..options import ClusterOptions, LipSyncOptions
from ..types import Waveform
from ._ray import connect, library_fingerprint, worker_count
from .batch import remove_attempt
from .pool import Pool, Task
from .weights import pack_generator
from .worker import Outcome, WorkerSetup

if TYPE_CHECKING:
    from ..models.base import Generator

__all__ = ["lipsync_video_on_cluster", "split_frames"]


def split_frames(frames: int, parts: int, chunk: int) -> list[tuple[int, int]]:
    """``parts`` consecutive ranges [a, b) covering ``frames`` frames, every inner boundary a
    multiple of ``chunk`` (fewer ranges when there are fewer chunks than parts)."""
    edges = [0]
    for j in range(1, parts):
        bound = round(j * frames / parts / chunk) * chunk
        if edges[-1] < bound < frames:
            edges.append(bound)
    edges.append(frames)
    return list(pairwise(edges))


def _raise(outcome: Outcome, what: str) -> None:
    kind = getattr(errors, outcome.kind, None)
    if isinstance(kind, type) and issubclass(kind, LipSyncError):
        raise kind(outcome.error)
    raise LipSyncError(f"{what} failed on worker {outcome.worker} ({outcome.node}): {outcome.error}")


def lipsync_video_on_cluster(
    video: str | os.PathLike[str],
    audio: str | os.PathLike[str] | Waveform,
    output: str | os.PathLike[str],
    generator: Generator,
    options: LipSyncOptions | None,
    cluster: ClusterOptions,
    *,
    detector: Any = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    metadata: dict[str, str] | None = None,
) -> LipSyncResult:
    """``lipsync_video`` on the workers of ``cluster`` in ``cluster.segments`` frame ranges (0:
    two per worker); see the module docstring. ``video``, ``output``'s folder (and a file
    ``audio``) must lie on storage every node mounts at the same path. Nothing is written under
    ``output`` unless the job completes; the parts are removed either way.

    Raises what ``lipsync_video`` raises (a worker's error comes back as the same kind),
    ClusterError, Cancelled (``should_stop``).
    """
    t0 = time.perf_counter()
    opts = (options or LipSyncOptions()).resolved()
    cluster.check()
    final = Path(output).resolve()  # the workers' working folder is not the driver's
    prepared = prepare_audio(audio, generator)
    plan = plan_job(os.path.abspath(video), prepared.features, opts)
    chunk, _ = buffer_sizes(opts, plan.size)
    payload = pack_generator(generator)
    detecting = opts.faces.box is None
    total = plan.frames * (2 if detecting else 1)
    done_frames = 0
    parts: dict[int, Path] = {}

    def part_path(k: int, attempt: int) -> Path:
        return final.with_name(f".{final.stem}.resync-part{k:04d}.a{attempt}{final.suffix}")

    try:
        with connect(cluster) as ray:
            jobs = cluster.segments or 2 * max(1, cluster.workers or worker_count(ray, cluster, 10**6))
            ranges = split_frames(plan.frames, jobs, chunk)
            setup = WorkerSetup(opts, library_fingerprint(), (plan.video, str(final.parent.resolve())),
                                str(final.parent.resolve()))
            features_ref = ray.put(PreparedAudio(prepared.features, plan.video))  # the windows of the whole voice, once
            with Pool(ray, cluster, setup, payload, worker_count(ray, cluster, len(ranges)), detector) as pool:

                def moved(board: dict[str, tuple[int, int]]) -> None:
                    if progress is not None:
                        running = sum(d for key, (d, _) in board.items() if key.startswith("r") and int(key[1:]) not in parts)
                        progress(min(total, done_frames + running), total)

                faces, speaker, index_unmet = _faces(pool, plan, opts, ranges, moved, should_stop)
                if detecting:
                    done_frames = plan.frames
                with_face = 0

                def rendered(t: Task, outcome: Outcome) -> None:
                    nonlocal done_frames, with_face
                    if outcome.error:
                        _raise(outcome, "rendering a part")
                    k = int(t.key[1:])
                    parts[k] = part_path(k, t.attempts)
                    done_frames += outcome.value[0]
                    with_face += outcome.value[1]

                tasks = [
                    Task(key=f"r{k}", method="render",
                         args=lambda n, k=k, a=a, b=b: (f"r{k}", plan, features_ref, str(part_path(k, n)), (a, b),
                                                         faces[a:b]),
                         cleanup=lambda n, k=k: remove_attempt(part_path(k, n)))
                    for k, (a, b) in enumerate(ranges)
                ]
                pool.run(tasks, rendered, on_progress=moved, should_stop=should_stop)
        frames = join_parts([parts[k] for k in range(len(ranges))], final, plan.fps, audio=prepared.source,
                            lossless=opts.encode.lossless, metadata=metadata)
    finally:
        for path in parts.values():
            remove_attempt(path)
    if progress is not None:
        progress(total, total)
    warnings = picture_changes(plan.info, lossless=opts.encode.lossless)
    if with_face == 0:
        warnings.append(no_face_warning(Path(plan.video).name, speaker, index_unmet))
    return LipSyncResult(output=final, frames=frames, fps=plan.fps, duration=float(frames / plan.fps),
                         frames_with_face=with_face, detector="fixed box" if not detecting else opts.faces.detector,
                         seconds=time.perf_counter() - t0, warnings=warnings,
                         summary=describe_inputs(plan.info, prepared.notes, speaker), speaker=speaker,
                         face_index_unmet=index_unmet)


def _faces(pool: Pool, plan: Any, opts: LipSyncOptions, ranges: list[tuple[int, int]],
           moved: Callable[[dict[str, tuple[int, int]]], None],
           should_stop: Callable[[], bool] | None) -> tuple[list[Any], str, bool]:
    """The tracked face of every frame: a fixed box, or detection on the workers per range and
    the engine's tracker over all of it here; who was followed (``LipSyncResult.speaker``) and
    whether the face index was beyond the faces (``face_index_unmet``)."""
    if opts.faces.box is not None:
        return [fixed_box_track(opts.faces.box, plan.size)] * plan.frames, "fixed box", False
    found: dict[int, list[Any]] = {}

    def detected(t: Task, outcome: Outcome) -> None:
        if outcome.error:
            _raise(outcome, "face detection")
        found[int(t.key[1:])] = outcome.value

    tasks = [Task(key=f"d{k}", method="detect", args=lambda n, k=k, a=a, b=b: (f"d{k}", plan, (a, b)))
             for k, (a, b) in enumerate(ranges)]
    pool.run(tasks, detected, on_progress=moved, should_stop=should_stop)
    detections = chain.from_iterable(found[k] for k in range(len(ranges)))
    tracker = face_tracker(plan.size, opts.faces)
    tracked = list(track_detections(detections, plan.size, opts.faces, tracker))
    report = tracker.speaker_report
    return tracked, report.describe(), report.index_unmet
