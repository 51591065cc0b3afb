"""The driver's side of the workers: start them, hand out work, retry what a lost worker held,
collect progress, and stop everything cleanly.

    Pool(...) as pool:  start N actors (model + detector loaded once each; the weights travel
                        once through the object store), wait until each says it can work
    pool.run(tasks)     each task goes to an idle worker; a worker that dies (Ray's actor error)
                        is restarted by Ray and its task retried, up to ``retries`` more times,
                        each attempt under its own file names; the task's own error is final
    leaving the block   the workers and the progress board are ended (also on Ctrl-C or stop)
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import Cancelled, ClusterError
from ..options import ClusterOptions
from .worker import Outcome, ProgressBoard, Worker, WorkerSetup

__all__ = ["ACTOR_PREFIX", "Pool", "Task"]

ACTOR_PREFIX = "resync-worker"
"""Workers are named ``<prefix>-<run>-w<k>`` (``ray.get_actor`` finds them, e.g. to test a loss)."""
POLL_S = 0.2
"""How often the driver looks for finished work, progress and a stop request."""
START_TIMEOUT_S = 600.0
"""How long the workers may take to start (scheduling, loading the model) before giving up."""
RESTART_WAIT_S = 120.0
"""How long a lost worker may take to come back (Ray restarts it, the model loads again) before
the run goes on without it."""
STOP_WAIT_S = 20.0
"""How long stopping waits for the ended workers' processes to be gone before cleaning up."""


@dataclass
class Task:
    """One piece of work: ``method`` of a worker called with ``args(attempt)`` (attempt 1, 2, …);
    ``cleanup(attempt)`` removes what an attempt whose worker died left behind."""

    key: str
    method: str
    args: Callable[[int], tuple[Any, ...]]
    cleanup: Callable[[int], None] = lambda attempt: None
    attempts: int = 0
    worker: str = ""
    lost: list[str] = field(default_factory=list)


def _actor_lost(ray: Any) -> tuple[type[BaseException], ...]:
    ex = ray.exceptions
    return tuple(getattr(ex, n) for n in ("RayActorError", "ActorDiedError", "ActorUnavailableError") if hasattr(ex, n))


