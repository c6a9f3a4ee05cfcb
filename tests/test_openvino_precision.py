"""FP16 and INT8 bundles on OpenVINO CPU, against the FP32 bundle on ONNX Runtime.

The FP16 converter puts a Cast before each graph output; after compilation OpenVINO may name that output
port by the Cast's alias (``graph_output_cast_0``), so the backend matches ports on all their names.
Tolerances: measured on these tiny random-weight models (AMD EPYC, avx512), then about 10x margin.
"""
import numpy as np
import pytest
import torch

pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")

import vsrdeploy  # noqa: E402
from vsrdeploy.bundle import Bundle  # noqa: E402
from vsrdeploy.calib.fp16 import convert_bundle_fp16  # noqa: E402
from vsrdeploy.calib.int8 import calibrate_bundle  # noqa: E402
from vsrdeploy.runtimes.engine import Upscaler  # noqa: E402

from tests.conftest import random_clip  # noqa: E402


def _lr(t=4, h=32, w=32, seed=0):
    return random_clip(t=t, h=h, w=w, seed=seed)[0].numpy()


def _max_err(a, b):
    return float(np.abs(a - b).max())


@pytest.mark.parametrize("keep", ["default", "none"])
def test_fp16_bundle_on_openvino_cpu(tiny_bundle, tmp_path, keep):
    """Measured: OpenVINO vs FP32 2.2e-5, ORT on the same FP16 bundle vs FP32 2.3e-5 to 2.8e-5."""
    from vsrdeploy.calib.fp16 import DEFAULT_KEEP_FP32
    lr = _lr()
    fp32 = Bundle(tiny_bundle)
    fp16 = Bundle(convert_bundle_fp16(fp32, tmp_path / "fp16.vsr", keep=DEFAULT_KEEP_FP32 if keep == "default" else []))
    ref = Upscaler.create(fp32, "ort-cpu").upscale(lr)
    ort16 = Upscaler.create(fp16, "ort-cpu").upscale(lr)
    ov16 = Upscaler.create(fp16, "openvino-cpu").upscale(lr)
    assert ov16.shape == ref.shape and np.isfinite(ov16).all()
    err = _max_err(ov16, ref)
    assert 0 < err < 3e-4, err  # FP16 rounding shows, and stays small
    assert _max_err(ov16, ort16) < 3e-4  # both runtimes compute the same FP16 graph


def test_fp16_basicvsr_pp_decomposed_on_openvino_cpu(tmp_path):
    """BasicVSR++ used to fail with KeyError 'spatial'. Measured: 2.9e-5 vs the FP32 bundle."""
    torch.manual_seed(0)
    net = vsrdeploy.build_model("basicvsr_pp", mid_channels=8, num_blocks=1).eval()
    fp32 = Bundle(vsrdeploy.export_onnx(net, tmp_path / "pp.vsr", dcn="decomposed"))
    fp16 = Bundle(convert_bundle_fp16(fp32, tmp_path / "pp-fp16.vsr"))
    lr = _lr(t=3, h=64, w=64)
    ref = Upscaler.create(fp32, "ort-cpu").upscale(lr)
    out = Upscaler.create(fp16, "openvino-cpu").upscale(lr)
    assert 0 < _max_err(out, ref) < 3e-4


