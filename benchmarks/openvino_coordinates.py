"""What keeping the sampling coordinates in FP32 costs and buys under OpenVINO's BF16 / FP16 inference precision
(``runtimes.openvino_backend.keep_sampling_coordinates_fp32``): every cell of a bundle, compiled as the
``openvino-cpu`` backend compiles it and as 0.3.12 did (coordinates left to the precision hint), timed on the
inputs the cell really receives (recorded from a stream) and compared with the same cell in f32.

    python benchmarks/openvino_coordinates.py --arch basicvsr_pp --size 180x320 --threads 2
    python benchmarks/openvino_coordinates.py --arch iconvsr --size 180x320 --frames 5 --precision bf16

Released channel widths, random weights, decomposed DCN. "error" is the mean absolute difference from f32
over the mean absolute f32 output (first output of the cell). The accuracy that matters, the PSNR-Y drop
on real video with the trained models, is ``precision_accuracy.py --bf16-coordinates``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vsrdeploy.evaluate.bench import synthetic_clip
from vsrdeploy.evaluate.cell_parity import first_calls
from vsrdeploy.evaluate.machine import cpu_info
from vsrdeploy.runtimes.openvino_backend import PRECISION_HINTS, precision_unavailable_reason, read_cell

sys.path.insert(0, str(Path(__file__).resolve().parent))
from openvino_op_profile import released_bundle  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="basicvsr_pp")
    ap.add_argument("--size", default="180x320", help="LR HxW")
    ap.add_argument("--frames", type=int, default=3, help="frames streamed to record each cell's inputs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", default="bf16", choices=["bf16", "fp16"])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    import openvino as ov
    reason = precision_unavailable_reason("CPU", args.precision)
    if reason:
        print(f"not run here: {reason}")
        return 0
    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.split("x"))
    net, bundle = released_bundle(args.arch, "ov-coords-")
    recorded = first_calls(bundle, synthetic_clip(args.frames, h, w), threads=args.threads)  # one stream, every cell
    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": args.threads}
    hint = PRECISION_HINTS[args.precision]
    info = cpu_info()
    print(f"\n{args.arch} {net.config()}, LR {h}x{w}, {args.threads} threads, {args.precision}; CPU {info['model']}, "
          f"flags {', '.join(info['flags'])}; OpenVINO {ov.__version__}\n")
    print("| cell | s, coordinates in the hint (0.3.12) | s, coordinates FP32 | time ratio | error, hint | "
          "error, FP32 coordinates |\n|---|---:|---:|---:|---:|---:|")
    totals = [0.0, 0.0]
    for cell in bundle.cells:
        if cell not in recorded:  # e.g. BasicVSR++'s compose_flow, not called on so few frames
            print(f"| {cell} | not called in {args.frames} frames | | | | |")
            continue
        feeds = recorded[cell]
        ref = core.compile_model(str(bundle.cell_path(cell)), "CPU", {**config, "INFERENCE_PRECISION_HINT": "f32"})
        expected = ref.create_infer_request().infer(feeds)[ref.outputs[0]]
        requests = [core.compile_model(read_cell(core, bundle.cell_path(cell), guard), "CPU",
                                       {**config, "INFERENCE_PRECISION_HINT": hint}).create_infer_request()
                    for guard in (False, True)]  # without the guard: as 0.3.12 compiled it
        errors = []
        for request in requests:
            first = request.infer(feeds)[request.model_outputs[0]]  # the guards' results come after the cell's
            errors.append(float(np.abs(first - expected).mean() / max(np.abs(expected).mean(), 1e-12)))
        times = [[], []]
        for _ in range(args.runs):  # interleaved
            for i, request in enumerate(requests):
                t = time.perf_counter()
                request.infer(feeds)
                times[i].append(time.perf_counter() - t)
        med = [statistics.median(t) for t in times]
        totals = [totals[0] + med[0], totals[1] + med[1]]
        print(f"| {cell} | {med[0]:.3f} | {med[1]:.3f} | {med[1] / med[0]:.2f}x | {errors[0]:.4f} | {errors[1]:.4f} |")
    print(f"| all cells, one call each | {totals[0]:.3f} | {totals[1]:.3f} | {totals[1] / totals[0]:.2f}x | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
