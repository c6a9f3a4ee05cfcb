"""BasicVSR++ (mmagic ``BasicVSRPlusPlusNet``): second-order grid propagation with deformable alignment."""
from __future__ import annotations

import math
from collections import deque
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .base import RecurrentVSR
from .basicvsr import count_blocks
from .blocks import (ReconstructionTail, ResidualBlocksWithInputConv, add_reconstruction_tail, flow_warp,
                     upsample_x4)
from .cells import Cell, Port
from .dcn import ModulatedDeformConv2d, conv_in_row_strips, may_overwrite
from .registry import register_model
from .schedule import Schedule, WindowContext
from .spill import HeldFeatures
from .spynet import SPyNet

BRANCHES = ("backward_1", "forward_1", "backward_2", "forward_2")


class SecondOrderDeformableAlignment(ModulatedDeformConv2d):
    #: decomposed and native exports run the offsets' last conv and the deformable conv in this many row
    #: strips (memory: benchmarks/RESULTS.md, "BasicVSR++ alignment in row strips", "ONNX Runtime's
    #: `DeformConv` in row strips"); 1: whole frame. Exported graphs then need frames of at least this many rows
    export_row_strips = 4

    def __init__(self, in_channels: int, out_channels: int, deform_groups: int = 16,
                 max_residue_magnitude: float = 10.0):
        super().__init__(in_channels, out_channels, 3, 1, 1, 1, deform_groups)
        self.max_residue_magnitude = max_residue_magnitude
        c = out_channels
        self.conv_offset = nn.Sequential(
            nn.Conv2d(3 * c + 4, c, 3, 1, 1), nn.LeakyReLU(0.1),
            nn.Conv2d(c, c, 3, 1, 1), nn.LeakyReLU(0.1),
            nn.Conv2d(c, c, 3, 1, 1), nn.LeakyReLU(0.1),
            nn.Conv2d(c, 27 * deform_groups, 3, 1, 1),
        )

    def forward(self, x, extra_feat, flow_1, flow_2):
        hidden = self.conv_offset[:-1](torch.cat([extra_feat, flow_1, flow_2], dim=1))
        strips = self.row_strips(x)  # decomposed and native exports, and eager inference on large frames
        if strips > 1:
            return self._aligned_in_strips(x, hidden, flow_1, flow_2, strips)
        return self._aligned(x, self.conv_offset[-1](hidden), flow_1, flow_2)

    def _aligned(self, x, out, flow_1, flow_2, out_grid=None, strips: int | None = None):
        """The deformable conv of ``x`` at the rows ``out`` (the offset branch's last conv) covers: all of the
        output, or one of ``strips`` row strips whose coordinates are ``out_grid``."""
        n, _, h, w = out.shape
        split = out.shape[1] // 3 * 2  # channels [o1 | o2 | mask]: o1 and o2 are the offsets of the two halves
        # The first half of the deform groups is offset by flow_1, the second by flow_2, each as (dy, dx)
        # at every tap: one broadcast add (upstream repeats the flows to 144 channels and concatenates).
        flows = torch.stack([flow_1.flip(1), flow_2.flip(1)], dim=1).view(n, 2, 1, 2, h, w)
        if may_overwrite(out):  # eager inference: the same operations on ``out``'s own memory
            offset = out[:, :split]
            offset.tanh_().mul_(self.max_residue_magnitude).view(n, 2, split // 4, 2, h, w).add_(flows)
            mask = out[:, split:].sigmoid_()
        else:
            offset = self.max_residue_magnitude * torch.tanh(out[:, :split])
            offset = (offset.view(n, 2, split // 4, 2, h, w) + flows).view(n, split, h, w)
            mask = torch.sigmoid(out[:, split:])
        return self.deform_conv(x, offset, mask, out_grid, strips)

    def _aligned_in_strips(self, x, hidden, flow_1, flow_2, strips: int):
        """The offset branch's last conv (64 -> 432 channels) and the deformable conv, ``strips`` row strips
        at a time: each strip's offsets, mask and sampled taps are 1/strips of the frame's. Every strip
        samples the whole of ``x`` (offsets are unbounded), so this is the frame's computation cut by output
        rows, not an approximation. Cut sizes come from the traced shape: the graph stays size-agnostic."""
        parts = []
        for rows, out, grid in conv_in_row_strips(self.conv_offset[-1], hidden, strips):
            parts.append(self._aligned(x, out, flow_1[:, :, rows], flow_2[:, :, rows], grid, strips))
        return torch.cat(parts, dim=2)


class PPFlowCell(Cell):
    """SPyNet flow between frame pairs; for HR input, on x0.25 bicubic copies (upstream)."""

    def __init__(self, spynet: SPyNet, low_res_input: bool):
        super().__init__()
        self.spynet = spynet
        self.low_res_input = low_res_input
        s = 1.0 if low_res_input else 0.25
        self.inputs = (Port("ref", (3,)), Port("supp", (3,)))
        self.outputs = (Port("flow", (2,), s),)

    def forward(self, ref, supp):
        if not self.low_res_input:
            ref = F.interpolate(ref, scale_factor=0.25, mode="bicubic", align_corners=False)
            supp = F.interpolate(supp, scale_factor=0.25, mode="bicubic", align_corners=False)
        return (self.spynet(ref, supp),)


class ComposeFlowCell(Cell):
    """Two-step flow: ``flow_n2 = flow_n1 + warp(flow_prev, flow_n1)``."""

    def __init__(self, scale: float):
        super().__init__()
        self.inputs = (Port("flow_n1", (2,), scale), Port("flow_prev", (2,), scale))
        self.outputs = (Port("flow_n2", (2,), scale),)

    def forward(self, flow_n1, flow_prev):
        return (flow_n1 + flow_warp(flow_prev, flow_n1),)


class FeatExtractCell(Cell):
    def __init__(self, module: nn.Module, channels: int, scale: float):
        super().__init__()
        self.module = module
        self.inputs = (Port("lr", (3,)),)
        self.outputs = (Port("spatial", (channels,), scale),)

    def forward(self, lr):
        return (self.module(lr),)


class AlignCell(Cell):
    """Second-order deformable alignment of the two previous states of a branch."""

    stateless = False

    def __init__(self, align: SecondOrderDeformableAlignment, c: int, scale: float):
        super().__init__()
        self.align = align
        self.inputs = (Port("feat_prop", (c,), scale), Port("feat_n2", (c,), scale), Port("spatial", (c,), scale),
                       Port("flow_n1", (2,), scale), Port("flow_n2", (2,), scale))
        self.outputs = (Port("aligned", (c,), scale),)

    def forward(self, feat_prop, feat_n2, spatial, flow_n1, flow_n2):
        cond_n1 = flow_warp(feat_prop, flow_n1)
        cond_n2 = flow_warp(feat_n2, flow_n2)
        cond = torch.cat([cond_n1, spatial, cond_n2], dim=1)
        return (self.align(torch.cat([feat_prop, feat_n2], dim=1), cond, flow_n1, flow_n2),)


class BackboneCell(Cell):
    """``feat_out = aligned + backbone(cat([spatial, *earlier branches, aligned]))``."""

    stateless = False

    def __init__(self, backbone: nn.Module, c: int, earlier: tuple[str, ...], scale: float):
        super().__init__()
        self.backbone = backbone
        self.inputs = (Port("spatial", (c,), scale), *[Port(b, (c,), scale) for b in earlier],
                       Port("aligned", (c,), scale))
        self.outputs = (Port("feat_out", (c,), scale),)

    def forward(self, *feats):
        return (feats[-1] + self.backbone(torch.cat(feats, dim=1)),)


class PPReconstructCell(Cell):
    """The reconstruction trunk at feature resolution: input conv over the five feature maps + residual
    blocks. The x4 tail is the separate ``upsample`` cell: the trunk's 11 rows of context would make every
    row strip of one joint cell recompute most of the trunk (13 strips at 180x320 LR computed 2.9x the
    frame's FLOPs; benchmarks/RESULTS.md, "BasicVSR++: the reconstruction split from its x4 tail")."""

    def __init__(self, net: "BasicVSRPlusPlusNet"):
        super().__init__()
        c, s = net.mid_channels, net.feat_scale
        self.reconstruction = net.reconstruction
        self.inputs = (Port("spatial", (c,), s), *[Port(b, (c,), s) for b in BRANCHES])
        self.outputs = (Port("feat", (c,), s),)
        # input conv + 5 residual blocks: 11 feature rows, in frame rows
        self.halo = math.ceil(11 / s)

    def forward(self, *feats):
        return (self.reconstruction(torch.cat(feats, dim=1)),)


class PPUpsampleCell(Cell):
    """HR frame from the reconstruction's features: ``tail(feat)`` plus the bilinear x4 LR frame (or the
    input frame itself when ``is_low_res_input=False``)."""

    def __init__(self, net: "BasicVSRPlusPlusNet"):
        super().__init__()
        c, s = net.mid_channels, net.feat_scale
        self.low_res_input = net.is_low_res_input
        self.tail = ReconstructionTail(net)
        self.inputs = (Port("lr", (3,)), Port("feat", (c,), s))
        self.outputs = (Port("hr", (3,), 4 * s),)
        # x4 tail: 3x3 convs at 1x, 2x, 4x, 4x feature rows (1 + 0.5 + 0.25 + 0.25), in frame rows; the
        # bilinear x4 of the LR frame beside it needs 1 (as BasicVSR's UpsampleCell)
        self.halo = math.ceil(2 / s)

    def forward(self, lr, feat):
        return (self.tail(feat) + (upsample_x4(lr) if self.low_res_input else lr),)


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

    def run_window(self, ctx: WindowContext) -> Iterator[torch.Tensor]:
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
    def _compose(ctx, pairs: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> dict[int, torch.Tensor]:
        outs = ctx.batch("compose_flow", [{"flow_n1": a, "flow_prev": b} for a, b in pairs.values()])
        return {i: o["flow_n2"] for i, o in zip(pairs, outs)}


@register_model("basicvsr_pp")
class BasicVSRPlusPlusNet(RecurrentVSR):
    """BasicVSR++ (Chan et al., CVPR 2022). Upstream configs: c64 n7 (REDS/Vimeo), c128 n25 (NTIRE21);
    ``is_low_res_input=False`` for the decompression / deblur / denoise models (output at input size).
    """

    default_config = {"mid_channels": 64, "num_blocks": 7, "max_residue_magnitude": 10.0,
                      "is_low_res_input": True}
    upstream_configs = {
        "REDS4 / Vimeo-90K BI / BD": {"mid_channels": 64, "num_blocks": 7},
        "NTIRE21 VSR": {"mid_channels": 128, "num_blocks": 25},
        "NTIRE21 decompression": {"mid_channels": 128, "num_blocks": 25, "is_low_res_input": False},
        "deblur (DVD, GoPro) / denoise": {"mid_channels": 64, "num_blocks": 15, "is_low_res_input": False},
    }
    schedule_class = GridPropagationSchedule
    config_limits = {"max_residue_magnitude": (0.0, 1000.0)}
    min_size = 64

    def __init__(self, mid_channels: int = 64, num_blocks: int = 7, max_residue_magnitude: float = 10.0,
                 is_low_res_input: bool = True):
        super().__init__()
        c = mid_channels
        self.mid_channels, self.num_blocks = mid_channels, num_blocks
        self.max_residue_magnitude = max_residue_magnitude
        self.is_low_res_input = is_low_res_input
        self.spynet = SPyNet()
        if is_low_res_input:
            self.feat_extract = ResidualBlocksWithInputConv(3, c, 5)
        else:
            self.feat_extract = nn.Sequential(
                nn.Conv2d(3, c, 3, 2, 1), nn.LeakyReLU(0.1), nn.Conv2d(c, c, 3, 2, 1), nn.LeakyReLU(0.1),
                ResidualBlocksWithInputConv(c, c, 5))
        self.deform_align = nn.ModuleDict()
        self.backbone = nn.ModuleDict()
        for i, name in enumerate(BRANCHES):
            self.deform_align[name] = SecondOrderDeformableAlignment(2 * c, c, 16, max_residue_magnitude)
            self.backbone[name] = ResidualBlocksWithInputConv((2 + i) * c, c, num_blocks)
        self.reconstruction = ResidualBlocksWithInputConv(5 * c, c, 5)
        add_reconstruction_tail(self, c)

    @property
    def scale(self) -> int:  # type: ignore[override]
        return 4 if self.is_low_res_input else 1

    @property
    def feat_scale(self) -> float:
        return 1.0 if self.is_low_res_input else 0.25

    @property
    def pad_multiple(self) -> int:  # type: ignore[override]
        return 1 if self.is_low_res_input else 4

    @property
    def min_input_size(self) -> int:
        return self.min_size if self.is_low_res_input else 4 * self.min_size

    def check_frame_size(self, h: int, w: int) -> None:
        minimum = self.min_input_size
        if h < minimum or w < minimum:
            kind = "" if self.is_low_res_input else " with is_low_res_input=False (flow runs at 1/4 size)"
            raise InputError(f"{self.arch}{kind} needs frames of at least {minimum}x{minimum} pixels, "
                             f"got {w}x{h} (WxH)")

    def config(self) -> dict:
        return {"mid_channels": self.mid_channels, "num_blocks": self.num_blocks,
                "max_residue_magnitude": self.max_residue_magnitude, "is_low_res_input": self.is_low_res_input}

    def build_cells(self) -> dict[str, Cell]:
        c, s = self.mid_channels, self.feat_scale
        cells: dict[str, Cell] = {
            "flow": PPFlowCell(self.spynet, self.is_low_res_input),
            "compose_flow": ComposeFlowCell(s),
            "feat_extract": FeatExtractCell(self.feat_extract, c, s),
        }
        for i, name in enumerate(BRANCHES):
            cells[f"{name}_align"] = AlignCell(self.deform_align[name], c, s)
            cells[f"{name}_backbone"] = BackboneCell(self.backbone[name], c, BRANCHES[:i], s)
        cells["reconstruct"] = PPReconstructCell(self)
        cells["upsample"] = PPUpsampleCell(self)
        return cells

    @staticmethod
    def infer_config(sd: dict) -> dict:
        low_res = "feat_extract.main.0.weight" in sd
        c = sd["backbone.backward_1.main.0.weight"].shape[0]
        return {"mid_channels": c, "num_blocks": count_blocks(sd, "backbone.backward_1.main.2."),
                "is_low_res_input": low_res}

    @staticmethod
    def detect(keys) -> bool:
        return any(k.startswith("deform_align.") for k in keys) or any(k.startswith("backbone.") for k in keys)
