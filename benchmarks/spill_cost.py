"""What spilling held features to disk costs a stream (``models.spill``): the stream's time with ``spill="auto"``
against ``spill="off"`` (interleaved rounds, one process), and the time spent writing to and reading from the spill
file, split into writes at the stream's end of the file (a new file grows there: fresh page-cache pages; a file
kept from an earlier stream of the same ``Upscaler``, ``models.spill.SpillFiles``, is written over) and writes into
the space of features already dropped (pages the file has). A stream shorter than window + lookahead never reuses
space, so with a new file every write grows it: what short clips paid on every row before 0.3.15, and what a long
stream pays until its file stops growing.

    python benchmarks/spill_cost.py BUNDLE --frames 12 48 --heap keep
    python benchmarks/spill_cost.py BUNDLE --backend ort-cpu --frames 12

Peak memory with and without spilling is ``benchmarks/memory_real_size.py``'s job (``--spill``).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from vsrdeploy.bundle import Bundle
from vsrdeploy.evaluate.bench import synthetic_clip
from vsrdeploy.evaluate.machine import cpu_info
from vsrdeploy.evaluate.timing import timed_stream, warm_up
from vsrdeploy.models import arrays, spill
from vsrdeploy.runtimes.engine import Upscaler


class SpillTimes:
    """Wraps ``SpillFile.put`` / ``get`` to record each call's seconds and bytes, and whether a put reused space."""

    def __init__(self):
        self.calls: list[tuple[str, float, int]] = []  # ("grow" | "reuse" | "read", seconds, bytes)
        self._put, self._get = spill.SpillFile.put, spill.SpillFile.get

    def __enter__(self):
        timer = self

        def put(file, t):
            n = arrays.as_bytes(t).nbytes
            kind = "reuse" if file._free.get(n) else "grow"
            start = time.perf_counter()
            out = timer._put(file, t)
            timer.calls.append((kind, time.perf_counter() - start, n))
            return out

        def get(file, handle):
            start = time.perf_counter()
            out = timer._get(file, handle)
            timer.calls.append(("read", time.perf_counter() - start, handle.nbytes))
            return out
        spill.SpillFile.put, spill.SpillFile.get = put, get
        return self

    def __exit__(self, *exc):
        spill.SpillFile.put, spill.SpillFile.get = self._put, self._get

    def summary(self, kind: str) -> tuple[int, float, float]:
        """(calls, seconds, MB) of one kind."""
        rows = [(s, n) for k, s, n in self.calls if k == kind]
        return len(rows), sum(s for s, _ in rows), sum(n for _, n in rows) / 2**20


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("--backend", default="openvino-cpu")
    ap.add_argument("--size", default="180x320", help="LR HxW")
    ap.add_argument("--frames", type=int, nargs="+", default=[12])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--heap", default="return", help="the streams' malloc policy (models.heap)")
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--lookahead", type=int, default=8)
    args = ap.parse_args(argv)
    h, w = (int(v) for v in args.size.split("x"))
    import torch
    torch.set_num_threads(args.threads)
    bundle = Bundle(args.bundle)
    up = Upscaler.create(bundle, args.backend, threads=args.threads)
    clip = synthetic_clip(max(args.frames), h, w)
    warm_up(up, clip[:2], args.window, args.lookahead, heap=args.heap)
    cpu = cpu_info()
    print(f"{bundle.manifest['model']['arch']} {bundle.path.name} on {args.backend}, LR {h}x{w}, "
          f"{args.threads} threads, "
          f"heap={args.heap}, window {args.window} / lookahead {args.lookahead}, {args.rounds} interleaved rounds; "
          f"CPU {cpu['model']}; spill directory {spill.tempfile.gettempdir()} "
          f"({spill.filesystem_type(spill.tempfile.gettempdir())})\n")
    print("| frames | spill | s/frame (median) | speed vs off | writes at the stream's end of file: s, MB, MB/s | "
          "writes into freed space: s, MB, MB/s | reads: s, MB |")
    print("|---:|---|---:|---:|---|---|---|")
    for n in args.frames:
        times = {"auto": [], "off": []}
        spills = {}
        for _ in range(args.rounds):
            for mode in times:
                with SpillTimes() as timer:
                    run = timed_stream(up, clip[:n], args.window, args.lookahead, heap=args.heap, spill=mode)
                times[mode].append(run.total_s / n)
                spills[mode] = timer
        off = float(np.median(times["off"]))
        for mode, values in times.items():
            t = spills[mode]  # the last round's
            cells = []
            for kind in ("grow", "reuse"):
                calls, s, mb = t.summary(kind)
                cells.append(f"{s:.2f} s, {mb:.0f} MB, {mb / s:.0f} MB/s" if calls else "-")
            reads, rs, rmb = t.summary("read")
            cells.append(f"{rs:.2f} s, {rmb:.0f} MB" if reads else "-")
            med = float(np.median(values))
            print(f"| {n} | {mode} | {med:.3f} | {off / med:.2f}x | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
