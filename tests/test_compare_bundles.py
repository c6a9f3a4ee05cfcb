"""Issue 17: several bundles of one network in one compare, the reference choices, and per-cell diagnosis
finding a planted divergence."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
cv2 = pytest.importorskip("cv2")

from vsrdeploy.bundle import Bundle  # noqa: E402
from vsrdeploy.cli import main  # noqa: E402
from vsrdeploy.evaluate.compare import (ReferenceSpec, Target, clip_warning, parse_reference, parse_targets,  # noqa: E402
                               run_compare)
from vsrdeploy.errors import ConfigError  # noqa: E402

from tests.conftest import random_clip  # noqa: E402

PERTURBED_CELL = "backward_trunk"


@pytest.fixture(scope="module")
def forms(tiny_bundle, tmp_path_factory):
    """The tiny FP32 bundle, its FP16 and INT8 derived bundles (made the quick way test_precision does)."""
    from vsrdeploy.calib.fp16 import convert_bundle_fp16
    from vsrdeploy.calib.int8 import calibrate_bundle
    d = tmp_path_factory.mktemp("forms")
    fp32 = Bundle(tiny_bundle)
    fp16 = Bundle(convert_bundle_fp16(fp32, d / "tiny-fp16.vsr"))
    int8 = Bundle(calibrate_bundle(fp32, random_clip(t=4, h=32, w=32)[0].numpy(), d / "tiny-int8.vsr",
                                   progress=False))
    return fp32, fp16, int8


@pytest.fixture(scope="module")
def perturbed(tiny_bundle, tmp_path_factory):
    """A legitimate derived copy of the tiny bundle (hashes and description hash recomputed by
    ``Bundle.derive``) whose backward trunk has one conv's weights perturbed."""
    from onnx import numpy_helper
    src = Bundle(tiny_bundle)
    model = onnx.load(str(src.cell_path(PERTURBED_CELL)))
    conv_weights = {n.input[1] for n in model.graph.node if n.op_type == "Conv"}
    init = next(i for i in model.graph.initializer if i.name in conv_weights)
    w = numpy_helper.to_array(init)
    noisy = w + 0.05 * np.random.default_rng(0).standard_normal(w.shape).astype(w.dtype)
    init.CopyFrom(numpy_helper.from_array(noisy, init.name))
    out = src.derive(tmp_path_factory.mktemp("bad") / "tiny-bad.vsr", {PERTURBED_CELL: model}, "fp32",
                     {"note": f"test: {init.name} perturbed"})
    return Bundle(out)  # opens only if the manifest and every hash check out


@pytest.fixture(scope="module")
def lr_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("lr")
    for i, f in enumerate(random_clip(t=6, h=16, w=20)[0].numpy()):
        cv2.imwrite(str(d / f"{i:03d}.png"), (f.transpose(1, 2, 0)[:, :, ::-1] * 255).round().astype(np.uint8))
    return d


def test_targets_per_bundle_take_each_bundles_precision(forms):
    fp32, fp16, int8 = forms
    targets = parse_targets(["ort-cpu", "openvino-cpu"], ["fp32", "fp16"], [fp32, fp16, int8])
    assert [t.label for t in targets] == [
        "tiny:ort-cpu/fp32", "tiny:ort-cpu/fp16", "tiny:openvino-cpu/fp32", "tiny:openvino-cpu/fp16",
        "tiny-fp16:ort-cpu/fp16", "tiny-fp16:openvino-cpu/fp16", "tiny-int8:ort-cpu/int8",
        "tiny-int8:openvino-cpu/int8"]
    # int8-bf16: the INT8 bundle's float ops in BF16, so rows of the INT8 bundle only (after its own int8 row)
    targets = parse_targets(["openvino-cpu"], ["fp32", "int8-bf16"], [fp32, int8])
    assert [t.label for t in targets] == ["tiny:openvino-cpu/fp32", "tiny-int8:openvino-cpu/int8",
                                          "tiny-int8:openvino-cpu/int8-bf16"]


def test_bundles_of_different_networks_are_refused(forms, tmp_path):
    import torch

    import vsrdeploy
    torch.manual_seed(1)
    other = Bundle(vsrdeploy.export_onnx(vsrdeploy.build_model("basicvsr", mid_channels=8, num_blocks=1).eval(),
                                         tmp_path / "other.vsr"))
    with pytest.raises(ConfigError, match="different weights"):
        parse_targets(["ort-cpu"], ["fp32"], [forms[0], other])


