"""Cutting a clip into segments, and computing one segment's output frames.

A segment [start, end) is streamed from ``start - warmup`` (those outputs are discarded: they only
warm the forward-direction state) to ``end + lookahead`` (the backward branches see that far, as in
a sequential run). Window boundaries are put where a sequential run from frame 0 has them, so the
only difference to that run is the forward state, which starts from zero ``warmup`` frames early.
With ``warmup >= start`` a segment's output equals the sequential run's exactly.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

#: measured on the bundled clip with the shipped models (benchmarks/segment_cost.py, RESULTS.md): the
#: smallest warm-up costing <= 0.01 dB whose output is within half an 8-bit step of the sequential run's
DEFAULT_WARMUP = 8
DEFAULT_SEGMENT = 64


@dataclass(frozen=True)
class Segment:
    index: int
    start: int  # first output frame (clip index)
    end: int  # one past the last output frame
    warmup: int  # frames streamed before ``start`` whose outputs are discarded
    read_end: int  # one past the last input frame streamed
    first_window: int | None  # length of the first window, so later windows align with a full run

    @property
    def read_start(self) -> int:
        return self.start - self.warmup

    @property
    def frames(self) -> int:
        return self.end - self.start

    @property
    def frames_read(self) -> int:
        return self.read_end - self.read_start


def plan_segments(num_frames: int, segment: int, warmup: int, window: int, lookahead: int,
                  phase: int = 1) -> list[Segment]:
    """Segments of ``segment`` frames covering ``num_frames`` frames.

    ``phase``: the schedule's period in frames (IconVSR's keyframe stride); a segment's read start is
    moved earlier (more warm-up) to a multiple of it so keyframes fall where a full run has them.
    """
    if num_frames < 1:
        raise ConfigError(f"a clip needs at least one frame, got {num_frames}")
    if window < 1 or lookahead < 0:
        raise ConfigError(f"window must be >= 1 and lookahead >= 0 (got {window}, {lookahead})")
    if segment < 1 or segment % window:
        raise ConfigError(f"--segment must be a positive multiple of --window {window} (got {segment}); "
                          f"e.g. --segment {max(1, segment // window or 1) * window}")
    if warmup < 0:
        raise ConfigError(f"--warmup must be >= 0 (got {warmup})")
    segments = []
    for index, start in enumerate(range(0, num_frames, segment)):
        end = min(start + segment, num_frames)
        warm = min(warmup, start)
        warm = min(start, warm + (start - warm) % phase)
        # +1: the stream reads one frame past the span to know the clip goes on, as a full run does
        read_end = min(end + lookahead + 1, num_frames)
        segments.append(Segment(index, start, end, warm, read_end, (warm % window) or None))
    return segments


def segment_outputs(upscaler, frames: Iterable[np.ndarray], seg: Segment, window: int,
                    lookahead: int) -> Iterator[np.ndarray]:
    """The output frames [seg.start, seg.end) of ``upscaler`` (an ``Upscaler``).

    ``frames`` yields the clip's input frames from ``seg.read_start`` on. Stops before computing
    anything past ``seg.end``.
    """
    stream = upscaler.stream(itertools.islice(frames, seg.frames_read), window=window, lookahead=lookahead,
                             first_window=seg.first_window)
    try:
        yield from itertools.islice(stream, seg.warmup, seg.warmup + seg.frames)
    finally:
        stream.close()

