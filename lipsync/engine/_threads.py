"""Running one pipeline stage in a background thread, so decoding, detection and encoding overlap
with the network (torch, PyAV and the detectors release the GIL while they compute).

Both helpers keep a small bounded queue, so memory stays flat, and hand errors back to the
caller's thread: an exception in the worker is raised where the caller next touches the stage.

Stopping waits at most ``STOP_WAIT_S`` for a worker. A Ctrl-C (KeyboardInterrupt) can land in
the caller's thread just after it took a queue's lock and before the ``with`` block that would
release it (Python's ``with lock:`` is not safe against asynchronous exceptions): the lock then
stays held, and a worker waiting for it never runs again. Seen in CI as a command line that
hung after Ctrl-C (py-spy: both threads waiting for the consumer queue's lock). Such a worker is
a daemon thread that will never touch its stage again, so it is left behind and the job ends.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

__all__ = ["BackgroundConsumer", "InlineConsumer", "prefetch"]

T = TypeVar("T")

_DONE = object()
_POLL_S = 0.1
STOP_WAIT_S = 10.0
"""How long stopping waits for a worker to end (it finishes the item in hand first)."""


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(source: Iterator[T], depth: int = 8) -> Iterator[T]:
    """Yield the items of ``source``, produced ahead by a worker thread (at most ``depth`` ahead).

    Closing the returned generator (or abandoning it on an exception) stops the worker.
    """
    items: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in source:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer's thread, re-raised there
            put(_Failure(exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None and stop.is_set():
                close()

    worker = threading.Thread(target=work, name="lipsync-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join(STOP_WAIT_S)


class BackgroundConsumer(Generic[T]):
    """Feed items to ``consume`` in a worker thread; ``put`` blocks when ``depth`` are waiting.

    ``finish()`` waits for the queue to drain and re-raises the worker's exception, if any;
    ``cancel()`` drops what is queued and stops the worker.
    """

    def __init__(self, consume: Callable[[T], None], depth: int = 8) -> None:
        self._consume = consume
        self._items: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._work, name="lipsync-consumer", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while not self._cancelled.is_set():
            try:
                item = self._items.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is _DONE or self._cancelled.is_set():
                return
            if self._error is not None:
                continue
            try:
                self._consume(item)  # type: ignore[arg-type]
            except BaseException as exc:  # re-raised in the caller's thread
                self._error = exc

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: T) -> None:
        self._raise_if_failed()
        while True:
            try:
                self._items.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                self._raise_if_failed()
                if not self._thread.is_alive():
                    raise RuntimeError("the background consumer stopped unexpectedly") from None

    def finish(self) -> None:
        self._items.put(_DONE)
        self._thread.join()
        self._raise_if_failed()

    def cancel(self) -> None:
        """Stop the worker (the item in hand is finished, the queued ones dropped), without
        touching the queue: its lock may be the one a Ctrl-C left held (see the module docstring)."""
        self._cancelled.set()
        self._thread.join(STOP_WAIT_S)


class InlineConsumer(Generic[T]):
    """``BackgroundConsumer``'s interface without the thread: ``put`` consumes at once."""

    def __init__(self, consume: Callable[[T], None]) -> None:
        self._consume = consume

    def put(self, item: T) -> None:
        self._consume(item)

    def finish(self) -> None:
        return None

    def cancel(self) -> None:
        return None
