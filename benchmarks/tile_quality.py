"""What spatial tiling costs in PSNR-Y on real video, with the shipped trained models (issue #12).

Two measurements per (tile, overlap), each against the untiled stream of the same model and settings:

- ``gt``: LR = the bundled clip made x1/4 with MATLAB bicubic (BI, the models' training degradation),
  scored against the clip itself: the PSNR-Y drop ``PSNR(untiled, GT) - PSNR(tiled, GT)`` (dB). The LR
  frames are only 80x60 here, so only tiles below that size cut anything.
- ``fidelity``: LR = the bundled clip as it is (320x240 -> 1280x960), where larger tiles cut: the
  PSNR-Y of the tiled output against the untiled output (dB; higher = closer, inf = identical).

Example:

    python benchmarks/tile_quality.py --model vsrdeploy/weights/basicvsr_c16n4_opencv.pth --frames 10 \\
        --gt-tiles 32 48 64 --fidelity-tiles 64 128 256 --overlaps 0 8 16 32 --json tiles.jsonl
    # larger LR: OpenCV's vtest.avi (768x576; Debian opencv-doc), its last frames (held out from training)
    python benchmarks/tile_quality.py --model vsrdeploy/weights/basicvsr_c16n4_opencv.pth \
        --clip /usr/share/doc/opencv-doc/examples/data/vtest.avi --skip 720 --frames 12 \
        --gt-tiles 64 96 128 --fidelity-tiles --overlaps 0 8 16 32 --json tiles.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "vsrdeploy" / "data" / "vtest_heldout_320x240.avi"


def run(up, lr, window, lookahead, tile=None, overlap=16):
    return np.stack(list(up.stream(iter(lr), window=window, lookahead=lookahead, tile=tile, tile_overlap=overlap)))


def psnr_y(a, b, crop=0) -> float:
    from vsrdeploy.evaluate.metrics import psnr
    return float(np.mean([psnr(x, y, crop_border=crop, y_channel=True) for x, y in zip(a, b)]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--backend", default="torch")
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--clip", default=str(CLIP), help="Video to measure on (default: the bundled held-out clip)")
    p.add_argument("--skip", type=int, default=0, help="Frames of --clip to skip first")
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--lookahead", type=int, default=8)
    p.add_argument("--gt-tiles", type=int, nargs="*", default=[32, 48, 64])
    p.add_argument("--fidelity-tiles", type=int, nargs="*", default=[64, 128, 256])
    p.add_argument("--overlaps", type=int, nargs="+", default=[0, 8, 16, 32])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="Append result rows (JSON lines) here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import vsrdeploy
    from vsrdeploy.evaluate.compare import read_clip
    from vsrdeploy.evaluate.degrade import degrade

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    print(f"# CPU: {cpu}, {os.cpu_count()} cores; model {args.model}; backend {args.backend}", flush=True)
    up = vsrdeploy.open_bundle(args.model, backend=args.backend)
    minimum = up.net.min_input_size
    clip, description = read_clip(args.clip, args.frames, skip=args.skip)
    print(f"# clip: {description}", flush=True)
    lr_bi = degrade(clip, "bi")

    def emit(row):
        row = {"model": Path(args.model).name, "clip": Path(args.clip).name, "skip": args.skip, "frames": args.frames, "window": args.window,
               "lookahead": args.lookahead, **row}
        print(json.dumps(row), flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(row) + "\n")

    if args.gt_tiles:
        base = run(up, lr_bi, args.window, args.lookahead)
        base_psnr = psnr_y(base, clip)
        emit({"kind": "gt", "lr": f"{lr_bi.shape[-1]}x{lr_bi.shape[-2]}", "tile": None, "overlap": None,
              "psnr_y": base_psnr, "drop_db": 0.0})
        for t in args.gt_tiles:
            if t < minimum:
                continue
            for ov in args.overlaps:
                if ov >= t:
                    continue
                out = run(up, lr_bi, args.window, args.lookahead, t, ov)
                v = psnr_y(out, clip)
                emit({"kind": "gt", "lr": f"{lr_bi.shape[-1]}x{lr_bi.shape[-2]}", "tile": t, "overlap": ov,
                      "psnr_y": v, "drop_db": base_psnr - v, "vs_untiled_db": psnr_y(out, base)})
    if args.fidelity_tiles:
        base = run(up, clip, args.window, args.lookahead)
        for t in args.fidelity_tiles:
            if t < minimum:
                continue
            if t >= max(clip.shape[-2:]):
                emit({"kind": "fidelity", "lr": f"{clip.shape[-1]}x{clip.shape[-2]}", "tile": t, "overlap": None,
                      "note": "tile covers the whole frame: no tiling"})
                continue
            for ov in args.overlaps:
                if ov >= t:
                    continue
                out = run(up, clip, args.window, args.lookahead, t, ov)
                emit({"kind": "fidelity", "lr": f"{clip.shape[-1]}x{clip.shape[-2]}", "tile": t, "overlap": ov,
                      "vs_untiled_db": psnr_y(out, base)})


if __name__ == "__main__":
    main()
