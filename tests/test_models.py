"""Networks: default parameter counts, windowed schedules, registry."""
import pytest
import torch

import vsrdeploy
from vsrdeploy import build_model
from tests.conftest import random_clip

# ARCHITECTURES.md (upstream default configs)
PARAMS = {"basicvsr": 6_291_311, "iconvsr": 8_694_991, "basicvsr_pp": 7_322_927, "realbasicvsr": 6_294_834}


@pytest.mark.parametrize("arch,count", PARAMS.items())
def test_default_parameter_counts(arch, count):
    model = build_model(arch)
    assert sum(p.numel() for p in model.parameters()) == count


def test_registry_lists_every_network():
    assert set(PARAMS) <= set(vsrdeploy.list_models())


# tiny configs: (arch, config, clip kwargs)
TINY = [
    ("basicvsr", {"mid_channels": 8, "num_blocks": 1}, dict(t=6, h=32, w=36)),
    ("iconvsr", {"mid_channels": 8, "num_blocks": 1, "keyframe_stride": 3, "padding": 2}, dict(t=8, h=30, w=34)),
    ("iconvsr", {"mid_channels": 8, "num_blocks": 1, "keyframe_stride": 2, "padding": 3}, dict(t=9, h=32, w=32)),
    ("basicvsr_pp", {"mid_channels": 8, "num_blocks": 1}, dict(t=6, h=64, w=64)),
    ("basicvsr_pp", {"mid_channels": 8, "num_blocks": 1, "is_low_res_input": False}, dict(t=5, h=256, w=256)),
    ("realbasicvsr", {"mid_channels": 8, "num_propagation_blocks": 1, "num_cleaning_blocks": 1,
                      "dynamic_refine_thres": 5.0}, dict(t=6, h=32, w=32)),
]
IDS = [f"{a}-{i}" for i, (a, _, _) in enumerate(TINY)]


def _tiny(arch, config):
    torch.manual_seed(0)
    model = build_model(arch, **config).eval()
    with torch.no_grad():  # larger random weights so every path matters numerically
        for p in model.parameters():
            p.mul_(1.5)
    return model


@pytest.mark.parametrize("arch,config,clip", TINY, ids=IDS)
def test_windowed_equals_whole_clip_when_lookahead_covers_clip(arch, config, clip):
    model = _tiny(arch, config)
    lrs = random_clip(**clip)
    whole = model(lrs)
    t = lrs.shape[1]
    scale = model.scale
    assert whole.shape == (1, t, 3, clip["h"] * scale, clip["w"] * scale)
    # one window covering the clip
    assert (model(lrs, window=t, lookahead=0) - whole).abs().max() <= 1e-5
    # several windows whose spans all reach the clip end: exact only if forward state is carried exactly
    stats = {}
    outs = list(model.stream((lrs[:, i] for i in range(t)), window=2, lookahead=t, stats=stats))
    windowed = torch.stack(outs, dim=1)
    assert (windowed - whole).abs().max() <= 1e-5


@pytest.mark.parametrize("arch,config,clip", TINY, ids=IDS)
def test_short_lookahead_first_window_sees_a_complete_span(arch, config, clip):
    """The first window with a short lookahead equals the network on the clip cut at window + lookahead."""
    model = _tiny(arch, config)
    lrs = random_clip(**clip)
    window, lookahead = 2, model.schedule().min_span
    out = model(lrs, window=window, lookahead=lookahead)
    assert out.shape[1] == lrs.shape[1]
    cut = model(lrs[:, :window + lookahead])
    assert (out[:, :window] - cut[:, :window]).abs().max() <= 1e-5
    assert torch.isfinite(out).all()


def test_stream_holds_bounded_frames():
    model = _tiny("basicvsr", {"mid_channels": 8, "num_blocks": 1})
    lrs = random_clip(t=12)
    stats = {}
    outs = list(model.stream((lrs[:, i] for i in range(12)), window=3, lookahead=2, stats=stats))
    assert len(outs) == 12
    # window + lookahead frames in the span, plus the schedule's history and one frame of read-ahead
    assert stats["max_frames_held"] <= 3 + 2 + model.schedule().history + 1


def test_mirror_extended_clip_matches_plain_computation():
    """Upstream reuses backward flows for a mirrored clip; the result must equal computing both."""
    model = _tiny("basicvsr_pp", {"mid_channels": 8, "num_blocks": 1})
    half = random_clip(t=3, h=64, w=64)
    lrs = torch.cat([half, half.flip(1)], dim=1)
    mirrored = model(lrs)
    plain = model(lrs, window=lrs.shape[1], lookahead=0)  # same single window, also mirror-checked
    assert (mirrored - plain).abs().max() == 0
    # windows that do not see the whole clip compute forward flows themselves
    split = model(lrs, window=3, lookahead=3)
    assert (split - mirrored).abs().max() <= 1e-5


def test_build_model_rejects_unknown_option():
    with pytest.raises(vsrdeploy.ConfigError, match="has no option.*num_block"):
        build_model("basicvsr", num_block=3)


def test_unknown_architecture():
    with pytest.raises(vsrdeploy.ConfigError, match="unknown architecture 'edsr'; known: basicvsr"):
        build_model("edsr")
