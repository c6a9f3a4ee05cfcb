"""Copy-free binding on the CPU runtimes vs the former copying path (issue 13, item 3), side by side in one
process: the same bundle streamed through ort-cpu and openvino-cpu with the current ``run`` ("bound":
ONNX Runtime I/O binding, OpenVINO tensors on the caller's memory and outputs written into per-call
buffers) and with the former ``run`` of commit 8de759a ("copying": ``session.run`` on numpy feeds;
OpenVINO ``infer`` copying inputs and outputs, then ``np.array(copy=True)`` per output). Runs alternate
A/B/A/B so load from other jobs hits both; the ratio of medians is the figure to read.

    python benchmarks/host_binding.py --arch basicvsr --config '{"mid_channels": 64, "num_blocks": 2}' \\
        --size 180x320 --frames 6 --window 3 --lookahead 2 --repeat 5 --threads 2
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import vsrdeploy
from vsrdeploy.bundle import Bundle
from vsrdeploy.evaluate.tune import cpu_description
from vsrdeploy.runtimes.base import create_backend
from vsrdeploy.runtimes.engine import Upscaler
from vsrdeploy.runtimes.openvino_backend import RELEASE_ABOVE_BYTES


def copying_ort(backend):
    def run(cell, inputs):  # the former OrtCpuBackend.run
        feed = {k: v.detach().cpu().numpy() for k, v in inputs.items()}
        outs = backend.sessions[cell].run(backend.output_names[cell], feed)
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in zip(backend.output_names[cell], outs)}
    backend.run = run
    return backend


def copying_openvino(backend):
    def run(cell, inputs):  # the former OpenVINOCpuBackend.run
        request = backend.requests[cell]
        feed = {k: v.detach().cpu().numpy() for k, v in inputs.items()}
        result = request.infer(feed)
        outs = {name: torch.from_numpy(np.array(result[port], copy=True)) for name, port in backend.outputs[cell]}
        if sum(a.nbytes for a in feed.values()) > RELEASE_ABOVE_BYTES:
            del result
            backend.compiled[cell].release_memory()
        return outs
    backend.run = run
    return backend


COPYING = {"ort-cpu": copying_ort, "openvino-cpu": copying_openvino}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="basicvsr")
    ap.add_argument("--config", default='{"mid_channels": 64, "num_blocks": 2}')
    ap.add_argument("--size", default="180x320", help="LR HxW")
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--window", type=int, default=3)
    ap.add_argument("--lookahead", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backends", default="ort-cpu,openvino-cpu")
    args = ap.parse_args(argv)
    h, w = (int(v) for v in args.size.split("x"))
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    net = vsrdeploy.build_model(args.arch, **json.loads(args.config)).eval()
    bundle = Bundle(vsrdeploy.export_onnx(net, Path(tempfile.mkdtemp(prefix="binding-")) / "b.vsr", dcn="decomposed"))
    del net
    g = torch.Generator().manual_seed(1)
    clip = [torch.rand(3, h, w, generator=g) for _ in range(args.frames)]
    cpu = cpu_description()
    print(f"CPU: {cpu['model']}, {cpu['cores']} cores; flags: {', '.join(cpu['flags'])}. {args.arch} {args.config}, "
          f"LR {h}x{w}, {args.frames} frames, window {args.window}, lookahead {args.lookahead}, {args.threads} "
          f"threads; load average before {os.getloadavg()[0]:.1f}\n")
    print("| backend | copying s/frame (median) | bound s/frame (median) | copying / bound | bit-identical |")
    print("|---|---:|---:|---:|---|")
    for name in args.backends.split(","):
        ups = {"bound": Upscaler.create(bundle, name, threads=args.threads),
               "copying": Upscaler(bundle, COPYING[name](create_backend(name, bundle,
                                                                                         threads=args.threads)))}
        times = {k: [] for k in ups}
        outs = {}
        for r in range(args.repeat + 1):  # the first round warms up and is not counted
            for key in (("bound", "copying") if r % 2 else ("copying", "bound")):
                t0 = time.perf_counter()
                outs[key] = [o.clone() for o in ups[key].stream(clip, window=args.window, lookahead=args.lookahead,
                                                                  clamp=False)]
                if r:
                    times[key].append((time.perf_counter() - t0) / args.frames)
        same = all(torch.equal(a, b) for a, b in zip(outs["bound"], outs["copying"]))
        c, b = statistics.median(times["copying"]), statistics.median(times["bound"])
        print(f"| {name} | {c:.3f} | {b:.3f} | {c / b:.3f} | {same} |")
        for up in ups.values():
            up.close()
    print(f"\nload average after {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
