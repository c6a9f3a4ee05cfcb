"""PSRT-recurrent's schedule: BasicVSR++'s grid propagation, each branch reading the one before."""
from __future__ import annotations

from .basicvsr_pp import GridPropagationSchedule

_CHAIN = {"backward_1": "spatial", "forward_1": "backward_1", "backward_2": "forward_1", "forward_2": "backward_2"}


class PSRTSchedule(GridPropagationSchedule):
    """BasicVSR++'s grid propagation with PSRT's step: chained branches, no residual, no backbone."""

    upsample_cell = None  # PSRTReconstructCell returns the HR frame (a 3x3 conv before the tail: halo 3)

    def channels(self) -> int:
        return self.net.embed_dim

    def branch_cell(self, name: str) -> str:
        return f"{name}_step"

    def branch_step(self, ctx, name, idx, step, prev1, prev2, spatial, feats, flow_n1, flow_n2, zero, zero_flow):
        current = spatial[idx] if _CHAIN[name] == "spatial" else feats[_CHAIN[name]][idx]
        if step == 0:
            prev1 = prev2 = current
            flow_n1 = flow_n2 = zero_flow
        elif step == 1:
            prev2, flow_n2 = zero, zero_flow
        return ctx.run(self.branch_cell(name), {"feat_prop": prev1, "feat_n2": prev2, "current": current,
                                         "flow_n1": flow_n1, "flow_n2": flow_n2})["feat_out"]

    def reconstruct_inputs(self, ctx, i, spatial, feats) -> dict:
        return {"lr": ctx.frames[i], "forward_2": feats["forward_2"][i]}
