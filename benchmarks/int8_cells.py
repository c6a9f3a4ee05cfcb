"""Where INT8 time goes, per cell group, on ort-cpu and openvino-cpu: FP32 vs INT8 (``calibrate --target
cpu``, default exclusions) vs INT8 with extra exclusions (default: also ``op=MatMul``, which in a
decomposed-DCN bundle is the deformable conv's weighted sum). Issue 13 reported BasicVSR++ INT8 slower
than FP32; this separates the deformable alignment cells (GridSample + MatMul + the offset convs) from
the conv trunks. Random weights; rounds interleaved so that other load hits every variant alike.

    python benchmarks/int8_cells.py --arch basicvsr_pp --size 90x160 --frames 2 --threads 1
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import vsrdeploy
from vsrdeploy.evaluate.bench import synthetic_clip
from vsrdeploy.bundle import Bundle
from vsrdeploy.calib.int8 import DEFAULT_EXCLUDE, calibrate_bundle
from vsrdeploy.runtimes.engine import Upscaler
from vsrdeploy.evaluate.tune import cpu_description


def group(cell: str) -> str:
    return cell.rsplit("_", 1)[-1] if cell.endswith(("align", "backbone", "trunk")) else cell


def time_cells(bundle: str, backend: str, frames: int, h: int, w: int, threads: int) -> tuple[dict, float]:
    """Seconds per cell group of one whole-clip run after a warm-up on the fewest frames the network takes; and
    the peak RSS."""
    from vsrdeploy.evaluate.memory import peak_rss_mb
    torch.set_num_threads(threads)
    clip = synthetic_clip(frames, h, w)
    up = Upscaler.create(Bundle(bundle), backend, threads=threads)
    up.upscale(clip[:max(1, up.net.schedule().min_span)])  # one frame (IconVSR: the 5 its schedule needs)
    inner = up.backend.run
    spent = collections.defaultdict(float)

    def timed(cell, inputs):
        t = time.perf_counter()
        out = inner(cell, inputs)
        spent[group(cell)] += time.perf_counter() - t
        return out
    up.backend.run = timed
    up.upscale(clip)
    return dict(spent), peak_rss_mb()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="basicvsr_pp")
    ap.add_argument("--config", default='{"mid_channels": 64, "num_blocks": 7}')
    ap.add_argument("--size", default="90x160", help="LR HxW")
    ap.add_argument("--frames", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--extra", default="op=MatMul", help="extra exclusions of the third variant, comma-separated")
    ap.add_argument("--calib-frames", type=int, default=3,
                    help="synthetic 64x64 calibration frames (IconVSR needs at least 5)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="int8-cells-"))
    torch.manual_seed(0)
    fp32 = Bundle(vsrdeploy.export_onnx(vsrdeploy.build_model(args.arch, **json.loads(args.config)).eval(),
                                        work / "fp32.vsr", dcn="decomposed"))
    calib = synthetic_clip(args.calib_frames, 64, 64, seed=1)
    variants = {"fp32": fp32,
                "int8 default": Bundle(calibrate_bundle(fp32, calib, work / "d.vsr", target="cpu", progress=False)),
                f"int8 +{args.extra}": Bundle(calibrate_bundle(fp32, calib, work / "x.vsr", target="cpu",
                                                               exclude=list(DEFAULT_EXCLUDE) + args.extra.split(","),
                                                               progress=False))}
    keys = [(v, be) for v in variants for be in ("ort-cpu", "openvino-cpu")]
    times = {k: collections.defaultdict(list) for k in keys}
    load_before = os.getloadavg()
    ctx = multiprocessing.get_context("spawn")
    for rnd in range(args.rounds):
        for key in keys:  # each run in its own process: one runtime in memory at a time
            with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                spent, peak = pool.submit(time_cells, str(variants[key[0]].path), key[1], args.frames, h, w,
                                          args.threads).result()
            print(f"round {rnd} {key}: peak RSS {peak:.0f} MB", file=sys.stderr, flush=True)
            for g, s in spent.items():
                times[key][g].append(s)
    cpu = cpu_description()
    print(f"### {args.arch} {args.config}, LR {w}x{h}, {args.frames} frames, {args.threads} thread(s), "
          f"median of {args.rounds} interleaved rounds (each run in its own process, warmed up on one frame)\n")
    print(f"CPU: {cpu['model']}; flags {', '.join(cpu['flags'])}. Load average before "
          f"{', '.join(f'{x:.1f}' for x in load_before)}, after {', '.join(f'{x:.1f}' for x in os.getloadavg())}.\n")
    groups = sorted({g for d in times.values() for g in d})
    print("| backend | variant | total s | " + " | ".join(groups) + " | total vs FP32 |")
    print("|---|---|---:|" + "---:|" * len(groups) + "---:|")
    for be in ("ort-cpu", "openvino-cpu"):
        base = sum(np.median(v) for v in times[("fp32", be)].values())
        for v in variants:
            d = times[(v, be)]
            total = sum(np.median(x) for x in d.values())
            print(f"| {be} | {v} | {total:.2f} | " + " | ".join(f"{np.median(d[g]):.2f}" for g in groups)
                  + f" | {total / base:.2f}x |")
    print(f"\nCommand: `python benchmarks/int8_cells.py --arch {args.arch} --size {args.size} --frames {args.frames} "
          f"--threads {args.threads} --rounds {args.rounds} --config '{args.config}'"
          + (f" --calib-frames {args.calib_frames}" if args.calib_frames != 3 else "") + "`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
