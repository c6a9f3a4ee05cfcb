"""OpenVINO's kept buffers vs speed (issues #12, #13): the strip budget, the release threshold and the number
of recently called large cells that keep their buffers (``keep_working_sets``), A/B.

OpenVINO keeps each compiled cell's largest call's buffers unless ``release_memory()`` is called. This
streams BasicVSR c64 (random weights) on openvino-cpu once per configuration, each in its own process,
interleaved over ``--rounds``, and prints peak RSS and seconds per configuration: ``batch_bytes``
(how large an upsampling row strip may be) x ``RELEASE_ABOVE_BYTES`` (release after calls with more
inputs + outputs than this) x ``keep_working_sets`` (the optional third field; default 0).

    python benchmarks/openvino_buffers.py --size 180x320 --frames 30 --rounds 2 \\
        --configs 256MiB:16MiB 256MiB:4MiB 160MiB:16MiB 128MiB:16MiB
    python benchmarks/openvino_buffers.py --bundle pp_int8_nncf.vsr --frames 8 --rounds 2 \\
        --configs 160MiB:16MiB:0 160MiB:16MiB:2
    python benchmarks/openvino_buffers.py --frames 20 --rounds 2 --configs 160MiB:16MiB --trees ../v030 .
    python benchmarks/openvino_buffers.py --frames 8 --configs 160MiB:16MiB --bundle a.vsr b.vsr   # exports A/B
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def child(cfg: dict) -> None:
    if cfg.get("tree"):  # another checkout's vsrdeploy (A/B of code versions)
        sys.path.insert(0, cfg["tree"])
    import torch
    torch.set_num_threads(cfg["threads"])
    from memory_real_size import frames
    from vsrdeploy.bundle import Bundle
    from vsrdeploy.evaluate.memory import peak_rss_mb
    from vsrdeploy.models.budget import parse_bytes
    from vsrdeploy.runtimes import openvino_backend
    from vsrdeploy.runtimes.engine import Upscaler
    openvino_backend.RELEASE_ABOVE_BYTES = parse_bytes(cfg["release"])
    up = Upscaler.create(Bundle(cfg["bundle"]), "openvino-cpu", threads=cfg["threads"],
                         keep_working_sets=cfg["keep"])
    h, w = cfg["size"]
    t0 = time.perf_counter()
    for _ in up.stream(frames(cfg["frames"], h, w), window=16, lookahead=8, batch_bytes=cfg["batch_bytes"]):
        pass
    print(json.dumps({"peak_mb": peak_rss_mb(), "seconds": time.perf_counter() - t0}))


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="180x320", help="LR HxW")
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--configs", nargs="+", default=["256MiB:16MiB", "256MiB:4MiB", "160MiB:16MiB", "128MiB:16MiB"],
                   help="BATCH_BYTES:RELEASE_ABOVE[:KEEP_WORKING_SETS]")
    p.add_argument("--bundle", nargs="+", help="stream this bundle (e.g. an INT8 BasicVSR++ one) instead of BasicVSR "
                                               "c64n2; several: each runs once per configuration, interleaved")
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "vsrdeploy" / "membench"))
    p.add_argument("--trees", nargs="+", default=[""], metavar="DIR",
                   help="checkouts of vsrdeploy to compare (each configuration runs once per tree, interleaved); "
                        "default: the installed one")
    args = p.parse_args()
    from memory_real_size import bundle_path
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    bundles = args.bundle or [str(bundle_path(cache, "basicvsr", 2, "decomposed"))]
    h, w = (int(v) for v in args.size.lower().split("x"))
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"# CPU: {cpu}, {os.cpu_count()} cores; load average {os.getloadavg()}; bundles {bundles}", flush=True)
    for r in range(args.rounds):
        for spec in args.configs:
            for tree, bundle in itertools.product(args.trees, bundles):
                batch, release, keep = (spec.split(":") + ["0"])[:3]
                cfg = {"bundle": bundle, "size": [h, w], "frames": args.frames, "threads": args.threads,
                       "batch_bytes": batch, "release": release, "keep": int(keep), "tree": tree}
                out = subprocess.run([sys.executable, __file__, "--child", json.dumps(cfg)], capture_output=True,
                                     text=True)
                row = (json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0
                       else {"error": out.stderr[-300:]})
                print(json.dumps({"round": r, "tree": tree, "bundle": bundle, "batch_bytes": batch,
                                  "release_above": release, "keep_working_sets": int(keep), **row}), flush=True)


if __name__ == "__main__":
    main()
