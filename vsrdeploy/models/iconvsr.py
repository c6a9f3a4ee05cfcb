"""IconVSR (mmagic ``IconVSRNet``): BasicVSR + EDVR keyframe refill + spatial padding."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .base import RecurrentVSR
from .basicvsr import FlowCell, TrunkCell, UpsampleCell, WarpCell, count_blocks
from .blocks import ResidualBlocksWithInputConv, add_reconstruction_tail
from .cells import Cell, Port
from .edvr import EDVRFeatureExtractor
from .registry import register_model
from .schedules.iconvsr import IconVSRSchedule
from .spynet import SPyNet


class EDVRPyramidCell(Cell):
    """EDVR's feature pyramid of one frame: full, 1/2 and 1/4 size (each frame once, however many keyframe
    windows it is in)."""

    def __init__(self, edvr: EDVRFeatureExtractor):
        super().__init__()
        self.edvr = edvr
        c = edvr.mid_channels
        self.inputs = (Port("frame", (3,)),)
        self.outputs = (Port("l1", (c,)), Port("l2", (c,), 0.5), Port("l3", (c,), 0.25))

    def forward(self, frame):
        return self.edvr.pyramid(frame)


class EDVRAlignCell(Cell):
    """PCD alignment of one neighbour's pyramid onto the keyframe's: neighbours go on the batch axis, so a
    call holds as many deformable alignments as the byte budget allows (one call over all five held
    ~1.2 GB on openvino-cpu at 180x320 LR: benchmarks/RESULTS.md, "One call per cell")."""

    def __init__(self, edvr: EDVRFeatureExtractor):
        super().__init__()
        self.pcd = edvr.pcd_alignment
        c = edvr.mid_channels
        levels = (("l1", 1.0), ("l2", 0.5), ("l3", 0.25))
        self.inputs = tuple(Port(f"{side}_{name}", (c,), scale) for side in ("nbr", "ref") for name, scale in levels)
        self.outputs = (Port("aligned", (c,)),)

    def forward(self, nbr_l1, nbr_l2, nbr_l3, ref_l1, ref_l2, ref_l3):
        return (self.pcd([nbr_l1, nbr_l2, nbr_l3], [ref_l1, ref_l2, ref_l3]),)


class EDVRFusionCell(Cell):
    """TSA fusion of a keyframe's aligned neighbours (T, c) into its refill feature."""

    def __init__(self, edvr: EDVRFeatureExtractor, num_frames: int):
        super().__init__()
        self.fusion = edvr.fusion
        self.inputs = (Port("aligned", (num_frames, edvr.mid_channels)),)
        self.outputs = (Port("refill", (edvr.mid_channels,)),)

    def forward(self, aligned):
        return (self.fusion(aligned),)


class FusionCell(Cell):
    """Keyframe refill: ``feat_out = conv(cat([feat_in, refill]))`` (no activation)."""

    stateless = False

    def __init__(self, conv: nn.Conv2d, channels: int, refill_channels: int):
        super().__init__()
        self.conv = conv
        self.inputs = (Port("feat_in", (channels,)), Port("refill", (refill_channels,)))
        self.outputs = (Port("feat_out", (channels,)),)

    def forward(self, feat_in, refill):
        return (self.conv(torch.cat([feat_in, refill], dim=1)),)


@register_model("iconvsr")
class IconVSRNet(RecurrentVSR):
    """IconVSR (Chan et al., CVPR 2021). Upstream configs: c64 n30 stride 5, padding 2 (REDS) / 3 (Vimeo-90K).

    ``keyframe_stride`` cannot be read from a checkpoint: upstream uses 5 for every released model.
    """

    default_config = {"mid_channels": 64, "num_blocks": 30, "keyframe_stride": 5, "padding": 2}
    upstream_configs = {
        "REDS4": {"mid_channels": 64, "num_blocks": 30, "keyframe_stride": 5, "padding": 2},
        "Vimeo-90K BI / BD": {"mid_channels": 64, "num_blocks": 30, "keyframe_stride": 5, "padding": 3},
    }
    schedule_class = IconVSRSchedule
    config_limits = {"keyframe_stride": (1, 1024), "padding": (2, 3)}
    min_size = 16
    pad_multiple = 4

    def __init__(self, mid_channels: int = 64, num_blocks: int = 30, keyframe_stride: int = 5, padding: int = 2):
        super().__init__()
        if padding not in (2, 3):
            raise ConfigError(f"iconvsr padding must be 2 or 3 (upstream's temporal padding), got {padding}")
        if keyframe_stride < 1:
            raise ConfigError(f"keyframe_stride must be >= 1, got {keyframe_stride}")
        self.mid_channels, self.num_blocks = mid_channels, num_blocks
        self.keyframe_stride, self.padding = keyframe_stride, padding
        self.spynet = SPyNet()
        # EDVR's width follows mid_channels (BasicSR); mmagic fixes it at 64, which only runs with mid_channels=64
        self.edvr = EDVRFeatureExtractor(num_frames=2 * padding + 1, center_frame_idx=padding,
                                         mid_channels=mid_channels)
        self.backward_fusion = nn.Conv2d(2 * mid_channels, mid_channels, 3, 1, 1)
        self.forward_fusion = nn.Conv2d(2 * mid_channels, mid_channels, 3, 1, 1)
        self.backward_resblocks = ResidualBlocksWithInputConv(mid_channels + 3, mid_channels, num_blocks)
        self.forward_resblocks = ResidualBlocksWithInputConv(2 * mid_channels + 3, mid_channels, num_blocks)
        add_reconstruction_tail(self, mid_channels)

    @property
    def min_frames(self) -> int:
        return 2 * self.padding + 1

    def config(self) -> dict:
        return {"mid_channels": self.mid_channels, "num_blocks": self.num_blocks,
                "keyframe_stride": self.keyframe_stride, "padding": self.padding}

    def build_cells(self) -> dict[str, Cell]:
        c, e = self.mid_channels, self.edvr.mid_channels
        return {
            "flow": FlowCell(self.spynet),
            "edvr_pyramid": EDVRPyramidCell(self.edvr),
            "edvr_align": EDVRAlignCell(self.edvr),
            "edvr_fusion": EDVRFusionCell(self.edvr, 2 * self.padding + 1),
            "warp": WarpCell(c),
            "backward_fusion": FusionCell(self.backward_fusion, c, e),
            "forward_fusion": FusionCell(self.forward_fusion, c, e),
            "backward_trunk": TrunkCell(self.backward_resblocks, c),
            "forward_trunk": TrunkCell(self.forward_resblocks, c, extra=("backward",)),
            "upsample": UpsampleCell(self, ("forward",), c),
        }

    @staticmethod
    def infer_config(sd: dict) -> dict:
        num_frames = sd["edvr.fusion.feat_fusion.conv.weight"].shape[1] // sd["edvr.conv_first.weight"].shape[0]
        return {"mid_channels": sd["backward_resblocks.main.0.weight"].shape[0],
                "num_blocks": count_blocks(sd, "backward_resblocks.main.2."),
                "padding": (num_frames - 1) // 2}

    @staticmethod
    def detect(keys) -> bool:
        return any(k.startswith("edvr.") for k in keys) and any(k.startswith("forward_fusion.") for k in keys)
