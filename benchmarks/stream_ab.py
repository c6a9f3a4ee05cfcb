"""Whole streams of several bundles side by side, e.g. the same checkpoint exported by two vsrdeploy versions: each
run is a child process of its own (a fresh heap, as a user's process has), and the rounds alternate between the
bundles, so a machine that drifts over minutes slows both alike. ``vsrdeploy bench`` and ``realsize_speed.py`` also
run each row in a process of its own, but all of a row's timed runs before the next row's; the same stream's speed
moved by up to 25% between such runs on an idle VM (benchmarks/RESULTS.md, "Each group of taps from its own rows of
the offset conv"). Each child warms up, then times one stream and reports its seconds per frame, minor page faults
per frame (``getrusage``) and peak RSS.

    python benchmarks/stream_ab.py OLD/int8-nncf.vsr NEW/int8-nncf.vsr --frames 5 --warmup 5 --rounds 5 --heap keep
    python benchmarks/stream_ab.py INT8_BUNDLE --precision bf16 --heap keep    # int8-bf16 on openvino-cpu

``huge_pages_ab.py`` runs one bundle this way with and without a malloc setting.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path


def add_stream_options(ap: argparse.ArgumentParser) -> None:
    """The options every child stream takes (forwarded to it)."""
    ap.add_argument("--backend", default="openvino-cpu")
    ap.add_argument("--precision", help="the backend's precision option (e.g. bf16); default: the backend's")
    ap.add_argument("--size", default="180x320", help="LR HxW")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=3, help="frames of the untimed stream first (IconVSR needs 5)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--heap", default="return", help="the streams' malloc policy (models.heap)")
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--lookahead", type=int, default=8)


def stream_options(args) -> list[str]:
    """``args``' stream options as command-line arguments for a child."""
    out = []
    for name in ("backend", "precision", "size", "frames", "warmup", "threads", "heap", "window", "lookahead"):
        value = getattr(args, name)
        if value is not None:
            out += [f"--{name}", str(value)]
    return out


def child(args) -> None:
    """One timed stream of ``args.bundle`` in this process; prints a JSON line."""
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


def run_rounds(variants: dict[str, tuple[str, dict | None]], args) -> dict[str, list[dict]]:
    """``variants``: name -> (bundle, environment or None for this one's). Every round runs each variant once, in
    that order, as a child process with ``args``' stream options; returns each variant's children's reports."""
    results: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (bundle, env) in variants.items():
            out = subprocess.run([sys.executable, __file__, bundle, *stream_options(args), "--child"], env=env,
                                 capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"the run of {name} failed:\n{out.stderr[-2000:]}")
            results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    return results


def print_table(results: dict[str, list[dict]], first_column: str) -> None:
    """Median s/frame (min-max), speed against the first variant, faults per frame and peak RSS per variant."""
    print(f"| {first_column} | s/frame median (min-max) | speed vs first | minor faults per frame "
          "| peak RSS MB (max) |")
    print("|---|---:|---:|---:|---:|")
    base = statistics.median(r["s_per_frame"] for r in next(iter(results.values())))
    for name, runs in results.items():
        t = [r["s_per_frame"] for r in runs]
        med = statistics.median(t)
        faults = statistics.median(r["faults_per_frame"] for r in runs)
        peak = max(r["peak_mb"] for r in runs)
        print(f"| {name} | {med:.3f} ({min(t):.3f}-{max(t):.3f}) | {base / med:.2f}x | {faults:,.0f} | {peak:.0f} |")


def describe(args, bundle_precision: str) -> str:
    """The setup line printed above a table."""
    from vsrdeploy.evaluate.machine import cpu_info
    precision = bundle_precision + (f", {args.precision}" if args.precision else "")
    return (f"{precision} on {args.backend}, LR {args.size}, {args.frames} frames after {args.warmup} warm-up, "
            f"{args.threads} threads, heap={args.heap}, {args.rounds} interleaved rounds, one process per run; "
            f"CPU {cpu_info()['model']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", nargs="+")
    ap.add_argument("--rounds", type=int, default=3)
    add_stream_options(ap)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        args.bundle = args.bundles[0]
        child(args)
        return 0
    from vsrdeploy.bundle import Bundle
    bundles = [Bundle(p) for p in args.bundles]
    names = [str(Path(p)) for p in args.bundles]
    if len(set(names)) < len(names):
        sys.exit("give each bundle once")
    results = run_rounds({name: (name, None) for name in names}, args)
    print(describe(args, "/".join(sorted({b.precision for b in bundles}))) + "\n")
    print_table(results, "bundle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
