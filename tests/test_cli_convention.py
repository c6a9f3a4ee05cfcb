"""One command-line convention (issue 14 item 3): sizes are WxH everywhere, one meaning per option name,
`-b/--backend/--backends` everywhere with lists comma-separated or repeated, shipped model names wherever a
model is taken, a static-shape bundle refused in one line, old spellings kept with a notice, `--help`
without torch."""
import re
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from vsrdeploy import cli
from vsrdeploy.cli import main, parse_size, parse_tile

pytest.importorskip("onnxruntime")


def _invoke(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def _one_error_line(result, code, match):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith(("Error:", "FAIL"))]
    assert len(errors) == 1, result.output
    assert re.search(match, errors[0]), errors[0]


@pytest.fixture(autouse=True)
def _fresh_notices(monkeypatch):
    monkeypatch.setattr(cli, "_noticed", set())
    monkeypatch.delenv(cli.SIZE_ORDER_ENV, raising=False)


# -- sizes -----------------------------------------------------------------------------------------------

def test_sizes_are_wxh_and_returned_as_height_width(capsys):
    assert parse_size("320x180", "--size") == (180, 320)
    assert parse_size("64x64", "--size") == (64, 64)
    assert parse_tile("256") == 256 and parse_tile("256x192") == (192, 256)
    err = capsys.readouterr().err
    assert "--size 320x180 is read as WxH (320 wide, 180 high)" in err and "VSRDEPLOY_SIZE_ORDER=hxw" in err
    assert "--tile 256x192 is read as WxH" in err
    assert parse_size("320x180", "--raw-size") == (180, 320)  # --raw-size was WxH already: no notice
    assert "--raw-size" not in capsys.readouterr().err


def test_old_hxw_order_through_the_environment(monkeypatch, capsys):
    monkeypatch.setenv(cli.SIZE_ORDER_ENV, "hxw")
    assert parse_size("180x320", "--opt-shape") == (180, 320)
    assert parse_size("320x180", "--raw-size") == (180, 320)  # never was HxW
    err = capsys.readouterr().err
    assert "VSRDEPLOY_SIZE_ORDER=hxw is deprecated" in err and "write --opt-shape 320x180" in err
    monkeypatch.setenv(cli.SIZE_ORDER_ENV, "yx")
    from vsrdeploy.errors import ConfigError
    with pytest.raises(ConfigError, match="VSRDEPLOY_SIZE_ORDER='yx' is not an order"):
        parse_size("2x3", "--size")


