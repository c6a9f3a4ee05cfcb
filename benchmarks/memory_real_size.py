"""Peak resident memory of streaming at real frame sizes (issue #12): one subprocess per configuration.

Each configuration runs in a fresh Python process; its peak RSS is the kernel's high-water mark
(VmHWM, what the OOM killer sees) reported by the child, cross-checked by psutil sampling the child's
RSS from the parent. Networks are at their released width (c64) with random weights and few residual
blocks (``--blocks``, default 2): residual blocks run one after another on the same tensors, so the
block count changes the weights (~0.3 MB per c64 block) and the time, not the working set.

Examples (the issue's table):

    python benchmarks/memory_real_size.py --archs basicvsr iconvsr basicvsr_pp realbasicvsr \\
        --backends torch ort-cpu openvino-cpu --size 180x320 --frames 100 --marks 20 --threads 2 --json mem.json
    python benchmarks/memory_real_size.py --archs basicvsr --size 540x960 --tile 256 --frames 20
    python benchmarks/memory_real_size.py --archs basicvsr --size 180x320 --whole-clip 6
    python benchmarks/memory_real_size.py --archs basicvsr_pp --backends ort-cpu openvino-cpu --spill off auto \
        --frames 30 --marks 10 30      # held features spilled to a temp file (models.spill) vs in memory
    python benchmarks/memory_real_size.py --archs basicvsr_pp --backends openvino-cpu --heap return keep \
        --frames 40 --marks 10 20 40   # malloc returning freed maps to the OS (default) vs keeping them (models.heap)

With spilling, the spilled bytes live in the kernel's page cache (reclaimable, not the process's RSS) and
in an anonymous temp file; ``spill_file_mb`` reports the file's size.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = {
    "basicvsr": lambda b: {"mid_channels": 64, "num_blocks": b},
    "iconvsr": lambda b: {"mid_channels": 64, "num_blocks": b},
    "basicvsr_pp": lambda b: {"mid_channels": 64, "num_blocks": b},
    "realbasicvsr": lambda b: {"mid_channels": 64, "num_propagation_blocks": b, "num_cleaning_blocks": b},
}
DCN = {"torch": "decomposed", "ort-cpu": "native", "openvino-cpu": "decomposed"}


def bundle_path(cache: Path, arch: str, blocks: int, dcn: str) -> Path:
    """Export (once) a c64 random-weight bundle; exported in the parent so export memory is not counted."""
    import torch

    import vsrdeploy
    from vsrdeploy.manifest import FORMAT_VERSION
    # a stale format, or cells cut by another version, is never reused
    path = cache / f"{arch}-c64n{blocks}-{dcn}-format{FORMAT_VERSION}-{vsrdeploy.__version__}.vsr"
    if not (path / "manifest.json").exists():
        torch.manual_seed(0)
        net = vsrdeploy.build_model(arch, **CONFIGS[arch](blocks)).eval()
        cache.mkdir(parents=True, exist_ok=True)
        # exported beside the cache entry, then renamed into place: two benchmarks exporting the same entry at
        # once no longer stop one of them with "already exists"; the one that loses drops its own copy
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=cache))
        try:
            vsrdeploy.export_onnx(net, staging / "bundle.vsr", dcn=dcn)
            try:
                os.rename(staging / "bundle.vsr", path)
            except OSError:
                if not (path / "manifest.json").exists():
                    raise
        finally:
            shutil.rmtree(staging)
    return path


def frames(n: int, h: int, w: int):
    """Smooth random frames with a small shift per frame, made one at a time."""
    import numpy as np
    rng = np.random.default_rng(0)
    base = rng.random((3, h + 2 * n, w + 2 * n), dtype=np.float32)
    for i in range(n):
        yield np.ascontiguousarray(base[:, i:i + h, i:i + w])


def child(cfg: dict) -> None:
    """Run one configuration in this process and print one JSON line."""
    import numpy as np

    from vsrdeploy.evaluate.memory import peak_rss_mb, rss_mb
    if cfg["mode"] == "whole-clip" or cfg["backend"] == "torch":  # ort-cpu / openvino-cpu run without PyTorch
        import torch
        torch.set_num_threads(cfg["threads"])
    h, w = cfg["size"]
    t0 = time.perf_counter()
    stats: dict = {}
    marks: dict = {}
    if cfg["mode"] == "whole-clip":
        import vsrdeploy
        torch.manual_seed(0)
        net = vsrdeploy.build_model(cfg["arch"], **CONFIGS[cfg["arch"]](cfg["blocks"])).eval()
        lrs = torch.from_numpy(np.stack(list(frames(cfg["frames"], h, w))))[None]
        base = rss_mb()
        with torch.no_grad():
            out = net(lrs, spill=cfg["spill"])
        n_out = out.shape[1]
    else:
        from vsrdeploy.bundle import Bundle
        from vsrdeploy.models.spill import DEFAULT_RESIDENT_BYTES
        from vsrdeploy.runtimes.engine import Upscaler
        options = {"threads": cfg["threads"], **cfg.get("backend_options", {})} if cfg["backend"] != "torch" else {}
        up = Upscaler.create(Bundle(cfg["bundle"]), cfg["backend"], **options)
        base = rss_mb()
        n_out = 0
        for _ in up.stream(frames(cfg["frames"], h, w), window=cfg["window"], lookahead=cfg["lookahead"],
                           tile=cfg["tile"], tile_overlap=cfg["overlap"], memory_budget=cfg["budget"], stats=stats,
                           spill=cfg["spill"], spill_resident=cfg.get("spill_resident") or DEFAULT_RESIDENT_BYTES,
                           heap=cfg.get("heap") or "return"):
            n_out += 1
            if n_out in cfg.get("marks", ()):  # the high-water mark so far: flatness in one run
                marks[n_out] = peak_rss_mb()
    print(json.dumps({"spill_request": cfg.get("spill"), "heap": stats.get("heap"), "peak_mb": peak_rss_mb(),
                      "base_mb": base,
                      "torch_imported": "torch" in sys.modules,
                      "frames_out": n_out, "peak_mb_after": marks,
                      "seconds": time.perf_counter() - t0, "tiles": stats.get("tiles"),
                      "row_strips": stats.get("row_strips"), "spill": stats.get("spill"),
                      "spilled_mb": stats.get("spilled_bytes", 0) / 2**20,
                      "spill_file_mb": stats.get("spill_file_bytes", 0) / 2**20}))


def measure(cfg: dict) -> dict:
    import psutil
    proc = psutil.Popen([sys.executable, __file__, "--child", json.dumps(cfg)], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True)
    sampled = 0.0
    while proc.poll() is None:
        try:
            sampled = max(sampled, proc.memory_info().rss / 2**20)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    out, err = proc.communicate()
    if proc.returncode != 0:
        return {**cfg, "error": (err.strip().splitlines() or ["?"])[-1]}
    return {**cfg, **json.loads(out.strip().splitlines()[-1]), "psutil_peak_mb": sampled}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", nargs="+", default=list(CONFIGS))
    p.add_argument("--backends", nargs="+", default=["torch", "ort-cpu", "openvino-cpu"])
    p.add_argument("--size", default="180x320", help="LR HxW")
    p.add_argument("--frames", type=int, nargs="+", default=[20])
    p.add_argument("--marks", type=int, nargs="*", default=[20],
                   help="Also report the peak RSS after this many output frames (flat in length: one run)")
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--lookahead", type=int, default=8)
    p.add_argument("--tile", type=int)
    p.add_argument("--overlap", type=int, default=16)
    p.add_argument("--memory-budget")
    p.add_argument("--dcn", choices=["native", "decomposed"],
                   help="DCN export for ort-cpu [default: native]; torch and openvino-cpu always run decomposed")
    p.add_argument("--spill", nargs="+", default=["auto"],
                   help="auto, off or a directory; several: one row each, side by side")
    p.add_argument("--spill-resident", help="held features kept in memory before spilling [default: 16MB]")
    p.add_argument("--whole-clip", type=int, metavar="T", help="Instead: the whole-clip model(lrs) on T frames")
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "vsrdeploy" / "membench"))
    p.add_argument("--backend-option", action="append", metavar="KEY=VALUE", default=[],
                   help="an option for every backend but torch, as `run --backend-option` takes it "
                        "(e.g. unload_outputs_above=null on openvino-cpu)")
    p.add_argument("--heap", nargs="+", default=["return"], choices=["return", "keep"],
                   help="the streams' malloc policy (models.heap); several: one run each")
    p.add_argument("--json", help="Append result rows (JSON lines) to this file")
    args = p.parse_args()
    from vsrdeploy.runtimes.base import parse_backend_options
    h, w = (int(v) for v in args.size.lower().split("x"))
    dcn_for = lambda backend: args.dcn if (args.dcn and backend == "ort-cpu") else DCN[backend]  # noqa: E731
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    print(f"# CPU: {cpu}, {os.cpu_count()} cores; python {platform.python_version()}", flush=True)
    for arch in args.archs:
        runs = []
        if args.whole_clip:
            for spill in args.spill:
                runs.append({"mode": "whole-clip", "backend": "torch (model(lrs))", "frames": args.whole_clip,
                             "spill": spill})
        else:
            for backend in args.backends:
                for n in args.frames:
                    for spill in args.spill:
                        for heap in args.heap:
                            runs.append({"mode": "stream", "backend": backend, "frames": n, "spill": spill,
                                         "heap": heap,
                                         "bundle": str(bundle_path(cache, arch, args.blocks, dcn_for(backend)))})
        for run in runs:
            cfg = {"arch": arch, "blocks": args.blocks, "size": [h, w], "threads": args.threads,
                   "window": args.window, "lookahead": args.lookahead, "tile": args.tile, "overlap": args.overlap,
                   "budget": args.memory_budget, "marks": args.marks, "spill_resident": args.spill_resident,
                   "backend_options": parse_backend_options(run["backend"], args.backend_option)
                   if run["backend"] not in ("torch", "torch (model(lrs))") else {}, **run}
            row = measure(cfg)
            print(json.dumps(row), flush=True)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
