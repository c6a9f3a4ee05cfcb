from click.testing import CliRunner

from vsrdeploy.cli import main


def test_help_lists_commands():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for cmd in ("models", "inspect", "parity"):
        assert cmd in result.output


def test_models_lists_architectures_and_upstream_configs():
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0
    assert "basicvsr_pp:" in result.output and "NTIRE21 VSR" in result.output
    assert '"padding": 3' in result.output  # IconVSR Vimeo-90K


def test_inspect_reference_checkpoint(vectors):
    result = CliRunner().invoke(main, ["inspect", str(vectors / "iconvsr_c64n1_pad2.basicsr.pth")])
    assert result.exit_code == 0, result.output
    assert "arch       : iconvsr" in result.output
    assert "basicsr" in result.output
    assert '"padding": 2' in result.output
    assert "parameters : 4,411,343" in result.output


def test_inspect_missing_file_is_one_line_error(tmp_path):
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "missing.pth")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"Error: checkpoint not found: {tmp_path / 'missing.pth'}"]
    assert "Traceback" not in result.output


def test_backends_lists_availability_with_reasons():
    result = CliRunner().invoke(main, ["backends"])
    assert result.exit_code == 0
    lines = dict(line.split(None, 1) for line in result.output.strip().splitlines())
    assert lines["torch"] == "available" and lines["ort-cpu"] == "available"
    for name in ("ort-cuda", "ort-trt", "openvino-gpu", "torch-cuda"):
        assert name in lines
    if "unavailable" in lines["torch-cuda"]:
        assert "no CUDA GPU" in lines["torch-cuda"]


def test_precision_commands_end_to_end(tiny_bundle, tmp_path):
    """convert -> check, calibrate (on a video written here) -> check, build without TensorRT."""
    import cv2
    import numpy as np
    clip = tmp_path / "calib.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32))
    rng = np.random.default_rng(0)
    for _ in range(4):
        writer.write(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    writer.release()
    runner = CliRunner()
    fp16 = tmp_path / "t-fp16.vsr"
    res = runner.invoke(main, ["convert", str(tiny_bundle), "-o", str(fp16)])
    assert res.exit_code == 0, res.output
    assert "kept in FP32: sampling-grid, op=DeformConv" in res.output
    int8 = tmp_path / "t-int8.vsr"
    res = runner.invoke(main, ["calibrate", str(tiny_bundle), "--frames", str(clip), "--target", "tensorrt",
                               "-o", str(int8)])
    assert res.exit_code == 0, res.output
    assert "int8 for tensorrt, minmax calibration on 4 frames" in res.output
    res = runner.invoke(main, ["check", str(int8), "--target", "tensorrt-10"])
    assert res.exit_code == 0 and "no problems found" in res.output, res.output
    res = runner.invoke(main, ["check", str(fp16), "--target", "tensorrt-11", "--json"])
    assert res.exit_code == 0 and res.output.strip().startswith("[")
    res = runner.invoke(main, ["calibrate", str(tiny_bundle), "--frames", str(clip), "--exclude", "bogus"])
    assert res.exit_code != 0 and "bad node rule" in res.output
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        res = runner.invoke(main, ["build", str(int8)])
        assert res.exit_code != 0 and "TensorRT is not installed" in res.output
