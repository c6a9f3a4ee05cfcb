"""Building blocks shared by the networks (names follow mmagic so its state dicts load as they are)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, negative_slope=0.1)


class ConvAct(nn.Module):
    """mmcv ``ConvModule`` without norm: a conv called ``conv`` and an optional activation."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0,
                 act: str | None = "lrelu"):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding)
        self.act = act

    def forward(self, x):
        x = self.conv(x)
        if self.act == "lrelu":
            return lrelu(x)
        if self.act == "relu":
            return F.relu(x)
        return x


class ResidualBlockNoBN(nn.Module):
    def __init__(self, mid_channels: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(mid_channels, mid_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(mid_channels, mid_channels, 3, 1, 1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x)))


class _LeakyReLU(nn.Module):
    def forward(self, x):
        return lrelu(x)


class ResidualBlocksWithInputConv(nn.Module):
    """Conv(in -> out) + LeakyReLU + ``num_blocks`` residual blocks (BasicSR: ``ConvResidualBlocks``)."""

    def __init__(self, in_channels: int, out_channels: int = 64, num_blocks: int = 30):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, 1, 1),
            _LeakyReLU(),
            nn.Sequential(*[ResidualBlockNoBN(out_channels) for _ in range(num_blocks)]),
        )

    def forward(self, x):
        return self.main(x)


class PixelShufflePack(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, scale: int = 2, kernel: int = 3):
        super().__init__()
        self.scale = scale
        self.upsample_conv = nn.Conv2d(in_channels, out_channels * scale * scale, kernel,
                                       padding=(kernel - 1) // 2)

    def forward(self, x):
        return F.pixel_shuffle(self.upsample_conv(x), self.scale)


def add_reconstruction_tail(net: nn.Module, mid_channels: int) -> None:
    """Give ``net`` the x4 tail of the BasicVSR family: upsample1/2, conv_hr, conv_last (mmagic names)."""
    net.upsample1 = PixelShufflePack(mid_channels, mid_channels, 2, 3)
    net.upsample2 = PixelShufflePack(mid_channels, 64, 2, 3)
    net.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
    net.conv_last = nn.Conv2d(64, 3, 3, 1, 1)


class ReconstructionTail(nn.Module):
    """Refers to a network's x4 tail modules (they stay registered on the network)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.upsample1, self.upsample2 = net.upsample1, net.upsample2
        self.conv_hr, self.conv_last = net.conv_hr, net.conv_last

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        out = lrelu(self.upsample1(feat))
        out = lrelu(self.upsample2(out))
        out = lrelu(self.conv_hr(out))
        return self.conv_last(out)


def upsample_x4(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=4.0, mode="bilinear", align_corners=False)


def base_grid(x: torch.Tensor) -> torch.Tensor:
    """Pixel coordinates (1, 2, h, w) of ``x``'s grid, x first, in ``x``'s dtype/device.

    Built from ``x``'s runtime shape (cumsum of ones) so exported graphs stay size-agnostic.
    """
    ones = torch.ones_like(x[:1, :1])
    gx = torch.cumsum(ones, dim=3) - 1
    gy = torch.cumsum(ones, dim=2) - 1
    return torch.cat([gx, gy], dim=1)


def grid_extent(grid: torch.Tensor) -> torch.Tensor:
    """``max(w - 1, 1), max(h - 1, 1)`` of a :func:`base_grid` as a (1, 2, 1, 1) tensor (no Python ints,
    so traced graphs do not bake the frame size in)."""
    return torch.clamp(grid[:, :, -1:, -1:], min=1.0)


def flow_warp(x: torch.Tensor, flow: torch.Tensor, padding_mode: str = "zeros",
              mode: str = "bilinear") -> torch.Tensor:
    """Warp ``x`` (n, c, h, w) with ``flow`` (n, 2, h, w), channel 0 = dx, 1 = dy, in pixels.

    Output pixel (y, x) = ``x`` sampled at (x + dx, y + dy), align_corners=True (mmagic ``flow_warp``).
    """
    grid = base_grid(flow)
    g = 2.0 * (grid + flow) / grid_extent(grid) - 1.0
    return F.grid_sample(x, g.permute(0, 2, 3, 1), mode=mode, padding_mode=padding_mode, align_corners=True)