def test_bench_prints_the_size_as_given_and_json_agrees(tiny_bundle):
    import json
    result = CliRunner().invoke(main, ["bench", str(tiny_bundle), "-b", "ort-cpu", "--size", "40x32", "--frames",
                                       "2", "--repeat", "1", "--warmup", "0", "--window", "2", "--lookahead", "1"])
    assert result.exit_code == 0, result.output
    assert "2 frames 40x32" in result.stdout and "runs of 2 frames 40x32" in result.stderr
    assert "80x60" not in result.output
    as_json = CliRunner().invoke(main, ["bench", str(tiny_bundle), "--backend", "ort-cpu", "--size", "40x32",
                                        "--frames", "2", "--repeat", "1", "--warmup", "0", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["settings"]["size"] == [40, 32]


def test_export_static_shape_is_wxh_and_run_refuses_another_size_in_one_line(tmp_path):
    import torch

    import vsrdeploy
    from vsrdeploy.bundle import Bundle
    torch.manual_seed(0)
    net = vsrdeploy.build_model("basicvsr", mid_channels=8, num_blocks=1).eval()
    ckpt = tmp_path / "tiny.pth"
    torch.save(net.state_dict(), ckpt)
    result = _invoke("export", ckpt, "-o", tmp_path / "s.vsr", "--static-shape", "48x32")
    assert result.exit_code == 0, result.output
    assert Bundle(tmp_path / "s.vsr").manifest["static_shape"] == [32, 48]  # (height, width) inside

    frames = tmp_path / "frames"
    frames.mkdir()
    import cv2
    for i in range(2):
        cv2.imwrite(str(frames / f"{i:04d}.png"), np.full((32, 40, 3), 100 + i, np.uint8))
    out = tmp_path / "out"
    result = _invoke("run", tmp_path / "s.vsr", "-i", frames, "-o", out)
    _one_error_line(result, 1, r"frame 0 is 40x32 \(WxH\) but the bundle .* was exported for 48x32 frames only "
                               r"\(--static-shape\); export it again without --static-shape, or with "
                               r"--static-shape 40x32")
    assert not out.exists()


def test_build_shapes_are_wxh_in_messages(tiny_bundle):
    from vsrdeploy.bundle import Bundle
    from vsrdeploy.errors import ConfigError
    from vsrdeploy.export.tensorrt import make_profile
    lo, opt = parse_size("64x32", "--min-shape"), parse_size("48x64", "--opt-shape")
    with pytest.raises(ConfigError, match=r"got min 64x32, opt 48x64, max 48x64 \(WxH"):
        make_profile(Bundle(tiny_bundle), lo, opt, None)


# -- one meaning per option name ------------------------------------------------------------------------

def _png_dir(path, n=3, h=32, w=32):
    import cv2
    path.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(path / f"{i:04d}.png"), rng.integers(0, 255, (h, w, 3), np.uint8))
    return path


def test_calibrate_calib_frames_and_deprecated_frames_path(tiny_bundle, tmp_path):
    frames = _png_dir(tmp_path / "frames")
    result = _invoke("calibrate", tiny_bundle, "-i", frames, "--max-frames", 3, "-o", tmp_path / "a.vsr")
    assert result.exit_code == 0, result.output
    assert "deprecated" not in result.output and "on 3 frames" in result.stdout
    old = _invoke("calibrate", tiny_bundle, "--frames", frames, "--max-frames", 2, "-o", tmp_path / "b.vsr")
    assert old.exit_code == 0, old.output
    assert "calibrate --frames PATH is deprecated (--frames is a count everywhere else): write " \
           "-i/--calib-frames PATH" in old.stderr
    count = _invoke("calibrate", tiny_bundle, "--calib-frames", frames, "--frames", 2, "-o", tmp_path / "c.vsr")
    assert count.exit_code == 0, count.output
    assert "on 2 frames" in count.stdout and "deprecated" not in count.output


def test_calibrate_without_frames_is_a_usage_error(tiny_bundle):
    _one_error_line(_invoke("calibrate", tiny_bundle), 2, r"Missing option '-i' / '--calib-frames'")


# -- backends: one option, lists the same way everywhere ---------------------------------------------------

@pytest.mark.parametrize("args", [
    ["-b", "ort-cpu,nope"], ["--backends", "ort-cpu", "--backends", "nope"], ["--backend", "nope", "-b", "ort-cpu"],
])
def test_backend_lists_comma_separated_or_repeated(tiny_bundle, tmp_path, args):
    # every spelling reaches the same check (which runs before anything is read or exported)
    for command in (["compare", tiny_bundle, "-i", tmp_path / "none.avi"], ["bench", tiny_bundle]):
        _one_error_line(_invoke(*command, *args), 1, r"unknown backend\(s\) nope; choose from")


def test_compare_precision_list_repeated(tiny_bundle, tmp_path):
    result = _invoke("compare", tiny_bundle, "-i", tmp_path / "none.avi", "-b", "ort-cpu", "--precision", "fp32",
                     "--precisions", "fp8")
    _one_error_line(result, 1, r"unknown precision\(s\) fp8")


@pytest.mark.parametrize("spelling", ["-b", "--backend", "--backends"])
def test_run_takes_one_backend_under_every_name(tiny_bundle, tmp_path, spelling):
    frames = _png_dir(tmp_path / "in", n=2)
    result = _invoke("run", tiny_bundle, spelling, "ort-cpu", "-i", frames, "-o", tmp_path / "out",
                     "--window", 2, "--lookahead", 1)
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out").glob("*.png"))) == 2
    two = _invoke("run", tiny_bundle, spelling, "ort-cpu,torch", "-i", frames, "-o", tmp_path / "o2")
    _one_error_line(two, 2, r"this command runs one backend, got ort-cpu, torch; to measure several, use "
                            r"`vsrdeploy compare -b A,B`")


# -- shipped model names ---------------------------------------------------------------------------------

def test_shipped_model_names_wherever_a_model_is_taken(tmp_path, monkeypatch):
    monkeypatch.setenv("VSRDEPLOY_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    result = _invoke("inspect", "basicvsr_pp")
    assert result.exit_code == 0, result.output
    assert "arch       : basicvsr_pp" in result.stdout
    exported = _invoke("export", "basicvsr", "-o", tmp_path / "b.vsr", "--dcn", "decomposed")
    assert exported.exit_code == 0, exported.output
    frames = _png_dir(tmp_path / "in", n=2, h=64, w=64)
    ran = _invoke("run", "basicvsr", "-i", frames, "-o", tmp_path / "out", "--window", 2, "--lookahead", 1)
    assert ran.exit_code == 0, ran.output
    assert len(list((tmp_path / "out").glob("*.png"))) == 2
    missing = _invoke("run", "basicvsr_ppp", "-i", frames, "-o", tmp_path / "o2")
    _one_error_line(missing, 1, r"not found: basicvsr_ppp \(expected a checkpoint file, a .vsr bundle directory, "
                                r"or a shipped model \(basicvsr, basicvsr_pp\)\)")


# -- start-up --------------------------------------------------------------------------------------------

def test_help_does_not_import_torch():
    code = ("import sys\nfrom click.testing import CliRunner\nfrom vsrdeploy.cli import main\n"
            "for args in (['--help'], ['run', '--help'], ['compare', '--help'], ['bench', '--help']):\n"
            "    assert CliRunner().invoke(main, args).exit_code == 0\n"
            "heavy = [m for m in ('torch', 'numpy', 'onnxruntime', 'openvino', 'av', 'cv2', 'ray') if m in sys.modules]\n"
            "print(heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_package_names_still_import_lazily():
    code = ("import sys, vsrdeploy\nassert 'torch' not in sys.modules\n"
            "from vsrdeploy import load_checkpoint, build_model, Upscaler\n"
            "assert callable(vsrdeploy.load_checkpoint) and 'basicvsr' in vsrdeploy.list_models()\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        import vsrdeploy
        vsrdeploy.nope  # noqa: B018
