"""Timing the way trtexec and benchmark_app do it: warm-up, then repeated timed runs, reported as a
median with its spread, per-frame latency percentiles, and the first frame's latency on its own.

Shared by ``compare`` and ``bench``. A frame's latency is the time from the engine taking it in to its
output coming out; with streaming, a window's outputs come out together after its lookahead, so the
latency percentiles show the window's cost and the first-frame latency the start-up cost.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class StreamRun:
    first_frame_s: float
    total_s: float
    latencies_s: list[float] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return len(self.latencies_s) / self.total_s if self.total_s > 0 else math.nan


def timed_stream(upscaler, frames, window, lookahead, sink=None, **stream_options) -> StreamRun:
    """Stream ``frames`` as fast as the engine pulls them; ``sink.write(frame)`` gets each output (a real
    sink's cost is part of the run); ``sink=None`` drops them. ``stream_options``: more keywords of
    ``Upscaler.stream`` (e.g. ``heap``)."""
    fed: list[float] = []
    latencies: list[float] = []
    first = math.nan

    def source():
        for frame in frames:
            fed.append(time.perf_counter())
            yield frame

    t0 = time.perf_counter()
    for i, out in enumerate(upscaler.stream(source(), window=window, lookahead=lookahead, **stream_options)):
        now = time.perf_counter()
        latencies.append(now - fed[i])
        if i == 0:
            first = now - t0
        if sink is not None:
            sink.write(out)
    return StreamRun(first, time.perf_counter() - t0, latencies)


def warm_up(upscaler, frames, window, lookahead, **stream_options) -> None:
    """One untimed pass over ``frames`` (allocations, kernel selection, caches)."""
    for _ in upscaler.stream(iter(frames), window=window, lookahead=lookahead, **stream_options):
        pass


def _pct(values, q) -> float:
    return float(np.percentile(values, q)) if len(values) else math.nan


def summarize_runs(runs: list[StreamRun]) -> dict:
    """Medians and spread over runs; latency percentiles over every frame of every run."""
    if not runs:
        return {}
    fps = [r.fps for r in runs]
    latencies_ms = [1000 * v for r in runs for v in r.latencies_s]
    return {"repeat": len(runs), "fps_runs": fps, "fps": statistics.median(fps), "fps_min": min(fps),
            "fps_max": max(fps), "fps_p5": _pct(fps, 5), "fps_p95": _pct(fps, 95),
            "total_s": statistics.median(r.total_s for r in runs),
            "first_frame_s": statistics.median(r.first_frame_s for r in runs),
            "first_frame_ms_runs": [1000 * r.first_frame_s for r in runs],
            "frame_ms_p5": _pct(latencies_ms, 5), "frame_ms_p50": _pct(latencies_ms, 50),
            "frame_ms_p95": _pct(latencies_ms, 95), "frame_ms_p99": _pct(latencies_ms, 99)}
