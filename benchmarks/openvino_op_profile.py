"""Where one cell spends its time inside OpenVINO, per inference precision: per-op-type totals with the
kernel OpenVINO picked, and the slowest nodes, from OpenVINO's own profiler (``PERF_COUNT``), on the inputs
the cell really receives (recorded from a stream).

    python benchmarks/openvino_op_profile.py --size 180x320 --threads 2        # BasicVSR++ align cell, f32
    python benchmarks/openvino_op_profile.py --arch basicvsr --cell backward_trunk --precision f32,bf16,f16
    python benchmarks/openvino_op_profile.py --int8 openvino --precision bf16    # NNCF INT8, float ops in BF16
    PYTHONPATH=OLD_TREE python benchmarks/openvino_op_profile.py --int8 openvino --precision bf16   # an older version

``--int8 TARGET`` profiles the cell of the bundle ``calibrate --target TARGET`` makes (its default exclusions,
6 synthetic 64x64 calibration frames: the scales do not change the speed). Below f32, cells are compiled as the
``openvino-cpu`` backend compiles them (sampling coordinates kept in FP32 since 0.3.13; ``--coordinates-in-hint``:
without that, as before).

Released channel widths, random weights, decomposed DCN. Each precision is compiled once; the timed runs
alternate between precisions (``--runs`` rounds) and the median is reported; the per-op table is the
profile of the last run. A precision the CPU does not execute natively (OpenVINO's
``OPTIMIZATION_CAPABILITIES``) is skipped with the reason, since OpenVINO would silently run f32.
"""
from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import vsrdeploy
from vsrdeploy.bundle import Bundle
from vsrdeploy.evaluate.bench import synthetic_clip
from vsrdeploy.evaluate.cell_parity import first_call_inputs
from vsrdeploy.evaluate.machine import cpu_info

#: arch (built at its released configuration, the model's defaults) -> the cell profiled unless --cell says
DEFAULT_CELL = {"basicvsr_pp": "backward_1_align", "basicvsr": "backward_trunk", "iconvsr": "backward_trunk",
                "realbasicvsr": "backward_trunk"}
#: frames of the clip whose first call of the cell is recorded: IconVSR's key frames need 2 * padding + 1
CLIP_FRAMES = {"iconvsr": 5}
#: OpenVINO's precision hint -> the capability the CPU plugin must report to execute it
CAPABILITY = {"f32": "FP32", "bf16": "BF16", "f16": "FP16"}


def released_bundle(arch: str, prefix: str):
    """``arch`` at its released configuration with random weights (seed 0), exported with the decomposed DCN into a
    temporary folder: (network, bundle)."""
    torch.manual_seed(0)
    net = vsrdeploy.build_model(arch).eval()
    return net, Bundle(vsrdeploy.export_onnx(net, Path(tempfile.mkdtemp(prefix=prefix)) / "m.vsr", dcn="decomposed"))


def int8_bundle(bundle, target: str):
    """``bundle``'s INT8 form as ``calibrate --target TARGET`` makes it (its default exclusions), calibrated on 6
    synthetic 64x64 frames: the scales do not change the speed or the kernels."""
    from vsrdeploy.calib.int8 import calibrate_bundle
    return Bundle(calibrate_bundle(bundle, synthetic_clip(6, 64, 64, seed=1), bundle.path.with_name("int8.vsr"),
                                   target=target, progress=False))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="basicvsr_pp", choices=sorted(DEFAULT_CELL))
    ap.add_argument("--size", default="180x320", help="LR HxW")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cell", help="cell to profile (default: the arch's main cost, e.g. backward_1_align)")
    ap.add_argument("--precision", default="f32", help="comma-separated OpenVINO precision hints: f32, bf16, f16")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--top", type=int, default=15, help="slowest nodes to list")
    ap.add_argument("--int8", metavar="TARGET", help="profile the INT8 form calibrate --target TARGET makes")
    ap.add_argument("--coordinates-in-hint", action="store_true",
                    help="below f32, leave the sampling coordinates to the precision hint too (0.3.12 and before)")
    ap.add_argument("--static", action="store_true",
                    help="compile the cell for the recorded inputs' shapes (the backend compiles dynamic shapes)")
    args = ap.parse_args(argv)
    import openvino as ov
    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.split("x"))
    cell = args.cell or DEFAULT_CELL[args.arch]
    net, bundle = released_bundle(args.arch, "ov-ops-")
    feeds = first_call_inputs(bundle, cell, synthetic_clip(CLIP_FRAMES.get(args.arch, 2), h, w), threads=args.threads)
    if args.int8:
        bundle = int8_bundle(bundle, args.int8)
    try:  # 0.3.13 and later: how the openvino-cpu backend reads a cell for a precision
        from vsrdeploy.runtimes.openvino_backend import read_cell
    except ImportError:
        def read_cell(core, path, fp32_coordinates):
            return core.read_model(str(path))
    core = ov.Core()
    have = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    requests, times = {}, collections.defaultdict(list)
    for hint in args.precision.split(","):
        if CAPABILITY[hint] not in have:
            print(f"{hint}: skipped, OpenVINO's CPU capabilities here are {have}")
            continue
        guard = hint != "f32" and not args.coordinates_in_hint  # as the openvino-cpu backend compiles it
        model = read_cell(core, bundle.cell_path(cell), guard)
        if args.static:
            model.reshape({name: list(a.shape) for name, a in feeds.items()})
        compiled = core.compile_model(model, "CPU",
                                      {"PERF_COUNT": True, "INFERENCE_NUM_THREADS": args.threads,
                                       "INFERENCE_PRECISION_HINT": hint})
        requests[hint] = compiled.create_infer_request()
        requests[hint].infer(feeds)  # warm-up
    for _ in range(args.runs):
        for hint, request in requests.items():
            t = time.perf_counter()
            request.infer(feeds)
            times[hint].append(time.perf_counter() - t)
    info = cpu_info()
    form = f", INT8 (calibrate --target {args.int8})" if args.int8 else ""
    form += ", static shapes" if args.static else ""
    print(f"\n{args.arch} {net.config()}{form}, cell {cell}, LR {h}x{w}, {args.threads} threads; CPU {info['model']}, "
          f"flags {', '.join(info['flags'])}; OpenVINO {ov.__version__}\n")
    base = statistics.median(times["f32"]) if "f32" in times else None
    print("| precision | median s per call | vs f32 |\n|---|---:|---:|")
    for hint, ts in times.items():
        ratio = f"{base / statistics.median(ts):.2f}x" if base else "-"
        print(f"| {hint} | {statistics.median(ts):.3f} | {ratio} |")
    for hint, request in requests.items():
        nodes = request.get_profiling_info()
        by_type, count = collections.Counter(), collections.Counter()
        for n in nodes:
            by_type[(n.node_type, n.exec_type)] += n.real_time.total_seconds()
            count[(n.node_type, n.exec_type)] += 1
        total = sum(by_type.values())
        print(f"\n#### {hint}\n\n| op type | kernel | nodes | s | share |\n|---|---|---:|---:|---:|")
        for (op, kernel), s in by_type.most_common():
            if s > 0:
                print(f"| {op} | {kernel} | {count[(op, kernel)]} | {s:.3f} | {100 * s / total:.1f}% |")
        print(f"\nslowest nodes ({hint}):")
        for n in sorted(nodes, key=lambda n: -n.real_time.total_seconds())[:args.top]:
            print(f"  {n.node_name[:70]:70} {n.node_type:14} {n.exec_type:18} {n.real_time.total_seconds():.4f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
