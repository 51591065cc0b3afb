"""The progress bar of the command line: one line on a terminal, silent otherwise."""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """A one-line progress bar on a terminal; silent otherwise (and when not ``enabled``).

    Called as ``progress(done, total)`` by the engine; ``close()`` ends the line."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream, self.enabled, self.t0 = stream, enabled and stream.isatty(), time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        rate = done / max(time.perf_counter() - self.t0, 1e-6)
        width = 30
        filled = int(width * done / max(total, 1))
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} frames {rate:5.1f} fps")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
