"""Peak memory of ONE call of each cell, on each backend: where a stream's peak comes from.

Each (cell, backend) runs in a fresh process: load the bundle on the backend, call the cell once at 32x32
(loading / compiling it), then once on random inputs of its manifest shapes at the LR size (N = --items
batch elements), and report the growth of the process's high-water mark (VmHWM) over what it was before
that call, inputs allocated. Compare with the estimate the
streaming engine batches by (``CellCosts.per_item``: ports + the largest single PyTorch op, traced on the
meta device).

    python benchmarks/cell_memory.py --arch iconvsr --backends ort-cpu openvino-cpu --size 180x320
    python benchmarks/cell_memory.py --arch basicvsr_pp --backends ort-cpu --dcn decomposed --cells backward_1_align
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from memory_real_size import CONFIGS, DCN, bundle_path  # noqa: E402


def child(cfg: dict) -> None:
    import numpy as np
    import torch

    from vsrdeploy.bundle import Bundle
    from vsrdeploy.evaluate.memory import peak_rss_mb
    from vsrdeploy.export.tensorrt import resolve_shape  # manifest dims ('N', 'H', 'H/2', '4W'); no TensorRT needed
    from vsrdeploy.runtimes.engine import Upscaler
    torch.set_num_threads(cfg["threads"])
    bundle = Bundle(cfg["bundle"])
    options = {"threads": cfg["threads"]} if cfg["backend"] != "torch" else {}
    backend = Upscaler.create(bundle, cfg["backend"], **options).backend
    rng = np.random.default_rng(0)

    def inputs(n, h, w):
        return {p["name"]: torch.from_numpy(rng.random(resolve_shape(p["shape"], n, h, w), dtype=np.float32))
                for p in bundle.manifest["cells"][cfg["cell"]]["inputs"]}
    backend.run(cfg["cell"], inputs(1, 32, 32))  # loads / compiles the cell: not counted
    feeds = inputs(cfg["items"], *cfg["size"])
    before = peak_rss_mb()
    backend.run(cfg["cell"], feeds)
    print(json.dumps({"before_mb": before, "peak_mb": peak_rss_mb()}))


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="iconvsr", choices=sorted(CONFIGS))
    ap.add_argument("--backends", nargs="+", default=["ort-cpu", "openvino-cpu"])
    ap.add_argument("--size", default="180x320", help="LR HxW")
    ap.add_argument("--items", type=int, default=1)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cells", nargs="*", help="default: every cell")
    ap.add_argument("--dcn", choices=["native", "decomposed"],
                    help="export form for every backend (default: each backend's own, ort-cpu native)")
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "vsrdeploy" / "membench"))
    args = ap.parse_args()
    import vsrdeploy
    from vsrdeploy.models.budget import CellCosts
    size = [int(v) for v in args.size.split("x")]
    costs = CellCosts(vsrdeploy.build_model(args.arch, **CONFIGS[args.arch](args.blocks)))
    print(f"{args.arch} c64n{args.blocks}, LR {size[0]}x{size[1]}, {args.items} item(s) per call, "
          f"{args.threads} threads. MB = MiB.\n")
    print("| cell | estimate (per_item x items) | " + " | ".join(f"{b} one call" for b in args.backends) + " |")
    print("|---|---:|" + "---:|" * len(args.backends))
    paths = {b: bundle_path(Path(args.cache), args.arch, args.blocks, args.dcn or DCN.get(b, "decomposed"))
             for b in args.backends}
    from vsrdeploy.bundle import Bundle
    for cell in args.cells or list(Bundle(paths[args.backends[0]]).cells):
        row = [f"{costs.per_item(cell, *size) * args.items / 2**20:.0f} MB"]
        for b in args.backends:
            cfg = {"bundle": str(paths[b]), "backend": b, "cell": cell, "size": size, "items": args.items,
                   "threads": args.threads}
            out = subprocess.run([sys.executable, __file__, "--child", json.dumps(cfg)], capture_output=True,
                                 text=True)
            if out.returncode:
                row.append("failed: " + (out.stderr.strip().splitlines() or ["?"])[-1][:80])
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            row.append(f"{r['peak_mb'] - r['before_mb']:.0f} MB")
        print(f"| {cell} | " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
