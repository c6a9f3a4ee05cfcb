"""Per-cell profile of a stream: each cell's share of the time, its FLOPs, GFLOP/s and fraction of the
measured FP32 GEMM peak (``bench --profile``).

:class:`CellTimer` stands in for a backend and times every ``run(cell, inputs)`` call (two clock reads per
call; on a CUDA device also a synchronize before and after, which serializes the GPU's work). FLOPs
come from :mod:`.cell_flops` (what it does not count is said in every table); the peak from
:mod:`.gemm_peak`. The time outside cell calls (the schedule, padding, frame conversion, copies) is a row
of its own, so the shares add up to the whole stream.
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Mapping

from .cell_flops import NOT_COUNTED, shape_key

OUTSIDE = "(outside cells)"


class CellTimer:
    """A backend whose ``run`` records each call's wall time and input shapes per cell; everything else
    (``device``, ``close``, ``describe`` ...) is the wrapped backend's."""

    def __init__(self, backend):
        self.backend = backend
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: Counter = Counter()  # (cell, shape key) -> calls
        self._cuda = getattr(backend.device, "type", "cpu") == "cuda"

    def run(self, cell: str, inputs: Mapping):
        key = shape_key(inputs)
        if self._cuda:
            import torch
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = self.backend.run(cell, inputs)
        if self._cuda:
            import torch
            torch.cuda.synchronize()
        self.seconds[cell] += time.perf_counter() - t0
        self.calls[(cell, key)] += 1
        return out

    __call__ = run

    def __getattr__(self, name):
        return getattr(self.backend, name)


def profile_rows(timer: CellTimer, flops, stream_s: float, peak: dict) -> dict:
    """The profile of the calls ``timer`` saw during ``stream_s`` seconds of streaming.

    ``flops``: a :class:`.cell_flops.CellFlops` (``flops(cell, key)``); ``peak``: a
    :func:`.gemm_peak.measure_gemm_peak` record. Returns ``{"gemm_peak", "stream_s", "cells": [row ...],
    "total": row, "not_counted"}``; each row has ``cell, calls, seconds, share, gflop, gflop_per_call,
    gflops, peak_fraction`` (the outside-cells row has no FLOPs: None)."""
    peak_gflops = peak["gflops"]
    per_cell_calls: Counter = Counter()
    per_cell_flops: Counter = Counter()
    for (cell, key), n in timer.calls.items():
        per_cell_calls[cell] += n
        per_cell_flops[cell] += n * flops.flops(cell, key)

    def row(cell, calls, seconds, total_flops):
        gflops = total_flops / seconds / 1e9 if total_flops is not None and seconds > 0 else None
        return {"cell": cell, "calls": calls, "seconds": seconds, "share": seconds / stream_s if stream_s > 0 else None,
                "gflop": None if total_flops is None else total_flops / 1e9,
                "gflop_per_call": None if total_flops is None or not calls else total_flops / calls / 1e9,
                "gflops": gflops, "peak_fraction": None if gflops is None else gflops / peak_gflops}

    cells = sorted(timer.seconds, key=lambda c: -timer.seconds[c])
    rows = [row(c, per_cell_calls[c], timer.seconds[c], per_cell_flops[c]) for c in cells]
    in_cells = sum(timer.seconds.values())
    rows.append(row(OUTSIDE, 0, max(stream_s - in_cells, 0.0), None))
    total = row("all cells", sum(per_cell_calls.values()), in_cells, sum(per_cell_flops.values()))
    return {"gemm_peak": peak, "stream_s": stream_s, "cells": rows, "total": total, "not_counted": NOT_COUNTED}


def _num(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _when(peak: dict) -> str:
    measured = peak.get("measured_gflops")
    if not measured or len(measured) < 2:
        return ""
    return f"; measured before / after the runs: {' / '.join(f'{g:.1f}' for g in measured)}, the higher counts"


def format_profile(name: str, profile: dict) -> str:
    """A plain-text table of one configuration's profile, with the peak it is judged against and a footer
    naming what the FLOP counts leave out."""
    p = profile["gemm_peak"]
    kernels = ", ".join(f"{k} {v:.1f}" for k, v in p["kernels"].items())
    lines = [f"per-cell profile, {name}: FP32 GEMM peak {p['gflops']:.1f} GFLOP/s, the best of {kernels} "
             f"({p['size']}^3 GEMM, {p['threads']} threads, best of {p['repeat']}{_when(p)}); "
             f"stream {profile['stream_s']:.2f} s",
             f"  {'cell':22} {'calls':>6} {'time s':>8} {'share':>6} {'GFLOP/call':>10} {'GFLOP/s':>8} {'of peak':>8}"]
    for r in [*profile["cells"], profile["total"]]:
        share = "" if r["cell"] == "all cells" else _pct(r["share"])
        lines.append(f"  {r['cell']:22} {r['calls'] or '':>6} {r['seconds']:8.2f} {share:>6} "
                     f"{_num(r['gflop_per_call'], '.3f'):>10} {_num(r['gflops'], '.1f'):>8} "
                     f"{_pct(r['peak_fraction']):>8}")
    lines.append(f"  note: {profile['not_counted']}")
    return "\n".join(lines)
