"""Per-frame cost of MuseTalk 1.5's stages: VAE encode (masked + reference), UNet, VAE decode,
whisper (one 30 s segment, shown per frame at 25 fps).

Two sizes: the fixture's reduced models (shared/fixtures/musetalk_reference/models) and the full
published configs (from published_shapes.json) with random weights — same shapes, same cost as
the real files. Keep the full size to a couple of frames on a CPU (seconds per frame).

    python bench/bench_musetalk.py                      # CPU, float32, both sizes
    python bench/bench_musetalk.py --device cuda --dtype fp16 --frames 16 --batch 8
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", help="fp32, fp16 or bf16 (fp16 needs a GPU)")
    parser.add_argument("--frames", type=int, default=2, help="frames per call at the full size")
    parser.add_argument("--batch", type=int, default=1, help="UNet batch")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-full", action="store_true", help="only the fixture's reduced models")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), _dtype(args.dtype)
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