@pytest.mark.parametrize("target", ["cpu", "tensorrt", "openvino"])
def test_int8_bundle_on_openvino_cpu(tiny_bundle, tmp_path, target):
    """Measured max error vs FP32 on a VNNI CPU (AMD Zen 5): 7.0e-4 (cpu form), 9.4e-4 (tensorrt form);
    OpenVINO vs ORT on the same Q/DQ graph 4.9e-4 / 6.9e-4 (their INT8 kernels round differently). On an
    AVX2 CPU without VNNI (AMD Zen 3) OpenVINO's error on the tensorrt form (S8 activations) is 1.2e-2, so
    the bound there is looser. The openvino form is NNCF's."""
    from vsrdeploy.evaluate.machine import cpu_info
    flags = cpu_info()["flags"]
    bound = 1e-2 if {"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags) else 3e-2
    if target == "openvino":
        pytest.importorskip("nncf")
    fp32 = Bundle(tiny_bundle)
    int8 = Bundle(calibrate_bundle(fp32, _lr(t=5, seed=1), tmp_path / f"int8-{target}.vsr", target=target,
                                   progress=False))
    lr = _lr()
    ref = Upscaler.create(fp32, "ort-cpu").upscale(lr)
    ov = Upscaler.create(int8, "openvino-cpu").upscale(lr)
    ort = Upscaler.create(int8, "ort-cpu").upscale(lr)
    assert np.isfinite(ov).all()
    assert 0 < _max_err(ov, ref) < bound
    assert _max_err(ov, ort) < bound


def test_nncf_target_keeps_the_exclusions_in_float(tiny_bundle, tmp_path):
    """--target openvino: NNCF places the Q/DQ, the project's exclusion rules become its IgnoredScope
    (an excluded cell has no QuantizeLinear at all), the manifest says which quantizer ran, and the
    quantizer's own range estimators are the only --method."""
    import onnx
    pytest.importorskip("nncf")
    fp32 = Bundle(tiny_bundle)
    int8 = Bundle(calibrate_bundle(fp32, _lr(t=4, seed=1), tmp_path / "nncf.vsr", target="openvino",
                                   exclude=["cell=backward_trunk", "sampling-grid"], progress=False))
    details = int8.manifest["precision_details"]
    assert details["quantizer"] == "nncf" and details["target"] == "openvino"

    def qdq(cell):
        return sum(n.op_type == "QuantizeLinear" for n in onnx.load(str(int8.cell_path(cell))).graph.node)
    assert qdq("backward_trunk") == 0
    assert qdq("forward_trunk") > 0
    with pytest.raises(vsrdeploy.errors.ConfigError, match="drop --method"):
        calibrate_bundle(fp32, _lr(t=4, seed=1), tmp_path / "x.vsr", target="openvino", method="entropy",
                         progress=False)


def test_output_ports_matched_by_any_name():
    from vsrdeploy.errors import BundleError
    from vsrdeploy.runtimes.openvino_backend import _output_ports

    class Port:
        def __init__(self, *names):
            self.names = set(names)

        def get_names(self):
            return self.names

    a, b = Port("graph_output_cast_0", "warped"), Port("other")
    assert _output_ports("warp", ["warped"], [b, a]) == [("warped", a)]
    with pytest.raises(BundleError, match="no output named missing"):
        _output_ports("warp", ["missing"], [a, b])


def _conv_precisions(path) -> dict[str, str]:
    """ONNX Conv name -> the precision OpenVINO's CPU plugin runs the convolution it became in (compiled model)."""
    import openvino as ov
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    precision = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) == "Convolution":
            for name in info["originalLayersNames"].astype(str).split(","):
                # a conv with a bias is named NAME/WithoutBiases once its bias is split off
                precision[name.removesuffix("/WithoutBiases")] = info["runtimePrecision"].astype(str)
    return precision


def test_nncf_alignment_convs_run_in_int8_on_openvino(tmp_path):
    """With the ``openvino`` target's default exclusions every convolution of a BasicVSR++ alignment cell is
    quantized and runs in INT8 on OpenVINO: the offset branch's first conv on a concatenation (placed by ONNX
    Runtime's quantizer), the offset conv's row strips (sliced before padding: a Pad between the
    DequantizeLinear and the Slice kept them in float) and the deformable conv's per-tap 1x1 convolutions (a
    MatMul before, whose INT8 weights OpenVINO dequantized on every call)."""
    import onnx
    pytest.importorskip("nncf")
    torch.manual_seed(0)
    net = vsrdeploy.build_model("basicvsr_pp", mid_channels=16, num_blocks=1).eval()
    fp32 = Bundle(vsrdeploy.export_onnx(net, tmp_path / "pp.vsr", dcn="decomposed"))
    int8 = Bundle(calibrate_bundle(fp32, _lr(t=3, h=64, w=64, seed=1), tmp_path / "pp-int8.vsr", target="openvino",
                                   progress=False))
    cell = "backward_1_align"
    assert int8.manifest["precision_details"]["exclude_rules"] == ["sampling-coords", "frame-input"]
    convs = {n.name for n in onnx.load(str(fp32.cell_path(cell))).graph.node if n.op_type == "Conv"}
    assert len(convs) >= 4 + 3 * 4  # offset convs (the last in 4 row strips) and 3 groups of taps per strip
    assert not convs & set(int8.manifest["precision_details"]["excluded_nodes"][cell])
    assert set(_conv_precisions(fp32.cell_path(cell)).values()) == {"f32"}  # what a float conv reads as
    precision = _conv_precisions(int8.cell_path(cell))
    assert convs <= set(precision)
    float_convs = sorted(c for c in convs if precision[c] not in ("u8", "i8"))
    assert not float_convs, f"OpenVINO runs these quantized convs in float: {float_convs}"


#: tiny configurations of the networks an NNCF INT8 bundle is made for, and the clip length each needs
_TINY = {"basicvsr": ({"mid_channels": 16, "num_blocks": 1}, 3),
         "iconvsr": ({"mid_channels": 16, "num_blocks": 1}, 5),
         "realbasicvsr": ({"mid_channels": 16, "num_propagation_blocks": 1, "num_cleaning_blocks": 1}, 3),
         "basicvsr_pp": ({"mid_channels": 16, "num_blocks": 1}, 3)}


