"""Misuse of `compare`, `bench` and `calibrate` (issue 11 items 10 and 12): typos and bad numbers are
one-line errors that say what to pass; a gate that compared nothing does not pass."""
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from vsrdeploy.cli import main
from vsrdeploy.errors import ConfigError

pytest.importorskip("onnxruntime")


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _assert_one_line_error(result, code, match):
    """Exit ``code``, an error line matching ``match``, and no traceback."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith(("Error:", "FAIL"))]
    assert len(errors) == 1, result.output
    assert re.search(match, errors[0]), errors[0]


# -- unknown names ------------------------------------------------------------------------------------

@pytest.mark.parametrize("args,match", [
    (["--backends", "ort-cpuu", "--max-error", "1e-9"], r"unknown backend\(s\) ort-cpuu; choose from .*ort-cpu"),
    (["--backends", "torch,nope,ort-cpuu"], r"unknown backend\(s\) nope, ort-cpuu; choose from .*openvino-cpu"),
    (["--backends", ","], r"give at least one backend"),
    (["--precisions", "fp8"], r"unknown precision\(s\) fp8; choose from fp32, fp16, bf16, int8"),
    (["--precisions", "FP16"], r"unknown precision\(s\) FP16"),
])
def test_compare_unknown_names(tiny_bundle, tmp_path, args, match):
    # the clip does not exist: names are checked before anything is read or exported
    _assert_one_line_error(_invoke("compare", tiny_bundle, "-i", tmp_path / "none.avi", *args), 1, match)


@pytest.mark.parametrize("backends,match", [
    ("nope", r"unknown backend\(s\) nope; choose from .*ort-cpu"),
    ("ort-cpu,tensorrtt", r"unknown backend\(s\) tensorrtt"),
    ("", r"give at least one backend"),
])
def test_bench_unknown_names(tiny_bundle, backends, match):
    _assert_one_line_error(_invoke("bench", tiny_bundle, "--backends", backends), 1, match)


def test_library_refuses_unknown_names(tiny_bundle):
    from vsrdeploy.evaluate.bench import run_bench
    from vsrdeploy.evaluate.compare import parse_targets
    with pytest.raises(ConfigError, match=r"unknown backend\(s\) ort-cpuu; choose from"):
        parse_targets(["ort-cpuu"], ["fp32"])
    with pytest.raises(ConfigError, match=r"unknown backend\(s\) nope"):
        run_bench(str(tiny_bundle), ["nope"])
    with pytest.raises(ConfigError, match="repeat >= 1"):
        run_bench(str(tiny_bundle), ["ort-cpu"], repeat=0)


# -- bad numbers -------------------------------------------------------------------------------------

COMPARE_NUMBERS = [
    (["--frames", "-2"], r"Invalid value for '--frames': -2 is not in the range x>=1"),
    (["--frames", "0"], r"'--frames': 0 is not in the range x>=1"),
    (["--frames", "two"], r"'--frames': 'two' is not a valid integer"),
    (["--skip", "-1"], r"'--skip': -1 is not in the range x>=0"),
    (["--window", "-4"], r"'--window': -4 is not in the range x>=0"),
    (["--lookahead", "-3"], r"'--lookahead': -3 is not in the range x>=0"),
    (["--sweep-lookahead", "1,x"], r"'--sweep-lookahead': expected comma-separated whole numbers >= 0 like 0,2,4,8"),
    (["--sweep-lookahead", "2,-1"], r"'--sweep-lookahead': expected comma-separated whole numbers >= 0"),
    (["--sweep-lookahead", ","], r"'--sweep-lookahead': expected comma-separated whole numbers"),
    (["--max-error", "tiny"], r"'--max-error': 'tiny' is not a valid float"),
]


@pytest.mark.parametrize("args,match", COMPARE_NUMBERS)
def test_compare_bad_numbers(tiny_bundle, tmp_path, args, match):
    _assert_one_line_error(_invoke("compare", tiny_bundle, "-i", tmp_path / "none.avi", *args), 2, match)


@pytest.mark.parametrize("args,match", [
    (["--frames", "0"], r"'--frames': 0 is not in the range x>=1"),
    (["--repeat", "0"], r"'--repeat': 0 is not in the range x>=1"),
    (["--repeat", "-1"], r"'--repeat': -1 is not in the range x>=1"),
    (["--warmup", "-1"], r"'--warmup': -1 is not in the range x>=0"),
    (["--threads", "0"], r"'--threads': 0 is not in the range x>=1"),
    (["--window", "-1"], r"'--window': -1 is not in the range x>=0"),
    (["--lookahead", "-1"], r"'--lookahead': -1 is not in the range x>=0"),
    (["--size", "0x64"], r"sizes must be positive"),
])
def test_bench_bad_numbers(tiny_bundle, args, match):
    _assert_one_line_error(_invoke("bench", tiny_bundle, "--backends", "ort-cpu", *args), 2, match)


@pytest.mark.parametrize("args,match", [
    (["--max-frames", "-5"], r"'--max-frames': -5 is not in the range x>=2"),
    (["--max-frames", "1"], r"'--max-frames': 1 is not in the range x>=2"),
    (["--skip", "-1"], r"'--skip': -1 is not in the range x>=0"),
    (["--samples", "0"], r"'--samples': 0 is not in the range x>=1"),
])
def test_calibrate_bad_numbers(tiny_bundle, tmp_path, args, match):
    _assert_one_line_error(_invoke("calibrate", tiny_bundle, "--frames", tmp_path / "none.avi",
                                   "-o", tmp_path / "out.vsr", *args), 2, match)
    assert not (tmp_path / "out.vsr").exists()


# -- gates that compared nothing ------------------------------------------------------------------------

def test_compare_gate_with_every_target_skipped_fails(tiny_bundle, tmp_path):
    import numpy as np
    cv2 = pytest.importorskip("cv2")
    clip = tmp_path / "clip"
    clip.mkdir()
    for i in range(3):
        cv2.imwrite(str(clip / f"{i}.png"), np.full((16, 16, 3), 40 * i, np.uint8))
    # an FP32 bundle has no INT8 form: every target is skipped, so a --max-error gate must not pass
    result = _invoke("compare", tiny_bundle, "-i", clip, "--backends", "ort-cpu,openvino-cpu", "--precisions", "int8",
                     "--max-error", "1e-9", "--window", 2, "--lookahead", 0)
    _assert_one_line_error(result, 1, r"^FAIL no target was compared .*vsrdeploy backends")
    assert "skipped" in result.output


def test_bench_with_no_backend_that_runs_fails(tiny_bundle):
    import torch
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA, where ort-cuda cannot run")
    result = _invoke("bench", tiny_bundle, "--backends", "ort-cuda", "--size", "16x16", "--frames", 2, "--repeat", 1,
                     "--warmup", 0, "--window", 2, "--lookahead", 0)
    _assert_one_line_error(result, 1, r"^FAIL no backend ran")
    assert "ort-cuda" in result.output and "skipped" in result.output


def test_real_process_prints_no_traceback(tiny_bundle):
    """The installed entry point, not CliRunner: stderr holds the one error line and click's usage hint."""
    res = subprocess.run([sys.executable, "-m", "vsrdeploy.cli", "compare", str(tiny_bundle), "-i", "x.avi",
                          "--backends", "ort-cpuu", "--max-error", "1e-9"], capture_output=True, text=True)
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [res.stderr.strip()] and "unknown backend(s) ort-cpuu" in res.stderr
