"""Throughput of ``vsrdeploy batch`` on a local Ray cluster: workers x threads, and segments vs sequential.

Inputs are made from the bundled real clip (30 frames 320x240, x4 bicubic degradation -> 80x60):
four short clips (the clip, mirrored left-right, up-down, both) and one long clip (the four one after
the other, 4 x --frames frames). Configurations run one after the other in one process, twice in alternating
order; wall times include creating the actors and loading the bundle, not starting Ray.

    PYTHONPATH=. python benchmarks/scale_throughput.py --model basicvsr
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from vsrdeploy.evaluate.compare import read_clip
from vsrdeploy.evaluate.degrade import degrade
from vsrdeploy.demo import bundled_clip, shipped_model
from vsrdeploy.export.cache import bundle_for
from vsrdeploy.upscale_job import run_job
from vsrdeploy.scale import DEFAULT_WARMUP, run_batch


def write_png_dir(frames, path: Path) -> Path:
    path.mkdir(parents=True)
    for i, f in enumerate(frames):
        image = np.rint(np.clip(f, 0, 1).transpose(1, 2, 0)[:, :, ::-1] * 255).astype(np.uint8)
        cv2.imwrite(str(path / f"{i:06d}.png"), image)
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="basicvsr")
    ap.add_argument("--backend", default="ort-cpu")
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--lookahead", type=int, default=8)
    ap.add_argument("--segment", type=int, default=32, help="Segment of the long clip.")
    ap.add_argument("--warmup", type=int, default=DEFAULT_WARMUP)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--frames", type=int, default=30, help="Frames of each short clip (the long clip is 4x).")
    args = ap.parse_args()
    import ray

    gt, _ = read_clip(str(bundled_clip()), None, notice=lambda m: None)
    lr = degrade(np.asarray(gt[:args.frames], np.float32), "bi")
    variants = [lr, lr[..., ::-1], lr[..., ::-1, :], lr[..., ::-1, ::-1]]
    root = Path(tempfile.mkdtemp(prefix="vsrdeploy-scale-bench-"))
    shorts = [str(write_png_dir(v, root / "in" / f"short{i}")) for i, v in enumerate(variants)]
    long_clip = str(write_png_dir(np.concatenate(variants), root / "in" / "long"))
    model = str(bundle_for(shipped_model(args.model), args.backend).path)
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    print(f"{args.model} on {args.backend}; inputs 80x60 -> 320x240; window {args.window}, lookahead "
          f"{args.lookahead}; {cpu}, {platform.machine()}, 2 vCPUs shared with other jobs")
    os.environ["RAY_memory_monitor_refresh_ms"] = "0"  # shared machine: other jobs fill its memory
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=128 * 1024 * 1024, log_to_driver=False,
             configure_logging=True, logging_level="WARNING")
    common = dict(window=args.window, lookahead=args.lookahead, echo=lambda m: None, progress=False, force=True)

    def batch(inputs, workers, threads, segment):
        out = root / "out"
        t0 = time.perf_counter()
        result = run_batch(inputs, model, out, workers=workers, threads=threads, segment=segment,
                           warmup=args.warmup, **common)
        wall = time.perf_counter() - t0
        shutil.rmtree(out)
        return wall, result.frames

    def sequential(threads):
        out = root / "seq"
        t0 = time.perf_counter()
        run_job(model, backend=args.backend, source=long_clip, sink=str(out), window=args.window,
                lookahead=args.lookahead, threads=threads, echo=lambda m: None, progress=False)
        wall = time.perf_counter() - t0
        shutil.rmtree(out)
        return wall, 4 * len(lr)

    whole = -(-len(lr) // args.window) * args.window  # one segment per short clip
    configs = {
        "4 short clips, 1 worker x 2 threads": lambda: batch(shorts, 1, 2, whole),
        "4 short clips, 2 workers x 1 thread": lambda: batch(shorts, 2, 1, whole),
        "long clip, sequential `run` (in process, 2 threads)": lambda: sequential(2),
        "long clip, 1 worker x 2 threads, one segment": lambda: batch([long_clip], 1, 2, 4 * whole),
        f"long clip, 2 workers x 1 thread, segments of {args.segment} + warm-up {args.warmup}":
            lambda: batch([long_clip], 2, 1, args.segment),
    }
    times = {name: [] for name in configs}
    try:
        for r in range(args.rounds):
            for name in (configs if r % 2 == 0 else reversed(list(configs))):
                wall, frames = configs[name]()
                times[name].append((wall, frames))
                print(f"  round {r}: {name}: {frames} frames in {wall:.1f} s", flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    print("\n| configuration | frames | wall s, each round | median | frames/s (median) | ratio (median) | ratio (best) |")
    print("|---|---|---|---|---|---|---|")
    base = {}
    for name, runs in times.items():
        walls = [w for w, _ in runs]
        wall, best = float(np.median(walls)), min(walls)
        frames = runs[0][1]
        group = name.split(",")[0]
        base.setdefault(group, (frames / wall, frames / best))
        print(f"| {name} | {frames} | {', '.join(f'{w:.1f}' for w in walls)} | {wall:.1f} | {frames / wall:.2f} | "
              f"{frames / wall / base[group][0]:.2f} | {frames / best / base[group][1]:.2f} |")

if __name__ == "__main__":
    main()