@pytest.mark.parametrize("arch", sorted(_TINY))
def test_nncf_quantized_convs_run_in_int8_on_openvino(arch, tmp_path):
    """Every convolution an NNCF INT8 bundle quantizes (all but its ``excluded_nodes``) runs in INT8 on OpenVINO, in
    every cell. Until 0.3.17 IconVSR's TSA fusion gathered its centre frame from the 5-D input and multiplied the
    5-D input by the attention, and OpenVINO ran both temporal-attention convs in float (0.104 against 0.063 s per
    call at 180x320; benchmarks/RESULTS.md, "Every INT8 cell's kernels on OpenVINO"); a LeakyReLU moved before the
    tail's pixel shuffle put BasicVSR's ``upsample2`` conv and ``conv_hr`` in float the same way."""
    import onnx
    pytest.importorskip("nncf")
    config, frames = _TINY[arch]
    torch.manual_seed(0)
    net = vsrdeploy.build_model(arch, **config).eval()
    fp32 = Bundle(vsrdeploy.export_onnx(net, tmp_path / "m.vsr", dcn="decomposed"))
    int8 = Bundle(calibrate_bundle(fp32, _lr(t=frames, h=64, w=64, seed=1), tmp_path / "m-int8.vsr",
                                   target="openvino", progress=False))
    excluded = int8.manifest["precision_details"]["excluded_nodes"]
    in_float = {}
    for cell in int8.cells:
        convs = {n.name for n in onnx.load(str(int8.cell_path(cell))).graph.node if n.op_type == "Conv"}
        convs -= set(excluded.get(cell, []))
        precision = _conv_precisions(int8.cell_path(cell))
        assert convs <= set(precision), f"{cell}: convs OpenVINO did not report: {sorted(convs - set(precision))}"
        floats = sorted(c for c in convs if precision[c] not in ("u8", "i8"))
        if floats:
            in_float[cell] = floats
    assert not in_float, f"OpenVINO runs these quantized convs in float: {in_float}"


def test_bf16_keeps_sampling_coordinates_in_fp32(tmp_path):
    """Under a BF16 inference precision OpenVINO's CPU plugin rounded a deformable alignment's sampling grid
    to BF16 (up to 0.6 pixel at 320 pixels across); the backend keeps every GridSample grid's arithmetic in
    FP32. A decomposed DCN, one tap per GridSample, on features that change fast across the frame, 48x320: with
    the grid in BF16 the output was off by 4.7% of its mean magnitude (measured on an AMD Zen 5, OpenVINO 2026.4),
    with it in FP32 by 0.49% (BF16's own rounding of features and weights)."""
    import openvino as ov
    from vsrdeploy.models.dcn import deform_conv_tap_groups
    from vsrdeploy.runtimes.openvino_backend import (COORDINATE_GUARD, keep_sampling_coordinates_fp32,
                                                     precision_unavailable_reason, read_cell)
    reason = precision_unavailable_reason("CPU", "bf16")
    if reason:
        pytest.skip(reason)
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(8, 16, 3, 3, generator=g) * 0.1

    class DCN(torch.nn.Module):
        def forward(self, x, offset, mask):
            # the offsets pass through a conv first, as in every network: the grid is then not in the graph's tail
            return deform_conv_tap_groups(x, torch.nn.functional.conv2d(offset, torch.eye(36).view(36, 36, 1, 1)),
                                          mask, weight, None, 1, 1, 1, 2, taps_per_call=1)

    h, w = 48, 320
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    x = torch.stack([torch.sin(0.3 * xx + c) + torch.cos(0.2 * yy + c) for c in range(16)])[None]
    offset = torch.full((1, 36, h, w), 0.37)
    mask = torch.full((1, 18, h, w), 0.8)
    path = tmp_path / "dcn.onnx"
    torch.onnx.export(DCN(), (x, offset, mask), str(path), opset_version=17, dynamo=False,
                      input_names=["x", "offset", "mask"])
    core = ov.Core()
    feeds = [x.numpy(), offset.numpy(), mask.numpy()]
    ref = core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(feeds)[0]
    model = read_cell(core, path, fp32_coordinates=True)
    assert sum(r.get_friendly_name().startswith(COORDINATE_GUARD) for r in model.get_results()) == 9
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16"})
    out = compiled(feeds)[compiled.outputs[0]]
    rel = float(np.abs(out - ref).mean() / np.abs(ref).mean())
    assert rel < 0.015, f"BF16 output off by {rel:.1%} of its mean magnitude: sampling coordinates rounded?"
    assert keep_sampling_coordinates_fp32(core.read_model(str(path))) == 9
