"""PSRT-recurrent: dead weights, released size, shifted-window masks, dynamic-shape export."""
import numpy as np
import pytest
import torch

import vsrdeploy
from vsrdeploy.checkpoint import load_checkpoint_with_info
from vsrdeploy.models.psrt import shifted_window_mask, window_partition


def test_released_config_parameter_count():
    net = vsrdeploy.build_model("psrt_recurrent")
    live = sum(p.numel() for p in net.parameters())
    dead_per_branch = (120 * 3 * 9 + 120) + (120 * 64 * 9 + 120) + (64 * 120 * 9 + 64)
    assert live + 4 * dead_per_branch == 13_366_943  # ARCHITECTURES.md, upstream incl. unused weights


def test_dead_weights_are_tolerated_and_named(vectors):
    model, info = load_checkpoint_with_info(vectors / "psrt_e24d1x2.basicsr.pth")
    assert info.arch == "psrt_recurrent" and info.config["depths"] == [1, 1] and info.config["embed_dim"] == 24
    assert len(info.ignored_keys) == 24
    assert "patch_align.forward_2.conv_first_feat.weight" in info.ignored_keys


def _swin_mask_by_slices(dp, hp, wp, ws, shift):
    """Swin's compute_mask as upstream writes it: label regions with slices, partition, compare."""
    img = torch.zeros(1, dp, hp, wp, 1)
    cnt = 0
    for d in (slice(-ws[0]), slice(-ws[0], -shift[0]), slice(-shift[0], None)):
        for h in (slice(-ws[1]), slice(-ws[1], -shift[1]), slice(-shift[1], None)):
            for w in (slice(-ws[2]), slice(-ws[2], -shift[2]), slice(-shift[2], None)):
                img[:, d, h, w, :] = cnt
                cnt += 1
    win = window_partition(img, ws).squeeze(-1)
    mask = win.unsqueeze(1) - win.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


@pytest.mark.parametrize("hp,wp", [(16, 16), (24, 40), (72, 80)])
def test_shifted_window_mask_matches_swin(hp, wp):
    ws, shift = (3, 8, 8), (3, 4, 4)
    ours = shifted_window_mask(torch.zeros(1, 3, hp, wp, 5), ws, shift)
    assert torch.equal(ours, _swin_mask_by_slices(3, hp, wp, ws, shift))


def test_shifted_windows_export_at_sizes_not_multiple_of_window(tmp_path):
    """depth 2 exercises the shifted block; a bundle must serve 64x64 and 68x75 (not multiples of 8)."""
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net = vsrdeploy.build_model("psrt_recurrent", mid_channels=8, embed_dim=12, depths=[2], num_heads=[2]).eval()
    with torch.no_grad():
        for blk in net.modules():
            if hasattr(blk, "relative_position_bias_table"):
                blk.relative_position_bias_table.normal_(0, 0.5)
    path = vsrdeploy.export_onnx(net, tmp_path / "psrt.vsr")
    up = vsrdeploy.open_bundle(path, backend="ort-cpu")
    for h, w in [(64, 64), (68, 75)]:
        lrs = torch.rand(1, 4, 3, h, w, generator=torch.Generator().manual_seed(h))
        expected = net(lrs)[0].numpy()
        out = up.upscale(lrs[0].numpy(), clamp=False)
        assert out.shape == (4, 3, 4 * h, 4 * w)
        assert np.abs(out - expected).max() <= 1e-4


def test_psrt_windowed_equals_whole_clip():
    torch.manual_seed(0)
    net = vsrdeploy.build_model("psrt_recurrent", mid_channels=8, embed_dim=12, depths=[2], num_heads=[2]).eval()
    lrs = torch.rand(1, 6, 3, 64, 64)
    whole = net(lrs)
    windowed = torch.stack(list(net.stream((lrs[:, i] for i in range(6)), window=2, lookahead=6)), dim=1)
    assert (windowed - whole).abs().max() <= 1e-5


def test_psrt_rejects_other_frame_counts():
    with pytest.raises(vsrdeploy.ConfigError, match="aligns 3 frames"):
        vsrdeploy.build_model("psrt_recurrent", num_frames=5, window_size=[5, 8, 8])
