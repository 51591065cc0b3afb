"""ReSync Lip-Sync Batch: many lip-sync jobs with one model, into one folder with a report and a zip.

Three ways to say what to make (all paths inside ComfyUI's input folder, or a folder listed in
$RESYNC_BATCH_DIRS; ``..`` and paths elsewhere are refused):
- one voice × many videos: ``videos`` lists them (a folder, a glob, or one per line) and the
  voice is the AUDIO input or the one file in ``audios``; outputs are named after the videos;
- one video × many voices: one file in ``videos``, many in ``audios``; named after the audios;
- pairs: ``manifest``, a CSV (video,audio,output) or JSON file.

Each item streams through the library's pipeline with the same settings (``lipsync.engine.batch.run``); one
that fails is reported and the rest go on; Cancel stops the batch. While it runs the node shows
"item 3/10: lecture_03.mp4" (the host's progress text) over one progress bar for all frames.
Results go to ``output/<batch_name>_<key>/``: the key names the batch (its inputs and settings),
so queueing the same batch again resumes there and skips the finished outputs. The UI output
carries the videos (the host previews the first one in the node) and, under ``resync_batch``,
the zip and the report for the pack's "Download all (zip)" button (``web/``).

With a ``cluster`` address (optional, appended last) the items run on a Ray cluster's workers
(``lipsync.cluster``; ``pip install 'comfyui-resync[cluster]'`` into ComfyUI's Python): the
node shows the overall progress, and Cancel ends the workers. Every input and the output folder
must lie on storage the cluster's nodes mount at the same path as this machine.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from comfy_api.latest import io

from ..lipsync.engine.batch.run import (
    AUDIO_SUFFIXES,
    VIDEO_SUFFIXES,
    BatchItem,
    BatchReport,
    batch_key,
    expand_sources,
    items_for_audios,
    items_for_videos,
    read_manifest,
    resolve_inside,
    run_batch,
    voice_digests,
)
from ..lipsync.errors import InputError, LipSyncError
from ..lipsync.options import (
    ClusterOptions,
    CompositeOptions,
    FaceOptions,
    RestoreOptions,
    RunOptions,
    SourceOptions,
    SyncOptions,
)
from . import _host
from ._common import WAV2LIP, category
from ._convert import to_waveform
from ._options import Uses, lipsync_options, options_from_inputs, widget_names
from .lipsync import JOB_LEFT, JOB_WIDGETS
from .model import Wav2LipModel
from .restore import restorer_path

__all__ = ["UI_KEY", "LipSyncBatch", "allowed_roots", "batch_items"]

UI_KEY = "resync_batch"
"""The key of the batch's zip/report/summary in the node's UI output (read by web/resync_batch.js)."""
EXTRA_DIRS_ENV = "RESYNC_BATCH_DIRS"
"""Folders (os.pathsep-separated) that batch paths may point into besides the input folder."""

_SOURCES_TOOLTIP = (
    "relative to ComfyUI's input folder: a folder (its {kind} files, in natural order), a glob such as "
    "lectures/*.mp4, or one file per line. Listing costs nothing; each item costs one lip-sync job."
)


def allowed_roots() -> list[str]:
    """Where user paths may lead: the input folder first (relative paths start there), then the
    folders in $RESYNC_BATCH_DIRS."""
    extra = [p for p in os.environ.get(EXTRA_DIRS_ENV, "").split(os.pathsep) if p.strip()]
    return [_host.folder_paths().get_input_directory(), *extra]


def batch_items(videos: str, audios: str, manifest: str, voice: Any = None) -> list[BatchItem]:
    """The items the inputs describe (see the module docstring); InputError when they describe
    none or an ambiguous many × many."""
    roots = allowed_roots()
    if manifest.strip():
        return read_manifest(resolve_inside(roots, manifest), roots)
    video_files = expand_sources(videos, roots, VIDEO_SUFFIXES, "video") if videos.strip() else []
    audio_files = expand_sources(audios, roots, AUDIO_SUFFIXES, "audio") if audios.strip() and voice is None else []
    if voice is not None and video_files:
        return items_for_videos(video_files, to_waveform(voice, "the AUDIO input"))
    if video_files and len(audio_files) == 1:
        return items_for_videos(video_files, audio_files[0])
    if len(video_files) == 1 and audio_files:
        return items_for_audios(video_files[0], audio_files)
    if not video_files or not (audio_files or voice is not None):
        raise InputError(
            "Nothing to do: list videos in 'videos' and give the voice (the AUDIO input or one file in 'audios'), "
            "or one video and several files in 'audios', or a manifest."
        )
    raise InputError(
        f"{len(video_files)} videos and {len(audio_files)} audios: give one audio for many videos, one video for many "
        "audios, or pair them in a manifest (CSV with the columns video,audio,output)."
    )


def _batch_folder(batch_name: str, key: str) -> Path:
    output = _host.folder_paths().get_output_directory()
    name = (batch_name.strip() or "ReSync/batch").rstrip("/\\")
    return resolve_inside(output, f"{name}_{key}")


def _release() -> None:
    """Between items: free the frame buffers and let the host empty its cache; the model stays."""
    gc.collect()
    _host.model_management().soft_empty_cache()


def _saved(path: Path) -> dict[str, str]:
    """A file of the output folder as the host's UI refers to it (filename, subfolder, type)."""
    output = Path(_host.folder_paths().get_output_directory()).resolve()
    return {"filename": path.name, "subfolder": path.parent.resolve().relative_to(output).as_posix(), "type": "output"}


