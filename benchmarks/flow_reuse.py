"""Flow reuse across windows (issue 13, item 3): how many frame pairs the flow cell computes with the previous
window's flows reused vs recomputed, and how far the output frames move, per architecture, streaming window
and lookahead. Tiny random-weight models (the counts do not depend on widths or frame size); with
``--backends`` the same on ONNX bundles (BasicVSR++ decomposed for OpenVINO). ``--time`` adds a side-by-side
timing of one configuration at a real size (alternating runs; the ratio is the figure to read).

    python benchmarks/flow_reuse.py --frames 40 --settings 16:8,3:2,2:5 --backends torch,ort-cpu,openvino-cpu
    python benchmarks/flow_reuse.py --macs basicvsr_pp --frames 24 --settings 16:8,8:8
    python benchmarks/flow_reuse.py --time basicvsr --time-config '{"mid_channels": 64, "num_blocks": 2}' \\
        --size 180x320 --time-frames 8 --settings 3:2 --threads 2
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

import vsrdeploy
from vsrdeploy.evaluate.tune import cpu_description
from vsrdeploy.models.cells import TorchRunner
from vsrdeploy.models.schedule import WindowContext

TINY = {"basicvsr": ({"mid_channels": 8, "num_blocks": 1}, 32),
        "iconvsr": ({"mid_channels": 8, "num_blocks": 1}, 32),
        "basicvsr_pp": ({"mid_channels": 8, "num_blocks": 1}, 64),
        "realbasicvsr": ({"mid_channels": 8, "num_propagation_blocks": 1, "num_cleaning_blocks": 1}, 32)}


class FlowCount:
    def __init__(self, run):
        self.run, self.items = run, 0

    def __call__(self, cell, inputs):
        if cell == "flow":
            self.items += next(iter(inputs.values())).shape[0]
        return self.run(cell, inputs)


class ZeroRun:
    """Every cell returns zeros of its output shapes: the schedule's calls without their arithmetic
    (``--count-only``; the counts do not depend on the values)."""

    def __init__(self, net, size):
        self.cells, self.size = net.cells, size

    def __call__(self, cell, inputs):
        n = next(iter(inputs.values())).shape[0]
        return {p.name: torch.zeros(p.shape(n, self.size, self.size)) for p in self.cells[cell].outputs}


def clip(t, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.avg_pool2d(torch.rand(1, 3, h + 2 * t, w + 2 * t, generator=g), 3, 1, 1)
    return [base[..., i:i + h, i:i + w].contiguous() for i in range(t)]


def stream(net, run, frames, window, lookahead, reuse):
    WindowContext.reuse_flows = reuse
    try:
        return torch.cat(list(net.stream_cells(run, iter(frames), window, lookahead)), 0)
    finally:
        WindowContext.reuse_flows = True


def counts(args, settings):
    print("| arch | backend | window:lookahead | flow pairs computed, before | after (reuse) | saved | max abs diff |")
    print("|---|---|---|---:|---:|---:|---:|")
    work = Path(tempfile.mkdtemp(prefix="flowreuse-"))
    for arch, (config, size) in TINY.items():
        torch.manual_seed(0)
        net = vsrdeploy.build_model(arch, **config).eval()
        frames = clip(args.frames, size, size)
        for backend in args.backends.split(","):
            if backend == "zeros":
                run, up = ZeroRun(net, size), None
            elif backend == "torch":
                run, up = TorchRunner(net.cells), None
            else:
                if arch not in ("basicvsr", "basicvsr_pp"):
                    continue
                dcn = "decomposed" if backend.startswith("openvino") else "native"
                bundle = vsrdeploy.export_onnx(net, work / f"{arch}-{dcn}.vsr", dcn=dcn, force=True)
                up = vsrdeploy.open_bundle(bundle, backend=backend)
                run = up.backend.run
            for window, lookahead in settings:
                on, off = FlowCount(run), FlowCount(run)
                a = stream(net, on, frames, window, lookahead, True)
                b = stream(net, off, frames, window, lookahead, False)
                diff = float((a - b).abs().max())
                print(f"| {arch} | {backend} | {window}:{lookahead} | {off.items} | {on.items} | "
                      f"{1 - on.items / off.items:.1%} | {diff:.2e} |")
            if up is not None:
                up.close()


def macs(args, settings):
    """Convolution MACs per output frame, by cell, with and without reuse (released width, real compute)."""
    torch.manual_seed(0)
    config = json.loads(args.macs_config) if args.macs_config else None
    net = vsrdeploy.build_model(args.macs, **(config or {})).eval()
    per_cell: dict[str, int] = {}
    current = [None]

    def hook(module, inputs, output):
        k = module.weight.shape[1] * module.weight.shape[2] * module.weight.shape[3]
        per_cell[current[0]] = per_cell.get(current[0], 0) + output.numel() * k

    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(hook)
    runner = TorchRunner(net.cells)

    def run(cell, inputs):
        current[0] = cell
        return runner(cell, inputs)

    frames = clip(args.frames, args.macs_size, args.macs_size)
    print("| arch | window:lookahead | GMAC/frame before | after | saved | flow cell share before |")
    print("|---|---|---:|---:|---:|---:|")
    for window, lookahead in settings:
        totals = {}
        for reuse in (False, True):
            per_cell.clear()
            stream(net, run, frames, window, lookahead, reuse)
            totals[reuse] = (sum(per_cell.values()) / len(frames) / 1e9, per_cell.get("flow", 0) / sum(per_cell.values()))
        (b, share), (a, _) = totals[False], totals[True]
        print(f"| {args.macs} {args.macs_config or 'released'} at {args.macs_size}x{args.macs_size} | "
              f"{window}:{lookahead} | {b:.2f} | {a:.2f} | {1 - a / b:.1%} | {share:.1%} |")


def timing(args, settings):
    h, w = (int(v) for v in args.size.split("x"))
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    net = vsrdeploy.build_model(args.time, **json.loads(args.time_config)).eval()
    work = Path(tempfile.mkdtemp(prefix="flowreuse-time-"))
    bundle = vsrdeploy.export_onnx(net, work / "b.vsr", dcn="decomposed")
    frames = clip(args.time_frames, h, w)
    window, lookahead = settings[0]
    print(f"\nTiming: {args.time} {args.time_config}, LR {h}x{w}, {args.time_frames} frames, window {window}, "
          f"lookahead {lookahead}, {args.threads} threads, load average before {os.getloadavg()[0]:.1f}\n")
    print("| backend | recompute s/frame | reuse s/frame | recompute / reuse | rounds |")
    print("|---|---:|---:|---:|---|")
    for backend in args.backends.split(","):
        up = vsrdeploy.open_bundle(bundle, backend=backend, threads=args.threads)
        times = {True: [], False: []}
        for r in range(args.repeat + 1):
            for reuse in ((True, False) if r % 2 else (False, True)):
                t0 = time.perf_counter()
                stream(net, up.backend.run, frames, window, lookahead, reuse)
                if r:  # round 0 warms up
                    times[reuse].append((time.perf_counter() - t0) / len(frames))
        off, on = statistics.median(times[False]), statistics.median(times[True])
        rounds = "; ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(times[False], times[True]))
        print(f"| {backend} | {off:.3f} | {on:.3f} | {off / on:.3f} | {rounds} |")
        up.close()
    print(f"\nload average after {os.getloadavg()[0]:.1f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--settings", default="16:8,3:2,2:5", help="window:lookahead,...")
    ap.add_argument("--backends", default="torch", help="torch, ort-cpu, openvino-cpu, or zeros (counts only)")
    ap.add_argument("--macs", help="arch whose convolution MACs per frame to count, reuse on and off")
    ap.add_argument("--macs-config", help="JSON config for --macs (default: the released one)")
    ap.add_argument("--macs-size", type=int, default=64)
    ap.add_argument("--time", help="arch to time at --size (skips the counts)")
    ap.add_argument("--time-config", default='{"mid_channels": 64, "num_blocks": 2}')
    ap.add_argument("--time-frames", type=int, default=8)
    ap.add_argument("--size", default="180x320")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_grad_enabled(False)
    settings = [tuple(int(v) for v in s.split(":")) for s in args.settings.split(",")]
    cpu = cpu_description()
    print(f"CPU: {cpu['model']}, {cpu['cores']} cores; flags: {', '.join(cpu['flags'])}; torch {torch.__version__}\n")
    if args.macs:
        macs(args, settings)
    elif args.time:
        timing(args, settings)
    else:
        counts(args, settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
