"""BasicVSR (mmagic ``BasicVSRNet``) as cells + a schedule."""
from __future__ import annotations

import torch
from torch import nn

from .base import RecurrentVSR
from .blocks import (ReconstructionTail, ResidualBlocksWithInputConv, add_reconstruction_tail, flow_warp, lrelu,
                     upsample_x4)
from .cells import Cell, Port
from .registry import register_model
from .schedules.basicvsr import BidirectionalSchedule
from .spynet import SPyNet


class FlowCell(Cell):
    """SPyNet on a batch of frame pairs; optionally on x0.25 bicubic copies (BasicVSR++ HR input)."""

    inputs = (Port("ref", (3,)), Port("supp", (3,)))
    outputs = (Port("flow", (2,)),)

    def __init__(self, spynet: SPyNet):
        super().__init__()
        self.spynet = spynet

    def forward(self, ref, supp):
        return (self.spynet(ref, supp),)


class WarpCell(Cell):
    """Warp a feature map onto the next frame with a flow (zero padding)."""

    def __init__(self, channels: int, scale: float = 1.0):
        super().__init__()
        self.inputs = (Port("feat", (channels,), scale), Port("flow", (2,), scale))
        self.outputs = (Port("warped", (channels,), scale),)

    def forward(self, feat, flow):
        return (flow_warp(feat, flow),)


class TrunkCell(Cell):
    """One propagation step: ``feat_out = resblocks(cat([lr, *extra, feat_in]))``."""

    stateless = False

    def __init__(self, trunk: nn.Module, channels: int, extra: tuple[str, ...] = ()):
        super().__init__()
        self.trunk = trunk
        self.inputs = (Port("lr", (3,)), *[Port(e, (channels,)) for e in extra], Port("feat_in", (channels,)))
        self.outputs = (Port("feat_out", (channels,)),)

    def forward(self, *xs):
        return (self.trunk(torch.cat(xs, dim=1)),)


class UpsampleCell(Cell):
    """HR frame from LR frame + features: ``tail(pre(cat(feats))) + bilinear_x4(lr)``.

    ``pre`` is BasicVSR's fusion conv + LeakyReLU, or nothing (IconVSR).
    """

    # 1x1 fusion (0) + x4 tail (3x3 convs at 1x, 2x, 4x, 4x: 1 + 0.5 + 0.25 + 0.25 LR rows), beside the
    # bilinear x4 of the LR frame (1 row): 2 rows (tests/test_row_strips.py: 1 row is not enough)
    halo = 2

    def __init__(self, net: nn.Module, feats: tuple[str, ...], channels: int, fusion: nn.Module | None = None):
        super().__init__()
        self.fusion = fusion
        self.tail = ReconstructionTail(net)
        self.inputs = (Port("lr", (3,)), *[Port(f, (channels,)) for f in feats])
        self.outputs = (Port("hr", (3,), 4),)

    def forward(self, lr, *feats):
        feat = torch.cat(feats, dim=1) if len(feats) > 1 else feats[0]
        if self.fusion is not None:
            feat = lrelu(self.fusion(feat))
        return (self.tail(feat) + upsample_x4(lr),)


@register_model("basicvsr")
class BasicVSRNet(RecurrentVSR):
    """BasicVSR (Chan et al., CVPR 2021). Upstream configs: mid_channels=64, num_blocks=30."""

    default_config = {"mid_channels": 64, "num_blocks": 30}
    upstream_configs = {"REDS4 / Vimeo-90K BI / BD": {"mid_channels": 64, "num_blocks": 30}}
    schedule_class = BidirectionalSchedule
    min_size = 16

    def __init__(self, mid_channels: int = 64, num_blocks: int = 30):
        super().__init__()
        self.mid_channels, self.num_blocks = mid_channels, num_blocks
        self.spynet = SPyNet()
        self.backward_resblocks = ResidualBlocksWithInputConv(mid_channels + 3, mid_channels, num_blocks)
        self.forward_resblocks = ResidualBlocksWithInputConv(mid_channels + 3, mid_channels, num_blocks)
        self.fusion = nn.Conv2d(mid_channels * 2, mid_channels, 1, 1, 0)
        add_reconstruction_tail(self, mid_channels)

    def config(self) -> dict:
        return {"mid_channels": self.mid_channels, "num_blocks": self.num_blocks}

    def build_cells(self) -> dict[str, Cell]:
        c = self.mid_channels
        return {
            "flow": FlowCell(self.spynet),
            "warp": WarpCell(c),
            "backward_trunk": TrunkCell(self.backward_resblocks, c),
            "forward_trunk": TrunkCell(self.forward_resblocks, c),
            "upsample": UpsampleCell(self, ("backward", "forward"), c, self.fusion),
        }

    @staticmethod
    def infer_config(sd: dict) -> dict:
        w = sd["backward_resblocks.main.0.weight"]
        return {"mid_channels": w.shape[0], "num_blocks": count_blocks(sd, "backward_resblocks.main.2.")}

    @staticmethod
    def detect(keys) -> bool:
        return "fusion.weight" in keys and any(k.startswith("backward_resblocks.") for k in keys)


def count_blocks(sd: dict, prefix: str) -> int:
    idx = {int(k[len(prefix):].split(".")[0]) for k in sd if k.startswith(prefix)}
    return max(idx) + 1 if idx else 0
