"""IconVSR (mmagic ``IconVSRNet``): BasicVSR + EDVR keyframe refill + spatial padding."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError, InputError
from .base import RecurrentVSR
from .basicvsr import BidirectionalSchedule, FlowCell, TrunkCell, UpsampleCell, WarpCell, count_blocks
from .blocks import ResidualBlocksWithInputConv, add_reconstruction_tail
from .cells import Cell, Port
from .edvr import EDVRFeatureExtractor
from .registry import register_model
from .schedule import WindowContext
from .spill import HeldFeatures
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
        pyramids: dict[int, dict[str, torch.Tensor]] = {}  # source frame -> its pyramid, while a key needs it
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
                    aligned = out.new_empty((out.shape[0], len(sources), *out.shape[1:]))
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