@pytest.mark.parametrize("spec,match", [("model.vsr", "BUNDLE:BACKEND"), ("x.vsr:ort-cpuu", "unknown backend"),
                                        (":ort-cpu", "BUNDLE:BACKEND")])
def test_bad_reference_specs(spec, match):
    with pytest.raises(ConfigError, match=match):
        parse_reference(spec)


def test_short_clip_warning():
    assert clip_warning(12, 4, 2) is None
    assert "flat line" in clip_warning(6, 4, 2, sweep=[0, 2])
    assert "not more than window 4 + lookahead 2" in clip_warning(6, 4, 2)
    assert clip_warning(6, None, 0) is None  # whole clip: nothing is streamed


def test_multi_bundle_compare_one_report(forms, lr_dir, tmp_path):
    fp32, fp16, int8 = forms
    report = tmp_path / "rep"
    result = CliRunner().invoke(main, ["compare", str(fp32.path), str(fp16.path), str(int8.path), "-i", str(lr_dir),
                                       "--backends", "ort-cpu", "--window", "2", "--lookahead", "1", "--repeat", "1",
                                       "--warmup", "1", "--report", str(report), "--max-error", "0.5"])
    assert result.exit_code == 0, result.output
    data = json.loads((report / "report.json").read_text())
    labels = [f"{t['bundle']}:{t['backend']}/{t['precision']}" for t in data["targets"]]
    assert labels == ["tiny:ort-cpu/fp32", "tiny-fp16:ort-cpu/fp16", "tiny-int8:ort-cpu/int8"]
    assert all(t["status"] == "ok" and len(t["frames"]) == 6 for t in data["targets"]), data["targets"]
    err = {t["precision"]: t["summary"]["max_abs_error_vs_torch_stream"] for t in data["targets"]}
    assert err["fp32"] < 1e-4 < err["int8"]  # FP32 is the streamed PyTorch computation; INT8 is not
    assert data["bundles"] == [str(fp32.path), str(fp16.path), str(int8.path)]
    assert data["reference_description"] == "whole-clip PyTorch FP32" and data["warnings"] == []
    md = (report / "report.md").read_text()
    for label in labels:
        assert label in md and label in result.output
    for png in ("error_per_frame", "psnr_per_frame", "latency_vs_psnr", "diff_heatmap", "crops"):
        assert (report / f"{png}.png").stat().st_size > 10_000 and f"({png}.png)" in md, png
    # progress per target, frame by frame (rich draws the final state once when not on a terminal)
    lines = result.output.splitlines()
    assert all(any(label in line and "6/6" in line for line in lines) for label in labels), result.output


def test_streamed_and_bundle_references(forms):
    fp32, fp16, _ = forms
    lr = random_clip(t=5, h=16, w=16)[0].numpy()
    targets = [Target("ort-cpu", "fp32", fp32, "tiny"), Target("ort-cpu", "fp16", fp16, "tiny-fp16")]
    stream = run_compare(fp32, lr, targets, window=2, lookahead=1, reference=ReferenceSpec("stream"))
    assert stream.reference.window == 2 and "streamed" in stream.reference_description
    assert stream.targets[0].summary["max_abs_error"] < 1e-4  # same streaming: only runtime error is left
    ticks = []
    by_bundle = run_compare(fp32, lr, targets[1:], window=2, lookahead=1,
                            reference=ReferenceSpec("bundle", fp32, "ort-cpu"),
                            tick=lambda label, done, total: ticks.append((label, done, total)))
    assert by_bundle.reference.backend == "ort-cpu" and "tiny.vsr on ort-cpu" in by_bundle.reference_description
    fp16_err = by_bundle.targets[0].summary["max_abs_error"]
    assert 0 < fp16_err < 5e-2
    assert ("reference", 5, 5) in ticks and ("tiny-fp16:ort-cpu/fp16", 5, 5) in ticks
    with pytest.raises(ConfigError, match="--window"):
        run_compare(fp32, lr, targets, window=None, reference=ReferenceSpec("stream"))
    big = random_clip(t=3, h=32, w=40)[0].numpy()  # tiles of 24 (default overlap 16): 2 x 2 per frame
    tiled = run_compare(fp32, big, targets[:1], window=2, lookahead=1, reference=parse_reference("stream", tile=24))
    assert "tiles 24" in tiled.reference_description
    err = tiled.targets[0].summary["max_abs_error"]
    assert 1e-4 < err < 1.0  # tiles approximate: the untiled target differs from the tiled reference, boundedly
    with pytest.raises(ConfigError, match="--reference-tile needs a streamed reference"):
        parse_reference("whole", tile=12)


