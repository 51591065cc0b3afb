"""A batch on a Ray cluster: the driver does what ``run_batch`` does, the workers make the items.

    driver: items checked ─► done before? skipped (no worker started for them) ─► report
            └► workers (each: model + detector once) make the rest, several at a time
               ─► each accepted output renamed to its final name ─► report after every item
               ─► zip at the end (as the local batch)

Outputs are staged beside their final names (``.<name>.resync-staged.a<attempt>.<ext>``): an
attempt whose worker died is removed and the item made again by a new attempt under a new
name, so two attempts never write one file and a final name only ever holds a finished output.
The report's ``attempts``, ``worker`` and ``node`` say who made each item, after how many tries.
Every path must be the same on every node (shared storage); workers check that they see the
inputs and can write the output folder, and run the driver's library version, before any item.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engine.batch.keys import previous_results
from ..engine.batch.report import ItemResult, _write_reports
from ..engine.batch.run import (
    BatchItem,
    BatchReport,
    check_names,
    estimate_frames,
    finish_batch,
    item_key,
    remove_staged,
    skip_if_done,
    staged_path,
    voice_digests,
)
from ..errors import OutputError
from ..media.atomic import TEMP_MARKER
from ..options import ClusterOptions, LipSyncOptions
from ..types import Waveform
from ._ray import connect, library_fingerprint, worker_count
from .pool import Pool, Task
from .weights import pack_generator
from .worker import Outcome, WorkerSetup

if TYPE_CHECKING:
    from ..models.base import Generator

__all__ = ["run_batch_on_cluster"]


def remove_attempt(path: Path) -> None:
    """Remove what one attempt left: its staged file and its writer's temporary files."""
    path.unlink(missing_ok=True)
    for temp in path.parent.glob(f".{path.stem}{TEMP_MARKER}*"):
        temp.unlink(missing_ok=True)


def _absolute(item: BatchItem) -> BatchItem:
    audio = os.path.abspath(item.audio) if isinstance(item.audio, str) else item.audio
    return replace(item, video=os.path.abspath(item.video), audio=audio)


def _storage_paths(items: Sequence[BatchItem]) -> tuple[str, ...]:
    """The inputs a worker checks it sees: the first item's video and file voice."""
    first = items[0]
    paths = [first.video] + ([first.audio] if isinstance(first.audio, str) else [])
    return tuple(p for p in paths if os.path.exists(p))  # a missing input fails its item, not the workers


def run_batch_on_cluster(
    items: Sequence[BatchItem],
    out_dir: str | os.PathLike[str],
    generator: Generator,
    options: LipSyncOptions | None,
    cluster: ClusterOptions,
    *,
    detector: Any = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_item_start: Callable[[int, int, BatchItem], None] | None = None,
    metadata: dict[str, str] | None = None,
    make_zip: bool = True,
    zip_name: str | None = None,
) -> BatchReport:
    """``run_batch`` with the items made on the workers of ``cluster`` (see the module docstring).

    ``generator`` is packed once for the workers (a torch Wav2Lip); ``detector`` (optional) is
    sent to them, else each creates the one the options name. ``progress(done, total)`` counts
    frames over all items, ``on_item_start(index, count, item)`` is called when an item is
    handed to a worker. Outputs, report and zip are those ``run_batch`` writes, plus who made
    each item. Raises ``Cancelled`` (``should_stop``) or KeyboardInterrupt after ending the
    workers, removing their unfinished files and writing the report; ClusterError when the
    cluster cannot run the batch (nothing is then marked failed).
    """
    t0 = time.perf_counter()
    opts = (options or LipSyncOptions()).resolved()
    cluster.check()
    check_names(items)
    items = [_absolute(it) for it in items]  # the workers' working folder is not the driver's
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    remove_staged(out)
    previous = previous_results(out)
    model = getattr(generator, "name", "")
    voices = voice_digests(items)
    results = [ItemResult(i, it.video_name, it.audio_name, key=item_key(it, opts, model, voices))
               for i, it in enumerate(items, 1)]
    todo = [k for k, (it, res) in enumerate(zip(items, results)) if not skip_if_done(it, res, out, previous)]

    def report() -> None:
        _write_reports(out, results, time.perf_counter() - t0)

    try:
        if todo:
            _run_on_workers(items, results, todo, out, generator, opts, cluster, detector=detector, progress=progress,
                            should_stop=should_stop, on_item_start=on_item_start, metadata=metadata, voices=voices,
                            report=report)
    except BaseException:
        for k in todo:
            if results[k].status == "pending":
                results[k].status = "cancelled"
        with contextlib.suppress(OutputError):
            report()
        raise
    return finish_batch(out, results, t0, make_zip=make_zip, zip_name=zip_name)


