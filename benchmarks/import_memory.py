"""What a process holds before it streams a frame: resident memory after each import and after opening a bundle.

Each backend runs in a fresh process, which reports its RSS (and the kernel's split into anonymous and file-backed
pages) after importing numpy, vsrdeploy and the backend's runtime, then after ``open_bundle`` (the runtime loads or
compiles every cell). Since 0.3.12 a bundle opens and streams on ort-cpu and openvino-cpu without PyTorch (the
plan comes from the manifest, cells exchange numpy arrays); the torch backend imports it. The last column says
whether torch was imported by then.

    python benchmarks/import_memory.py --archs basicvsr_pp --backends ort-cpu openvino-cpu
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from memory_real_size import DCN, bundle_path  # noqa: E402

RUNTIME_MODULE = {"ort-cpu": "onnxruntime", "openvino-cpu": "openvino", "torch": None}


def _rss() -> dict:
    fields = {"torch": "torch" in sys.modules}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("VmRSS", "RssAnon", "RssFile"):
                fields[key] = int(line.split()[1]) / 1024
    return fields


def child(cfg: dict) -> None:
    steps = [("start", _rss())]
    __import__("numpy")
    steps.append(("numpy", _rss()))
    import vsrdeploy
    steps.append(("vsrdeploy (package only)", _rss()))
    module = RUNTIME_MODULE[cfg["backend"]]
    if module:
        __import__(module)
        steps.append((module, _rss()))
    if cfg["backend"] == "torch":
        __import__("torch")
        steps.append(("torch", _rss()))
    upscaler = vsrdeploy.open_bundle(cfg["bundle"], backend=cfg["backend"], threads=cfg["threads"]) \
        if cfg["backend"] != "torch" else vsrdeploy.open_bundle(cfg["bundle"], backend="torch")
    steps.append(("bundle opened", _rss()))
    upscaler.close()
    print(json.dumps({"backend": cfg["backend"], "arch": cfg["arch"], "steps": steps}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", nargs="+", default=["basicvsr_pp"])
    p.add_argument("--backends", nargs="+", default=["ort-cpu", "openvino-cpu", "torch"])
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "vsrdeploy" / "membench"))
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    import platform

    from vsrdeploy.evaluate.machine import cpu_info
    cpu = cpu_info()
    print(f"# CPU: {cpu['model']}, flags {', '.join(cpu['flags'])}; python {platform.python_version()}")
    print("| network | backend | step | RSS MB | anonymous | file-backed | torch imported |")
    print("|---|---|---|---:|---:|---:|---|")
    for arch in args.archs:
        for backend in args.backends:
            bundle = bundle_path(Path(args.cache), arch, args.blocks, DCN.get(backend, "decomposed"))
            cfg = {"arch": arch, "backend": backend, "bundle": str(bundle), "threads": args.threads}
            out = subprocess.run([sys.executable, __file__, "--child", json.dumps(cfg)], capture_output=True,
                                 text=True, check=True).stdout.strip().splitlines()[-1]
            for step, rss in json.loads(out)["steps"]:
                print(f"| {arch} c64n{args.blocks} | {backend} | {step} | {rss['VmRSS']:.0f} | "
                      f"{rss['RssAnon']:.0f} | {rss['RssFile']:.0f} | {'yes' if rss['torch'] else 'no'} |")


if __name__ == "__main__":
    main()
