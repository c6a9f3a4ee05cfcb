"""One BasicVSR++ align cell on ONNX Runtime CPU: decomposed DCN (GridSample + MatMul) vs native
ONNX DeformConv, on the inputs that cell really receives (recorded from a stream), interleaved runs.

    python benchmarks/dcn_align_ab.py --size 90x160 --threads 1
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
from vsrdeploy.evaluate.bench import synthetic_clip
from vsrdeploy.bundle import Bundle
from vsrdeploy.evaluate.cell_parity import first_call_inputs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="90x160", help="LR HxW")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cell", default="backward_1_align")
    ap.add_argument("--runs", type=int, default=4)
    args = ap.parse_args(argv)
    import onnxruntime as ort
    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="dcn-ab-"))
    torch.manual_seed(0)
    net = vsrdeploy.build_model("basicvsr_pp", mid_channels=64, num_blocks=7).eval()
    paths = {dcn: vsrdeploy.export_onnx(net, work / f"{dcn}.vsr", dcn=dcn) for dcn in ("decomposed", "native")}
    feeds = first_call_inputs(Bundle(paths["decomposed"]), args.cell, synthetic_clip(2, h, w), threads=args.threads)
    sessions = {}
    for dcn, path in paths.items():
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.intra_op_num_threads = args.threads
        sessions[dcn] = ort.InferenceSession(str(Bundle(path).cell_path(args.cell)), so,
                                             providers=["CPUExecutionProvider"])
    outs = {dcn: s.run(None, feeds) for dcn, s in sessions.items()}
    diff = max(float(np.abs(a - b).max()) for a, b in zip(outs["decomposed"], outs["native"]))
    times = {dcn: [] for dcn in sessions}
    for _ in range(args.runs):
        for dcn, s in sessions.items():
            t = time.perf_counter()
            s.run(None, feeds)
            times[dcn].append(time.perf_counter() - t)
    for dcn, v in times.items():
        print(f"{args.cell} on ort-cpu, {dcn:10}: median {np.median(v):.3f} s, min {min(v):.3f} s")
    print(f"max abs difference native vs decomposed: {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
