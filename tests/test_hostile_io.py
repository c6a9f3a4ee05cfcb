"""Issue 11, the I/O cases: full disks, output = input, huge raw sizes, resume under other settings, NaN output,
SIGTERM, and errors on the progress bar's line. Each asserts the exit code, one error line matched by regex,
no traceback, and that files which must survive do so byte for byte."""
import errno
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from clips import moving_frames, write_clip
from vsrdeploy.cli import main

av = pytest.importorskip("av")
pytest.importorskip("onnxruntime")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "in.mp4"
    write_clip(path, moving_frames(6, 24, 32), audio_seconds=0.5)
    return path


@pytest.fixture(scope="module")
def nan_bundle(tmp_path_factory):
    """A tiny BasicVSR bundle whose last convolution has a NaN bias: every output is NaN."""
    import torch
    import vsrdeploy
    torch.manual_seed(0)
    net = vsrdeploy.build_model("basicvsr", mid_channels=8, num_blocks=1).eval()
    with torch.no_grad():
        net.conv_last.bias.fill_(float("nan"))
    return vsrdeploy.export_onnx(net, tmp_path_factory.mktemp("nan") / "nan.vsr")


def run(*args, input=None):
    return CliRunner().invoke(main, ["run", *map(str, args)], input=input, catch_exceptions=False)


