"""IconVSR's schedule: BasicVSR's branches with key-frame refill from an EDVR alignment of the neighbours."""
from __future__ import annotations

from ...errors import InputError
from .. import arrays
from ..schedule import Array, WindowContext
from ..spill import HeldFeatures
from .basicvsr import BidirectionalSchedule


class IconVSRSchedule(BidirectionalSchedule):
    """Keyframes: every ``keyframe_stride``-th frame and the last frame of the clip; the backward branch
    also refills at the end of its span (where it starts from zero state). Refill features of a
    keyframe use frames i-p..i+p with upstream's temporal padding at both clip ends; inside a window
    the span end plays the clip end.
    """

    def __init__(self, net):
        super().__init__(net)
        self.p = net.padding
        self.history = 2 * self.p
        self.min_span = 2 * self.p + 1
        self.refill: HeldFeatures | None = None  # key frame -> refill feature, for the window being run

    def source_index(self, j: int, horizon: int) -> int:
        """Upstream temporal padding: [p..., 4, 3] + seq + [-4, -5] for p=2 (not a symmetric reflection)."""
        if j < 0:
            return self.p - j
        if j >= horizon:
            return 2 * horizon - (self.p + 2) - j
        return j

    def prepare(self, ctx: WindowContext) -> None:
        if ctx.total is not None and ctx.total < self.min_span:
            raise InputError(f"iconvsr with padding={self.p} needs at least {self.min_span} frames, "
                             f"got {ctx.total}")
        stride = self.net.keyframe_stride
        s, e, horizon = ctx.start, ctx.end, ctx.span_end
        last = ctx.total - 1 if ctx.total is not None else None
        self.back_keys = {i for i in range(s, horizon) if i % stride == 0} | {horizon - 1}
        self.fwd_keys = {i for i in range(s, e) if i % stride == 0 or i == last}
        keys = sorted(self.back_keys | self.fwd_keys)
        if self.refill is not None:
            self.refill.clear()  # the last window's (their spilled space goes back to the file)
        self.refill = ctx.held()  # refill features, read through the window: in memory or spilled
        pyramids: dict[int, dict[str, Array]] = {}  # source frame -> its pyramid, while a key needs it
        # each key's source frames, temporal padding applied
        windows = [[self.source_index(j, horizon) for j in range(i - self.p, i + self.p + 1)] for i in keys]
        for n, (i, sources) in enumerate(zip(keys, windows)):
            todo = [j for j in dict.fromkeys(sources) if j not in pyramids]
            pyramids.update(zip(todo, ctx.batch("edvr_pyramid", ({"frame": ctx.frames[j]} for j in todo))))
            ref_source = sources[self.p]
            ref = pyramids[ref_source]
            later = set(windows[n + 1]) if n + 1 < len(windows) else set()

            def items(sources=sources, ref=ref, ref_source=ref_source, later=later):
                for k, j in enumerate(sources):
                    # a neighbour's pyramid goes with its last use unless the next key reads it too
                    done = j != ref_source and j not in later and j not in sources[k + 1:]
                    pyramid = pyramids.pop(j) if done else pyramids[j]
                    yield {**{f"nbr_{name}": v for name, v in pyramid.items()},
                           **{f"ref_{name}": v for name, v in ref.items()}}
            # each neighbour's alignment is copied into its slot as it comes (a stack at the end would hold
            # all of them twice)
            aligned = None
            for k, out in enumerate(ctx.batch_iter("edvr_align", items())):
                out = out["aligned"]
                if aligned is None:
                    aligned = arrays.empty(out, (out.shape[0], len(sources), *out.shape[1:]))
                aligned[:, k] = out
            del out
            self.refill[i] = ctx.run("edvr_fusion", {"aligned": aligned})["refill"]
            del aligned, ref
            for j in [j for j in pyramids if j not in later]:
                del pyramids[j]

    def spilled_cells(self):
        return (*super().spilled_cells(), "edvr_fusion")

    def held_bytes(self, out_bytes, window, lookahead):
        span = window + lookahead
        refill = (span // self.net.keyframe_stride + 2) * out_bytes("edvr_fusion")  # held through the window
        # prepare: one key's source pyramids, its aligned neighbours and the one in flight
        frames = 2 * self.p + 1
        prepare = frames * out_bytes("edvr_pyramid") + (frames + 1) * out_bytes("edvr_align")
        return refill + max(prepare, super().held_bytes(out_bytes, window, lookahead))

    def backward_extra(self, ctx, i, feat):
        if i in self.back_keys:
            feat = ctx.run("backward_fusion", {"feat_in": feat, "refill": self.refill[i]})["feat_out"]
        return feat

    def forward_extra(self, ctx, i, feat):
        if i in self.fwd_keys:
            feat = ctx.run("forward_fusion", {"feat_in": feat, "refill": self.refill[i]})["feat_out"]
        return feat

    def forward_inputs(self, i, back):
        return {"backward": back}

    def upsample_inputs(self, i, back, fwd):
        return {"forward": fwd}
