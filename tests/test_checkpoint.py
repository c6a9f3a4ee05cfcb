"""Checkpoint formats and every bad input named in the foundation issue."""
import collections

import pytest
import torch

import vsrdeploy
from vsrdeploy import CheckpointError, InputError, build_model, load_checkpoint
from vsrdeploy.checkpoint import load_checkpoint_with_info


class NotATensor:  # a pickled object that weights_only=True must refuse
    pass


@pytest.fixture
def tiny_basicvsr():
    torch.manual_seed(0)
    return build_model("basicvsr", mid_channels=8, num_blocks=2)


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_mmagic_basicsr_and_bare_formats_round_trip(tmp_path, tiny_basicvsr):
    sd = tiny_basicvsr.state_dict()
    mm = tmp_path / "mm.pth"
    torch.save({"meta": {}, "state_dict": {**{f"generator.{k}": v for k, v in sd.items()},
                                            "step_counter": torch.zeros(1)}}, mm)
    bare = tmp_path / "bare.pth"
    torch.save({f"module.{k}": v for k, v in sd.items()}, bare)
    for path, fmt in ((mm, "mmagic"), (bare, "state_dict")):
        model, info = load_checkpoint_with_info(path)
        assert info.format == fmt and info.arch == "basicvsr"
        assert info.config == {"mid_channels": 8, "num_blocks": 2}
        assert _same_weights(model, tiny_basicvsr)


def test_basicsr_prefers_ema_weights(tmp_path, tiny_basicvsr, vectors):
    ref = torch.load(vectors / "basicvsr_c16n2.basicsr.pth", weights_only=True)["params"]
    ema = {k: v + 1 for k, v in ref.items()}
    path = tmp_path / "b.pth"
    torch.save({"params": ref, "params_ema": ema}, path)
    model, info = load_checkpoint_with_info(path)
    assert info.source == "params_ema" and info.naming == "basicsr"
    assert torch.equal(model.conv_last.weight, ema["conv_last.weight"])


def test_realbasicvsr_uses_generator_ema(vectors):
    model, info = load_checkpoint_with_info(vectors / "realbasicvsr_c16b2.mmagic.pth")
    assert info.source == "state_dict/generator_ema"
    raw = torch.load(vectors / "realbasicvsr_c16b2.mmagic.pth", weights_only=True)["state_dict"]
    assert torch.equal(model.image_cleaning[1].weight, raw["generator_ema.image_cleaning.1.weight"])


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found: .*nope.pth"):
        load_checkpoint(tmp_path / "nope.pth")


def test_truncated_file(tmp_path, tiny_basicvsr):
    path = tmp_path / "t.pth"
    torch.save({"state_dict": tiny_basicvsr.state_dict()}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or not a PyTorch checkpoint"):
        load_checkpoint(path)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "x.pth"
    path.write_text("hello")
    with pytest.raises(CheckpointError, match="truncated or not a PyTorch checkpoint|not a PyTorch checkpoint"):
        load_checkpoint(path)


def test_weights_only_refusal(tmp_path, tiny_basicvsr):
    path = tmp_path / "pickled.pth"
    torch.save({"state_dict": tiny_basicvsr.state_dict(), "extra": NotATensor()}, path)
    with pytest.raises(CheckpointError, match=r"weights_only=True\) refuses"):
        load_checkpoint(path)


def test_checkpoint_of_another_architecture(vectors):
    with pytest.raises(CheckpointError, match=r"does not fit basicvsr_pp .*missing: .*unexpected: "
                                              r".*backward_resblocks"):
        load_checkpoint(vectors / "basicvsr_c16n2.mmagic.pth", arch="basicvsr_pp")


def test_misshaped_keys_are_named(tmp_path, tiny_basicvsr):
    sd = collections.OrderedDict(tiny_basicvsr.state_dict())
    sd["fusion.weight"] = torch.zeros(8, 4, 1, 1)
    path = tmp_path / "m.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=r"mis-shaped: fusion.weight \(checkpoint \(8, 4, 1, 1\), "
                                              r"network \(8, 16, 1, 1\)\)"):
        load_checkpoint(path)


def test_unrecognised_weights(tmp_path):
    path = tmp_path / "u.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="cannot tell which network.*pass arch="):
        load_checkpoint(path)


def test_unknown_override(vectors):
    with pytest.raises(vsrdeploy.ConfigError, match="has no option.*keyframe"):
        load_checkpoint(vectors / "basicvsr_c16n2.mmagic.pth", keyframe_stride=5)


# -- frames ------------------------------------------------------------------------------

def test_frames_must_be_5d(tiny_basicvsr):
    with pytest.raises(InputError, match=r"must have shape \(N, T, 3, H, W\).*got \(5, 3, 32, 32\)"):
        tiny_basicvsr(torch.rand(5, 3, 32, 32))


def test_frames_must_be_rgb(tiny_basicvsr):
    with pytest.raises(InputError, match=r"\(N, T, 3, H, W\).*got \(1, 5, 1, 32, 32\)"):
        tiny_basicvsr(torch.rand(1, 5, 1, 32, 32))


def test_frames_must_be_float(tiny_basicvsr):
    with pytest.raises(InputError, match="floating point.*divide 8-bit frames by 255"):
        tiny_basicvsr(torch.zeros(1, 3, 3, 32, 32, dtype=torch.uint8))


def test_frames_must_be_a_tensor(tiny_basicvsr):
    with pytest.raises(InputError, match="must be a torch.Tensor"):
        tiny_basicvsr([[1, 2, 3]])


def test_iconvsr_needs_enough_frames():
    model = build_model("iconvsr", mid_channels=8, num_blocks=1, padding=2)
    with pytest.raises(InputError, match="iconvsr needs at least 5 frames, got 4"):
        model(torch.rand(1, 4, 3, 32, 32))
    streamed = model.stream((torch.rand(1, 3, 32, 32) for _ in range(3)), window=5)
    with pytest.raises(InputError, match="needs at least 5 frames, got 3"):
        list(streamed)


def test_frames_smaller_than_the_network_accepts_are_padded():
    """One behaviour everywhere (as vs-basicvsrpp does): reflect-pad to the minimum, crop the output back."""
    torch.manual_seed(0)
    model = build_model("basicvsr_pp", mid_channels=8, num_blocks=1).eval()
    lrs = torch.rand(1, 3, 3, 32, 80)
    out = model(lrs)
    assert out.shape == (1, 3, 3, 128, 320) and torch.isfinite(out).all()
    streamed = torch.stack(list(model.stream((lrs[:, i] for i in range(3)), window=2, lookahead=1)), 1)
    assert streamed.shape == out.shape
    hr = build_model("basicvsr_pp", mid_channels=8, num_blocks=1, is_low_res_input=False).eval()
    assert hr(torch.rand(1, 2, 3, 128, 128)).shape == (1, 2, 3, 128, 128)
    with pytest.raises(InputError, match=r"at least 64x64 pixels, got 80x32 \(WxH\)"):
        model.check_frame_size(32, 80)  # fixed shapes (--static-shape) are still checked


def test_window_too_short_for_iconvsr():
    model = build_model("iconvsr", mid_channels=8, num_blocks=1, padding=2)
    with pytest.raises(vsrdeploy.ConfigError, match=r"window \+ lookahead >= 5"):
        model(torch.rand(1, 6, 3, 32, 32), window=2, lookahead=1)


def test_frames_of_different_sizes_in_a_stream(tiny_basicvsr):
    frames = [torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 40)]
    with pytest.raises(InputError, match="all frames of a clip must have the same size"):
        list(tiny_basicvsr.stream(iter(frames), window=4))
