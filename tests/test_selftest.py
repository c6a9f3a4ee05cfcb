"""`vsrdeploy selftest`: runs here, says why each GPU path cannot, and flags a planted per-cell divergence.
The full command (about 4 minutes on 2 CPU cores) is the slow test at the end."""
import json

import pytest
import torch
from click.testing import CliRunner

from vsrdeploy.cli import main
from vsrdeploy.errors import OutputError
from vsrdeploy.runtimes.base import register_backend
from vsrdeploy.runtimes.onnxruntime_backend import OrtCpuBackend
from vsrdeploy.evaluate.selftest import Check, SelfTest, format_report, make_report, write_report

pytest.importorskip("onnxruntime")
NO_GPU = not torch.cuda.is_available()


@register_backend("test-drift")
class DriftBackend(OrtCpuBackend):
    """ort-cpu whose upsample cell is off by 1e-3 (a planted divergence in one cell)."""

    def run(self, cell, inputs):
        out = super().run(cell, inputs)
        return {k: v + 1e-3 for k, v in out.items()} if cell == "upsample" else out


@register_backend("test-absent")
class AbsentBackend(OrtCpuBackend):
    @classmethod
    def unavailable_reason(cls):
        return "the test-absent runtime is not installed"


@pytest.mark.skipif(not NO_GPU, reason="checks the rows of a machine without a CUDA GPU")
def test_gpu_rows_say_why_they_did_not_run(tmp_path):
    st = SelfTest(gpu=True, workdir=tmp_path)
    st.tensorrt_section()
    st.cuda_dcn_section()
    st.cuda_graphs_section()
    names = [c.name for c in st.checks]
    assert names == [f"basicvsr_pp dcn={d} {p}" for d in ("native", "plugin") for p in ("fp32", "fp16", "int8")] + \
        ["CUDA DCN kernel float32", "CUDA DCN kernel float16", "TensorRT fp32 with CUDA graphs off / on"]
    for c in st.checks:
        assert c.status == "not available", c
        assert ("TensorRT" in c.detail or "CUDA GPU" in c.detail), c.detail
    assert not any(tmp_path.iterdir())  # nothing was exported for paths that cannot run


def test_backend_rows_parity_and_reasons(tmp_path):
    st = SelfTest(workdir=tmp_path, models=("basicvsr",))
    loaded = st.backend_section(["torch", "test-drift", "test-absent", "torch-cuda"])
    rows = {c.name: c for c in st.checks}
    torch_row = rows["torch / basicvsr"]
    assert torch_row.status == "ok" and set(torch_row.values["cells"]) == {"flow", "warp", "backward_trunk",
                                                                         "forward_trunk", "upsample"}
    assert max(torch_row.values["cells"].values()) < 1e-4
    drift = rows["test-drift / basicvsr"]
    assert drift.status == "failed" and "worst upsample.hr error" in drift.detail, drift.detail
    assert 5e-4 < drift.values["cells"]["upsample"] <= 1e-3  # 1e-3 over max(1, max|hr|)
    assert drift.values["cells"]["flow"] == 0.0  # the other cells still match exactly
    assert rows["test-absent / basicvsr"].status == "not available"
    assert rows["test-absent / basicvsr"].detail == "the test-absent runtime is not installed"
    cuda = rows["torch-cuda / basicvsr"]
    assert cuda.status == ("not available" if NO_GPU else "not run")
    assert loaded == ["torch"]


def test_report_files_carry_the_machine_and_every_row(tmp_path):
    checks = [Check("backend", "torch / basicvsr", "ok", "fine", 1.0),
              Check("tensorrt", "basicvsr_pp dcn=native fp32", "not available", "TensorRT is not installed", 0.0)]
    report = make_report(checks, gpu=False)
    assert report["passed"] and report["counts"] == {"ok": 1, "failed": 0, "not available": 1, "not run": 0}
    files = write_report(report, tmp_path / "rep")
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    machine = data["machine"]
    assert machine["versions"]["torch"] == torch.__version__ and "onnxruntime" in machine["versions"]
    assert machine["cpu"]["model"] and machine["cpu"]["logical_cores"] >= 1
    assert machine["threads"]["torch_intra_op"] == torch.get_num_threads()
    md = (tmp_path / "rep" / "report.md").read_text()
    assert md == format_report(report) and "| tensorrt | basicvsr_pp dcn=native fp32 | not available | " \
                                           "TensorRT is not installed |" in md
    assert [p.name for p in files] == ["report.json", "report.md"]
    write_report(report, tmp_path / "rep")  # a selftest report may be replaced by the next one
    failing = make_report(checks + [Check("stream", "x", "failed", "boom")], gpu=True)
    assert not failing["passed"] and "result: FAIL" in format_report(failing)
    assert not make_report([checks[1]], gpu=False)["passed"]  # nothing ran: no pass


def test_report_refuses_a_directory_with_someone_elses_report(tmp_path):
    (tmp_path / "report.json").write_text('{"mine": 1}')
    with pytest.raises(OutputError, match="not a selftest report"):
        write_report(make_report([Check("a", "b", "ok")], False), tmp_path)
    assert (tmp_path / "report.json").read_text() == '{"mine": 1}'
    with pytest.raises(OutputError, match="is a file"):
        write_report(make_report([], False), tmp_path / "report.json")


@pytest.mark.slow
def test_selftest_command_runs_here(tmp_path):
    result = CliRunner().invoke(main, ["selftest", "--gpu", "--report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "report.json").read_text())
    by = {c["name"]: c for c in data["checks"]}
    assert by["openvino-cpu / basicvsr_pp"]["status"] == "ok"
    assert by["ort-cpu / basicvsr int8-cpu"]["status"] == "ok"
    if NO_GPU:
        assert all(by[n]["status"] == "not available" and by[n]["detail"] for n in by
                   if n.startswith(("basicvsr_pp dcn=", "CUDA DCN", "TensorRT fp32")))


def test_cpu_info_tells_cpu_generations_apart_when_the_model_name_does_not(monkeypatch):
    """A VM's bare "AMD EPYC" gets its x86 family / model numbers, so figures from Zen 3 and Zen 5 differ."""
    import io

    from vsrdeploy.evaluate import machine

    text = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC\n"
            "flags\t\t: fpu sse avx avx2 fma\n\nprocessor\t: 1\ncpu family\t: 25\nmodel\t\t: 1\n")
    monkeypatch.setattr(machine, "open", lambda *a, **k: io.StringIO(text), raising=False)
    cpu = machine.cpu_info()
    assert cpu["model"] == "AMD EPYC (family 25 model 1)"
    assert cpu["flags"] == ["avx2", "fma"]
    no_numbers = "model name\t: Neoverse\nFeatures\t: fp asimd sve\n"  # aarch64: no family / model lines
    monkeypatch.setattr(machine, "open", lambda *a, **k: io.StringIO(no_numbers), raising=False)
    assert machine.cpu_info()["model"] == "Neoverse" and machine.cpu_info()["flags"] == ["asimd", "sve"]