def _ui(report: BatchReport) -> dict[str, list[Any]]:
    outputs = [_saved(p) for p in report.outputs]
    info = {
        "summary": report.summary(),
        "counts": {s: report.count(s) for s in ("done", "skipped", "failed")},
        "report": _saved(report.report_json),
        "csv": _saved(report.report_csv),
        "zip": _saved(report.zip_path) if report.zip_path else None,
        "outputs": outputs,
    }
    ui: dict[str, list[Any]] = {UI_KEY: [info]}
    if outputs:  # the host's own video preview (as for its SaveVideo)
        ui["images"], ui["animated"] = outputs, [True]
    return ui


_RESTORE_TOOLTIP = (
    "A face restorer from models/facerestore_models (GFPGAN, RestoreFormer; CodeFormer with spandrel-extra-arches, "
    "non-commercial) run on each generated face at 512 px, blended only inside the mouth mask. Costs a 512 px "
    "network pass per frame, and loading the restorer once per item (the library loads it beside the host's models)."
)


_CLUSTER_LEFT = {
    "segments": "a batch runs whole items on the workers; frame ranges of one long video are the command line's "
    "(python -m lipsync VIDEO AUDIO --cluster ... --segments K)",
}


def _cluster_settings(settings: dict[str, Any]) -> ClusterOptions:
    """Take the cluster inputs out of ``settings`` (the rest are the job's) as ClusterOptions."""
    names = {n for ns in widget_names(ClusterOptions, LipSyncBatch.USES.widgets).values() for n in ns}
    given = {k: settings.pop(k) for k in list(settings) if k in names}
    return options_from_inputs(ClusterOptions, given, LipSyncBatch.USES.widgets)


