"""PSRT-recurrent (``BasicRecurrentSwin``, "Rethinking Alignment in Video Super-Resolution Transformers").

The BasicVSR++ propagation skeleton with *patch alignment* (flows averaged over 8x8 patches, nearest
sampling) and a Swin-style window-attention module (``SwinIRFM``) per branch instead of deformable
alignment + residual blocks. Branches are chained (each reads the previous branch's output), there is
no residual around them, and only ``forward_2`` is reconstructed. Key names follow BasicSR (``upconv1``
/ ``upconv2`` are renamed to mmagic's ``upsample1/2.upsample_conv`` on load, as for every network here).
Every size-dependent quantity (padding, shifted-window masks) is computed from tensors, so one ONNX
export serves every frame size.
"""
from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from .base import RecurrentVSR
from .basicvsr_pp import BRANCHES, ComposeFlowCell, FeatExtractCell, PPFlowCell
from .blocks import ReconstructionTail, add_reconstruction_tail, base_grid, grid_extent, upsample_x4
from .cells import Cell, Port
from .registry import register_model
from .schedules.psrt import PSRTSchedule
from .spynet import SPyNet

PATCH = 8


def flow_warp_avg_patch(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Patch alignment: one flow per 8x8 patch (average, reflect-padded), nearest-neighbour sampling."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (PATCH - h % PATCH) % PATCH, (PATCH - w % PATCH) % PATCH
    flow = F.pad(flow, (0, pad_w, 0, pad_h), mode="reflect")
    flow = F.interpolate(F.avg_pool2d(flow, PATCH), scale_factor=float(PATCH), mode="nearest")
    g = (base_grid(flow) + flow)[:, :, :h, :w]
    g = 2.0 * g / grid_extent(base_grid(x)) - 1.0
    return F.grid_sample(x.float(), g.permute(0, 2, 3, 1), mode="nearest", padding_mode="zeros", align_corners=True)


def window_partition(x: torch.Tensor, ws: tuple[int, int, int]) -> torch.Tensor:
    """(B, D, H, W, C) -> (B * windows, wd * wh * ww, C)."""
    b, d, h, w, c = x.shape
    x = x.view(b, d // ws[0], ws[0], h // ws[1], ws[1], w // ws[2], ws[2], c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, ws[0] * ws[1] * ws[2], c)


def window_reverse(windows: torch.Tensor, ws, b: int, d: int, h: int, w: int) -> torch.Tensor:
    x = windows.view(b, d // ws[0], h // ws[1], w // ws[2], ws[0], ws[1], ws[2], -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, d, h, w, -1)


def _region_ids(length_like: torch.Tensor, dim: int, window: int, shift: int) -> torch.Tensor:
    """Swin's shifted-window regions along one axis: 0 before ``-window``, 1 up to ``-shift``, 2 after."""
    pos = torch.cumsum(torch.ones_like(length_like), dim=dim) - 1
    n = pos.amax(dim=dim, keepdim=True) + 1  # the axis length, as a tensor (size-agnostic when traced)
    return (pos >= n - window).to(pos.dtype) + (pos >= n - shift).to(pos.dtype)


def shifted_window_mask(xp: torch.Tensor, ws, shift) -> torch.Tensor:
    """Attention mask (windows, N, N): 0 within a region, -100 across regions (Swin ``compute_mask``).

    ``xp`` is the padded, un-rolled input (B, D, H, W, C); only its shape is used.
    """
    probe = xp[:1, :, :, :, :1]  # (1, D, H, W, 1)
    ids = torch.zeros_like(probe)
    for dim, (win, sh) in enumerate(zip(ws, shift), start=1):
        if sh:
            ids = ids * 3 + _region_ids(probe, dim, win, sh)
    windows = window_partition(ids, ws).squeeze(-1)  # (nW, N)
    diff = windows.unsqueeze(1) - windows.unsqueeze(2)
    return torch.where(diff != 0, torch.full_like(diff, -100.0), torch.zeros_like(diff))


class WindowAttention3D(nn.Module):
    def __init__(self, dim: int, window_size, num_heads: int):
        super().__init__()
        self.dim, self.window_size, self.num_heads = dim, tuple(window_size), num_heads
        self.scale = (dim // num_heads) ** -0.5
        wd, wh, ww = self.window_size
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * wd - 1) * (2 * wh - 1) * (2 * ww - 1), num_heads))
        coords = torch.stack(torch.meshgrid(torch.arange(wd), torch.arange(wh), torch.arange(ww), indexing="ij"))
        coords = coords.flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
        rel = rel + torch.tensor([wd - 1, wh - 1, ww - 1])
        index = rel[..., 0] * (2 * wh - 1) * (2 * ww - 1) + rel[..., 1] * (2 * ww - 1) + rel[..., 2]
        self.register_buffer("relative_position_index", index)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b_, n, c = x.shape
        qkv = self.qkv(x).reshape(b_, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)].reshape(n, n, -1)
        attn = attn + bias.permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(-1, nw, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, n, n)
        attn = torch.softmax(attn, dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b_, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class SwinTransformerBlock3D(nn.Module):
    def __init__(self, dim: int, num_heads: int, window_size, shift_size, mlp_ratio: float = 2.0):
        super().__init__()
        self.window_size, self.shift_size = tuple(window_size), tuple(shift_size)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention3D(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D, H, W, C)
        b, d, h, w, c = x.shape
        ws, shift = self.window_size, self.shift_size
        shortcut = x
        x = self.norm1(x)
        pd, ph, pw = (ws[0] - d % ws[0]) % ws[0], (ws[1] - h % ws[1]) % ws[1], (ws[2] - w % ws[2]) % ws[2]
        x = F.pad(x, (0, 0, 0, pw, 0, ph, 0, pd))
        _, dp, hp, wp, _ = x.shape
        mask = None
        if any(shift):
            mask = shifted_window_mask(x, ws, shift)
            x = torch.roll(x, shifts=(-shift[0], -shift[1], -shift[2]), dims=(1, 2, 3))
        x = window_reverse(self.attn(window_partition(x, ws), mask), ws, b, dp, hp, wp)
        if any(shift):
            x = torch.roll(x, shifts=shift, dims=(1, 2, 3))
        x = x[:, :d, :h, :w, :]
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class ResidualGroup(nn.Module):
    def __init__(self, dim, depth, num_heads, window_size):
        super().__init__()
        shift = tuple(s // 2 if i else 0 for i, s in enumerate(window_size))
        shift = (window_size[0],) + shift[1:]  # upstream: temporal shift = window (a no-op for 3 frames)
        self.blocks = nn.ModuleList([
            SwinTransformerBlock3D(dim, num_heads, window_size, (0, 0, 0) if i % 2 == 0 else shift)
            for i in range(depth)])


class RSTB3D(nn.Module):
    """Residual Swin group: blocks, a per-frame 3x3 conv, and a skip connection."""

    def __init__(self, dim, depth, num_heads, window_size):
        super().__init__()
        self.residual_group = ResidualGroup(dim, depth, num_heads, window_size)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (n, t, h, w, C)
        y = x
        for blk in self.residual_group.blocks:
            y = blk(y)
        n, t, h, w, c = y.shape
        y = self.conv(y.permute(0, 1, 4, 2, 3).reshape(n * t, c, h, w))
        return y.view(n, t, c, h, w).permute(0, 1, 3, 4, 2) + x


class PatchEmbedNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(dim)


class SwinIRFM(nn.Module):
    """PSRT's alignment module: (n, 3, C, h, w) [aligned n-1, current, aligned n-2] -> (n, C, h, w)."""

    def __init__(self, embed_dim, depths, num_heads, window_size, mid_channels=64):
        super().__init__()
        # upstream also builds conv_first, conv_first_feat and conv_before_upsample here, which never run
        # on embed_dim-channel input: their checkpoint entries are reported as unused and not loaded
        self.patch_embed = PatchEmbedNorm(embed_dim)
        self.layers = nn.ModuleList([RSTB3D(embed_dim, d, h, window_size) for d, h in zip(depths, num_heads)])
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        center = x[:, t // 2]
        f = self.patch_embed.norm(x.permute(0, 1, 3, 4, 2))  # (n, t, h, w, C)
        for layer in self.layers:
            f = layer(f)
        f = self.norm(f)
        return self.conv_after_body(f[:, t // 2].permute(0, 3, 1, 2)) + center


class PatchAlignStepCell(Cell):
    """One PSRT step of a branch: patch-align the two previous outputs, then the Swin module.

    The first step of a branch (upstream: the current feature three times) is this cell with
    ``feat_prop = feat_n2 = current`` and zero flows (patch alignment with zero flow is the identity).
    """

    stateless = False

    def __init__(self, module: SwinIRFM, c: int):
        super().__init__()
        self.module = module
        self.inputs = (Port("feat_prop", (c,)), Port("feat_n2", (c,)), Port("current", (c,)),
                       Port("flow_n1", (2,)), Port("flow_n2", (2,)))
        self.outputs = (Port("feat_out", (c,)),)

    def forward(self, feat_prop, feat_n2, current, flow_n1, flow_n2):
        cond_n1 = flow_warp_avg_patch(feat_prop, flow_n1)
        cond_n2 = flow_warp_avg_patch(feat_n2, flow_n2)
        return (self.module(torch.stack([cond_n1, current, cond_n2], dim=1)),)


class PSRTReconstructCell(Cell):
    # 3x3 conv (1 LR row) + x4 tail (2 rows); the bilinear x4 of the LR frame beside it needs 1
    halo = 3

    def __init__(self, net: "PSRTRecurrentNet"):
        super().__init__()
        self.conv_before_upsample = net.conv_before_upsample
        self.tail = ReconstructionTail(net)
        self.inputs = (Port("lr", (3,)), Port("forward_2", (net.embed_dim,)))
        self.outputs = (Port("hr", (3,), 4),)

    def forward(self, lr, feat):
        return (self.tail(self.conv_before_upsample(feat)) + upsample_x4(lr),)


@register_model("psrt_recurrent")
class PSRTRecurrentNet(RecurrentVSR):
    """PSRT-recurrent (Shi et al., NeurIPS 2022). Released: mid 64, embed 120, depths [6,6,6], heads [6,6,6]."""

    default_config = {"mid_channels": 64, "embed_dim": 120, "depths": [6, 6, 6], "num_heads": [6, 6, 6],
                      "window_size": [3, 8, 8], "num_frames": 3}
    upstream_configs = {"REDS / Vimeo-90K (released)": {"mid_channels": 64, "embed_dim": 120, "depths": [6, 6, 6],
                                                        "num_heads": [6, 6, 6], "window_size": [3, 8, 8],
                                                        "num_frames": 3}}
    schedule_class = PSRTSchedule
    config_limits = {"embed_dim": (1, 1024), "depths": (1, 64), "num_heads": (1, 64), "window_size": (1, 64),
                     "num_frames": (1, 64)}
    min_size = 64
    #: weights upstream builds but never uses (SwinIRFM's image / 64-channel entries and its own tail)
    unused_checkpoint_keys = re.compile(r"^patch_align\.\w+\.(conv_first|conv_first_feat|conv_before_upsample)\.")

    def __init__(self, mid_channels=64, embed_dim=120, depths=(6, 6, 6), num_heads=(6, 6, 6), window_size=(3, 8, 8),
                 num_frames=3):
        super().__init__()
        from ..errors import ConfigError
        if list(window_size)[0] != num_frames or num_frames != 3:
            raise ConfigError("psrt_recurrent aligns 3 frames (n-1, n, n-2): num_frames and the temporal window "
                              f"must be 3, got num_frames={num_frames}, window_size={list(window_size)}")
        if len(depths) != len(num_heads):
            raise ConfigError(f"depths {list(depths)} and num_heads {list(num_heads)} must have the same length")
        self.mid_channels, self.embed_dim = mid_channels, embed_dim
        self.depths, self.num_heads = list(depths), list(num_heads)
        self.window_size, self.num_frames = list(window_size), num_frames
        self.spynet = SPyNet()
        self.conv_first = nn.Conv2d(3, embed_dim, 3, 1, 1)
        self.patch_align = nn.ModuleDict({
            name: SwinIRFM(embed_dim, self.depths, self.num_heads, self.window_size, mid_channels)
            for name in BRANCHES})
        self.conv_before_upsample = nn.Conv2d(embed_dim, mid_channels, 3, 1, 1)
        add_reconstruction_tail(self, mid_channels)

    def config(self) -> dict:
        return {"mid_channels": self.mid_channels, "embed_dim": self.embed_dim, "depths": self.depths,
                "num_heads": self.num_heads, "window_size": self.window_size, "num_frames": self.num_frames}

    def build_cells(self) -> dict[str, Cell]:
        c = self.embed_dim
        cells: dict[str, Cell] = {"flow": PPFlowCell(self.spynet, True), "compose_flow": ComposeFlowCell(1.0),
                                  "feat_extract": FeatExtractCell(self.conv_first, c, 1.0)}
        for name in BRANCHES:
            cells[f"{name}_step"] = PatchAlignStepCell(self.patch_align[name], c)
        cells["reconstruct"] = PSRTReconstructCell(self)
        return cells

    @staticmethod
    def infer_config(sd: dict) -> dict:
        prefix = "patch_align.backward_1.layers."
        layers = sorted({int(k[len(prefix):].split(".")[0]) for k in sd if k.startswith(prefix)})
        depths, heads = [], []
        for i in layers:
            bp = f"{prefix}{i}.residual_group.blocks."
            blocks = {int(k[len(bp):].split(".")[0]) for k in sd if k.startswith(bp)}
            depths.append(len(blocks))
            heads.append(sd[f"{bp}0.attn.relative_position_bias_table"].shape[1])
        return {"mid_channels": sd["conv_before_upsample.weight"].shape[0],
                "embed_dim": sd["conv_first.weight"].shape[0], "depths": depths, "num_heads": heads}

    @staticmethod
    def detect(keys) -> bool:
        return any(k.startswith("patch_align.") for k in keys)
