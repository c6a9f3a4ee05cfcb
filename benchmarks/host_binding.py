"""Copy-free binding on the CPU runtimes (issue 13, item 3), side by side in one process, two paths per
backend on the same bundle:

- openvino-cpu: "copying" = the former ``run`` of commit 8de759a (``infer`` copies the inputs into the
  request and the outputs out of it, then ``np.array(copy=True)`` per output) vs "bound" = the shipped
  ``run`` (input tensors on the caller's memory, outputs written into per-call numpy buffers).
- ort-cpu: "copying" = the shipped ``run`` (``session.run`` on numpy views) vs "bound" = an I/O-binding
  candidate defined here (inputs bound by pointer, outputs ORT-allocated and wrapped by ``OrtValue.numpy()``).
  It did not pay (see RESULTS.md): ONNX Runtime >= 1.25 already uses contiguous numpy inputs in place and
  returns outputs as views of its own memory, so the shipped path kept ``session.run``.

Two measurements: whole streams, and single cell calls at the streaming shapes (where a copy is the largest
share of a call: warp). Runs alternate A/B/A/B so load from other jobs hits both; read the ratio of medians.

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
from vsrdeploy.runtimes.host_buffers import cpu_array
from vsrdeploy.runtimes.openvino_backend import RELEASE_ABOVE_BYTES


def bound_ort(backend):
    def run(cell, inputs):  # the I/O-binding candidate (not shipped)
        session = backend.sessions[cell]
        binding = session.io_binding()
        held = [cpu_array(t) for t in inputs.values()]
        for name, a in zip(inputs, held):
            binding.bind_input(name, "cpu", 0, a.dtype, a.shape, a.ctypes.data)
        for name in backend.output_names[cell]:
            binding.bind_output(name, "cpu")
        session.run_with_iobinding(binding)
        return {n: torch.from_numpy(v.numpy()) for n, v in zip(backend.output_names[cell], binding.get_outputs())}
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


def shipped(backend):
    return backend


#: backend -> (copying path, bound path), each a function that sets a backend's ``run``
PATHS = {"ort-cpu": (shipped, bound_ort), "openvino-cpu": (copying_openvino, shipped)}


def alternate(fns: dict, rounds: int) -> dict:
    """Seconds per call of each function, alternating their order each round; round 0 is not counted."""
    times = {k: [] for k in fns}
    for r in range(rounds + 1):
        for key in (list(fns) if r % 2 else list(fns)[::-1]):
            t0 = time.perf_counter()
            fns[key]()
            if r:
                times[key].append(time.perf_counter() - t0)
    return times


def cell_inputs(bundle, cell, h, w):
    from vsrdeploy.export.tensorrt import resolve_shape
    g = torch.Generator().manual_seed(2)
    return {p["name"]: torch.rand(resolve_shape(p["shape"], 1, h, w), generator=g) for p in bundle.cells[cell].inputs}


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
    ap.add_argument("--cells", default="warp,backward_trunk,upsample")
    ap.add_argument("--cell-repeat", type=int, default=15)
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
    ups = {name: {key: Upscaler(bundle, path(create_backend(name, bundle, threads=args.threads)))
                  for key, path in zip(("copying", "bound"), PATHS[name])} for name in args.backends.split(",")}
    print("| backend | copying s/frame (median) | bound s/frame (median) | copying / bound | bit-identical | rounds (copying/bound) |")
    print("|---|---:|---:|---:|---|---|")
    for name, pair in ups.items():
        outs = {}

        def streamer(key):
            def go():
                outs[key] = [o.clone() for o in pair[key].stream(clip, window=args.window, lookahead=args.lookahead,
                                                                 clamp=False)]
            return go

        times = alternate({k: streamer(k) for k in pair}, args.repeat)
        same = all(torch.equal(a, b) for a, b in zip(outs["bound"], outs["copying"]))
        c, b = (statistics.median(times[k]) / args.frames for k in ("copying", "bound"))
        rounds = "; ".join(f"{x / args.frames:.2f}/{y / args.frames:.2f}" for x, y in zip(times["copying"], times["bound"]))
        print(f"| {name} | {c:.3f} | {b:.3f} | {c / b:.3f} | {same} | {rounds} |")
    print("\nSingle cell calls, batch 1 (ms, median of alternating calls):\n")
    print("| backend | cell | copying ms | bound ms | copying / bound | bit-identical |")
    print("|---|---|---:|---:|---:|---|")
    for name, pair in ups.items():
        for cell in args.cells.split(","):
            inputs = cell_inputs(bundle, cell, h, w)
            outs = {}

            def caller(key):
                def go():
                    outs[key] = pair[key].backend.run(cell, inputs)
                return go

            times = alternate({k: caller(k) for k in pair}, args.cell_repeat)
            same = all(torch.equal(outs["copying"][k], outs["bound"][k]) for k in outs["bound"])
            c, b = (statistics.median(times[k]) * 1000 for k in ("copying", "bound"))
            print(f"| {name} | {cell} | {c:.1f} | {b:.1f} | {c / b:.3f} | {same} |")
    for pair in ups.values():
        for up in pair.values():
            up.close()
    print(f"\nload average after {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