class LipSyncBatch(io.ComfyNode):
    USES = Uses(
        groups=(SourceOptions, SyncOptions, FaceOptions, CompositeOptions, RestoreOptions, RunOptions, ClusterOptions),
        left={**JOB_LEFT, **_CLUSTER_LEFT},
        widgets={
            **JOB_WIDGETS,
            "missing_face": {
                "tooltip": "Frames without a face: passthrough, hold, interpolate, or fail (the item). A video "
                "without any face always fails its item."
            },
            "batch_size": {
                "tooltip": "Faces per network call: larger is faster on a GPU and takes more VRAM. Does not change "
                "the result (a re-run with another value still resumes)."
            },
            "restore_model": {**JOB_WIDGETS["restore_model"], "tooltip": _RESTORE_TOOLTIP},
        },
        job=True,
    )

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ReSyncLipSyncBatch",
            display_name="ReSync Lip-Sync Batch",
            category=category("video"),
            description=(
                "Many lip-sync jobs with one model: one voice on many videos (a course re-voiced), one video with many "
                "voices (its languages), or pairs from a CSV/JSON manifest. Each item streams like ReSync Lip-Sync "
                "Video; a failing item is reported and the rest go on. Results: output/<batch_name>_<key>/ with the "
                "mp4s, report.json + report.csv and a zip of everything. Queue the same batch again to resume: "
                "finished outputs are skipped."
            ),
            inputs=[
                WAV2LIP.Input("model", tooltip="The network from ReSync Load Wav2Lip Model or ReSync Load MuseTalk "
                              "Model (loaded once for all)."),
                io.String.Input("videos", multiline=True, default="",
                                tooltip="Videos, " + _SOURCES_TOOLTIP.format(kind="video")),
                io.String.Input("audios", multiline=True, default="",
                                tooltip="Voices, " + _SOURCES_TOOLTIP.format(kind="audio") + " Ignored when the AUDIO "
                                "input is connected."),
                io.String.Input("manifest", default="",
                                tooltip="Instead of videos/audios: a .csv (header video,audio,output) or .json file in "
                                "the input folder pairing each video with its audio; paths relative to it."),
                *cls.USES.inputs(CompositeOptions, ("mode",)),
                *cls.USES.inputs(FaceOptions, ("detector", "missing_face")),
                *cls.USES.inputs(SourceOptions, ("length_policy",)),
                *cls.USES.inputs(RunOptions, ("batch_size",)),
                io.String.Input("batch_name", default="ReSync/batch",
                                tooltip="Output folder under ComfyUI's output folder; _<key> is added, the same "
                                "for the same batch, so a re-run resumes there."),
                io.Boolean.Input("make_zip", default=True,
                                 tooltip="Also write <folder>.zip with every output and the reports (costs the disk "
                                 "space of the outputs once more)."),
                io.Audio.Input("audio", optional=True,
                               tooltip="The one voice for every video (e.g. Load Audio or a TTS node); when connected, "
                               "'audios' is ignored. Held in RAM."),
                # added later: optional, after every older input, so saved workflows keep their values
                *cls.USES.inputs(SourceOptions, ("fps", "frame_load_cap", "skip_first_frames", "select_every_nth"),
                                 optional=True),
                *cls.USES.inputs(SyncOptions, optional=True),
                *cls.USES.inputs(CompositeOptions, ("feather", "resample", "color_match", "blend"), optional=True),
                *cls.USES.inputs(RestoreOptions, optional=True),
                *cls.USES.inputs(FaceOptions, (
                    "face", "face_index", "pads", "fixed_box", "smoothing", "smooth_window", "detect_every",
                ), optional=True),
                *cls.USES.inputs(FaceOptions, ("face_point",), optional=True),
                *cls.USES.inputs(ClusterOptions, ("cluster", "workers", "gpus_per_worker", "cpus_per_worker", "retries"),
                                 optional=True),
            ],
            outputs=[
                io.String.Output(display_name="report", tooltip="Full path of report.json."),
                io.String.Output(display_name="zip", tooltip="Full path of the zip (empty when make_zip is off)."),
                io.String.Output(display_name="summary", tooltip="One line: done, skipped, failed and why."),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo, io.Hidden.unique_id],
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, videos: str = "", audios: str = "", manifest: str = "") -> bool | str:
        roots = allowed_roots()
        try:
            if manifest.strip():
                resolve_inside(roots, manifest)
                return True
            if not videos.strip():
                return "List the videos in 'videos' (a folder, a glob, or one per line), or give a manifest."
            expand_sources(videos, roots, VIDEO_SUFFIXES, "video")
            if audios.strip():
                expand_sources(audios, roots, AUDIO_SUFFIXES, "audio")
        except InputError as exc:
            return str(exc)
        return True

    @classmethod
    def fingerprint_inputs(cls, videos: str = "", audios: str = "", manifest: str = "", **_: Any) -> str | float:
        """Changes when a listed file is added, removed or modified (then the batch runs again;
        finished items are skipped)."""
        roots = allowed_roots()
        try:
            files = [resolve_inside(roots, manifest)] if manifest.strip() else []
            files += expand_sources(videos, roots, VIDEO_SUFFIXES, "video") if videos.strip() else []
            files += expand_sources(audios, roots, AUDIO_SUFFIXES, "audio") if audios.strip() else []
            stamps = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else (str(p),) for p in files]
        except (LipSyncError, OSError):
            return float("nan")
        return hashlib.sha1(json.dumps(stamps).encode()).hexdigest()

    @classmethod
    def execute(
        cls,
        model: Wav2LipModel,
        videos: str = "",
        audios: str = "",
        manifest: str = "",
        batch_name: str = "ReSync/batch",
        make_zip: bool = True,
        audio: Any = None,
        **settings: Any,
    ) -> io.NodeOutput:
        cluster = _cluster_settings(settings)
        items = batch_items(videos, audios, manifest, audio)
        opts = lipsync_options(cls.USES, settings, models_dir=_host.detector_models_dir())
        if opts.restore.restore is not None:  # the library loads the restorer itself, from its file
            opts = opts.replace(restore=restorer_path(opts.restore.restore))
        opts = opts.resolved()
        folder = _batch_folder(batch_name, batch_key(items, opts, model.name, voice_digests(items)))
        node_id = cls.hidden.unique_id
        shown = lambda index, count, item: _host.show_text(f"item {index}/{count}: {item.title}", node_id)  # noqa: E731
        metadata = _host.file_metadata(cls.hidden.prompt, cls.hidden.extra_pnginfo)
        if cluster.cluster:
            from ..lipsync.cluster import run_batch_on_cluster  # on use: Ray is an optional extra

            report = run_batch_on_cluster(
                items, folder, model.generator(), opts, cluster, progress=_host.progress_bar(1),
                should_stop=_host.should_stop, on_item_start=shown, metadata=metadata, make_zip=bool(make_zip),
            )
        else:
            report = run_batch(
                items, folder, model.generator(), opts,
                progress=_host.progress_bar(1),
                should_stop=_host.should_stop,
                on_item_start=shown,
                release=_release,
                metadata=metadata,
                make_zip=bool(make_zip),
            )
        _host.show_text(report.summary(), node_id)
        zip_path = str(report.zip_path) if report.zip_path else ""
        return io.NodeOutput(str(report.report_json), zip_path, report.summary(), ui=_ui(report))
