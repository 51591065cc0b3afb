"""Command line: ``python -m lipsync VIDEO AUDIO -o OUT.mp4`` and subcommands.

argparse cannot mix subcommands with the VIDEO AUDIO positionals, so the first word decides:
``convert`` (a checkpoint to .safetensors), ``download`` (fetch the weights), ``batch`` (many
jobs), ``segment`` (one time range); anything else is the main job (``run``). Each command is one
module with ``main(argv) -> int``, imported by name only when it runs: the main job never pays for
batch, and no command module imports another or this dispatcher. Their flags come from the option
groups of ``lipsync.options`` (``lipsync.cli.options``); every command loads its model through
``lipsync.cli._model``.

Exit status 0 only when the output was written; otherwise one line on stderr and 1 (2 for bad
usage, 130 when interrupted, 143 when terminated).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Sequence

from ..errors import LipSyncError

__all__ = ["COMMANDS", "main"]

COMMANDS: dict[str, str] = {
    "convert": "convert",
    "download": "download",
    "batch": "batch",
    "segment": "segment",
}
"""First word → the module (in this package) that runs it."""

MAIN_JOB = "run"
"""The module of the main job, run when the first word is no command."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a job scheduler, a container stopping) as an interrupt: the job stops
    the way Ctrl-C stops it, removing what it had begun to write."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


@contextlib.contextmanager
def _sigterm_interrupts():  # noqa: ANN202 - a context manager
    """SIGTERM raises ``Terminated`` in the main thread for the block (where this process may
    set handlers: the main thread of the main interpreter), the previous handler put back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` names (default: ``sys.argv[1:]``); its exit status (130 after
    Ctrl-C, 143 after SIGTERM: nothing is left under the output's name or as a temporary file)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = COMMANDS.get(argv[0]) if argv else None
    rest = argv[1:] if command else argv
    try:
        module = importlib.import_module(f"{__name__}.{command or MAIN_JOB}")
        with _sigterm_interrupts():
            return int(module.main(rest))
    except LipSyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Terminated:
        print("terminated: no output was written", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted: no output was written", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, the traceback on request
        if os.environ.get("LIPSYNC_DEBUG"):
            raise
        print(f"error: {_unexpected(exc)}", file=sys.stderr)
        return 1


def _unexpected(exc: Exception) -> str:
    """One line for an error the library did not foresee (no output was written either way)."""
    text = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return (
            f"out of memory ({type(exc).__name__}: {text[:200]}); lower --batch-size, use a smaller "
            "or shorter video, or close other programs using the GPU. No output was written."
        )
    return (
        f"unexpected {type(exc).__name__}: {text[:300]}. No output was written. This is a bug: please "
        "report it with the command line (set LIPSYNC_DEBUG=1 to see the full traceback)."
    )
