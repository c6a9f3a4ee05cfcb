"""What a stream's allocations cost in page faults, per heap policy (``models.heap``): for each policy (or a custom
glibc mmap threshold), a fresh process streams a bundle once after a warm-up and reports the stream's time, the
time and minor page faults of each cell's calls (``getrusage``), and the process's peak RSS. ``--fault-cost``
first measures what one 4 KiB page fault costs on this machine (fresh anonymous pages touched once).

    python benchmarks/page_faults.py BUNDLE.vsr --backend openvino-cpu --size 180x320 --frames 3 --fault-cost
    python benchmarks/page_faults.py BUNDLE.vsr --policy return keep --mmap-threshold-mb 8 16 24

A custom threshold sets glibc's mmap threshold to that many MB and its trim threshold to twice that (what glibc
does by itself when it raises the threshold); glibc only.
"""
from __future__ import annotations

import argparse
import json
import mmap
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict


def fault_cost_us(megabytes: int = 256, repeat: int = 3) -> float:
    """Median microseconds per 4 KiB page of touching fresh anonymous memory once."""
    import numpy as np
    times = []
    for _ in range(repeat):
        m = mmap.mmap(-1, megabytes << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        a = np.frombuffer(m, dtype=np.uint8)
        t = time.perf_counter()
        a[::4096] = 1
        times.append(time.perf_counter() - t)
        del a
        m.close()
    return 1e6 * sorted(times)[len(times) // 2] / ((megabytes << 20) // 4096)


def _minflt() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class _FaultTimer:
    """A backend whose ``run`` records each cell's time and minor page faults."""

    def __init__(self, backend):
        self.backend = backend
        self.seconds, self.faults, self.calls = defaultdict(float), defaultdict(int), defaultdict(int)

    def run(self, cell, inputs):
        f0, t0 = _minflt(), time.perf_counter()
        out = self.backend.run(cell, inputs)
        self.seconds[cell] += time.perf_counter() - t0
        self.faults[cell] += _minflt() - f0
        self.calls[cell] += 1
        return out

    __call__ = run

    def __getattr__(self, name):
        return getattr(self.backend, name)


def child(cfg: dict) -> dict:
    from vsrdeploy.bundle import Bundle
    from vsrdeploy.evaluate.bench import synthetic_clip
    from vsrdeploy.evaluate.memory import peak_rss_mb
    from vsrdeploy.evaluate.timing import timed_stream, warm_up
    from vsrdeploy.models import heap as heap_module
    from vsrdeploy.runtimes.base import parse_backend_options
    from vsrdeploy.runtimes.engine import Upscaler
    policy, threshold = cfg["policy"], cfg["mmap_threshold_mb"]
    if threshold is not None:  # a custom threshold: set here, and streams leave malloc alone (heap=None)
        libc = heap_module._glibc()
        if libc is None:
            raise SystemExit("--mmap-threshold-mb needs glibc")
        libc.mallopt(heap_module._M_MMAP_THRESHOLD, threshold << 20)
        libc.mallopt(heap_module._M_TRIM_THRESHOLD, 2 * threshold << 20)
    h, w = cfg["size"]
    clip = synthetic_clip(cfg["frames"], h, w)
    options = {"threads": cfg["threads"], **parse_backend_options(cfg["backend"], cfg["options"])}
    up = Upscaler.create(Bundle(cfg["bundle"]), cfg["backend"], **options)
    stream = {"heap": policy, "window": cfg["window"], "lookahead": cfg["lookahead"]}
    warm_up(up, clip[:1], **stream)
    up.backend = timer = _FaultTimer(up.backend)
    f0 = _minflt()
    run = timed_stream(up, clip, stream.pop("window"), stream.pop("lookahead"), **stream)
    return {"label": policy or f"mmap threshold {threshold} MB", "stream_s": run.total_s,
            "faults_mb": (_minflt() - f0) * 4 / 1024, "peak_mb": peak_rss_mb(),
            "cells": {c: {"calls": timer.calls[c], "seconds": timer.seconds[c],
                          "faults_mb_per_call": timer.faults[c] * 4 / 1024 / timer.calls[c]} for c in timer.calls}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", nargs="?")
    ap.add_argument("--backend", default="openvino-cpu")
    ap.add_argument("-O", "--option", action="append", default=[], metavar="KEY=VALUE", help="a backend option")
    ap.add_argument("--size", default="180x320", help="LR HxW")
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--lookahead", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--policy", nargs="*", default=["return", "keep"], help="heap policies, one process each")
    ap.add_argument("--mmap-threshold-mb", type=int, nargs="*", default=[], help="custom thresholds, one process each")
    ap.add_argument("--fault-cost", action="store_true", help="first measure one page fault's cost here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    if not args.bundle:
        ap.error("give the bundle to stream (e.g. int8-nncf.vsr from a realsize_speed.py run's temp directory)")
    from vsrdeploy.evaluate.tune import cpu_description
    cpu = cpu_description()
    print(f"CPU: {cpu['model']}, {cpu['cores']} cores; flags: {', '.join(cpu['flags'])}. Bundle {args.bundle} on "
          f"{args.backend} {' '.join(args.option)}, LR {args.size} (HxW), {args.frames} frames after a 1-frame "
          f"warm-up, {args.threads} threads.")
    if args.fault_cost:
        print(f"\nOne 4 KiB page fault (256 MB of fresh pages touched once, median of 3): {fault_cost_us():.2f} us")
    base = {"bundle": args.bundle, "backend": args.backend, "options": args.option,
            "size": [int(v) for v in args.size.split("x")], "frames": args.frames, "window": args.window,
            "lookahead": args.lookahead, "threads": args.threads}
    runs = [{**base, "policy": p, "mmap_threshold_mb": None} for p in args.policy]
    runs += [{**base, "policy": None, "mmap_threshold_mb": t} for t in args.mmap_threshold_mb]
    results = []
    for cfg in runs:
        out = subprocess.run([sys.executable, __file__, "--child", json.dumps(cfg)], capture_output=True, text=True,
                             env=os.environ)
        if out.returncode != 0:
            print(f"{cfg['policy'] or cfg['mmap_threshold_mb']}: failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    if not results:
        return 1
    print("\n| malloc | stream s | page faults MB | peak RSS MB |\n|---|---:|---:|---:|")
    for r in results:
        print(f"| {r['label']} | {r['stream_s']:.2f} | {r['faults_mb']:.0f} | {r['peak_mb']:.0f} |")
    cells = sorted({c for r in results for c in r["cells"]},
                   key=lambda c: -results[0]["cells"].get(c, {}).get("seconds", 0))
    print("\nPer cell, seconds / MB of page faults per call:\n")
    print("| cell | calls | " + " | ".join(r["label"] for r in results) + " |\n|---|---:|" + "---:|" * len(results))
    for c in cells:
        calls = results[0]["cells"].get(c, {}).get("calls", "")
        vals = [r["cells"].get(c) for r in results]
        print(f"| {c} | {calls} | " + " | ".join(f"{v['seconds']:.3f} / {v['faults_mb_per_call']:.0f}" if v else "-"
                                               for v in vals) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
