"""Where one BasicVSR++ align cell spends its time inside OpenVINO: per-op-type totals and the slowest nodes
from OpenVINO's own profiler (``PERF_COUNT``), on the inputs the cell really receives (recorded from a stream).

    python benchmarks/openvino_op_profile.py --size 180x320 --threads 2

(c64n7, random weights, decomposed DCN; the times are the last of ``--runs`` inferences.)
"""
from __future__ import annotations

import argparse
import collections
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="180x320", help="LR HxW")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cell", default="backward_1_align")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--top", type=int, default=15, help="slowest nodes to list")
    args = ap.parse_args(argv)
    import openvino as ov
    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.split("x"))
    torch.manual_seed(0)
    net = vsrdeploy.build_model("basicvsr_pp", mid_channels=64, num_blocks=7).eval()
    bundle = Bundle(vsrdeploy.export_onnx(net, Path(tempfile.mkdtemp(prefix="ov-ops-")) / "pp.vsr", dcn="decomposed"))
    feeds = first_call_inputs(bundle, args.cell, synthetic_clip(2, h, w), threads=args.threads)
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(bundle.cell_path(args.cell))), "CPU",
                                  {"PERF_COUNT": True, "INFERENCE_NUM_THREADS": args.threads,
                                   "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    for i in range(args.runs):
        t = time.perf_counter()
        request.infer(feeds)
        print(f"run {i + 1}: {time.perf_counter() - t:.3f} s")
    nodes = request.get_profiling_info()
    by_type = collections.Counter()
    count = collections.Counter()
    for n in nodes:
        by_type[(n.node_type, n.exec_type)] += n.real_time.total_seconds()
        count[(n.node_type, n.exec_type)] += 1
    total = sum(by_type.values())
    print(f"\n{args.cell}, LR {h}x{w}, {args.threads} threads; CPU {cpu_info()['model']}\n")
    print("| op type | kernel | nodes | s | share |\n|---|---|---:|---:|---:|")
    for (op, kernel), s in by_type.most_common():
        if s > 0:
            print(f"| {op} | {kernel} | {count[(op, kernel)]} | {s:.3f} | {100 * s / total:.1f}% |")
    print("\nslowest nodes:")
    for n in sorted(nodes, key=lambda n: -n.real_time.total_seconds())[:args.top]:
        print(f"  {n.node_name[:70]:70} {n.node_type:14} {n.exec_type:18} {n.real_time.total_seconds():.4f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
