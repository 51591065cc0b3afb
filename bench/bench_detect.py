"""Where face detection's CPU goes in the default job, per call, measured in one run.

    python bench/bench_detect.py [VIDEO] [--frames N]

On the 720p bench clip (``bench/results/face_720p_10s.mp4``, made by ``bench_pipeline.py``) with
yuface on one OpenMP thread (as the pipeline runs it beside the network), it prints the CPU
milliseconds of each part of a whole-frame search (downscale, colour conversion, the network)
and of a region search (cut + downscale, colour conversion, the network; the region's size), of a
face carried to the next frame without a search, the tracker per frame, and the default detect + track stage per frame (``track_faces``, what
``bench_pipeline.stage_costs`` times) with how many frames were searched whole.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lipsync.engine.lipsync import LipSyncOptions  # noqa: E402
from lipsync.engine.stages import track_detections, track_faces  # noqa: E402
from lipsync.faces import RegionDetector, create_detector, openmp_threads  # noqa: E402
from lipsync.faces.detectors import YuFaceDetector, _prepare  # noqa: E402
from lipsync.faces.run import detect_frames  # noqa: E402
from lipsync.media.video import iter_frames  # noqa: E402


def cpu_ms(fn: Callable[[], object], repeat: int = 20) -> float:
    """CPU milliseconds per call of ``fn`` (all threads of this process), after one warm-up call."""
    fn()
    start = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - start) / repeat * 1000.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("video", nargs="?", default=str(ROOT / "bench" / "results" / "face_720p_10s.mp4"))
    p.add_argument("--frames", type=int, default=250)
    args = p.parse_args()

    frames = list(iter_frames(args.video, frame_load_cap=args.frames))
    height, width = frames[0].shape[:2]
    detector = create_detector("yuface")
    assert isinstance(detector, YuFaceDetector)
    options = LipSyncOptions().faces
    with openmp_threads(detector, 1):
        one_thread = detector._limit  # the backend's call alone, as ``detect`` makes it
        assert one_thread is not None
        frame = frames[len(frames) // 2]
        image, _ = _prepare(frame, detector.max_side)
        face = max(detector.detect(frame), key=lambda d: d.area)
        print(f"{len(frames)} frames of {width}x{height}; whole-frame search at {image.shape[1]}x{image.shape[0]}; "
              f"face {face.x2 - face.x1:.0f}x{face.y2 - face.y1:.0f} px")
        print("whole-frame search, per call:")
        print(f"  downscale + RGB->BGR (_prepare)      {cpu_ms(lambda: _prepare(frame, detector.max_side)):6.2f} ms")
        print(f"  network (yuface)                     {cpu_ms(lambda: one_thread(lambda: detector._rows(image))):6.2f} ms")
        print(f"  all (detect)                         {cpu_ms(lambda: detector.detect(frame)):6.2f} ms")

        regions = RegionDetector(detector, carried=0)  # every call a search
        regions.detect(frame, whole=True)
        shown: list[np.ndarray] = []
        backend = detector.detect
        detector.detect = lambda img: (shown.append(img), backend(img))[1]  # type: ignore[method-assign]
        regions.detect(frame, whole=False)
        del detector.detect
        region = shown[-1]
        bgr = cv2.cvtColor(region, cv2.COLOR_RGB2BGR)
        print(f"region search, per call (region {region.shape[1]}x{region.shape[0]} = "
              f"{100.0 * region.shape[0] * region.shape[1] / (image.shape[0] * image.shape[1]):.0f} % of the whole):")
        print(f"  cut + downscale + network (_search)  {cpu_ms(lambda: regions._search(frame, face, image.shape[1] / width)):6.2f} ms")
        print(f"  RGB->BGR                             {cpu_ms(lambda: cv2.cvtColor(region, cv2.COLOR_RGB2BGR)):6.2f} ms")
        print(f"  network (yuface)                     {cpu_ms(lambda: one_thread(lambda: detector._rows(bgr))):6.2f} ms")
        print(f"  all (detect, regions)                {cpu_ms(lambda: regions.detect(frame, whole=False)):6.2f} ms")
        carrying = RegionDetector(detector)
        carrying.detect(frame, whole=True)
        following = frames[len(frames) // 2 + 1]
        print(f"carried face (no search), per call:    {cpu_ms(lambda: carrying._carry[0].to(following)) + cpu_ms(lambda: type(carrying._carry[0])(frame, face)):6.2f} ms")

        start = time.process_time()
        detections = list(detect_frames(iter(frames), detector, options.detect_every))
        detect_s = time.process_time() - start
        start = time.process_time()
        n_tracked = sum(1 for _ in track_detections(detections, (height, width), options))
        track_s = time.process_time() - start
        start = time.process_time()
        n_both = sum(1 for _ in track_faces(iter(frames), (height, width), options, detector))
        both_s = time.process_time() - start
    n = len(frames)
    counter = RegionDetector(detector)
    for f in frames:
        counter.detect(f)
    print(f"default job over {n} frames: detection {detect_s / n * 1000:.2f} ms/frame "
          f"({counter.whole_frames} whole-frame searches, {counter.carried_frames} frames carried, "
          f"{counter.region_pixels / n / 1000:.0f} k region pixels/frame), "
          f"tracker {track_s / n_tracked * 1000:.2f} ms/frame; detect + track (track_faces) {both_s / n_both * 1000:.2f} ms/frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
