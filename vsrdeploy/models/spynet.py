"""SPyNet optical flow (mmagic ``SPyNet``), written so one export serves every frame size."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConvAct, base_grid, flow_warp, grid_extent


class SPyNetBasicModule(nn.Module):
    def __init__(self):
        super().__init__()
        self.basic_module = nn.Sequential(
            ConvAct(8, 32, 7, 1, 3, act="relu"),
            ConvAct(32, 64, 7, 1, 3, act="relu"),
            ConvAct(64, 32, 7, 1, 3, act="relu"),
            ConvAct(32, 16, 7, 1, 3, act="relu"),
            ConvAct(16, 2, 7, 1, 3, act=None),
        )

    def forward(self, x):
        return self.basic_module(x)


class SPyNet(nn.Module):
    """``flow = spynet(ref, supp)`` is the flow with ``flow_warp(supp, flow) ~= ref``.

    Inputs (n, 3, h, w) RGB in [0, 1], any h and w; output (n, 2, h, w), channel 0 = dx.
    """

    levels = 6

    def __init__(self):
        super().__init__()
        self.basic_module = nn.ModuleList([SPyNetBasicModule() for _ in range(self.levels)])
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def compute_flow(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        ref = [(ref - self.mean) / self.std]
        supp = [(supp - self.mean) / self.std]
        for _ in range(self.levels - 1):
            ref.append(F.avg_pool2d(ref[-1], kernel_size=2, stride=2, count_include_pad=False))
            supp.append(F.avg_pool2d(supp[-1], kernel_size=2, stride=2, count_include_pad=False))
        ref, supp = ref[::-1], supp[::-1]
        flow = torch.zeros_like(ref[0][:, :2])
        for level in range(self.levels):
            if level == 0:
                flow_up = flow
            else:
                flow_up = F.interpolate(flow, scale_factor=2.0, mode="bilinear", align_corners=True) * 2.0
            warped = flow_warp(supp[level], flow_up, padding_mode="border")
            flow = flow_up + self.basic_module[level](torch.cat([ref[level], warped, flow_up], dim=1))
        return flow

    def forward(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        h, w = ref.shape[-2:]
        h_up = (h + 31) // 32 * 32
        w_up = (w + 31) // 32 * 32
        ref = F.interpolate(ref, size=(h_up, w_up), mode="bilinear", align_corners=False)
        supp = F.interpolate(supp, size=(h_up, w_up), mode="bilinear", align_corners=False)
        flow = F.interpolate(self.compute_flow(ref, supp), size=(h, w), mode="bilinear",
                             align_corners=False)
        # w / w_up and h / h_up from tensors, so a traced graph serves every frame size
        size = grid_extent(base_grid(flow)) + 1.0
        size_up = grid_extent(base_grid(ref)) + 1.0
        return flow * (size / size_up)
