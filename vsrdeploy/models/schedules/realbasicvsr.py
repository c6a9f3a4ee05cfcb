"""RealBasicVSR's schedule: the span's frames cleaned the same number of times, then BasicVSR's."""
from __future__ import annotations

from .. import arrays
from ..schedule import WindowContext
from .basicvsr import BidirectionalSchedule

MAX_CLEANING_PASSES = 3


class CleaningSchedule(BidirectionalSchedule):
    """Clean every frame of the span with the same number of passes (upstream decides on the mean
    absolute residue of the whole clip; here of the span, which is the whole clip when it fits),
    then BasicVSR on the cleaned frames."""

    tiles_apart = False  # the number of cleaning passes is decided on every tile's residue together

    def held_bytes(self, out_bytes, window, lookahead):
        cleaned = (window + lookahead + self.history) * out_bytes("clean")  # the span's cleaned frames
        return cleaned + super().held_bytes(out_bytes, window, lookahead)

    def prepare(self, ctx: WindowContext) -> None:
        indices = sorted(i for i in ctx.frames if i < ctx.span_end)
        frames = {i: ctx.frames[i] for i in indices}
        for _ in range(MAX_CLEANING_PASSES):
            outs = ctx.batch("clean", [{"lr": frames[i]} for i in indices])
            frames = {i: o["lr_out"] for i, o in zip(indices, outs)}
            residues = arrays.cat([o["residue"] for i, o in zip(indices, outs) if i >= ctx.start], 0)
            if arrays.mean(residues) < self.net.dynamic_refine_thres / 255.0:
                break
        ctx.frames = frames
