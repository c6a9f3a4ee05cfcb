"""BasicVSR++ (mmagic ``BasicVSRPlusPlusNet``): second-order grid propagation with deformable alignment."""
from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .base import RecurrentVSR
from .basicvsr import count_blocks
from .blocks import (ReconstructionTail, ResidualBlocksWithInputConv, add_reconstruction_tail, flow_warp,
                     upsample_x4)
from .cells import Cell, Port
from .dcn import (ModulatedDeformConv2d, conv_in_row_strips, exporting_offsets_per_tap_group, may_overwrite,
                  row_strip_convs)
from .registry import register_model
from .schedules.basicvsr_pp import BRANCHES, GridPropagationSchedule
from .spynet import SPyNet



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

    def _offsets(self, raw, flow_1, flow_2):
        """Offsets (n, g, taps, [x, y], h, w) from the offset conv's raw ones in that layout: the first half of
        the deform groups is offset by ``flow_1``, the second by ``flow_2`` ((dx, dy) flows). At most 6-D: OpenVINO
        2026.4's CPU plugin added the flows wrongly as a 7-D broadcast (BasicVSR++ alignment 0.04 off)."""
        _, g, taps, _, h, w = raw.shape
        flows = torch.stack([flow_1, flow_2], dim=1).view(-1, 2, 1, 2, h, w)
        offset = self.max_residue_magnitude * torch.tanh(raw).view(-1, 2, g // 2 * taps, 2, h, w) + flows
        return offset.view(-1, g, taps, 2, h, w)

    def _aligned_in_strips(self, x, hidden, flow_1, flow_2, strips: int):
        """The offset branch's last conv (64 -> 432 channels) and the deformable conv, ``strips`` row strips
        at a time: each strip's offsets, mask and sampled taps are 1/strips of the frame's. Every strip
        samples the whole of ``x`` (offsets are unbounded), so this is the frame's computation cut by output
        rows, not an approximation. Cut sizes come from the traced shape: the graph stays size-agnostic."""
        parts = []
        conv = self.conv_offset[-1]
        if exporting_offsets_per_tap_group():  # each group of taps from its own rows of the offsets' last conv
            for rows, conv_rows, grid in row_strip_convs(hidden, strips, conv.padding):
                transform = partial(self._offsets, flow_1=flow_1[:, :, rows], flow_2=flow_2[:, :, rows])
                parts.append(self.deform_conv_from(x, conv_rows, conv, grid, transform))
            return torch.cat(parts, dim=2)
        for rows, out, grid in conv_in_row_strips(conv, hidden, strips):
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
