"""OpenVINO CPU: a cell compiled with the bundle's dynamic shapes against the same cell reshaped to the static
shapes of the call, timed interleaved in one process on the inputs the cell really receives (recorded from a
stream through the bundle on openvino-cpu), with the largest output difference between the two. A lead for
issue 13, not a product path: the backends compile dynamic shapes once per cell.

    python benchmarks/openvino_static_shapes.py BUNDLE --cells backward_1_align backward_1_backbone --rounds 7
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from vsrdeploy.bundle import Bundle
from vsrdeploy.evaluate.bench import synthetic_clip
from vsrdeploy.evaluate.cell_parity import first_call_inputs
from vsrdeploy.evaluate.machine import cpu_info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("--cells", nargs="+", required=True)
    ap.add_argument("--size", default="180x320", help="LR HxW")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import openvino as ov
    bundle = Bundle(args.bundle)
    h, w = (int(v) for v in args.size.split("x"))
    lr = synthetic_clip(4, h, w, seed=0)
    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": args.threads, "INFERENCE_PRECISION_HINT": "f32"}
    info = cpu_info()
    print(f"CPU: {info['model']}, flags {', '.join(info['flags'])}; {bundle.path.name} ({bundle.precision}), "
          f"LR {w}x{h}, {args.threads} threads, median of {args.rounds} interleaved calls\n")
    print("| cell | dynamic s | static s | dynamic / static | max output difference |")
    print("|---|---:|---:|---:|---:|")
    for cell in args.cells:
        feeds = {k: np.ascontiguousarray(v) for k, v in
                 first_call_inputs(bundle, cell, lr, backend="openvino-cpu").items()}
        dynamic = core.compile_model(core.read_model(str(bundle.cell_path(cell))), "CPU", config)
        model = core.read_model(str(bundle.cell_path(cell)))
        model.reshape({k: ov.PartialShape(list(v.shape)) for k, v in feeds.items()})
        requests = {"dynamic": dynamic.create_infer_request(),
                    "static": core.compile_model(model, "CPU", config).create_infer_request()}
        outputs = {k: [np.array(v) for v in r.infer(feeds).values()] for k, r in requests.items()}  # warm-up
        times = {k: [] for k in requests}
        for _ in range(args.rounds):
            for k, r in requests.items():
                t0 = time.perf_counter()
                r.infer(feeds)
                times[k].append(time.perf_counter() - t0)
        diff = max(float(np.abs(a - b).max()) for a, b in zip(outputs["dynamic"], outputs["static"]))
        dyn, sta = float(np.median(times["dynamic"])), float(np.median(times["static"]))
        print(f"| {cell} | {dyn:.3f} | {sta:.3f} | {dyn / sta:.2f} | {diff:.2g} |")


if __name__ == "__main__":
    main()
