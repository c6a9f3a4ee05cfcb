"""The exported deformable conv's forms on one DCN cell (BasicVSR++'s align cell, or ``--arch iconvsr``: EDVR's
alignment of one neighbour): a group of kernel taps per GridSample and 1x1 convolution
(``dcn.deform_conv_tap_groups``; exports take ``dcn.EXPORT_TAPS_PER_CALL``), since 0.3.16 with each group's offsets
and mask from its own rows of the offset conv (``dcn.deform_conv_from_features``; the other variants split the whole
offset conv's output, as 0.3.15 did), 0.3.14's one tap at a time, and all taps at once with one MatMul
(``dcn.deform_conv_all_taps``, what eager PyTorch uses): speed on each runtime (interleaved runs, the inputs that
cell really receives) and the outputs' difference. Each variant is forced for both export and eager runs.

``--int8``: each variant's bundle is also calibrated for OpenVINO (NNCF, ``calibrate --target openvino``, 6
synthetic 64x64 frames: the scales do not change the speed) and its INT8 cell timed on ``openvino-cpu``.
``--keep DIR``: the bundles stay in ``DIR/<variant>/`` (fp32.vsr, int8-nncf.vsr), for whole streams side by
side: ``vsrdeploy bench DIR/A/fp32.vsr -b openvino-cpu --extra-bundle DIR/B/int8-nncf.vsr ...``.
Peak memory of whole streams is ``vsrdeploy bench``'s or ``benchmarks/memory_real_size.py``'s job.

    python benchmarks/dcn_taps_ab.py --size 180x320 --threads 2 --backends torch ort-cpu openvino-cpu
    python benchmarks/dcn_taps_ab.py --size 180x320 --backends openvino-cpu --int8 --keep /tmp/dcn-forms
    python benchmarks/dcn_taps_ab.py --arch iconvsr --backends openvino-cpu --int8 --keep /tmp/dcn-forms-iconvsr
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

import vsrdeploy
from vsrdeploy.bundle import Bundle
from vsrdeploy.calib.int8 import calibrate_bundle
from vsrdeploy.evaluate.machine import cpu_info
from vsrdeploy.evaluate.bench import synthetic_clip
from vsrdeploy.models import dcn
from vsrdeploy.models.blocks import base_grid, grid_extent
from vsrdeploy.evaluate.cell_parity import first_call_inputs
from vsrdeploy.runtimes.engine import Upscaler


def per_tap_0314(x, offset, mask, weight, bias, stride=1, padding=1, dilation=1, deform_groups=1, out_grid=None):
    """One tap at a time: 0.3.14's exported form (grids in (k, n*g, h, w, 2), mask multiplied as 5-D
    tensors), kept here for the A/B: a frozen copy, not built from ``dcn``'s helpers, so that later changes there
    do not change what it measures."""
    n, c, h, w = x.shape
    cout, cin_per_group, kh, kw = weight.shape
    if cin_per_group != c:
        raise ValueError("grouped convolution (groups > 1) is not supported by this DCN")
    kh, kw = int(kh), int(kw)  # the kernel size is static (traced exports see tensors here)
    k = kh * kw
    g = deform_groups
    ho, wo = offset.shape[-2:]
    off = offset.view(n, g, k, 2, ho, wo)
    taps_mask = mask.view(n, g, 1, k, ho, wo)
    # (dy, dx) of each tap before the learned offset: a constant of the graph
    tap_yx = torch.tensor([[ty * dilation - padding, tx * dilation - padding]
                           for ty in range(kh) for tx in range(kw)], dtype=x.dtype, device=x.device)
    if out_grid is None:
        out_grid = base_grid(offset[:, :2])
    grid_yx = out_grid.flip(1).view(1, 1, 1, 2, ho, wo)  # output pixel (y, x)
    extent_yx = grid_extent(base_grid(x)).flip(1).view(1, 1, 1, 2, 1, 1)  # (h - 1, w - 1), size-agnostic
    position = grid_yx * stride + tap_yx.view(1, 1, k, 2, 1, 1) + off  # (n, g, k, [y, x], ho, wo)
    normalized = 2.0 * position / extent_yx - 1.0
    xy_order = torch.tensor([1, 0], device=x.device)
    grids = normalized.index_select(3, xy_order).permute(2, 0, 1, 4, 5, 3).reshape(k, n * g, ho, wo, 2)
    groups = x.reshape(n * g, c // g, h, w)
    out = None
    for tap in range(k):
        ty, tx = divmod(tap, kw)
        sampled = torch.nn.functional.grid_sample(groups, grids[tap], mode="bilinear", padding_mode="zeros",
                                                  align_corners=True)
        sampled = sampled.view(n, g, c // g, ho, wo) * taps_mask[:, :, :, tap]
        part = torch.nn.functional.conv2d(sampled.reshape(n, c, ho, wo), weight[:, :, ty:ty + 1, tx:tx + 1])
        out = part if out is None else out + part
    if bias is not None:
        out = out + bias.view(1, cout, 1, 1)
    return out


#: variant -> (the function the DCN layer calls, whether exports cut the offset conv by groups of taps: 0.3.16's
#: ``dcn.EXPORT_OFFSETS_PER_TAP_GROUP``, which then samples ``dcn.EXPORT_TAPS_PER_CALL`` taps per call)
VARIANTS = {"all taps at once": (dcn.deform_conv_all_taps, False),
            **{f"{m} tap{'s' if m > 1 else ''} per call": (partial(dcn.deform_conv_tap_groups, taps_per_call=m), False)
               for m in (1, 3, 9)},
            "per tap (0.3.14)": (per_tap_0314, False),
            "3 taps, offsets per group (0.3.16)": (dcn.deform_conv_tap_groups, True)}


#: network with deformable convs -> (released configuration, its DCN cell, frames of the clip the cell's first call
#: is recorded from: IconVSR's key frames need 5)
ARCHS = {"basicvsr_pp": ({"mid_channels": 64, "num_blocks": 7}, "backward_1_align", 2),
         "iconvsr": ({"mid_channels": 64, "num_blocks": 30}, "edvr_align", 5)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="180x320", help="LR HxW")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--arch", choices=list(ARCHS), default="basicvsr_pp")
    ap.add_argument("--cell", help="default: the network's DCN cell (ARCHS)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--backends", nargs="+", default=["torch", "ort-cpu", "openvino-cpu"])
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--int8", action="store_true", help="also each variant's NNCF INT8 cell on openvino-cpu")
    ap.add_argument("--keep", type=Path, metavar="DIR", help="write the bundles here (kept) instead of a temp dir")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.split("x"))
    work = args.keep or Path(tempfile.mkdtemp(prefix="dcn-taps-"))
    config, default_cell, clip_frames = ARCHS[args.arch]
    cell = args.cell or default_cell
    torch.manual_seed(0)
    net = vsrdeploy.build_model(args.arch, **config).eval()
    current = dcn.modulated_deform_conv2d, dcn.EXPORT_OFFSETS_PER_TAP_GROUP
    bundles, int8 = {}, {}
    for name in args.variants:
        # the module-level names the DCN layers read
        dcn.modulated_deform_conv2d, dcn.EXPORT_OFFSETS_PER_TAP_GROUP = VARIANTS[name]
        folder = work / name.replace(" ", "-").replace("(", "").replace(")", "").replace(",", "")
        try:
            bundles[name] = Bundle(vsrdeploy.export_onnx(net, folder / "fp32.vsr", dcn="decomposed"))
        finally:
            dcn.modulated_deform_conv2d, dcn.EXPORT_OFFSETS_PER_TAP_GROUP = current
        if args.int8:
            int8[name] = Bundle(calibrate_bundle(bundles[name], synthetic_clip(6, 64, 64, seed=1),
                                                 folder / "int8-nncf.vsr", target="openvino", progress=False))
    first = next(iter(bundles.values()))
    feeds = first_call_inputs(first, cell, synthetic_clip(clip_frames, h, w), threads=args.threads)
    base_name = args.variants[0]
    print(f"{args.arch} {config} {cell}, LR {h}x{w}, {args.threads} threads, median of {args.runs} interleaved runs; "
          f"CPU {cpu_info()['model']}")
    print(f"\n| backend | variant | median s | min s | vs {base_name} | max abs diff vs {base_name} |")
    print("|---|---|---:|---:|---:|---:|")
    rows = [(backend, bundles) for backend in args.backends]
    if args.int8:
        rows.append(("openvino-cpu int8", int8))
    for backend, forms in rows:
        runners = {}
        for name, b in forms.items():
            be = Upscaler.create(b, backend.split()[0], threads=args.threads).backend
            fn = VARIANTS[name][0]

            def call(be=be, fn=fn):
                if backend == "torch":  # the torch backend runs the PyTorch cell: the variant is the function
                    dcn.modulated_deform_conv2d = fn
                    try:
                        return be.run(cell, {k: torch.from_numpy(v) for k, v in feeds.items()})
                    finally:
                        dcn.modulated_deform_conv2d = current[0]
                return be.run(cell, {k: torch.from_numpy(v) for k, v in feeds.items()})
            runners[name] = call
        outs = {name: {k: np.asarray(v).copy() for k, v in r().items()} for name, r in runners.items()}
        times = {name: [] for name in runners}
        for _ in range(args.runs):
            for name, r in runners.items():
                t = time.perf_counter()
                r()
                times[name].append(time.perf_counter() - t)
        base = np.median(times[base_name])
        ref = outs[base_name]
        for name, v in times.items():
            diff = max(float(np.abs(outs[name][k] - ref[k]).max()) for k in ref)
            print(f"| {backend} | {name} | {np.median(v):.3f} | {min(v):.3f} | {base / np.median(v):.2f}x "
                  f"| {diff:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
