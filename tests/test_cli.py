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
