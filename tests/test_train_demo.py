"""`vsrdeploy train` on a tiny config, and `vsrdeploy demo` end to end with the shipped model."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import vsrdeploy
from vsrdeploy.cli import main
from vsrdeploy.train import ClipData, TrainConfig, charbonnier, train

cv2 = pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """24 frames of a smooth pattern panning right (64x64 PNGs)."""
    d = tmp_path_factory.mktemp("clip")
    base = cv2.GaussianBlur((np.random.default_rng(0).random((64, 160, 3)) * 255).astype(np.uint8), (9, 9), 3)
    for i in range(24):
        cv2.imwrite(str(d / f"{i:03d}.png"), base[:, 2 * i:2 * i + 64])
    return d


CONFIG = {"mid_channels": 4, "num_blocks": 1}


def _cfg(clip_dir, steps, **kw):
    return TrainConfig(arch="basicvsr", model_config=CONFIG, data=[str(clip_dir)], steps=steps, crop=16, frames=3,
                       batch=2, lr=2e-3, val_every=4, val_frames=3, val_crop=16, seed=0, **kw)


def _fixed_batch(clip_dir):
    data = ClipData([str(clip_dir)], 0.1, 3)
    pairs = [data.sample(np.random.default_rng(123), 3, 16) for _ in range(4)]
    return torch.from_numpy(np.stack([p[0] for p in pairs])), torch.from_numpy(np.stack([p[1] for p in pairs]))


def test_training_reduces_loss_and_writes_loadable_mmagic_checkpoints(clip_dir, tmp_path):
    lr, hr = _fixed_batch(clip_dir)
    torch.manual_seed(0)
    initial = vsrdeploy.build_model("basicvsr", **CONFIG).eval()
    with torch.no_grad():
        before = charbonnier(initial(lr), hr).item()
    record = train(_cfg(clip_dir, 12), tmp_path / "run", echo=lambda m: None, progress=False)
    assert record["step"] == 12 and len(record["history"]) == 3
    model = vsrdeploy.load_checkpoint(tmp_path / "run" / "latest.pth")
    with torch.no_grad():
        after = charbonnier(model(lr), hr).item()
    assert after < before * 0.9, (before, after)
    raw = torch.load(tmp_path / "run" / "latest.pth", weights_only=True)
    assert set(raw) == {"meta", "state_dict"}
    assert all(k.startswith("generator.") for k in raw["state_dict"])
    assert raw["meta"]["step"] == 12 and "psnr_y" in raw["meta"]
    assert (tmp_path / "run" / "best.pth").exists()


def test_resume_continues_the_step_count(clip_dir, tmp_path):
    out = tmp_path / "run"
    train(_cfg(clip_dir, 4), out, echo=lambda m: None, progress=False)
    messages = []
    record = train(_cfg(clip_dir, 8), out, resume=True, echo=messages.append, progress=False)
    assert record["step"] == 8
    assert any("resuming" in m and "at step 4" in m for m in messages)
    assert [h["step"] for h in json.loads((out / "history.json").read_text())["history"]] == [4, 8]


def test_training_refuses_to_overwrite_or_resume_nothing(clip_dir, tmp_path):
    with pytest.raises(vsrdeploy.ConfigError, match="nothing to resume"):
        train(_cfg(clip_dir, 2), tmp_path / "new", resume=True, echo=lambda m: None, progress=False)
    train(_cfg(clip_dir, 2), tmp_path / "run", echo=lambda m: None, progress=False)
    with pytest.raises(vsrdeploy.ConfigError, match="pass --resume"):
        train(_cfg(clip_dir, 2), tmp_path / "run", echo=lambda m: None, progress=False)


def test_train_cli_errors(clip_dir, tmp_path):
    result = CliRunner().invoke(main, ["train", "--arch", "basicvsr", "--data", str(clip_dir), "--crop", "64",
                                       "--frames", "3", "--steps", "1", "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "smaller than the HR crop" in result.output


def test_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--out", str(out), "--frames", "4", "--window", "2",
                                       "--lookahead", "1"])
    assert result.exit_code == 0, result.output
    for name in ("upscaled.mp4", "side_by_side.png", "compare.txt", "report/report.md", "report/report.json"):
        assert (out / name).stat().st_size > 0, name
    cap = cv2.VideoCapture(str(out / "upscaled.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 4
    panel = cv2.imread(str(out / "side_by_side.png"))
    assert panel.shape == (240, 3 * 320, 3)
    assert "PSNR-Y" in result.output and "vs bicubic" in result.output
    report = json.loads((out / "report" / "report.json").read_text())
    assert {t["backend"] for t in report["targets"] if t["status"] == "ok"} >= {"torch", "ort-cpu"}


def test_init_copies_matching_weights_and_refuses_none(tmp_path):
    from vsrdeploy.errors import ConfigError
    from vsrdeploy.train import init_weights, save_mmagic_checkpoint
    torch.manual_seed(0)
    donor = vsrdeploy.build_model("basicvsr", mid_channels=8, num_blocks=1)
    path = tmp_path / "donor.pth"
    save_mmagic_checkpoint(donor, path, {"vsrdeploy_arch": "basicvsr"})
    pp = vsrdeploy.build_model("basicvsr_pp", mid_channels=8, num_blocks=1)
    names = init_weights(pp, str(path))
    assert any(n.startswith("spynet.") for n in names) and "conv_last.weight" in names
    assert torch.equal(pp.state_dict()["conv_last.weight"], donor.state_dict()["conv_last.weight"])
    with pytest.raises(ConfigError, match="no weight there has the name and shape"):
        init_weights(torch.nn.Linear(2, 2), str(path))


def test_shipped_models_by_name():
    from vsrdeploy.demo import shipped_model
    from vsrdeploy.errors import ConfigError
    assert vsrdeploy.load_checkpoint(shipped_model("basicvsr_pp")).arch == "basicvsr_pp"
    with pytest.raises(ConfigError, match="shipped: basicvsr, basicvsr_pp"):
        shipped_model("edvr")
