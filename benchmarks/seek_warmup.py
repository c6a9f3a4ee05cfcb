"""What seeking costs: `run --start S --warmup W` streams W frames before S to warm the forward recurrent
state. This measures, on the bundled real clip (degraded BI x4) with the shipped BasicVSR, the PSNR of the
frames after S against the full run's frames and against ground truth, for several W.

    python benchmarks/seek_warmup.py [--start 14] [--frames 8] [--warmups 0 1 2 4 8 14] [--backend ort-cpu]

Two settings: "whole" = window 0 (whole clip) with the tail reaching the clip's end, so the backward branch
sees exactly what the full run saw and the only difference is the forward warm-up; "default" = window 16,
lookahead 8 as `run` uses by default (windows then also start at a different frame than in the full run).
The seeked run is simulated exactly as `run` builds it: frames [S-W, S+K+tail) streamed, outputs [W, W+K) kept.
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from vsrdeploy.evaluate.compare import read_clip
from vsrdeploy.evaluate.degrade import degrade
from vsrdeploy.demo import bundled_clip, shipped_model
from vsrdeploy.evaluate.metrics import psnr
from vsrdeploy.runtimes.engine import Upscaler
from vsrdeploy.export.cache import bundle_for


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", type=int, default=14)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--warmups", type=int, nargs="+", default=[0, 1, 2, 4, 8, 14])
    ap.add_argument("--backend", default="ort-cpu")
    args = ap.parse_args()
    hr, desc = read_clip(str(bundled_clip()), notice=lambda m: None)
    lr = degrade(hr, "bi")
    upscaler = Upscaler.create(bundle_for(str(shipped_model("basicvsr")), args.backend, "decomposed"), args.backend)
    s, k = args.start, args.frames
    rows = []
    for name, window, lookahead in (("whole", None, len(lr)), ("default", 16, 8)):
        full = np.stack(list(upscaler.stream(iter(lr), window=window, lookahead=lookahead)))
        ref = full[s:s + k]
        for w in args.warmups:
            tail = lookahead if window else len(lr)
            part = np.stack(list(upscaler.stream(iter(lr[s - w:s + k + tail]), window=window,
                                                 lookahead=lookahead)))[w:w + k]
            vs_full = [psnr(np.clip(a, 0, 1), np.clip(b, 0, 1)) for a, b in zip(part, ref)]
            vs_gt = [psnr(np.clip(a, 0, 1), g, y_channel=True, crop_border=4) for a, g in zip(part, hr[s:s + k])]
            full_gt = [psnr(np.clip(a, 0, 1), g, y_channel=True, crop_border=4) for a, g in zip(ref, hr[s:s + k])]
            rows.append({"setting": name, "warmup": w, "psnr_vs_full_first": vs_full[0],
                         "psnr_vs_full_mean": float(np.mean(np.minimum(vs_full, 99))),
                         "psnr_y_vs_gt": float(np.mean(vs_gt)), "full_run_psnr_y_vs_gt": float(np.mean(full_gt)),
                         "drop_db": float(np.mean(full_gt) - np.mean(vs_gt))})
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{desc}; LR {lr.shape[3]}x{lr.shape[2]} (BI x4); shipped basicvsr; {args.backend}; start frame {s}, "
          f"{k} frames kept\n")
    print("| setting | warmup | PSNR vs full run, first frame (dB) | mean over kept frames (dB) | PSNR-Y vs GT | "
          "full run PSNR-Y vs GT | drop (dB) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['setting']} | {r['warmup']} | {min(r['psnr_vs_full_first'], 99):.2f} | "
              f"{r['psnr_vs_full_mean']:.2f} | {r['psnr_y_vs_gt']:.3f} | {r['full_run_psnr_y_vs_gt']:.3f} | "
              f"{r['drop_db']:.3f} |")


if __name__ == "__main__":
    main()