def _run_on_workers(
    items: Sequence[BatchItem],
    results: list[ItemResult],
    todo: list[int],
    out: Path,
    generator: Generator,
    opts: LipSyncOptions,
    cluster: ClusterOptions,
    *,
    detector: Any,
    progress: Callable[[int, int], None] | None,
    should_stop: Callable[[], bool] | None,
    on_item_start: Callable[[int, int, BatchItem], None] | None,
    metadata: dict[str, str] | None,
    voices: dict[int, str],
    report: Callable[[], None],
) -> None:
    payload = pack_generator(generator)
    estimates = {k: estimate_frames(items[k], opts) for k in todo}
    finished_frames = 0
    with connect(cluster) as ray:
        voice_refs = {id(it.audio): ray.put(it.audio) for it in items if isinstance(it.audio, Waveform)}
        setup = WorkerSetup(opts, library_fingerprint(), (*_storage_paths([items[todo[0]]]), str(out)), str(out))
        count = worker_count(ray, cluster, len(todo))
        with Pool(ray, cluster, setup, payload, count, detector) as pool:

            def task(k: int) -> Task:
                item = items[k]
                final = out / item.output_name
                audio = voice_refs.get(id(item.audio), item.audio)
                audio_key = voices.get(id(item.audio), item.audio) if isinstance(item.audio, Waveform) else item.audio
                return Task(
                    key=str(k), method="run_item",
                    args=lambda n: (str(k), item, audio, audio_key, str(staged_path(final, n)), metadata),
                    cleanup=lambda n: remove_attempt(staged_path(final, n)),
                )

            def started(t: Task) -> None:
                k = int(t.key)
                if on_item_start is not None:
                    on_item_start(k + 1, len(items), items[k])

            def finished(t: Task, outcome: Outcome) -> None:
                nonlocal finished_frames
                k = int(t.key)
                res, item = results[k], items[k]
                res.attempts, res.worker, res.node, res.seconds = t.attempts, outcome.worker, outcome.node, outcome.seconds
                staged = staged_path(out / item.output_name, t.attempts)
                if outcome.error:
                    res.status, res.error = "failed", outcome.error
                else:
                    try:
                        os.replace(staged, out / item.output_name)
                        res.status, res.output = "done", item.output_name
                        done = outcome.value
                        res.frames, res.duration = done.frames, done.duration
                        res.warnings, res.seen = list(done.warnings), done.summary
                    except OSError as exc:
                        res.status = "failed"
                        res.error = (f"worker {outcome.worker} on {outcome.node} made it, but the driver cannot move it "
                                     f"into place ({exc.strerror or exc}): the output folder must be storage every node "
                                     "mounts at the same path")
                finished_frames += estimates.pop(k)
                report()

            def moved(board: dict[str, tuple[int, int]]) -> None:
                if progress is None:
                    return
                running = {int(key): v for key, v in board.items() if int(key) in estimates}
                done = finished_frames + sum(d for d, _ in running.values())
                total = finished_frames + sum(running[k][1] if k in running else e for k, e in estimates.items())
                progress(done, max(total, done))

            pool.run([task(k) for k in todo], finished, on_start=started, on_progress=moved, should_stop=should_stop)
    if progress is not None:
        progress(finished_frames, finished_frames)
