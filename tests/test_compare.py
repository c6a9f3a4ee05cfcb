"""`vsrdeploy compare` / `bench`: reports, tolerance gates, NaN detection, degradations."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from vsrdeploy.cli import main
from vsrdeploy.evaluate.compare import Target, prepare_clips, run_compare
from vsrdeploy.runtimes.base import register_backend
from vsrdeploy.runtimes.onnxruntime_backend import OrtCpuBackend

cv2 = pytest.importorskip("cv2")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return tiny_bundle


@pytest.fixture(scope="module")
def hr_clip(tmp_path_factory):
    """8 smooth HR frames (64x80) with motion, as a PNG directory."""
    d = tmp_path_factory.mktemp("hr")
    base = cv2.GaussianBlur((np.random.default_rng(0).random((100, 120, 3)) * 255).astype(np.uint8), (7, 7), 2)
    for i in range(8):
        cv2.imwrite(str(d / f"f{i}.png"), base[i:i + 64, 2 * i:2 * i + 80])
    return d


def _compare(*args):
    return CliRunner().invoke(main, ["compare", *map(str, args)])


def test_compare_writes_report_and_passes(bundle, hr_clip, tmp_path):
    report = tmp_path / "rep"
    result = _compare(bundle, "-i", hr_clip, "--degrade", "bi", "--backends", "torch,ort-cpu,openvino-cpu",
                      "--precisions", "fp32,int8", "--window", 3, "--lookahead", 1, "--report", report,
                      "--sweep-lookahead", "0,2", "--max-error", 1.0, "--warmup", 2, "--repeat", 2)
    assert result.exit_code == 0, result.output
    for name in ("report.md", "report.json", "frames.csv", "latency_vs_psnr.png", "psnr_per_frame.png",
                 "psnr_vs_lookahead.png"):
        assert (report / name).stat().st_size > 0, name
    data = json.loads((report / "report.json").read_text())
    assert data["passed"] is True and data["lr_size"] == [16, 20] and data["out_size"] == [64, 80]
    by_label = {f"{t['backend']}/{t['precision']}": t for t in data["targets"]}
    assert by_label["ort-cpu/fp32"]["status"] == "ok"
    assert by_label["ort-cpu/int8"]["status"] == "skipped" and "int8" in by_label["ort-cpu/int8"]["reason"]
    ok = by_label["ort-cpu/fp32"]
    assert len(ok["frames"]) == 8 and {"psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "max_abs_error"} <= set(ok["frames"][0])
    assert ok["summary"]["max_abs_error_vs_torch_stream"] <= 1e-4  # same computation as PyTorch streaming
    assert ok["fps"] > 0 and ok["frame_ms_p95"] >= ok["frame_ms_p50"] > 0
    assert ok["repeat"] == 2 and len(ok["fps_runs"]) == 2 and ok["fps_min"] <= ok["fps"] <= ok["fps_max"]
    assert ok["warmup_frames"] == 2 and len(ok["first_frame_ms_runs"]) == 2
    assert ok["frame_ms_p5"] <= ok["frame_ms_p50"] <= ok["frame_ms_p95"] <= ok["frame_ms_p99"]
    assert data["reference"]["repeat"] == 1  # the whole-clip reference runs once
    assert data["machine"]["versions"]["torch"] and data["machine"]["cpu"]["flags"] is not None
    assert "timed over 2 runs" in (report / "report.md").read_text()
    assert [s["lookahead"] for s in data["sweep"]] == [0, 2]
    assert data["bicubic"]["psnr_y_mean"] > 10
    md = (report / "report.md").read_text()
    assert "![Latency vs quality](latency_vs_psnr.png)" in md and "ort-cpu/fp32" in md
    csv_lines = (report / "frames.csv").read_text().splitlines()
    assert csv_lines[0].startswith("target,") and len(csv_lines) == 1 + 8 * 4  # reference + 3 targets


def test_planted_tolerance_failure_exits_non_zero(bundle, hr_clip):
    result = _compare(bundle, "-i", hr_clip, "--degrade", "bd", "--backends", "ort-cpu", "--window", 2,
                      "--lookahead", 0, "--max-error", 1e-12)
    assert result.exit_code == 1
    assert "FAIL ort-cpu/fp32: max abs error" in result.output


def test_min_psnr_gate_names_the_worst_frame(bundle, hr_clip):
    result = _compare(bundle, "-i", hr_clip, "--degrade", "bi", "--backends", "ort-cpu", "--window", 2,
                      "--lookahead", 0, "--min-psnr", 500)
    assert result.exit_code == 1 and "at frame" in result.output and "--min-psnr 500" in result.output


@register_backend("test-nan")
class NaNBackend(OrtCpuBackend):
    """ort-cpu that poisons the third upsample call (a planted NaN)."""

    calls = 0

    def run(self, cell, inputs):
        out = super().run(cell, inputs)
        if cell == "upsample":
            type(self).calls += 1
            if type(self).calls == 3:
                out["hr"][0, 0, 0, 0] = float("nan")
        return out


def test_nan_output_fails_with_frame_index(bundle, hr_clip):
    from vsrdeploy.bundle import Bundle
    lr, gt, _, _ = prepare_clips(str(hr_clip), None, "bi", None)
    NaNBackend.calls = 0
    result = run_compare(Bundle(bundle), lr, [Target("test-nan")], window=1, lookahead=0, gt=gt)
    target = result.targets[0]
    assert target.status == "failed" and "frame 2 contains NaN or Inf" in target.reason
    assert not result.passed


def test_degrade_bi_sizes_and_values(hr_clip):
    from vsrdeploy.evaluate.degrade import bicubic_resize
    lr, gt, desc, _ = prepare_clips(str(hr_clip), None, "bi", 3)
    assert lr.shape == (3, 3, 16, 20) and gt.shape == (3, 3, 64, 80)
    assert np.allclose(lr[1], bicubic_resize(gt[1], 0.25), atol=1e-6)
    assert "--degrade bi" in desc


def test_gt_and_degrade_are_exclusive(hr_clip):
    from vsrdeploy import ConfigError
    with pytest.raises(ConfigError, match="either --gt HR_CLIP or --degrade"):
        prepare_clips(str(hr_clip), str(hr_clip), "bi", None)


def test_unknown_precision(bundle, hr_clip):
    result = _compare(bundle, "-i", hr_clip, "--precisions", "fp8")
    assert result.exit_code != 0 and "unknown precision(s) fp8" in result.output


def test_bench_reports_ratios_against_whole_clip(bundle):
    result = CliRunner().invoke(main, ["bench", str(bundle), "--backends", "ort-cpu,ort-cuda", "--size", "24x32",
                                       "--frames", "4", "--repeat", "2", "--warmup", "0", "--window", "2",
                                       "--lookahead", "1", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{"):])
    records = data["results"]
    assert [r["name"] for r in records] == ["whole-clip torch", "ort-cpu", "ort-cuda"]
    base, ort_cpu, cuda = records
    assert base["ratio"] == 1.0 and len(base["fps_runs"]) == 2 and base["peak_rss_mb"] > 0
    assert ort_cpu["status"] == "ok" and ort_cpu["ratio"] > 0
    assert len(ort_cpu["fps_runs"]) == 2 and ort_cpu["fps_min"] <= ort_cpu["fps"] <= ort_cpu["fps_max"]
    assert 0 < ort_cpu["frame_ms_p5"] <= ort_cpu["frame_ms_p50"] <= ort_cpu["frame_ms_p95"] <= ort_cpu["frame_ms_p99"]
    assert ort_cpu["first_frame_s"] > 0 and len(ort_cpu["first_frame_ms_runs"]) == 2
    assert base["first_frame_s"] == base["total_s"]  # the whole-clip forward gives every frame at the end
    machine = data["machine"]
    assert machine["cpu"]["model"] and machine["cpu"]["logical_cores"] >= 1
    assert machine["versions"]["onnxruntime"] and "tensorrt" in machine["versions"]
    assert "torch_intra_op" in machine["threads"]
    assert data["settings"]["repeat"] == 2 and data["settings"]["size"] == [24, 32]
    if cuda["status"] == "skipped":
        assert "CUDA" in cuda["reason"] or "GPU" in cuda["reason"]


def test_skip_leading_frames(hr_clip):
    lr, gt, _, desc = prepare_clips(str(hr_clip), None, "bi", 3, skip=2)
    full, _, _, _ = prepare_clips(str(hr_clip), None, "bi", None)
    assert np.array_equal(gt, prepare_clips(str(hr_clip), None, None, None)[0][2:5])
    assert "frames 2-4" in desc and np.allclose(lr, full[2:5])
    from vsrdeploy import InputError
    with pytest.raises(InputError, match="no frames after skipping 50"):
        prepare_clips(str(hr_clip), None, "bi", 3, skip=50)


@register_backend("test-boom")
class BoomBackend(OrtCpuBackend):
    """ort-cpu that crashes on its second upsample call with a multi-line message (a planted bug)."""

    calls = 0

    def run(self, cell, inputs):
        if cell == "upsample":
            type(self).calls += 1
            if type(self).calls == 2:
                raise RuntimeError("kernel exploded\n  at line 2 of the runtime's own message")
        return super().run(cell, inputs)


def test_a_crashing_target_is_a_failed_row_and_the_run_goes_on(bundle, hr_clip, tmp_path):
    BoomBackend.calls = 0
    report = tmp_path / "rep"
    result = _compare(bundle, "-i", hr_clip, "--degrade", "bi", "--backends", "test-boom,ort-cpu", "--window", 1,
                      "--lookahead", 0, "--report", report)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "FAIL test-boom/fp32: RuntimeError: kernel exploded at line 2 of the runtime's own message" in result.output
    data = json.loads((report / "report.json").read_text())
    rows = {t["backend"]: t for t in data["targets"]}
    assert rows["test-boom"]["status"] == "failed" and "\n" not in rows["test-boom"]["reason"]
    assert rows["ort-cpu"]["status"] == "ok" and len(rows["ort-cpu"]["frames"]) == 8  # measured after the crash
    assert data["passed"] is False


def test_every_target_skipped_is_not_a_pass(bundle, hr_clip):
    result = _compare(bundle, "-i", hr_clip, "--degrade", "bi", "--backends", "ort-cpu", "--precisions", "int8",
                      "--max-error", 1e-9)
    assert result.exit_code == 1
    assert "no target was compared" in result.output
