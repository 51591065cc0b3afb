"""ReSync Lip-Sync Generate and ReSync Composite: the network's faces as a plain IMAGE batch, and
pasting them back.

Between the two, the faces are an ordinary IMAGE batch (N, S, S, 3) at the model's size (Wav2Lip
96, MuseTalk 256), so any image node — an upscaler, a face restorer, a colour fix — can sit in
between; Composite resizes whatever comes back to each face's region. The face track that
Generate outputs records which video frame each output frame shows (the length policy's
mapping) and, per frame, the region the model cropped (the face box plus the model's bottom
margin: MuseTalk 1.5 adds 10 px below the chin), so Composite rebuilds the same sequence and
pastes exactly where the face came from. Generate takes either model family (the node id keeps
its first family's name so saved workflows load).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from comfy_api.latest import io

from ..lipsync.errors import InputError
from ..lipsync.engine.graph import (
    FaceTrack,
    MelFrames,
    audio_windows,
    composite_face,
    generate_faces,
    region_track,
    sequence_indices,
)
from ..lipsync.options import CompositeOptions
from . import _host
from ._common import FACES, MEL, WAV2LIP, category, memory_problem
from ._convert import check_images, frame_at
from ._options import Uses, options_from_inputs
from .model import Wav2LipModel

__all__ = ["Composite", "Wav2LipGenerate"]

_CHUNK_BATCHES = 4
"""Model batches per progress step (and per cancellation check)."""


def _check_track(track: FaceTrack, images: torch.Tensor, what: str) -> None:
    if not isinstance(track, FaceTrack):
        raise InputError(f"{what} must come from ReSync Detect Faces or ReSync Lip-Sync Generate.")
    size = (int(images.shape[1]), int(images.shape[2]))
    if tuple(track.frame_size) != size:
        raise InputError(
            f"The face track was made for {track.frame_size[1]}x{track.frame_size[0]} frames but the frames are "
            f"{size[1]}x{size[0]}; detect the faces on these frames."
        )


class Wav2LipGenerate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ReSyncWav2LipGenerate",
            display_name="ReSync Lip-Sync Generate",
            category=category("model"),
            description=(
                "Run the lip-sync model (Wav2Lip, or MuseTalk 1.5 from Load MuseTalk Model): for every output frame, "
                "the face crop and its audio window go through the network, giving a face whose mouth follows the "
                "audio (Wav2Lip 96x96, MuseTalk 256x256). The clip has one frame per mel window; the "
                "frames batch is fitted to it with the mel's length policy (loop, pingpong, freeze, trim). "
                "Frames without a face get a black placeholder so the batch stays aligned. Put any image node "
                "(upscale, face restore) between this and ReSync Composite."
            ),
            inputs=[
                io.Image.Input("images", tooltip="The video frames the faces were detected on."),
                FACES.Input("faces", tooltip="The face track from ReSync Detect Faces (one entry per frame)."),
                MEL.Input("mel", tooltip="The mel windows from ReSync Audio To Mel (one per output frame)."),
                WAV2LIP.Input("model", tooltip="The network from ReSync Load Wav2Lip Model or ReSync Load MuseTalk "
                              "Model."),
                io.Int.Input(
                    "batch_size", default=8, min=1, max=512,
                    tooltip="Faces per network call. Larger is faster on a GPU (64-128 is common) and takes "
                    "more VRAM; 8 is about the fastest on a CPU.",
                ),
            ],
            outputs=[
                io.Image.Output(display_name="faces", tooltip="Generated faces, float32 RGB (frames, S, S, 3): S = 96 "
                                "(Wav2Lip) or 256 (MuseTalk)."),
                FACES.Output(
                    display_name="face_track", tooltip="The track of the output frames and the region each face "
                    "covers (for ReSync Composite)."
                ),
            ],
        )

    @classmethod
    def execute(
        cls, images: torch.Tensor, faces: FaceTrack, mel: MelFrames, model: Wav2LipModel, batch_size: int = 8
    ) -> io.NodeOutput:
        images = check_images(images, "images")
        _check_track(faces, images, "faces")
        if faces.source_index is not None or len(faces) != images.shape[0]:
            raise InputError(
                f"The face track has {len(faces)} entries for {images.shape[0]} frames; connect the faces output "
                "of ReSync Detect Faces run on these same frames."
            )
        if not isinstance(mel, MelFrames):
            raise InputError("mel must come from ReSync Audio To Mel.")
        sources = sequence_indices(int(images.shape[0]), len(mel), mel.length_policy)
        count = len(sources)
        generator = model.generator()
        windows = audio_windows(mel, generator)
        size = generator.crop.size
        out = torch.zeros((count, size, size, 3), dtype=torch.float32)
        progress = _host.progress_bar(count)
        step = max(1, batch_size) * _CHUNK_BATCHES
        for start in range(0, count, step):
            _host.check_interrupt()
            chunk = sources[start : start + step]
            tracked = [faces.faces[j] for j in chunk]
            frames = [frame_at(images, int(j)) for j in chunk]
            pred = generate_faces(frames, tracked, windows(start, len(chunk)), generator, batch_size)
            rgb = np.ascontiguousarray(pred[:, ::-1].transpose(0, 2, 3, 1))  # BGR (N, 3, S, S) -> RGB NHWC
            out[start : start + len(chunk)] = torch.from_numpy(rgb)
            progress(start + len(chunk), count)
        _host.model_management().soft_empty_cache()
        regions = region_track([faces.faces[j] for j in sources], faces.frame_size, generator.crop)
        track = FaceTrack(regions, faces.frame_size, faces.detector, sources)
        return io.NodeOutput(out, track)


class Composite(io.ComfyNode):
    USES = Uses(
        groups=(CompositeOptions,),
        left={"resample": "the library's composite_face (lipsync.engine.graph) takes no resample yet; it resizes "
              "with its own default"},
        widgets={
            "mode": {
                "tooltip": "mouth: only the mouth and chin change, soft edges. reference: the whole box is "
                "replaced, as the original (a visible square, blurry eyes)."
            },
            "feather": {"tooltip": "mouth mode: width of the soft edge, as a fraction of the face box width."},
            "color_match": {
                "tooltip": "mouth mode: lab matches the mean/std of the generated region to the original in "
                "CIE L*a*b* under the mask (removes a colour cast of the network or a restorer). Cost: ~1 ms "
                "per frame."
            },
            "blend": {
                "tooltip": "mouth mode: feather = a soft alpha edge; seamless = OpenCV Poisson cloning inside "
                "the mask, then the same soft edge (hides lighting differences; ~5-20 ms per frame)."
            },
        },
    )

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ReSyncComposite",
            display_name="ReSync Composite",
            category=category("video"),
            description=(
                "Paste the generated faces back into the frames, each resized to the region its model cropped "
                "(the face box; MuseTalk's reaches 10 px lower) — any face size works, e.g. after an upscaler. mouth (default) blends only the lower face with a feathered "
                "mask and leaves eyes, forehead and every pixel outside the mask untouched; reference hard-pastes "
                "the whole box exactly like the original Wav2Lip. Outputs one frame per generated face and the "
                "blend mask."
            ),
            inputs=[
                io.Image.Input("images", tooltip="The original video frames (the same batch ReSync Lip-Sync Generate got)."),
                io.Image.Input("faces", tooltip="Generated faces from ReSync Lip-Sync Generate (either model), possibly "
                               "upscaled/restored."),
                FACES.Input("face_track", tooltip="The face_track output of ReSync Lip-Sync Generate."),
                *cls.USES.inputs(CompositeOptions, ("mode", "feather", "color_match", "blend")),
            ],
            outputs=[
                io.Image.Output(display_name="images", tooltip="The lip-synced frames."),
                io.Mask.Output(
                    display_name="mask", tooltip="Where each frame changed (1) and by how much (soft edges)."
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        images: torch.Tensor,
        faces: torch.Tensor,
        face_track: FaceTrack,
        **settings: Any,
    ) -> io.NodeOutput:
        opts: CompositeOptions = options_from_inputs(CompositeOptions, settings, cls.USES.widgets)
        images = check_images(images, "images")
        faces = check_images(faces, "faces")
        _check_track(face_track, images, "face_track")
        if len(face_track) != faces.shape[0]:
            raise InputError(
                f"faces has {faces.shape[0]} images but the face track {len(face_track)} entries; connect the faces "
                "and face_track outputs of the same ReSync Lip-Sync Generate."
            )
        sources = face_track.sources()
        if len(sources) and int(sources.max()) >= images.shape[0]:
            raise InputError(
                f"The face track shows frame {int(sources.max())} but only {images.shape[0]} frames are connected; "
                "connect the frames that went into ReSync Lip-Sync Generate."
            )
        count, height, width = len(sources), int(images.shape[1]), int(images.shape[2])
        problem = memory_problem(count, height, width, "Use ReSync Lip-Sync Video, which streams, for clips this long.")
        if problem:
            raise InputError(f"Not compositing: {problem}")
        out = torch.empty((count, height, width, 3), dtype=torch.float32)
        masks = torch.zeros((count, height, width), dtype=torch.float32)
        progress = _host.progress_bar(count)
        for index, source in enumerate(sources):
            _host.check_interrupt()
            out[index] = images[int(source), :, :, :3]
            face = face_track.faces[index]
            if face.box is not None:
                rgb = faces[index, :, :, :3].detach().to("cpu", torch.float32).numpy()
                pasted, mask = composite_face(
                    frame_at(images, int(source)), rgb, face, opts.mode, opts.feather,
                    color_match=opts.color_match, blend=opts.blend,
                )
                changed = torch.from_numpy(mask > 0)
                out[index][changed] = torch.from_numpy(pasted).to(torch.float32).div_(255.0)[changed]
                masks[index] = torch.from_numpy(mask)
            progress(index + 1, count)
        return io.NodeOutput(out, masks)
