"""Per-frame cost of MuseTalk 1.5's stages: VAE encode (masked + reference), UNet, VAE decode,
whisper (one 30 s segment, shown per frame at 25 fps).

Two sizes: the fixture's reduced models (shared/fixtures/musetalk_reference/models) and the full
published configs (from published_shapes.json) with random weights — same shapes, same cost as
the real files. Keep the full size to a couple of frames on a CPU (seconds per frame).

    python bench/bench_musetalk.py                      # CPU, float32, both sizes
    python bench/bench_musetalk.py --device cuda --dtype fp16 --frames 16 --batch 8

``--e2e``: the whole job (decode, crop, whisper, VAE, UNet, decode, paste, H.264 encode) on a
synthetic 720p clip with a fixed face box, through ``lipsync_video`` as the CLI runs it, printing
end-to-end frames/s for MuseTalk (the full published config, random weights) and, as the baseline
measured in the same run, Wav2Lip (random weights) on the same clip. The GPU target is 60 frames/s
at 720p for MuseTalk in fp16 on a current datacenter GPU:

    python bench/bench_musetalk.py --e2e --device cuda --dtype fp16 --batch 32 --seconds 10
    python bench/bench_musetalk.py --e2e --size fixture --seconds 1     # a CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lipsync.models.musetalk import MuseTalkGenerator, load_musetalk  # noqa: E402
from lipsync.models.musetalk.generator import _dtype  # noqa: E402
from lipsync.models.musetalk import loading  # noqa: E402

SHARED = Path(os.environ.get("LIPSYNC_SHARED", Path(__file__).resolve().parents[2] / "shared"))
FIX = SHARED / "fixtures" / "musetalk_reference"


def full_size(device: torch.device, dtype: torch.dtype) -> MuseTalkGenerator:
    shapes = json.loads((FIX / "published_shapes.json").read_text())
    torch.manual_seed(0)
    unet = loading.build_unet(shapes["unet"]["config"], Path("published unet"))
    vae = loading.build_vae(shapes["vae"]["config"], Path("published vae"))
    encoder = loading.build_whisper_encoder(shapes["whisper"]["config"], Path("published whisper"))
    extractor = loading.require_transformers().WhisperFeatureExtractor(**shapes["whisper"]["feature_extractor"])
    for module in (unet, vae, encoder):
        module.to(device, dtype).eval().requires_grad_(False)
    return MuseTalkGenerator(unet, vae, encoder, extractor, name="published (random weights)")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats):
    fn()  # warm-up
    sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench(gen: MuseTalkGenerator, frames: int, batch: int, repeats: int) -> dict[str, float]:
    device = gen.device
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (frames, 256, 256, 3), dtype=np.uint8)
    prompts = rng.standard_normal((frames, 50, 384)).astype(np.float32)
    wav = (rng.standard_normal(16000 * 30) * 0.1).astype(np.float32)

    def encode():
        gen._latents.clear()
        return gen.encode_crops(crops)

    latents = encode()
    pred = gen.unet_forward(latents[:batch], prompts[:batch])
    out = {
        "VAE encode x2": timed(encode, device, repeats) / frames,
        f"UNet (batch {batch})": timed(lambda: gen.unet_forward(latents[:batch], prompts[:batch]), device, repeats) / batch,
        "VAE decode": timed(lambda: gen.decode_latents(pred), device, repeats) / len(pred),
        "whisper (30 s / 750 frames)": timed(lambda: gen.prepare_audio(wav).segment_states(0), device, repeats) / 750,
    }
    return out


E2E_SIZE = (720, 1280)
E2E_BOX = (200, 520, 500, 780)  # top, bottom, left, right: a 280x320 face in the 720p frame


def e2e_clip(folder: Path, seconds: float) -> tuple[Path, Path]:
    """A 720p 25 fps clip with moving texture and a voice of the same length (noise bursts)."""
    from lipsync.media.video import VideoWriter

    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (*E2E_SIZE, 3), dtype=np.uint8)
    video = folder / "clip_720p.mp4"
    with VideoWriter(video, 25) as writer:
        for i in range(round(seconds * 25)):
            writer.write(np.roll(texture, 4 * i, axis=1))
    samples = (rng.standard_normal(round(seconds * 16000)) * 3000 * (np.arange(round(seconds * 16000)) % 8000 < 4000))
    audio = folder / "voice.wav"
    import wave

    with wave.open(str(audio), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.astype("<i2").tobytes())
    return video, audio


def end_to_end(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> None:
    """Frames/s of whole jobs at 720p: MuseTalk, then Wav2Lip as the baseline, same clip and box."""
    import tempfile

    from lipsync.engine.lipsync import lipsync_video
    from lipsync.models.wav2lip.generator import TorchGenerator
    from lipsync.models.wav2lip.network import Wav2Lip
    from lipsync.options import LipSyncOptions
    from lipsync.types import Box

    options = LipSyncOptions.of(box=Box(*E2E_BOX), batch_size=args.batch)
    musetalk = load_musetalk(FIX / "models", device, dtype) if args.size == "fixture" else full_size(device, dtype)
    wav2lip = TorchGenerator(Wav2Lip().eval().to(device, torch.float16 if dtype == torch.float16 else torch.float32))
    with tempfile.TemporaryDirectory() as tmp:
        video, audio = e2e_clip(Path(tmp), args.seconds)
        print(f"end to end, 720p, {args.seconds:g} s at 25 fps, fixed box {E2E_BOX}, batch {args.batch}, "
              f"{device} {dtype}:")
        for label, generator in ((f"MuseTalk 1.5 ({args.size})", musetalk), ("Wav2Lip (baseline)", wav2lip)):
            lipsync_video(video, audio, Path(tmp) / "warm.mp4", generator, options, frames=(0, min(8, args.batch)))
            sync(device)
            result = lipsync_video(video, audio, Path(tmp) / "out.mp4", generator, options)
            sync(device)
            print(f"  {label:28s} {result.frames} frames in {result.seconds:6.2f} s: "
                  f"{result.frames / result.seconds:7.2f} frames/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", help="fp32, fp16 or bf16 (fp16 needs a GPU)")
    parser.add_argument("--frames", type=int, default=2, help="frames per call at the full size")
    parser.add_argument("--batch", type=int, default=1, help="UNet batch")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-full", action="store_true", help="only the fixture's reduced models")
    parser.add_argument("--e2e", action="store_true", help="whole jobs at 720p: end-to-end frames/s (see above)")
    parser.add_argument("--size", choices=["full", "fixture"], default="full", help="--e2e: which MuseTalk")
    parser.add_argument("--seconds", type=float, default=10.0, help="--e2e: length of the 720p clip")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), _dtype(args.dtype)
    if args.e2e:
        end_to_end(args, device, dtype)
        return
    runs = [("fixture (reduced widths)", lambda: load_musetalk(FIX / "models", device, dtype), 8)]
    if not args.skip_full:
        runs.append(("full published config", lambda: full_size(device, dtype), args.frames))
    print(f"torch {torch.__version__}, {device}, {dtype}, {torch.get_num_threads()} threads, median of {args.repeats}")
    for label, make, frames in runs:
        gen = make()
        params = sum(p.numel() for m in (gen.unet, gen.vae, gen.whisper_encoder) for p in m.parameters())
        figures = bench(gen, frames, min(args.batch, frames), args.repeats)
        total = sum(figures.values())
        print(f"{label}: {params / 1e6:.1f} M params, memory estimate batch {args.batch}: "
              f"{gen.memory_estimate(args.batch) / 2**20:.0f} MiB")
        for name, seconds in figures.items():
            print(f"  {name:30s} {seconds * 1000:10.1f} ms/frame")
        print(f"  {'total':30s} {total * 1000:10.1f} ms/frame")


if __name__ == "__main__":
    main()
