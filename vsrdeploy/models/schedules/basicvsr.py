"""BasicVSR's schedule: one backward and one forward branch of flow-warped features."""
from __future__ import annotations

from typing import Iterator

from ..schedule import Array, Schedule, WindowContext


class BidirectionalSchedule(Schedule):
    """BasicVSR-style propagation: one backward and one forward branch, flow-warped features.

    Hooks let IconVSR add keyframe refill; cells: flow, warp, backward_trunk, forward_trunk, upsample.
    """

    history = 1

    def prepare(self, ctx: WindowContext) -> None:
        """Per-window work before propagation (RealBasicVSR cleans frames, IconVSR computes refill)."""

    def backward_extra(self, ctx: WindowContext, i: int, feat: Array) -> Array:
        return feat

    def forward_extra(self, ctx: WindowContext, i: int, feat: Array) -> Array:
        return feat

    def forward_inputs(self, i: int, back: Array) -> dict[str, Array]:
        return {}

    def upsample_inputs(self, i: int, back, fwd) -> dict[str, Array]:
        return {"backward": back, "forward": fwd}

    def held_bytes(self, out_bytes, window, lookahead):
        # the window's backward features (run_window's ``back``), the forward state, the warped and the new
        # feature in flight; the span's flows (backward pairs, forward pairs)
        return (window + 3) * out_bytes("backward_trunk") + (2 * window + lookahead) * out_bytes("flow")

    def spilled_cells(self):
        return ("backward_trunk",)

    def run_window(self, ctx: WindowContext) -> Iterator[Array]:
        s, e, span_end = ctx.start, ctx.end, ctx.span_end
        c = self.net.mid_channels
        self.prepare(ctx)
        x = ctx.frames
        flows = ctx.flows([(i, i + 1) for i in range(s, span_end - 1)]
                          + [ctx.forward_pair(i) for i in range(max(s, 1), e)])
        back = ctx.held()  # the window's backward features: in memory, or spilled (models.spill)
        feat = ctx.zeros(x[s], c)
        for i in reversed(range(s, span_end)):
            if i < span_end - 1:
                feat = ctx.run("warp", {"feat": feat, "flow": flows[(i, i + 1)]})["warped"]
            feat = self.backward_extra(ctx, i, feat)
            feat = ctx.run("backward_trunk", {"lr": x[i], "feat_in": feat})["feat_out"]
            if i < e:
                back[i] = feat
        del feat

        def upsample_items():
            """Forward propagation, one frame at a time; each frame's upsampling inputs leave as soon as
            they exist, and its backward feature is dropped with them."""
            feat = ctx.state.get("forward")
            if feat is None:
                feat = ctx.zeros(x[s], c)
            for i in range(s, e):
                if i > 0:
                    feat = ctx.run("warp", {"feat": feat, "flow": flows[ctx.forward_pair(i)]})["warped"]
                feat = self.forward_extra(ctx, i, feat)
                b = back.pop(i)
                feat = ctx.run("forward_trunk", {"lr": x[i], **self.forward_inputs(i, b), "feat_in": feat})["feat_out"]
                if i == e - 1:
                    ctx.state["forward"] = feat
                yield {"lr": x[i], **self.upsample_inputs(i, b, feat)}
                del b

        for o in ctx.batch_iter("upsample", upsample_items()):
            yield o["hr"]
