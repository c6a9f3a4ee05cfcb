"""Every cell of a network on OpenVINO's CPU plugin, one line each: median time per call on the inputs the cell really
receives (recorded from a stream), the convolutions OpenVINO runs in float although the bundle quantized them, and
the share of the call in reference kernels, layout reorders and transposes (OpenVINO's own profiler,
``PERF_COUNT``). Meant to find the slow spots of an INT8 bundle: IconVSR's TSA fusion ran both temporal-attention
convs in FP32 until 0.3.17 (benchmarks/RESULTS.md, "Every INT8 cell's kernels on OpenVINO").

    python benchmarks/openvino_cell_kernels.py --arch iconvsr --int8 openvino
    python benchmarks/openvino_cell_kernels.py --arch basicvsr_pp              # the FP32 bundle

Released channel widths, random weights, decomposed DCN; ``--int8 TARGET`` calibrates as ``calibrate --target
TARGET`` does (its default exclusions, 6 synthetic 64x64 frames: the scales do not change the kernels). A
convolution the bundle keeps in float on purpose (e.g. ``frame-input``) is listed as excluded, not as float.
"""
from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time
from pathlib import Path

import torch

import vsrdeploy
from vsrdeploy.evaluate.bench import synthetic_clip
from vsrdeploy.evaluate.cell_parity import first_calls
from vsrdeploy.evaluate.machine import cpu_info

sys.path.insert(0, str(Path(__file__).resolve().parent))
from openvino_op_profile import CLIP_FRAMES, int8_bundle, released_bundle  # noqa: E402
#: kernel classes reported as a share of each call: (label, test on (node type, exec type))
SHARES = (("reference kernels", lambda op, kernel: kernel.startswith(("ref", "unknown")) and op not in (
              "Transpose", "Reshape", "ShapeOf", "Parameter", "Result", "Unsqueeze", "Squeeze")),
          ("reorders", lambda op, kernel: op == "Reorder"),
          ("transposes", lambda op, kernel: op == "Transpose"))


def float_convs(compiled, quantized: set[str]) -> list[str]:
    """ONNX Conv names among ``quantized`` that ``compiled`` runs in a float precision."""
    out = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) != "Convolution" or info["runtimePrecision"].astype(str) in ("u8", "i8"):
            continue
        for name in info["originalLayersNames"].astype(str).split(","):
            name = name.removesuffix("/WithoutBiases")  # a conv with a bias, once its bias is split off
            if name in quantized:
                out.append(name)
    return sorted(set(out))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="basicvsr_pp", choices=vsrdeploy.list_models())
    ap.add_argument("--size", default="180x320", help="LR HxW")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--int8", metavar="TARGET", help="the INT8 bundle calibrate --target TARGET makes")
    args = ap.parse_args(argv)
    import onnx
    import openvino as ov
    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.split("x"))
    net, bundle = released_bundle(args.arch, "ov-kernels-")
    feeds = first_calls(bundle, synthetic_clip(CLIP_FRAMES.get(args.arch, 2), h, w), threads=args.threads)
    if args.int8:
        bundle = int8_bundle(bundle, args.int8)
    excluded = bundle.manifest.get("precision_details", {}).get("excluded_nodes", {})
    core = ov.Core()
    info = cpu_info()
    form = f"INT8 (calibrate --target {args.int8})" if args.int8 else "FP32"
    print(f"{args.arch} {net.config()}, {form}, LR {h}x{w}, {args.threads} threads, median of {args.runs} calls; "
          f"CPU {info['model']}, flags {', '.join(info['flags'])}; OpenVINO {ov.__version__}\n")
    print("| cell | ms per call | " + " | ".join(label for label, _ in SHARES) + " | convs run in float |")
    print("|---|---:|" + "---:|" * len(SHARES) + "---|")
    for cell, inputs in feeds.items():
        compiled = core.compile_model(str(bundle.cell_path(cell)), "CPU",
                                      {"INFERENCE_NUM_THREADS": args.threads, "INFERENCE_PRECISION_HINT": "f32",
                                       "PERF_COUNT": True})
        request = compiled.create_infer_request()
        request.infer(inputs)  # warm-up
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            request.infer(inputs)
            times.append(time.perf_counter() - t)
        spent = collections.Counter()
        for node in request.get_profiling_info():
            spent[(node.node_type, node.exec_type)] += node.real_time.total_seconds()
        total = sum(spent.values()) or 1.0
        shares = [sum(s for (op, kernel), s in spent.items() if test(op, kernel)) / total for _, test in SHARES]
        convs = {n.name for n in onnx.load(str(bundle.cell_path(cell))).graph.node if n.op_type == "Conv"}
        floats = float_convs(compiled, convs - set(excluded.get(cell, []))) if args.int8 else []
        print(f"| {cell} | {1e3 * statistics.median(times):.1f} | " + " | ".join(f"{s:.0%}" for s in shares)
              + f" | {', '.join(floats) or '-'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
