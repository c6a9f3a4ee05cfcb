"""BasicVSR++'s schedule: second-order grid propagation over four branches, with flow-guided deformable alignment."""
from __future__ import annotations

from collections import deque
from typing import Iterator

from ..schedule import Array, Schedule, WindowContext
from ..spill import HeldFeatures

BRANCHES = ("backward_1", "forward_1", "backward_2", "forward_2")


class GridPropagationSchedule(Schedule):
    """backward_1 -> forward_1 -> backward_2 -> forward_2 over the span; forward branches carry
    (feat at t-1, feat at t-2) across windows. forward_1 also runs over the lookahead frames
    because backward_2 reads it there; only its state at the window end is carried.
    """

    history = 2
    #: the cell that turns ``reconstruct``'s features into the HR frame; None: ``reconstruct`` returns it
    upsample_cell: str | None = "upsample"

    def channels(self) -> int:
        return self.net.mid_channels

    def branch_cell(self, name: str) -> str:
        """The cell whose output is branch ``name``'s feature."""
        return f"{name}_backbone"

    def held_bytes(self, out_bytes, window, lookahead):
        span = window + lookahead
        spatial = out_bytes("feat_extract")
        feat = [out_bytes(self.branch_cell(b)) for b in BRANCHES]
        # the peak is where backward_2 starts (spatial, backward_1, forward_1 over the span) or ends (those
        # and backward_2 over the window; the lookahead's were dropped on the way)
        state = max(span * (spatial + feat[0] + feat[1]), window * (spatial + sum(feat[:3])))
        flows = 4 * span * out_bytes("flow")  # both directions' flows and their compositions
        return state + flows + 3 * max(feat) + 2 * (feat[1] + feat[3])  # steps in flight, forward states

    def spilled_cells(self):
        return ("feat_extract", *(self.branch_cell(b) for b in BRANCHES))

    def branch_step(self, ctx, name, idx, step, prev1, prev2, spatial, feats, flow_n1, flow_n2, zero, zero_flow):
        """One step of branch ``name`` at frame ``idx`` (``step``-th of the branch): align + residual backbone."""
        if step == 0:
            aligned = zero  # upstream: no alignment at a branch's first frame
        else:
            if step == 1:
                prev2, flow_n2 = zero, zero_flow
            aligned = ctx.run(f"{name}_align", {"feat_prop": prev1, "feat_n2": prev2, "spatial": spatial[idx],
                                                "flow_n1": flow_n1, "flow_n2": flow_n2})["aligned"]
        earlier = BRANCHES[:BRANCHES.index(name)]
        inputs = {"spatial": spatial[idx], **{b: feats[b][idx] for b in earlier}, "aligned": aligned}
        return ctx.run(self.branch_cell(name), inputs)["feat_out"]

    def reconstruct_inputs(self, ctx, i, spatial, feats) -> dict:
        return {"spatial": spatial[i], **{b: feats[b][i] for b in BRANCHES}}

    def run_window(self, ctx: WindowContext) -> Iterator[Array]:
        s, e, span_end = ctx.start, ctx.end, ctx.span_end
        x = ctx.frames
        spatial = ctx.held()  # features held for later branches: in memory, or spilled (models.spill)
        for i, o in zip(range(s, span_end), ctx.batch_iter("feat_extract", ({"lr": x[i]} for i in range(s, span_end)))):
            spatial[i] = o["spatial"]
        del o
        back_pairs = {i: (i, i + 1) for i in range(s, span_end - 1)}
        fwd_pairs = {i: ctx.forward_pair(i) for i in range(max(s - 1, 1), span_end)}
        flows = ctx.flows(list(back_pairs.values()) + list(fwd_pairs.values()))
        flow_b = {i: flows[p] for i, p in back_pairs.items()}  # aligns frame i+1 onto i
        flow_f = {i: flows[p] for i, p in fwd_pairs.items()}  # aligns frame i-1 onto i
        del flows
        comp_b = self._compose(ctx, {i: (flow_b[i], flow_b[i + 1]) for i in range(s, span_end - 2)})
        comp_f = self._compose(ctx, {i: (flow_f[i], flow_f[i - 1]) for i in range(max(s, 2), span_end)})
        zero = ctx.zeros(spatial[s], self.channels())
        zero_flow = ctx.zeros(spatial[s], 2)
        feats: dict[str, HeldFeatures] = {}
        last_backward = BRANCHES[2]
        for name in BRANCHES[:3]:
            backward = name.startswith("backward")
            if backward:
                order = list(range(span_end - 1, s - 1, -1))
                prev1 = prev2 = None
                step = 0
            else:
                order = list(range(s, span_end if name == "forward_1" else e))
                prev1, prev2 = ctx.state.get(name, (None, None))
                step = s
            out = ctx.held()
            feats[name] = out
            for idx in order:
                flow_n1 = (flow_b if backward else flow_f).get(idx) if step > 0 else None
                flow_n2 = (comp_b if backward else comp_f).get(idx) if step > 1 else None
                feat = self.branch_step(ctx, name, idx, step, prev1, prev2, spatial, feats, flow_n1, flow_n2,
                                        zero, zero_flow)
                prev1, prev2 = feat, prev1
                step += 1
                if not backward and idx == e - 1:
                    ctx.state[name] = (prev1, prev2)
                if name == last_backward and idx >= e:
                    # beyond the window only the last backward branch reads these: drop them now
                    for earlier in (spatial, *[feats[b] for b in BRANCHES[:2]]):
                        earlier.discard(idx)
                else:
                    out[idx] = feat
            del prev1, prev2, feat
        del flow_b, comp_b

        def reconstruct_items():
            """forward_2, one frame at a time; each frame's reconstruction inputs leave as soon as they
            exist, and every feature of that frame is dropped with them."""
            name = BRANCHES[3]
            feats[name] = ctx.held()
            prev1, prev2 = ctx.state.get(name, (None, None))
            for step, idx in enumerate(range(s, e), start=s):
                flow_n1 = flow_f.get(idx) if step > 0 else None
                flow_n2 = comp_f.get(idx) if step > 1 else None
                feat = self.branch_step(ctx, name, idx, step, prev1, prev2, spatial, feats, flow_n1, flow_n2,
                                        zero, zero_flow)
                prev1, prev2 = feat, prev1
                if idx == e - 1:
                    ctx.state[name] = (prev1, prev2)
                feats[name][idx] = feat
                item = self.reconstruct_inputs(ctx, idx, spatial, feats)
                for held in (spatial, *feats.values()):
                    held.discard(idx)
                if self.upsample_cell:
                    pending.append(idx)
                yield item
                del item

        def upsample_items():
            """Each frame's reconstructed features with its LR frame, in the order they were made."""
            for o in ctx.batch_iter("reconstruct", reconstruct_items()):
                yield {"lr": ctx.frames[pending.popleft()], "feat": o["feat"]}

        pending: deque[int] = deque()  # frames whose features are on their way to the upsample cell
        if self.upsample_cell is None:
            outputs = ctx.batch_iter("reconstruct", reconstruct_items())
        else:
            outputs = ctx.batch_iter(self.upsample_cell, upsample_items())
        for o in outputs:
            yield o["hr"]

    @staticmethod
    def _compose(ctx, pairs: dict[int, tuple[Array, Array]]) -> dict[int, Array]:
        outs = ctx.batch("compose_flow", [{"flow_n1": a, "flow_prev": b} for a, b in pairs.values()])
        return {i: o["flow_n2"] for i, o in zip(pairs, outs)}
