"""Streaming through each runtime vs the upstream whole-clip PyTorch forward: speed and peak memory.

Every configuration runs in its own process so peak memory (VmHWM) is its own. Prints a Markdown
table and, with --out, writes it to a file. Random weights (speed does not depend on their values).

    python benchmarks/stream_vs_whole_clip.py --arch basicvsr --frames 20 100 --out benchmarks/RESULTS.md
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vsrdeploy.evaluate.memory import peak_rss_mb

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {"basicvsr": {"mid_channels": 64, "num_blocks": 30}, "basicvsr_pp": {"mid_channels": 64, "num_blocks": 7},
           "psrt_recurrent": {"mid_channels": 64, "embed_dim": 120, "depths": [6, 6, 6], "num_heads": [6, 6, 6],
                              "window_size": [3, 8, 8], "num_frames": 3}}


def child(args) -> None:
    """Run one configuration; write {fps, seconds, peak_mb} and the outputs."""
    import torch
    torch.set_num_threads(args.threads)
    import vsrdeploy
    from vsrdeploy.bundle import Bundle
    clip = np.load(args.clip)["lrs"][: args.t]
    warm = clip[: args.warmup]
    if args.mode == "whole":
        net = Bundle(args.bundle).load_network()
        with torch.no_grad():
            if len(warm):
                net(torch.from_numpy(warm)[None])
            t0 = time.perf_counter()
            out = net(torch.from_numpy(clip)[None])[0].numpy()
            seconds = time.perf_counter() - t0
        np.save(args.result + ".npy", out)
    else:
        # frames go to disk as they come (as a real sink would), so memory is the engine's own
        options = {"threads": args.threads} if args.mode != "torch" else {}
        up = vsrdeploy.open_bundle(args.bundle, backend=args.mode, **options)
        if len(warm):
            list(up.stream(iter(warm), window=args.window, lookahead=args.lookahead))
        t0 = time.perf_counter()
        with open(args.result + ".raw", "wb") as f:
            for frame in up.stream(iter(clip), window=args.window, lookahead=args.lookahead):
                f.write(frame.tobytes())
        seconds = time.perf_counter() - t0
    Path(args.result + ".json").write_text(json.dumps({"seconds": seconds, "fps": len(clip) / seconds,
                                                       "peak_mb": peak_rss_mb()}))


def parse_size(text: str) -> tuple[int, int]:
    h, _, w = str(text).partition("x")
    return int(h), int(w or h)


def run_child(mode, bundle, clip, t, out_dir, args) -> dict:
    result = str(Path(out_dir) / f"{mode}-{t}")
    cmd = [sys.executable, __file__, "--child", "--mode", mode, "--bundle", str(bundle), "--clip", clip,
           "--t", str(t), "--result", result, "--window", str(args.window), "--lookahead", str(args.lookahead),
           "--threads", str(args.threads), "--warmup", str(args.warmup)]
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    record = json.loads(Path(result + ".json").read_text())
    if Path(result + ".npy").exists():
        record["out"] = np.load(result + ".npy")
    else:
        h, w = parse_size(args.size)
        record["out"] = np.fromfile(result + ".raw", dtype=np.float32).reshape(t, 3, 4 * h, 4 * w)
    return record


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mode"), p.add_argument("--bundle"), p.add_argument("--clip"), p.add_argument("--result")
    p.add_argument("--t", type=int)
    p.add_argument("--arch", default="basicvsr", choices=sorted(CONFIGS))
    p.add_argument("--frames", type=int, nargs="+", default=[20, 100])
    p.add_argument("--size", default="64", help="LR frame size: N or HxW")
    p.add_argument("--window", type=int, default=10)
    p.add_argument("--lookahead", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3, help="frames of an untimed warm-up run (0: none)")
    p.add_argument("--backends", nargs="+", default=["torch", "ort-cpu", "openvino-cpu"])
    p.add_argument("--out", help="write the Markdown table here")
    args = p.parse_args()
    if args.child:
        return child(args)

    import torch
    import vsrdeploy
    torch.manual_seed(0)
    net = vsrdeploy.build_model(args.arch, **CONFIGS[args.arch]).eval()
    with tempfile.TemporaryDirectory() as tmp:
        dcn = "decomposed"  # one bundle every runtime can take
        bundle = vsrdeploy.export_onnx(net, Path(tmp) / "bench.vsr", dcn=dcn)
        rng = np.random.default_rng(0)
        h, w = parse_size(args.size)
        pad = 2 * max(args.frames)
        base = rng.random((3, h + pad, w + pad), dtype=np.float32)
        frames = np.stack([base[:, i:i + h, i:i + w] for i in range(max(args.frames))])
        clip = str(Path(tmp) / "clip.npz")
        np.savez(clip, lrs=frames)
        rows = []
        for t in args.frames:
            whole = run_child("whole", bundle, clip, t, tmp, args)
            rows.append(("whole-clip PyTorch (upstream)", t, whole, 0.0, 0.0))
            ref_stream = None
            for backend in args.backends:
                r = run_child(backend, bundle, clip, t, tmp, args)
                if ref_stream is None:
                    ref_stream = r["out"]
                rows.append((f"stream {backend}", t, r, float(np.abs(r["out"] - whole["out"]).max()),
                             float(np.abs(r["out"] - ref_stream).max())))
            rows[-1 - len(args.backends)][2]["base_fps"] = whole["fps"]
            for row in rows[-1 - len(args.backends):]:
                row[2]["ratio"] = row[2]["fps"] / whole["fps"]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    h, w = parse_size(args.size)
    lines = [f"## {args.arch} {json.dumps(CONFIGS[args.arch])}, {h}x{w} input, random weights",
             "",
             f"Machine: {cpu}, {os.cpu_count()} cores, {args.threads} threads; Python {platform.python_version()}, "
             f"torch {torch.__version__}. Streaming: window {args.window}, lookahead {args.lookahead}, "
             "decomposed-DCN bundle. Each row is its own process; peak memory is its VmHWM (includes the "
             "runtime's own footprint); streamed frames are written to a file as they come, the "
             "whole-clip forward returns the clip as upstream does.",
             "",
             "| configuration | frames | frames/s | s/frame | x whole-clip PyTorch | peak RSS MB "
             "| max abs diff vs whole clip | max abs diff vs stream torch |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, t, r, err_whole, err_torch in rows:
        lines.append(f"| {name} | {t} | {r['fps']:.2f} | {1 / r['fps']:.2f} | {r['ratio']:.2f} | {r['peak_mb']:.0f} | "
                     f"{err_whole:.2e} | {err_torch:.2e} |")
    lines.append("")
    lines.append(f"Command: `python benchmarks/stream_vs_whole_clip.py --arch {args.arch} --frames "
                 f"{' '.join(map(str, args.frames))} --size {args.size} --window {args.window} "
                 f"--lookahead {args.lookahead} --threads {args.threads} --warmup {args.warmup}`")
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
