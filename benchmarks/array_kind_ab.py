"""The same bundle streamed with the CPU backends exchanging numpy arrays (0.3.12's default, no PyTorch needed)
and torch tensors (0.3.11's path), interleaved in one process: what the array kind costs or saves in time.

    python benchmarks/array_kind_ab.py BUNDLE --backends ort-cpu openvino-cpu --size 180x320 --frames 4 --rounds 3
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle")
    p.add_argument("--backends", nargs="+", default=["ort-cpu", "openvino-cpu"])
    p.add_argument("--size", default="180x320", help="LR HxW")
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    import torch  # the torch kind needs it; imported for both so that neither pays the import in its timing

    import vsrdeploy
    from vsrdeploy.evaluate.machine import cpu_info
    from vsrdeploy.runtimes.base import get_backend_class
    torch.set_num_threads(args.threads)
    h, w = map(int, args.size.split("x"))
    rng = np.random.default_rng(0)
    clip = [rng.random((3, h, w), dtype=np.float32) for _ in range(args.frames)]
    cpu = cpu_info()
    print(f"# CPU: {cpu['model']}, flags {', '.join(cpu['flags'])}; {args.frames} frames {w}x{h}, "
          f"{args.threads} threads, {args.rounds} interleaved rounds, s/frame")
    print("| backend | numpy arrays | torch tensors | numpy / torch |")
    print("|---|---:|---:|---:|")
    for backend in args.backends:
        cls = get_backend_class(backend)
        default = cls.arrays
        times = {"numpy": [], "torch": []}
        outs = {}
        with vsrdeploy.open_bundle(args.bundle, backend=backend, threads=args.threads) as up:
            list(up.stream(clip[:2]))  # warm-up: compile, first-call buffers
            for r in range(args.rounds):
                for kind in (("numpy", "torch") if r % 2 == 0 else ("torch", "numpy")):  # either goes first
                    cls.arrays = kind
                    t0 = time.perf_counter()
                    outs[kind] = list(up.stream(clip))
                    times[kind].append((time.perf_counter() - t0) / args.frames)
            cls.arrays = default
        same = all(np.array_equal(a, b) for a, b in zip(outs["numpy"], outs["torch"]))
        a, b = statistics.median(times["numpy"]), statistics.median(times["torch"])
        print(f"| {backend} | {a:.3f} | {b:.3f} | {a / b:.3f}{'' if same else ' (outputs differ!)'} |")


if __name__ == "__main__":
    main()