class Pool:
    """``count`` workers for one run (see the module docstring)."""

    def __init__(self, ray: Any, options: ClusterOptions, setup: WorkerSetup, weights: Any, count: int,
                 detector: Any = None) -> None:
        self.ray, self.options, self.count = ray, options, count
        self.run_id = f"{int(time.time() * 1000) % 10**9:09d}"
        self._setup, self._weights, self._detector = setup, weights, detector
        self.actors: list[Any] = []
        self.names: list[str] = []
        self.board: Any = None
        self.info: list[dict[str, Any]] = []

    def __enter__(self) -> Pool:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        ray, opts = self.ray, self.options
        self.board = ray.remote(num_cpus=0)(ProgressBoard).remote()
        weights = ray.put(self._weights)  # once into the object store; every worker (and restart) reads it there
        actor = ray.remote(Worker)
        for k in range(self.count):
            name = f"{ACTOR_PREFIX}-{self.run_id}-w{k}"
            self.names.append(name)
            placed = actor.options(name=name, num_cpus=opts.cpus_per_worker, num_gpus=opts.gpus_per_worker,
                                   max_restarts=-1, max_task_retries=0)
            self.actors.append(placed.remote(self._setup, weights, self._detector, f"w{k}", self.board))
        try:
            self.info = ray.get([a.hello.remote() for a in self.actors], timeout=START_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError as exc:
            raise ClusterError(
                f"{self.count} workers with {opts.cpus_per_worker:g} CPUs and {opts.gpus_per_worker:g} GPUs each did not "
                f"start within {START_TIMEOUT_S:.0f} s: the cluster lacks those resources; lower --workers or "
                "--gpus-per-worker, or add nodes."
            ) from exc
        except _actor_lost(ray) as exc:
            raise ClusterError(f"A worker failed to start: {_first_line(exc)}") from exc
        refusals = [i["refusal"] for i in self.info if i["refusal"]]
        if refusals:
            raise ClusterError(f"A worker refused to run: {refusals[0]}")

    def progress(self) -> dict[str, tuple[int, int]]:
        """The latest ``(done, total)`` each running task posted."""
        return dict(self.ray.get(self.board.read.remote()))

    def run(
        self,
        tasks: Sequence[Task],
        on_finish: Callable[[Task, Outcome], None],
        *,
        on_start: Callable[[Task], None] | None = None,
        on_progress: Callable[[dict[str, tuple[int, int]]], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        """Run every task (see the module docstring); ``on_finish`` gets each one's outcome,
        including "lost its worker ``retries`` + 1 times". Stopping (``should_stop()`` True:
        Cancelled; or Ctrl-C) ends the workers, cleans up the attempts they held, and raises."""
        ray, retries = self.ray, self.options.retries
        lost_errors = _actor_lost(ray)
        pending: deque[Task] = deque(tasks)
        idle = list(range(len(self.actors)))
        running: dict[Any, tuple[Task, int]] = {}
        probes: dict[Any, tuple[int, float]] = {}  # a lost worker's hello: back to idle once Ray restarted it
        waiting: list[tuple[float, int, float]] = []  # (when to ask again, worker, since)
        try:
            while pending or running:
                if should_stop is not None and should_stop():
                    raise Cancelled("Stopped: the cluster's workers were ended.")
                if not idle and not running and not probes and not waiting:
                    raise ClusterError("Every worker was lost and none came back; check the cluster's nodes.")
                now = time.monotonic()
                for entry in [w for w in waiting if w[0] <= now]:
                    waiting.remove(entry)
                    probes[self.actors[entry[1]].hello.remote()] = (entry[1], entry[2])
                while pending and idle:
                    task, k = pending.popleft(), idle.pop(0)
                    task.attempts += 1
                    task.worker = f"w{k}"
                    ref = getattr(self.actors[k], task.method).remote(*task.args(task.attempts))
                    running[ref] = (task, k)
                    if on_start is not None:
                        on_start(task)
                ready, _ = ray.wait([*running, *probes], num_returns=1, timeout=POLL_S)
                for ref in ready:
                    if ref in probes:
                        k, since = probes.pop(ref)
                        try:
                            ray.get(ref)
                            idle.append(k)
                        except lost_errors:
                            if time.monotonic() - since < RESTART_WAIT_S:
                                waiting.append((time.monotonic() + POLL_S, k, since))
                        continue
                    task, k = running.pop(ref)
                    try:
                        outcome = ray.get(ref)
                        idle.append(k)
                    except lost_errors as exc:
                        task.cleanup(task.attempts)
                        task.lost.append(f"w{k}")
                        waiting.append((time.monotonic() + POLL_S, k, time.monotonic()))
                        if task.attempts <= retries:
                            pending.appendleft(task)
                            continue
                        outcome = Outcome(error=f"its worker died {task.attempts} times ({_first_line(exc)}); the "
                                          "node may be short of memory: lower --workers or the batch size",
                                          kind="ClusterError", worker=f"w{k}")
                    except ray.exceptions.RayTaskError as exc:
                        idle.append(k)
                        outcome = Outcome(error=f"unexpected error on the worker: {_first_line(exc)}",
                                          kind="ClusterError", worker=f"w{k}")
                    on_finish(task, outcome)
                if on_progress is not None:
                    on_progress(self.progress())
        except BaseException:
            self._abandon([task for task, _ in running.values()])
            raise

    def _abandon(self, held: list[Task]) -> None:
        """End every worker, wait until they are gone, then remove what their attempts left."""
        refs = self._kill()
        if refs:
            self.ray.wait(refs, num_returns=len(refs), timeout=STOP_WAIT_S)
        for task in held:
            task.cleanup(task.attempts)

    def _kill(self) -> list[Any]:
        refs = []
        for actor in self.actors:
            try:
                self.ray.kill(actor, no_restart=True)
                refs.append(actor.hello.remote())  # fails once the actor is gone
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.actors = []
        return refs

    def close(self) -> None:
        """End the workers and the board (idempotent)."""
        refs = self._kill()
        if refs:
            self.ray.wait(refs, num_returns=len(refs), timeout=STOP_WAIT_S)
        if self.board is not None:
            try:
                self.ray.kill(self.board)
            except Exception:  # noqa: BLE001 - already gone
                pass
            self.board = None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__
