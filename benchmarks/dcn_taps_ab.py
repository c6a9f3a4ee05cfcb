"""Deformable conv one kernel tap at a time (``dcn.deform_conv_per_tap``, what exports use) against all taps
at once (``dcn.deform_conv_all_taps``: one GridSample over every tap, one MatMul; what eager PyTorch uses),
and against the per-tap form before 0.2.1 (each tap's sampling grid stacked on its own),
on one BasicVSR++ align cell: speed on each runtime (interleaved runs, the inputs that cell really
receives) and the outputs' difference. Each variant is forced for both export and eager runs.
Peak memory of whole streams is ``benchmarks/memory_real_size.py``'s job (run it on both trees).

    python benchmarks/dcn_taps_ab.py --size 180x320 --threads 2 --backends torch ort-cpu openvino-cpu
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import vsrdeploy
from vsrdeploy.bundle import Bundle
from vsrdeploy.evaluate.bench import synthetic_clip
from vsrdeploy.models import dcn
from vsrdeploy.models.blocks import base_grid, grid_extent
from vsrdeploy.evaluate.cell_parity import first_call_inputs
from vsrdeploy.runtimes.engine import Upscaler


def per_tap_grids_stacked(x, offset, mask, weight, bias, stride=1, padding=1, dilation=1, deform_groups=1):
    """The per-tap form before 0.2.1, kept here for the A/B: each tap's x and y coordinates computed and
    stacked on their own (nine Concat nodes in the export)."""
    n, c, h, w = x.shape
    cout, _, kh, kw = weight.shape
    kh, kw = int(kh), int(kw)
    k, g = kh * kw, deform_groups
    ho, wo = offset.shape[-2:]
    off = offset.view(n, g, k, 2, ho, wo)
    taps_mask = mask.view(n, g, 1, k, ho, wo)
    grid = base_grid(offset[:, :2])
    extent = grid_extent(base_grid(x))
    groups = x.reshape(n * g, c // g, h, w)
    out = None
    for tap in range(k):
        ty, tx = divmod(tap, kw)
        py = grid[:, 1:2] * stride + float(ty * dilation - padding) + off[:, :, tap, 0]
        px = grid[:, 0:1] * stride + float(tx * dilation - padding) + off[:, :, tap, 1]
        sample_grid = torch.stack([2.0 * px / extent[:, 0:1] - 1.0, 2.0 * py / extent[:, 1:2] - 1.0],
                                  dim=-1).reshape(n * g, ho, wo, 2)
        sampled = torch.nn.functional.grid_sample(groups, sample_grid, mode="bilinear", padding_mode="zeros",
                                                  align_corners=True)
        sampled = sampled.view(n, g, c // g, ho, wo) * taps_mask[:, :, :, tap]
        part = torch.matmul(weight[:, :, ty, tx], sampled.reshape(n, c, ho * wo))
        out = part if out is None else out + part
    if bias is not None:
        out = out + bias.view(1, cout, 1)
    return out.view(n, cout, ho, wo)


VARIANTS = {"per-tap": dcn.deform_conv_per_tap, "per-tap, grids stacked per tap (before 0.2.1)": per_tap_grids_stacked,
            "all taps at once": dcn.deform_conv_all_taps}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="180x320", help="LR HxW")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cell", default="backward_1_align")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--backends", nargs="+", default=["torch", "ort-cpu", "openvino-cpu"])
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="dcn-taps-"))
    torch.manual_seed(0)
    net = vsrdeploy.build_model("basicvsr_pp", mid_channels=64, num_blocks=7).eval()
    current = dcn.modulated_deform_conv2d
    bundles = {}
    for i, (name, fn) in enumerate(VARIANTS.items()):
        dcn.modulated_deform_conv2d = fn  # the module-level name the DCN layer calls
        try:
            bundles[name] = Bundle(vsrdeploy.export_onnx(net, work / f"v{i}.vsr", dcn="decomposed"))
        finally:
            dcn.modulated_deform_conv2d = current
    first = next(iter(bundles.values()))
    feeds = first_call_inputs(first, args.cell, synthetic_clip(2, h, w), threads=args.threads)
    print(f"BasicVSR++ c64 {args.cell}, LR {h}x{w}, {args.threads} threads, median of {args.runs} interleaved runs")
    print("\n| backend | variant | median s | min s | vs all taps at once | max abs diff vs all taps |")
    print("|---|---|---:|---:|---:|---:|")
    for backend in args.backends:
        runners = {}
        for name, b in bundles.items():
            be = Upscaler.create(b, backend, threads=args.threads).backend
            fn = VARIANTS[name]

            def call(be=be, fn=fn):
                if backend == "torch":  # the torch backend runs the PyTorch cell: the variant is the function
                    dcn.modulated_deform_conv2d = fn
                    try:
                        return be.run(args.cell, {k: torch.from_numpy(v) for k, v in feeds.items()})
                    finally:
                        dcn.modulated_deform_conv2d = current
                return be.run(args.cell, {k: torch.from_numpy(v) for k, v in feeds.items()})
            runners[name] = call
        outs = {name: {k: np.asarray(v).copy() for k, v in r().items()} for name, r in runners.items()}
        times = {name: [] for name in runners}
        for _ in range(args.runs):
            for name, r in runners.items():
                t = time.perf_counter()
                r()
                times[name].append(time.perf_counter() - t)
        base = np.median(times["all taps at once"])
        ref = outs["all taps at once"]
        for name, v in times.items():
            diff = max(float(np.abs(outs[name][k] - ref[k]).max()) for k in ref)
            print(f"| {backend} | {name} | {np.median(v):.3f} | {min(v):.3f} | {base / np.median(v):.2f}x | {diff:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
