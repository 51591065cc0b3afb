"""The pipeline's worker threads (``lipsync.engine._threads``): they hand everything over in order,
and stopping them never hangs, even on a queue whose lock a Ctrl-C left held."""

from __future__ import annotations

import threading
import time

import pytest

from lipsync.engine import _threads
from lipsync.engine._threads import BackgroundConsumer, prefetch


@pytest.fixture
def short_stop(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(_threads, "STOP_WAIT_S", 0.3)
    return 0.3


def _returns_within(fn, seconds: float) -> bool:  # noqa: ANN001 - a test helper
    """Whether ``fn()`` returns within ``seconds`` (run in a daemon thread, so a hang fails the test instead of the run)."""
    done = threading.Event()

    def run() -> None:
        fn()
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done.wait(seconds)


def test_the_consumer_gets_every_item_in_order_and_finish_waits_for_them() -> None:
    seen: list[int] = []
    consumer = BackgroundConsumer(lambda item: (time.sleep(0.001), seen.append(item)), depth=2)
    for i in range(20):
        consumer.put(i)
    consumer.finish()
    assert seen == list(range(20))


def test_cancel_drops_what_is_queued_and_ends_the_worker() -> None:
    started, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def consume(item: int) -> None:
        started.set()
        release.wait(5)
        seen.append(item)

    consumer = BackgroundConsumer(consume, depth=4)
    for i in range(4):
        consumer.put(i)
    started.wait(5)
    release.set()
    consumer.cancel()
    assert seen == [0] and not consumer._thread.is_alive()


def test_cancel_returns_when_a_ctrl_c_left_the_queue_locked(short_stop: float) -> None:
    consumer = BackgroundConsumer(lambda item: None, depth=2)
    # What a KeyboardInterrupt between the lock's acquire and its ``with`` block leaves behind
    # (seen in CI: the command line hung after Ctrl-C, both threads waiting for this lock).
    consumer._items.mutex.acquire()
    try:
        assert _returns_within(consumer.cancel, 5 * short_stop)
    finally:
        consumer._items.mutex.release()


def test_closing_a_prefetch_waits_only_so_long_for_a_stuck_source(short_stop: float) -> None:
    release = threading.Event()

    def source():  # noqa: ANN202
        yield 1
        release.wait(30)  # a source that does not come back (a stuck read)
        yield 2

    items = prefetch(source(), depth=1)
    assert next(items) == 1
    try:
        assert _returns_within(items.close, 5 * short_stop)
    finally:
        release.set()


def test_prefetch_yields_everything_in_order_and_hands_errors_over() -> None:
    assert list(prefetch(iter(range(50)), depth=3)) == list(range(50))

    def failing():  # noqa: ANN202
        yield 1
        raise OSError("disk gone")

    items = prefetch(failing(), depth=2)
    assert next(items) == 1
    with pytest.raises(OSError, match="disk gone"):
        next(items)
