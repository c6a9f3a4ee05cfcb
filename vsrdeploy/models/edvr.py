"""EDVR feature extractor with PCD alignment and TSA fusion (IconVSR's refill module; mmagic names)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConvAct, ResidualBlockNoBN, lrelu
from .dcn import ModulatedDCNPack


#: row strips of the full-resolution deformable convs in decomposed and native exports (``ModulatedDCNPack``)
EXPORT_ROW_STRIPS = 4


def _up2(x):
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class PCDAlignment(nn.Module):
    def __init__(self, mid_channels: int = 64, deform_groups: int = 8):
        super().__init__()
        c = mid_channels
        self.offset_conv1 = nn.ModuleDict()
        self.offset_conv2 = nn.ModuleDict()
        self.offset_conv3 = nn.ModuleDict()
        self.dcn_pack = nn.ModuleDict()
        self.feat_conv = nn.ModuleDict()
        for i in range(3, 0, -1):
            level = f"l{i}"
            self.offset_conv1[level] = ConvAct(2 * c, c, 3, 1, 1)
            if i == 3:
                self.offset_conv2[level] = ConvAct(c, c, 3, 1, 1)
            else:
                self.offset_conv2[level] = ConvAct(2 * c, c, 3, 1, 1)
                self.offset_conv3[level] = ConvAct(c, c, 3, 1, 1)
            self.dcn_pack[level] = ModulatedDCNPack(c, c, 3, padding=1, deform_groups=deform_groups)
            if i < 3:
                self.feat_conv[level] = ConvAct(2 * c, c, 3, 1, 1, act="lrelu" if i == 2 else None)
        self.cas_offset_conv1 = ConvAct(2 * c, c, 3, 1, 1)
        self.cas_offset_conv2 = ConvAct(c, c, 3, 1, 1)
        self.cas_dcnpack = ModulatedDCNPack(c, c, 3, padding=1, deform_groups=deform_groups)
        # the full-resolution packs run in row strips in decomposed and native exports (benchmarks/RESULTS.md, "What
        # a call holds beside it, and IconVSR's alignment in row strips"); the coarser levels are 1/4 and 1/16
        for pack in (self.dcn_pack["l1"], self.cas_dcnpack):
            pack.export_row_strips = EXPORT_ROW_STRIPS

    def forward(self, nbr: list[torch.Tensor], ref: list[torch.Tensor]) -> torch.Tensor:
        up_offset = up_feat = None
        for i in range(3, 0, -1):
            level = f"l{i}"
            offset = self.offset_conv1[level](torch.cat([nbr[i - 1], ref[i - 1]], dim=1))
            if i == 3:
                offset = self.offset_conv2[level](offset)
            else:
                offset = self.offset_conv2[level](torch.cat([offset, up_offset], dim=1))
                offset = self.offset_conv3[level](offset)
            feat = self.dcn_pack[level](nbr[i - 1], offset)
            if i == 3:
                feat = lrelu(feat)
            else:
                feat = self.feat_conv[level](torch.cat([feat, up_feat], dim=1))
            if i > 1:
                up_offset = _up2(offset) * 2
                up_feat = _up2(feat)
        offset = self.cas_offset_conv2(self.cas_offset_conv1(torch.cat([feat, ref[0]], dim=1)))
        return lrelu(self.cas_dcnpack(feat, offset))


class TSAFusion(nn.Module):
    def __init__(self, mid_channels: int = 64, num_frames: int = 5, center_frame_idx: int = 2):
        super().__init__()
        c = mid_channels
        self.center_frame_idx = center_frame_idx
        self.temporal_attn1 = nn.Conv2d(c, c, 3, 1, 1)
        self.temporal_attn2 = nn.Conv2d(c, c, 3, 1, 1)
        self.feat_fusion = ConvAct(num_frames * c, c, 1)
        self.spatial_attn1 = ConvAct(num_frames * c, c, 1)
        self.spatial_attn2 = ConvAct(2 * c, c, 1)
        self.spatial_attn3 = ConvAct(c, c, 3, 1, 1)
        self.spatial_attn4 = ConvAct(c, c, 1)
        self.spatial_attn5 = nn.Conv2d(c, c, 3, 1, 1)
        self.spatial_attn_l1 = ConvAct(c, c, 1)
        self.spatial_attn_l2 = ConvAct(2 * c, c, 3, 1, 1)
        self.spatial_attn_l3 = ConvAct(c, c, 3, 1, 1)
        self.spatial_attn_add1 = ConvAct(c, c, 1)
        self.spatial_attn_add2 = nn.Conv2d(c, c, 1)

    @staticmethod
    def _pool(x):
        return torch.cat([F.max_pool2d(x, 3, 2, 1), F.avg_pool2d(x, 3, 2, 1)], dim=1)

    def forward(self, aligned: torch.Tensor) -> torch.Tensor:
        n, t, c, h, w = aligned.shape
        # the frames as one 4-D batch first, the centre frames sliced from it: with the centre frame gathered
        # from the 5-D input, OpenVINO ran both temporal-attention convs of an INT8 bundle in float (0.3.17)
        frames = aligned.reshape(n * t, c, h, w)
        emb_ref = self.temporal_attn1(frames[self.center_frame_idx::t])
        emb = self.temporal_attn2(frames).view(n, t, c, h, w)
        corr = torch.sigmoid(torch.sum(emb * emb_ref.unsqueeze(1), dim=2))  # (n, t, h, w)
        aligned = (frames.view(n, t, c, h, w) * corr.unsqueeze(2)).reshape(n, t * c, h, w)
        feat = self.feat_fusion(aligned)
        attn = self.spatial_attn1(aligned)
        attn = self.spatial_attn2(self._pool(attn))
        attn_level = self.spatial_attn_l1(attn)
        attn_level = self.spatial_attn_l2(self._pool(attn_level))
        attn_level = _up2(self.spatial_attn_l3(attn_level))
        attn = self.spatial_attn3(attn) + attn_level
        attn = _up2(self.spatial_attn4(attn))
        attn = self.spatial_attn5(attn)
        attn_add = self.spatial_attn_add2(self.spatial_attn_add1(attn))
        attn = torch.sigmoid(attn)
        return feat * attn * 2 + attn_add


class EDVRFeatureExtractor(nn.Module):
    """Frames (n, T, 3, h, w), h and w multiples of 4 -> fused feature of the centre frame (n, 64, h, w)."""

    def __init__(self, num_frames: int = 5, center_frame_idx: int = 2, mid_channels: int = 64,
                 deform_groups: int = 8, num_blocks_extraction: int = 5):
        super().__init__()
        c = mid_channels
        self.mid_channels = c
        self.center_frame_idx = center_frame_idx
        self.conv_first = nn.Conv2d(3, c, 3, 1, 1)
        self.feature_extraction = nn.Sequential(*[ResidualBlockNoBN(c) for _ in range(num_blocks_extraction)])
        self.feat_l2_conv1 = ConvAct(c, c, 3, 2, 1)
        self.feat_l2_conv2 = ConvAct(c, c, 3, 1, 1)
        self.feat_l3_conv1 = ConvAct(c, c, 3, 2, 1)
        self.feat_l3_conv2 = ConvAct(c, c, 3, 1, 1)
        self.pcd_alignment = PCDAlignment(c, deform_groups)
        self.fusion = TSAFusion(c, num_frames, center_frame_idx)

    def pyramid(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frames (N, 3, h, w) -> features at full, 1/2 and 1/4 size, (N, c, h, w), (N, c, h/2, w/2), ..."""
        l1 = self.feature_extraction(lrelu(self.conv_first(frames)))
        l2 = self.feat_l2_conv2(self.feat_l2_conv1(l1))
        l3 = self.feat_l3_conv2(self.feat_l3_conv1(l2))
        return l1, l2, l3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, _, h, w = x.shape
        levels = [lv.view(n, t, *lv.shape[1:]) for lv in self.pyramid(x.reshape(-1, 3, h, w))]
        k = self.center_frame_idx
        ref = [lv[:, k] for lv in levels]
        aligned = torch.stack([self.pcd_alignment([lv[:, i] for lv in levels], ref) for i in range(t)], dim=1)
        return self.fusion(aligned)
