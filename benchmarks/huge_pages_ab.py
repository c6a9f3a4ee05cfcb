"""A stream with and without transparent huge pages for malloc's mapped chunks: glibc's
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` makes malloc advise huge pages (``madvise(MADV_HUGEPAGE)``) on the maps it
takes from the OS, which the kernel honours where ``/sys/kernel/mm/transparent_hugepage/enabled`` is ``madvise``
(``always`` gives them to every process anyway; ``never``: none). With the streams' default heap (``models.heap``:
every freed map of 1 MB or more goes back to the OS) each allocation faults its pages in again; a huge page is one
fault for 2 MB instead of 512.

glibc reads the tunable when a process starts, so each run is a child process started with or without it (rounds
interleaved); each child warms up, then times one stream and reports its seconds per frame, minor page faults per
frame (``getrusage``) and peak RSS.

    python benchmarks/huge_pages_ab.py BUNDLE --frames 4 --rounds 3
    python benchmarks/huge_pages_ab.py INT8_BUNDLE --precision bf16 --heap keep    # int8-bf16 on openvino-cpu
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

TUNABLE = "glibc.malloc.hugetlb=1"


def child(args) -> None:
    """One timed stream in this process; prints a JSON line."""
    import resource

    import torch
    torch.set_num_threads(args.threads)
    from vsrdeploy.bundle import Bundle
    from vsrdeploy.evaluate.bench import synthetic_clip
    from vsrdeploy.evaluate.timing import timed_stream, warm_up
    from vsrdeploy.runtimes.engine import Upscaler
    h, w = (int(v) for v in args.size.split("x"))
    options = {"precision": args.precision} if args.precision else {}
    up = Upscaler.create(Bundle(args.bundle), args.backend, threads=args.threads, **options)
    clip = synthetic_clip(args.frames, h, w)
    warm_up(up, clip[:args.warmup], args.window, args.lookahead, heap=args.heap)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    run = timed_stream(up, clip, args.window, args.lookahead, heap=args.heap)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    faults = (usage.ru_minflt - before) / args.frames
    print(json.dumps({"s_per_frame": run.total_s / args.frames, "faults_per_frame": faults,
                      "peak_mb": usage.ru_maxrss / 1024}))


def thp_mode() -> str:
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return "unknown (no /sys/kernel/mm/transparent_hugepage)"
    return text[text.index("[") + 1:text.index("]")] if "[" in text else text.strip()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("--backend", default="openvino-cpu")
    ap.add_argument("--precision", help="the backend's precision option (e.g. bf16); default: the backend's")
    ap.add_argument("--size", default="180x320", help="LR HxW")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=3, help="frames of the untimed stream first (IconVSR needs 5)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--heap", default="return", help="the streams' malloc policy (models.heap)")
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--lookahead", type=int, default=8)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args)
        return 0
    from vsrdeploy.bundle import Bundle
    from vsrdeploy.evaluate.machine import cpu_info
    bundle = Bundle(args.bundle)
    forwarded = argv if argv is not None else sys.argv[1:]
    env_without = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    variants = {"without": env_without, f"with {TUNABLE}": {**env_without, "GLIBC_TUNABLES": TUNABLE}}
    results: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, env in variants.items():
            out = subprocess.run([sys.executable, __file__, *forwarded, "--child"], env=env, capture_output=True,
                                 text=True)
            if out.returncode:
                sys.exit(f"the {name} run failed:\n{out.stderr[-2000:]}")
            results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    cpu = cpu_info()
    precision = bundle.precision + (f", {args.precision}" if args.precision else "")
    print(f"{bundle.path.name} ({precision}) on {args.backend}, LR {args.size}, {args.frames} frames after "
          f"{args.warmup} warm-up, {args.threads} threads, heap={args.heap}, {args.rounds} interleaved rounds, one "
          f"process per run; CPU {cpu['model']}; transparent huge pages: {thp_mode()}\n")
    print("| malloc | s/frame median (min-max) | speed vs without | minor faults per frame | peak RSS MB (max) |")
    print("|---|---:|---:|---:|---:|")
    base = statistics.median(r["s_per_frame"] for r in results["without"])
    for name, runs in results.items():
        t = [r["s_per_frame"] for r in runs]
        med = statistics.median(t)
        faults = statistics.median(r["faults_per_frame"] for r in runs)
        peak = max(r["peak_mb"] for r in runs)
        print(f"| {name} | {med:.3f} ({min(t):.3f}-{max(t):.3f}) | {base / med:.2f}x | {faults:,.0f} | {peak:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