def test_per_cell_finds_planted_divergence(tiny_bundle, perturbed):
    from vsrdeploy.evaluate.cell_diff import diagnose_cells
    good = Bundle(tiny_bundle)
    lr = random_clip(t=5, h=16, w=16)[0].numpy()
    d = diagnose_cells(good, lr, [Target("ort-cpu", "fp32", good, "tiny"),
                                  Target("ort-cpu", "fp32", perturbed, "tiny-bad")], window=2, lookahead=1)
    first = d.first_divergence
    assert first is not None and first["cell"] == PERTURBED_CELL and first["target"] == "tiny-bad:ort-cpu/fp32"
    # the schedule runs the backward branch first, from the end of the first span (window 2 + lookahead 1)
    assert first["frame"] == 2 and first["error"] > 1e-4
    per_cell = {row["cell"]: row for row in d.cells}
    assert set(per_cell) == set(good.cells)
    assert all(row["max_error"] == 0.0 for cell, row in per_cell.items() if cell != PERTURBED_CELL)
    assert per_cell[PERTURBED_CELL]["calls"] == 5 + 2  # every frame once per span it is in (spans 0-2, 2-4, 4)
    frames = {e.frame for e in d.errors if e.cell == PERTURBED_CELL}
    assert frames == set(range(5))  # every call found its frame
    layers = d.layers["tiny-bad:ort-cpu/fp32"]
    assert layers["cell"] == PERTURBED_CELL and layers["first"]["op"] == "Conv"
    assert layers["compared_tensors"] > 3


def test_per_cell_cli_ok_between_runtimes_and_fails_on_planted(tiny_bundle, perturbed, lr_dir, tmp_path):
    ok = CliRunner().invoke(main, ["compare", str(tiny_bundle), "-i", str(lr_dir), "--backends",
                                   "ort-cpu,openvino-cpu", "--window", "3", "--lookahead", "1", "--per-cell",
                                   "--frames", "4"])
    assert ok.exit_code == 0, ok.output
    assert "openvino-cpu/fp32: every cell within 0.0001 on every frame" in ok.output
    bad = CliRunner().invoke(main, ["compare", str(tiny_bundle), str(perturbed.path), "-i", str(lr_dir),
                                    "--backends", "ort-cpu", "--window", "3", "--lookahead", "1", "--per-cell",
                                    "--frames", "4", "--report", str(tmp_path / "cells")])
    assert bad.exit_code == 1
    assert f"FAIL tiny-bad:ort-cpu/fp32: first divergence in cell {PERTURBED_CELL} at frame 3" in bad.output  # window 3 + lookahead 1
    saved = json.loads((tmp_path / "cells" / "per_cell.json").read_text())
    assert saved["first_divergence"]["cell"] == PERTURBED_CELL
    assert (tmp_path / "cells" / "per_cell_errors.png").stat().st_size > 10_000


def test_terminal_table_wraps_long_reasons_instead_of_cutting_them():
    from vsrdeploy.evaluate.compare import CompareResult, TargetResult
    from vsrdeploy.evaluate.report import format_table
    reason = ("backend ort-cuda is unavailable: onnxruntime here has no CUDAExecutionProvider (has "
              "[AzureExecutionProvider, CPUExecutionProvider]); install onnxruntime-gpu on a machine with an NVIDIA GPU")
    ref = TargetResult("torch", "fp32", "ok")
    result = CompareResult(model="m.vsr", arch="basicvsr", clip="c", num_frames=3, lr_size=(8, 8), out_size=(32, 32),
                           window=2, lookahead=0, ground_truth=None, crop_border=0, reference=ref, bicubic=None,
                           targets=[TargetResult("ort-cuda", "fp32", "skipped", reason)])
    text = format_table(result, width=100)
    assert max(len(line) for line in text.splitlines()) <= 100
    flat = " ".join(text.split())
    for word in reason.split():  # every word is there (wrapped, in brackets too), none cut
        assert word in flat, word
