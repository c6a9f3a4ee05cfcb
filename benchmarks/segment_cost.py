"""What cutting a clip into segments costs, in dB, on the bundled real clip with the shipped models.

The bundled clip (30 frames 320x240, held out from training) is the ground truth; its x4 bicubic
("bi") degradation (80x60) is the input. For each warm-up, every segment is streamed exactly as a
batch worker streams it (``vsrdeploy.scale.segment_outputs``), and the result is compared with the
sequential stream (what ``vsrdeploy run`` computes): PSNR-Y of segmented vs sequential, and the drop
of PSNR-Y against the ground truth. "mid-clip" rows use only the segments whose warm-up was not cut
short by the clip start (start > warm-up), i.e. what every segment of a long video pays.

    PYTHONPATH=. python benchmarks/segment_cost.py --threads 2
"""
from __future__ import annotations

import argparse
import json
import math
import platform

import numpy as np

from vsrdeploy.bundle import Bundle
from vsrdeploy.evaluate.compare import read_clip
from vsrdeploy.evaluate.degrade import degrade
from vsrdeploy.demo import SHIPPED_MODELS, bundled_clip, shipped_model
from vsrdeploy.evaluate.metrics import psnr, rgb_to_y
from vsrdeploy.runtimes.engine import Upscaler
from vsrdeploy.export.cache import bundle_for
from vsrdeploy.scale import plan_segments, segment_outputs


def mean_psnr_y(a, b, frames) -> float:
    """Mean of per-frame PSNR-Y (the field's convention); against ground truth it is always finite."""
    return float(np.mean([psnr(a[i], b[i], y_channel=True) for i in frames]))


def similarity_y(a, b, frames) -> float:
    """PSNR-Y over the frames taken together (one MSE): inf when identical."""
    ya, yb = (np.stack([rgb_to_y(x[i]) for i in frames]) for x in (a, b))
    mse = float(np.mean((ya.astype(np.float64) - yb) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def fmt(value, digits: int) -> str:
    if value is None:
        return "n/a (clip too short)"
    return "identical" if value == math.inf else f"{value:.{digits}f} dB"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="basicvsr,basicvsr_pp")
    ap.add_argument("--backend", default="ort-cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--lookahead", type=int, default=8)
    ap.add_argument("--segment", type=int, default=4)
    ap.add_argument("--warmups", default="0,4,8,16,32")
    ap.add_argument("--json", help="Also write the rows here.")
    args = ap.parse_args()
    gt, description = read_clip(str(bundled_clip()), None, notice=lambda m: None)
    gt = np.asarray(gt, dtype=np.float32)
    lr = degrade(gt, "bi")
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    print(f"clip: {description} as ground truth, input its x4 bicubic degradation {lr.shape[3]}x{lr.shape[2]}; "
          f"window {args.window}, lookahead {args.lookahead}, segment {args.segment}; {args.backend} "
          f"{args.threads} threads; {cpu}, {platform.machine()}")
    rows = []
    for name in args.models.split(","):
        if name not in SHIPPED_MODELS:
            raise SystemExit(f"unknown shipped model {name}; shipped: {', '.join(SHIPPED_MODELS)}")
        bundle = bundle_for(shipped_model(name), args.backend)
        up = Upscaler.create(Bundle(bundle.path), args.backend, threads=args.threads)
        seq = np.stack(list(up.stream(list(lr), window=args.window, lookahead=args.lookahead)))
        seq_gt = mean_psnr_y(seq, gt, range(len(gt)))
        print(f"\n{name}: sequential stream PSNR-Y vs ground truth {seq_gt:.3f} dB")
        print("| warm-up | all frames: PSNR-Y seg vs seq | drop vs GT | mid-clip segments | mid-clip: PSNR-Y seg vs seq "
              "| drop vs GT | overhead (S+W+L)/S at S=64 |")
        print("|---|---|---|---|---|---|---|")
        for warmup in (int(w) for w in args.warmups.split(",")):
            segs = plan_segments(len(lr), args.segment, warmup, args.window, args.lookahead)
            out = []
            for seg in segs:
                out += list(segment_outputs(up, iter(lr[seg.read_start:]), seg, args.window, args.lookahead))
            out = np.stack(out)
            mid = [i for s in segs if s.start > warmup for i in range(s.start, s.end)]
            allf = range(len(gt))
            row = {"model": name, "warmup": warmup,
                   "all_vs_seq": similarity_y(out, seq, allf), "all_drop": seq_gt - mean_psnr_y(out, gt, allf),
                   "mid_segments": sum(1 for s in segs if s.start > warmup),
                   "mid_vs_seq": similarity_y(out, seq, mid) if mid else None,
                   "mid_drop": (mean_psnr_y(seq, gt, mid) - mean_psnr_y(out, gt, mid)) if mid else None,
                   "max_abs": float(np.abs(out - seq).max())}
            rows.append(row)
            print(f"| {warmup} | {fmt(row['all_vs_seq'], 2)} | {fmt(row['all_drop'], 4)} | {row['mid_segments']} | "
                  f"{fmt(row['mid_vs_seq'], 2)} | {fmt(row['mid_drop'], 4)} | {(64 + warmup + args.lookahead) / 64:.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
