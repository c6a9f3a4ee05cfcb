"""`vsrdeploy run` end to end on generated clips."""
import numpy as np
import pytest
from click.testing import CliRunner

from vsrdeploy.cli import main
from vsrdeploy.io import open_source

cv2 = pytest.importorskip("cv2")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return tiny_bundle


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 9-frame 40x36 MJPG clip with moving content."""
    path = tmp_path_factory.mktemp("clip") / "in.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 12, (40, 36))
    base = (np.random.default_rng(0).random((60, 80, 3)) * 255).astype(np.uint8)
    for i in range(9):
        writer.write(np.ascontiguousarray(base[i:i + 36, 2 * i:2 * i + 40]))
    writer.release()
    return path


def _run(*args):
    return CliRunner().invoke(main, ["run", *map(str, args)], catch_exceptions=False)


def test_video_in_video_out(bundle, clip, tmp_path):
    out = tmp_path / "up.mp4"
    result = _run(bundle, "-b", "ort-cpu", "-i", clip, "-o", out, "--window", 4, "--lookahead", 2)
    assert result.exit_code == 0, result.output
    assert "wrote 9 frames (40x36 -> 160x144)" in result.output
    cap = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    assert len(frames) == 9 and frames[0].shape == (144, 160, 3)
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12, abs=0.5)
    assert not list(tmp_path.glob(".*partial*"))


def test_checkpoint_is_exported_once_to_the_cache(clip, tmp_path, monkeypatch, vectors):
    monkeypatch.setenv("VSRDEPLOY_CACHE", str(tmp_path / "cache"))
    ckpt = vectors / "basicvsr_c16n2.mmagic.pth"
    first = _run(ckpt, "-i", clip, "-o", tmp_path / "a")
    assert first.exit_code == 0 and "exporting cell flow" in first.output
    second = _run(ckpt, "-i", clip, "-o", tmp_path / "b")
    assert second.exit_code == 0 and "exporting cell" not in second.output
    assert len(list((tmp_path / "cache" / "bundles").iterdir())) == 1


def test_resume_png_directory_gives_identical_frames(bundle, clip, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    assert _run(bundle, "-i", clip, "-o", full, "--window", 3, "--lookahead", 1).exit_code == 0
    # an interrupted run: only the first 4 frames made it
    result = _run(bundle, "-i", clip, "-o", part, "--window", 3, "--lookahead", 1)
    for p in sorted(part.glob("frame_*.png"))[4:]:
        p.unlink()
    refused = _run(bundle, "-i", clip, "-o", part)
    assert refused.exit_code != 0 and "pass --resume" in refused.output
    result = _run(bundle, "-i", clip, "-o", part, "--window", 3, "--lookahead", 1, "--resume")
    assert result.exit_code == 0, result.output
    assert "resuming at frame 4" in result.output and "wrote 5 frames" in result.output
    a = [f for f in open_source(str(full), notice=lambda m: None)]
    b = [f for f in open_source(str(part), notice=lambda m: None)]
    assert len(a) == len(b) == 9
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_raw_pipe_in_and_out(bundle):
    frames = (np.random.default_rng(1).random((4, 24, 32, 3)) * 255).astype(np.uint8)
    result = CliRunner().invoke(main, ["run", str(bundle), "-i", "-", "-o", "-", "--raw-size", "32x24"],
                                input=frames.tobytes())
    assert result.exit_code == 0, result.stderr if hasattr(result, "stderr") else result.output
    assert len(result.stdout_bytes) == 4 * 96 * 128 * 3


@pytest.mark.parametrize("args,message", [
    (["-i", "missing.avi", "-o", "x.mp4"], "input not found: missing.avi"),
    (["-i", "{clip}", "-o", "/nonexistent/dir/x.mp4"], "cannot write"),
    (["-i", "{clip}", "-o", "x.mp4", "-b", "tensorrt-nope"], "unknown backend 'tensorrt-nope'; known:"),
    (["-i", "{clip}", "-o", "x.mp4", "--window", "-1"], "window must be >= 1"),
])
def test_bad_input_is_a_one_line_error(bundle, clip, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    args = [a.format(clip=clip) for a in args]
    result = CliRunner().invoke(main, ["run", str(bundle), *args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_empty_input_directory(bundle, tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["run", str(bundle), "-i", str(tmp_path / "empty"), "-o", str(tmp_path / "o")])
    assert result.exit_code != 0 and "no image" in result.output.lower()


def test_tampered_bundle_via_cli(bundle, clip, tmp_path):
    import shutil
    copy = tmp_path / "t.vsr"
    shutil.copytree(bundle, copy)
    (copy / "weights.pth").write_bytes(b"x")
    result = CliRunner().invoke(main, ["run", str(copy), "-i", str(clip), "-o", str(tmp_path / "o.mp4")])
    assert result.exit_code != 0 and "does not match its sha256" in result.output


def test_export_command(vectors, tmp_path):
    result = CliRunner().invoke(main, ["export", str(vectors / "basicvsrpp_c16n2.basicsr.pth"), "-o",
                                       str(tmp_path / "pp.vsr"), "--dcn", "decomposed"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "basicvsr_pp, 13 cells, dcn=decomposed" in result.output
    bad = CliRunner().invoke(main, ["export", str(vectors / "basicvsrpp_c16n2.basicsr.pth"), "--opset", "17"])
    assert bad.exit_code != 0 and "needs opset >= 19" in bad.output
