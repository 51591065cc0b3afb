"""A batch's report (report.json and report.csv, written atomically) and its zip.

``ItemResult`` is one line of the report; ``write_zip`` puts the outputs and reports into a zip
whose members are plain file names.
"""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from ...errors import OutputError
from ...media.atomic import atomic_path, atomic_write_bytes

__all__ = [
    "CSV_COLUMNS",
    "REPORT_CSV",
    "REPORT_JSON",
    "STATUSES",
    "ItemResult",
    "ItemStatus",
    "write_zip",
]

REPORT_JSON, REPORT_CSV = "report.json", "report.csv"
CSV_COLUMNS = ("item", "video", "audio", "status", "error", "output", "duration", "seconds", "frames", "attempts",
               "worker", "node", "seen")

ItemStatus = Literal["done", "skipped", "failed", "cancelled", "pending"]
STATUSES: tuple[ItemStatus, ...] = ("done", "skipped", "failed", "cancelled", "pending")


@dataclass
class ItemResult:
    """One line of the report. ``output`` is a file name in the batch folder ("" when none);
    ``duration`` the output's length in seconds; ``seconds`` the time this item took;
    ``warnings`` what the job could not keep of the input (e.g. HDR tone-mapped to SDR; JSON only);
    ``seen`` what was seen in the inputs, one line (``lipsync.engine.summary.describe_inputs``);
    ``attempts`` how often it was started (more than 1 only on a cluster, where a lost worker's
    item is retried); ``worker`` and ``node`` which cluster worker, on which machine, made it
    ("" on one machine)."""

    item: int
    video: str
    audio: str
    status: ItemStatus = "pending"
    error: str = ""
    output: str = ""
    duration: float | None = None
    seconds: float = 0.0
    frames: int = 0
    key: str = ""
    warnings: list[str] = field(default_factory=list)
    attempts: int = 0
    worker: str = ""
    node: str = ""
    seen: str = ""


def _atomic_write(path: Path, data: bytes) -> None:
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise OutputError(f"Cannot write {path} ({exc.strerror or exc}); check the folder and the free space.") from exc


def _write_reports(out_dir: Path, results: list[ItemResult], seconds: float) -> tuple[Path, Path]:
    summary = {s: sum(1 for r in results if r.status == s) for s in STATUSES}
    payload = {
        "format": "resync-batch-report", "version": 1,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(seconds, 3), "summary": summary, "items": [asdict(r) for r in results],
    }
    _atomic_write(out_dir / REPORT_JSON, json.dumps(payload, indent=2, ensure_ascii=False).encode("utf-8"))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in results:
        row = asdict(r)
        row["duration"] = "" if r.duration is None else f"{r.duration:.3f}"
        row["seconds"] = f"{r.seconds:.2f}"
        writer.writerow([row[c] for c in CSV_COLUMNS])
    _atomic_write(out_dir / REPORT_CSV, text.getvalue().encode("utf-8"))
    return out_dir / REPORT_JSON, out_dir / REPORT_CSV


def _member_name(name: str) -> str:
    """A zip member name that unpacks inside the target folder on every system."""
    if (not name or name != os.path.basename(name) or "\\" in name or name in (".", "..")
            or name.startswith(("/", ".")) or ":" in name or any(ord(c) < 32 for c in name)):
        raise OutputError(f"Refusing to put {name!r} into a zip: member names must be plain file names.")
    return name


def write_zip(zip_path: Path, files: Sequence[Path]) -> Path:
    """A zip of ``files`` under their plain names, written beside and renamed when complete.
    Videos are stored (already compressed), reports deflated."""
    members = [(path, _member_name(path.name)) for path in files]
    try:
        with atomic_path(zip_path) as temp, zipfile.ZipFile(temp, "w") as archive:
            for path, name in members:
                method = zipfile.ZIP_DEFLATED if path.suffix in (".json", ".csv") else zipfile.ZIP_STORED
                archive.write(path, name, compress_type=method)
    except OSError as exc:
        raise OutputError(f"Cannot write {zip_path} ({exc}); check the folder and free disk space.") from exc
    return zip_path