def one_line_error(result, pattern: str, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert re.search(pattern, errors[0]), errors[0]
    assert "Traceback" not in result.output
    return errors[0]


def snapshot(directory: Path) -> dict:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------------ full disk


class _FullDisk(io.FileIO):
    """A file whose writes fail with ENOSPC after ``budget`` bytes, as on a full disk."""
    budget = 2000

    def write(self, data):
        if self.tell() + len(data) > self.budget:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def _full_disk_open(path, mode="r", *args, **kwargs):
    if "w" in mode and not str(path).endswith(".json"):
        return _FullDisk(path, "w")
    return open(path, mode, *args, **kwargs)


@pytest.mark.parametrize("name", ["out.mp4", "out.mkv"])
def test_full_disk_while_encoding_leaves_no_video(tiny_bundle, clip, tmp_path, monkeypatch, name):
    from vsrdeploy.io import video
    monkeypatch.setattr(video, "open", _full_disk_open, raising=False)
    result = run(tiny_bundle, "-i", clip, "-o", tmp_path / name)
    one_line_error(result, rf"cannot write .*{name}: no space left on the device; free some space .*"
                           r"\(the unfinished file was removed\)$")
    assert list(tmp_path.iterdir()) == []


def test_full_disk_at_close_leaves_no_video_and_keeps_the_old_one(tiny_bundle, clip, tmp_path, monkeypatch):
    from vsrdeploy.io import video
    old = tmp_path / "out.mp4"
    old.write_bytes(b"an earlier result the user still has")

    def fsync_fails(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(video.os, "fsync", fsync_fails)
    result = run(tiny_bundle, "-i", clip, "-o", old)
    one_line_error(result, r"cannot write .*out\.mp4: no space left on the device")
    assert snapshot(tmp_path) == {"out.mp4": b"an earlier result the user still has"}


def test_full_disk_in_a_png_directory_keeps_the_finished_frames(tiny_bundle, clip, tmp_path, monkeypatch):
    from vsrdeploy.io import images
    _FullDisk.budget = 0
    monkeypatch.setattr(images, "open", _full_disk_open, raising=False)
    result = run(tiny_bundle, "-i", clip, "-o", tmp_path / "frames")
    _FullDisk.budget = 2000
    one_line_error(result, r"cannot write .*frame_000000\.png: no space left on the device")
    assert [p.name for p in tmp_path.iterdir()] == []  # the directory it created, empty, is gone again


def _mount_tiny_tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    path.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_real_full_disk(tiny_bundle, tmp_path):
    """On a 32 KiB tmpfs (root only): the .mp4 run fails with one line and leaves nothing."""
    disk = tmp_path / "disk"
    if not _mount_tiny_tmpfs(disk, "32k"):
        pytest.skip("needs root and tmpfs to mount a tiny file system")
    try:
        big = tmp_path / "big.mp4"
        write_clip(big, moving_frames(12, 72, 96), options={"crf": "0"})
        result = run(tiny_bundle, "-i", big, "-o", disk / "out.mp4", "--crf", 0)
        one_line_error(result, r"cannot write .*out\.mp4: no space left on the device")
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# ------------------------------------------------------------------------------------------- output = input


@pytest.mark.parametrize("how", ["same path", "symlink", "hard link", "relative path"])
def test_output_that_is_the_input_is_refused(tiny_bundle, clip, tmp_path, monkeypatch, how):
    source = tmp_path / "x.mp4"
    shutil.copy(clip, source)
    before = source.read_bytes()
    output = {"same path": source, "symlink": tmp_path / "link.mp4", "hard link": tmp_path / "hard.mp4",
              "relative path": Path("sub/../x.mp4")}[how]
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    if how == "symlink":
        output.symlink_to(source)
    elif how == "hard link":
        os.link(source, output)
    result = run(tiny_bundle, "-i", source, "-o", output)
    one_line_error(result, r"output .* is the input .*x\.mp4 \(same file\); choose another output path")
    assert source.read_bytes() == before


def test_png_output_into_the_input_directory_is_refused(tiny_bundle, tmp_path):
    cv2 = pytest.importorskip("cv2")
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(frames / f"{i}.png"), np.full((24, 32, 3), 40 * i, np.uint8))
    before = snapshot(frames)
    result = run(tiny_bundle, "-i", frames, "-o", tmp_path / "." / "frames")
    one_line_error(result, r"is the input .*frames \(same file\)")
    assert snapshot(frames) == before


# ------------------------------------------------------------------------------------------------ raw size


@pytest.mark.parametrize("size, pattern", [
    ("100000x100000", r"raw frame size 100000x100000 is too large \(each side at most 32768\); check --raw-size"),
    ("20000x20000", r"raw frame size 20000x20000 needs 76\.\d GiB per frame .* but 8\.0 GiB is available"),
])
def test_huge_raw_size_is_refused_before_allocating(tiny_bundle, tmp_path, monkeypatch, size, pattern):
    from vsrdeploy.io import base
    monkeypatch.setattr(base, "_available_memory", lambda: 8 * 2**30)
    result = run(tiny_bundle, "-i", "-", "-o", tmp_path / "o", "--raw-size", size, input=b"\0" * 1000)
    one_line_error(result, pattern)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------- resume


def test_resume_under_other_settings_is_refused(tiny_bundle, clip, tmp_path):
    out = tmp_path / "frames"
    assert run(tiny_bundle, "-i", clip, "-o", out, "--window", 3, "--lookahead", 1).exit_code == 0
    for p in sorted(out.glob("frame_*.png"))[3:]:
        p.unlink()
    before = snapshot(out)
    assert ".vsrdeploy-run.json" in before
    result = run(tiny_bundle, "-i", clip, "-o", out, "--window", 4, "--lookahead", 2, "--resume")
    one_line_error(result, r"cannot resume .*frames: the settings differ \(lookahead: was 1, now 2; window: was 3, "
                           r"now 4\); resume with the same settings or write to a new directory")
    assert snapshot(out) == before
    other = tmp_path / "other.vsr"
    shutil.copytree(tiny_bundle, other)
    import json

    from vsrdeploy.bundle import write_manifest
    record = json.loads((other / "manifest.json").read_text())
    write_manifest(other, {**record, "note": "another model"})  # a different, valid bundle
    result = run(other, "-i", clip, "-o", out, "--window", 3, "--lookahead", 1, "--resume")
    one_line_error(result, r"the settings differ \(model_sha256: was '[0-9a-f]{64}', now '[0-9a-f]{64}'\)")
    assert snapshot(out) == before
    result = run(tiny_bundle, "-i", clip, "-o", out, "--window", 3, "--lookahead", 1, "--resume")
    assert result.exit_code == 0 and "wrote 3 frames" in result.output


# ------------------------------------------------------------------------------------------------- NaN / Inf


@pytest.mark.parametrize("name", ["out.mp4", "frames"])
def test_nan_output_fails_and_leaves_nothing(nan_bundle, clip, tmp_path, name):
    result = run(nan_bundle, "-i", clip, "-o", tmp_path / name)
    one_line_error(result, r"the network produced NaN or Inf at output frame 0; the bundle's weights or precision "
                           r"are broken \(check them with `vsrdeploy compare`\)")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------- processes, signals


def _cli(*args) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "vsrdeploy", "run", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_sigterm_removes_the_partial_file(tiny_bundle, tmp_path):
    long = tmp_path / "long.mp4"
    write_clip(long, moving_frames(400, 48, 64))
    out = tmp_path / "out" / "up.mp4"
    out.parent.mkdir()
    proc = _cli(tiny_bundle, "-i", long, "-o", out, "--window", 4, "--lookahead", 2)
    partial = out.parent / ".up.mp4.partial.mp4"
    deadline = time.monotonic() + 120
    while not (partial.exists() and partial.stat().st_size > 0) and proc.poll() is None:
        assert time.monotonic() < deadline, "the run never started writing"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143
    lines = [line for line in stderr.decode().replace("\r", "\n").splitlines() if line.strip()]
    assert lines[-1] == "vsrdeploy: stopped by SIGTERM; the unfinished output was removed"
    assert "Traceback" not in stderr.decode()
    assert list(out.parent.iterdir()) == []


def test_errors_do_not_print_on_the_progress_bar_line(nan_bundle, clip, tmp_path):
    proc = _cli(nan_bundle, "-i", clip, "-o", tmp_path / "out.mp4")
    _, stderr = proc.communicate(timeout=120)
    text = stderr.decode()
    assert proc.returncode == 1 and "%|" in text  # the bar was drawn
    before_error = text.split("Error:")[0]
    line_start = before_error.rsplit("\n", 1)[-1].rsplit("\r", 1)[-1]
    assert line_start == ""  # the error starts a cleared line, not the bar's
    assert text.count("Error:") == 1 and "Traceback" not in text
