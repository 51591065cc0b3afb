"""Resuming a batch: what an output was made from (its key), and whether a finished output can be kept.

An output under its final name is complete (the writer renames only finished files, and a batch
moves an output to its final name only once it is accepted). It is kept on a re-run unless the
previous report says it was made from other inputs or settings (``item_key``), or it no longer
probes with the frame count the report recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import LipSyncError
from ...types import Waveform
from .items import BatchItem
from .report import REPORT_JSON

if TYPE_CHECKING:
    from ...options import LipSyncOptions

__all__ = ["batch_key", "item_key", "kept_output", "previous_results", "voice_digests"]


def _file_stamp(path: str) -> list[Any]:
    try:
        st = os.stat(path)
        return [os.path.abspath(path), st.st_size, st.st_mtime_ns]
    except OSError:
        return [os.path.abspath(path), None, None]


_KEY_IGNORES = {"batch_size", "chunk_batches", "models_dir", "checkpoint", "device"}
"""Options that change the speed, not the result (the weights are keyed by the model's name): a
re-run with other values still resumes."""


def _settings(options: LipSyncOptions) -> str:
    kept = {k: v for k, v in options.flat().items() if k not in _KEY_IGNORES}
    if not kept["fp16"]:  # full-precision runs keep the keys they had before fp16 was an option
        del kept["fp16"]
    if kept["family"] == "wav2lip":  # and Wav2Lip runs the keys they had before there were two families
        del kept["family"]
    return repr(sorted(kept.items()))


def voice_digests(items: Sequence[BatchItem]) -> dict[int, str]:
    """The digest of each in-memory voice of ``items`` (by id), hashed once for the whole batch."""
    return {
        id(it.audio): f"{it.audio.sample_rate}:{hashlib.sha1(it.audio.samples.tobytes()).hexdigest()}"
        for it in items if isinstance(it.audio, Waveform)
    }


def item_key(item: BatchItem, options: LipSyncOptions, model_name: str, voices: dict[int, str] | None = None) -> str:
    """What an output was made from: the inputs' paths, sizes and times (an in-memory voice's
    samples), the settings that change the result and the model's name."""
    if isinstance(item.audio, Waveform):
        audio: Any = (voices or voice_digests([item]))[id(item.audio)]
    else:
        audio = _file_stamp(item.audio)
    data = [_file_stamp(item.video), audio, item.output_name, model_name, _settings(options)]
    return hashlib.sha1(json.dumps(data, default=str).encode()).hexdigest()[:16]


def batch_key(items: Sequence[BatchItem], options: LipSyncOptions, model_name: str,
              voices: dict[int, str] | None = None) -> str:
    """Names one batch: its items' input and output names (an in-memory voice's samples), the
    settings that change the result and the model. The same batch run again gets the same key,
    so the nodes give it the same folder, where it resumes; an input changed in place does not
    change the key, only its item is redone."""
    voices = voices if voices is not None else voice_digests(items)
    rows = [[it.video, voices[id(it.audio)] if isinstance(it.audio, Waveform) else it.audio, it.output_name]
            for it in items]
    return hashlib.sha1(json.dumps([rows, model_name, _settings(options)]).encode()).hexdigest()[:8]


def previous_results(out_dir: Path) -> dict[str, dict[str, Any]]:
    """The last report's finished items by output name ({} when there is none or it is unreadable)."""
    try:
        data = json.loads((out_dir / REPORT_JSON).read_text(encoding="utf-8"))
        return {r["output"]: r for r in data["items"] if r.get("output") and r.get("status") in ("done", "skipped")}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def kept_output(path: Path, previous: dict[str, Any] | None, key: str) -> tuple[int, float] | None:
    """(frames, seconds) of an output that can be kept, else None."""
    from ...media.video import probe

    if not path.is_file() or (previous is not None and previous.get("key") not in (None, key)):
        return None
    try:
        info = probe(path)
    except LipSyncError:
        return None
    if previous is not None and previous.get("frames") and int(previous["frames"]) != info.frame_count:
        return None
    return info.frame_count, info.duration
