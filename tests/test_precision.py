"""FP16 conversion (keep-FP32 list), INT8 calibration (Q/DQ per target) and `vsrdeploy check`."""
import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx  # noqa: E402

import vsrdeploy  # noqa: E402
from vsrdeploy.bundle import Bundle  # noqa: E402
from vsrdeploy.calib.fp16 import KeepRule, convert_bundle_fp16, nodes_to_keep  # noqa: E402
from vsrdeploy.calib.int8 import calibrate_bundle  # noqa: E402
from vsrdeploy.errors import ConfigError  # noqa: E402
from vsrdeploy.export.check import check_bundle  # noqa: E402
from vsrdeploy.runtimes.engine import Upscaler  # noqa: E402

from tests.conftest import random_clip  # noqa: E402


@pytest.fixture(scope="module")
def pp_bundle(tmp_path_factory):
    """A tiny BasicVSR++ (DCN, GridSample) with random weights, native DeformConv."""
    torch.manual_seed(0)
    net = vsrdeploy.build_model("basicvsr_pp", mid_channels=8, num_blocks=1).eval()
    return Bundle(vsrdeploy.export_onnx(net, tmp_path_factory.mktemp("pp") / "pp.vsr"))


def _clip(t=4, h=64, w=64):
    return random_clip(t=t, h=h, w=w)[0].numpy()


def _float_type(model, tensor_name):
    """elem_type of a tensor of ``model`` from its value_info / outputs (after shape inference)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        if vi.name == tensor_name:
            return vi.type.tensor_type.elem_type
    return None


def test_fp16_keeps_listed_nodes_in_fp32(pp_bundle, tmp_path):
    out = Bundle(convert_bundle_fp16(pp_bundle, tmp_path / "pp-fp16.vsr", keep=["sampling-grid", "op=DeformConv",
                                                                                 "node=conv_last", "cell=flow"]))
    assert out.precision == "fp16"
    details = out.manifest["precision_details"]
    assert details["keep_fp32_rules"] == ["sampling-grid", "op=DeformConv", "node=conv_last", "cell=flow"]
    for name in out.cells:
        model = onnx.load(str(out.cell_path(name)))
        onnx.checker.check_model(model, full_check=True)
        # cell I/O stays float32 so the schedule streams it like an FP32 bundle
        assert all(i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for i in model.graph.input)
        kept = set(details["kept_fp32_nodes"][name])
        for node in model.graph.node:
            if node.name in kept and node.op_type in ("DeformConv", "GridSample", "Conv"):
                assert _float_type(model, node.output[0]) == onnx.TensorProto.FLOAT, (name, node.name)
        converted = [n for n in model.graph.node if n.op_type == "Conv" and n.name not in kept]
        for node in converted:
            assert _float_type(model, node.output[0]) == onnx.TensorProto.FLOAT16, (name, node.name)
    assert len(details["kept_fp32_nodes"]["flow"]) == len(onnx.load(str(pp_bundle.cell_path("flow"))).graph.node)
    deform = [n for c in ("backward_1_align", "forward_1_align") for n in details["kept_fp32_nodes"][c]
              if "DeformConv" in n]
    assert deform, "op=DeformConv kept nothing"
    assert any("conv_last" in n for n in details["kept_fp32_nodes"]["upsample"])


def test_fp16_bundle_streams_close_to_fp32(pp_bundle, tmp_path):
    lr = _clip()
    ref = Upscaler.create(pp_bundle, "ort-cpu").upscale(lr)
    fp16 = Bundle(convert_bundle_fp16(pp_bundle, tmp_path / "pp-fp16.vsr"))
    out = Upscaler.create(fp16, "ort-cpu").upscale(lr)
    err = float(np.abs(out - ref).max())
    assert 0 < err < 5e-2  # FP16 rounding shows, but nothing breaks (random weights amplify it)


def test_sampling_grid_rule_finds_the_coordinate_arithmetic(pp_bundle):
    model = onnx.load(str(pp_bundle.cell_path("backward_1_align")))
    keep = set(nodes_to_keep(model, "backward_1_align", [KeepRule.parse("sampling-grid")]))
    ops = {n.op_type for n in model.graph.node if n.name in keep}
    assert "DeformConv" not in ops  # the consumer itself is not included (flow-warp GridSamples upstream are)
    assert {"Add", "Div"} & ops  # the offset/flow -> coordinate arithmetic is
    assert "Conv" in ops  # and the offset convs behind DeformConv's offset input (its input 2)


def test_sampling_coords_rule_lets_the_offset_convs_go(pp_bundle):
    """``sampling-coords`` keeps the coordinate arithmetic but not the convolutions that predict the offsets."""
    model = onnx.load(str(pp_bundle.cell_path("backward_1_align")))
    names = {n.name: n.op_type for n in model.graph.node}
    grid = set(nodes_to_keep(model, "backward_1_align", [KeepRule.parse("sampling-grid")]))
    coords = set(nodes_to_keep(model, "backward_1_align", [KeepRule.parse("sampling-coords")]))
    assert coords < grid
    assert "Conv" in {names[n] for n in grid} and "Conv" not in {names[n] for n in coords}
    assert {"Add", "Div"} & {names[n] for n in coords}


def test_sampling_rules_stop_at_shape_only_reads():
    """A tensor whose shape (not values) sizes a sampling grid is not coordinate arithmetic: the walk upstream
    keeps the ``Shape`` but not what it reads, so the features feeding a conv stay quantizable (a BasicVSR++
    row strip's grid is sized by the offset features: walking on kept them, and the conv after them, in float)."""
    from onnx import TensorProto, helper
    weight = helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 1, 1], [1.0])
    nodes = [helper.make_node("Relu", ["x"], ["feat"], name="relu"),
             helper.make_node("Conv", ["feat", "w"], ["y"], name="conv"),
             helper.make_node("Shape", ["feat"], ["shape"], name="shape"),
             helper.make_node("Cast", ["shape"], ["shape_f"], to=TensorProto.FLOAT, name="cast"),
             helper.make_node("ReduceMax", ["shape_f"], ["size"], keepdims=0, name="size"),
             helper.make_node("Div", ["g", "size"], ["grid"], name="normalize"),
             helper.make_node("GridSample", ["x", "grid"], ["z"], name="sample")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4]),
                     helper.make_tensor_value_info("g", TensorProto.FLOAT, [1, 4, 4, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], initializer=[weight])
    model = helper.make_model(graph)
    for rule in ("sampling-grid", "sampling-coords"):
        assert set(nodes_to_keep(model, "cell", [KeepRule.parse(rule)])) == {"shape", "cast", "size", "normalize"}


@pytest.mark.parametrize("bad", ["cell", "node=(", "fast=yes", "op="])
def test_bad_keep_rules(bad):
    with pytest.raises(ConfigError, match="rule"):
        KeepRule.parse(bad)


def test_fp16_unknown_cell_rule(pp_bundle, tmp_path):
    with pytest.raises(ConfigError, match="does not have"):
        convert_bundle_fp16(pp_bundle, tmp_path / "x.vsr", keep=["cell=nope"])


def _qdq(model):
    from onnx import numpy_helper
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return [(n, inits.get(n.input[2]) if len(n.input) > 2 else None) for n in model.graph.node
            if n.op_type in ("QuantizeLinear", "DequantizeLinear")]


@pytest.mark.parametrize("target,zp_dtype", [("tensorrt", np.int8), ("cpu", np.uint8)])
def test_int8_bundle_runs_on_ort_cpu(tiny_bundle, tmp_path, target, zp_dtype):
    lr = _clip(t=5, h=32, w=32)
    out_dir = calibrate_bundle(tiny_bundle, lr, tmp_path / f"int8-{target}.vsr", target=target, progress=False)
    b = Bundle(out_dir)
    assert b.precision == "int8"
    details = b.manifest["precision_details"]
    assert details["target"] == target and details["calibration"]["frames"] == 5
    assert all(n > 0 for n in details["calibration"]["samples_per_cell"].values())
    trunk = onnx.load(str(b.cell_path("backward_trunk")))
    pairs = _qdq(trunk)
    assert pairs, "no Q/DQ nodes in a conv cell"
    activations = [zp for n, zp in pairs if n.op_type == "QuantizeLinear" and zp is not None]
    assert activations and all(zp.dtype == zp_dtype for zp in activations)
    if target == "tensorrt":
        assert all(np.all(zp == 0) for _, zp in pairs if zp is not None)  # symmetric everywhere
        assert not any(zp is not None and zp.dtype == np.int32 for _, zp in pairs)  # float biases
    ref = Upscaler.create(Bundle(tiny_bundle), "ort-cpu").upscale(lr)
    out = Upscaler.create(b, "ort-cpu").upscale(lr)
    assert np.isfinite(out).all() and out.shape == ref.shape
    assert float(np.abs(out - ref).mean()) < 0.05


def test_int8_refuses_bad_input(tiny_bundle, tmp_path):
    with pytest.raises(vsrdeploy.errors.InputError, match="at least 2"):
        calibrate_bundle(tiny_bundle, _clip(t=1, h=32, w=32), tmp_path / "x.vsr", progress=False)
    with pytest.raises(ConfigError, match="--target"):
        calibrate_bundle(tiny_bundle, _clip(t=3, h=32, w=32), tmp_path / "x.vsr", target="gpu", progress=False)


def test_check_flags_what_each_target_cannot_take(pp_bundle, tiny_bundle, tmp_path):
    assert not [f for f in check_bundle(pp_bundle, "tensorrt-10") if f.severity == "error"]
    ov = [f for f in check_bundle(pp_bundle, "openvino") if f.severity == "error"]
    assert ov and {f.op for f in ov} == {"DeformConv"} and "decomposed" in ov[0].fix
    # a CPU-form INT8 bundle (U8 activations, INT32 biases) is refused for TensorRT, accepted by ORT
    cpu_int8 = calibrate_bundle(tiny_bundle, _clip(t=3, h=32, w=32), tmp_path / "cpu-int8.vsr", target="cpu",
                                progress=False)
    problems = {f.problem for f in check_bundle(cpu_int8, "tensorrt-10") if f.severity == "error"}
    assert any("UINT8" in p for p in problems) and any("INT32" in p for p in problems)
    assert not [f for f in check_bundle(cpu_int8, "ort") if f.severity == "error"]
    trt_int8 = calibrate_bundle(tiny_bundle, _clip(t=3, h=32, w=32), tmp_path / "trt-int8.vsr", target="tensorrt",
                                progress=False)
    assert not [f for f in check_bundle(trt_int8, "tensorrt-11") if f.severity == "error"]


def test_check_flags_a_planted_unsupported_op(tiny_bundle, tmp_path):
    src = Bundle(tiny_bundle)
    model = onnx.load(str(src.cell_path("upsample")))
    out = model.graph.output[0].name
    model.graph.output[0].name = out + "_pre"
    for node in model.graph.node:
        node.output[:] = [o + "_pre" if o == out else o for o in node.output]
    model.graph.node.append(onnx.helper.make_node("Unique", [out + "_pre"], [out], name="planted_unique"))
    model.graph.node.append(onnx.helper.make_node("Relu", [out + "_pre"], ["dangling"], name="ok_relu"))
    planted = src.derive(tmp_path / "planted.vsr", {"upsample": model}, "fp32", {})
    errors = [f for f in check_bundle(planted, "tensorrt-10") if f.severity == "error"]
    assert [(f.cell, f.node, f.op) for f in errors] == [("upsample", "planted_unique", "Unique")]
    assert not [f for f in check_bundle(planted, "openvino") if f.severity == "error"]


def test_check_unknown_target(tiny_bundle):
    with pytest.raises(ConfigError, match="tensorrt-10"):
        check_bundle(tiny_bundle, "tensorrt-9")


def test_plugin_bundle_checks(tmp_path):
    torch.manual_seed(0)
    net = vsrdeploy.build_model("basicvsr_pp", mid_channels=8, num_blocks=1).eval()
    b = vsrdeploy.export_onnx(net, tmp_path / "plugin.vsr", dcn="plugin")
    notes = [f for f in check_bundle(b, "tensorrt-10") if f.op == "vsrdeploy::ModulatedDeformConv2d"]
    assert notes and all(f.severity == "note" and "plugin" in f.problem for f in notes)
    assert [f for f in check_bundle(b, "ort") if f.severity == "error"]
    model = onnx.load(str(Bundle(b).cell_path("backward_1_align")))
    node = next(n for n in model.graph.node if n.op_type == "ModulatedDeformConv2d")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["plugin_namespace"] == b"vsrdeploy" and attrs["plugin_version"] == b"1"


def test_derived_bundle_is_verified_and_traceable(tiny_bundle, tmp_path):
    out = Bundle(convert_bundle_fp16(tiny_bundle, tmp_path / "t16.vsr"))
    manifest = json.loads((out.path / "manifest.json").read_text())
    assert manifest["derived_from"]["bundle"] == Bundle(tiny_bundle).path.name
    with pytest.raises(vsrdeploy.errors.BundleError, match="overwrite"):
        Bundle(tiny_bundle).derive(tiny_bundle, {}, "fp32", {})
    with pytest.raises(ConfigError, match="already fp16"):
        convert_bundle_fp16(out, tmp_path / "again.vsr")


def test_compare_measures_an_int8_bundle_against_its_fp32_weights(tiny_bundle, tmp_path):
    from vsrdeploy.evaluate.compare import Target, run_compare
    lr = _clip(t=4, h=32, w=32)
    int8 = Bundle(calibrate_bundle(tiny_bundle, lr, tmp_path / "c-int8.vsr", target="cpu", progress=False))
    result = run_compare(int8, lr, [Target("ort-cpu", "int8"), Target("torch", "int8")], window=None, lookahead=0)
    ort_result, torch_result = result.targets
    assert ort_result.status == "ok" and 0 < ort_result.summary["max_abs_error"] < 0.5
    assert 20 < ort_result.summary["psnr_ref_mean"] < 100  # quantization error is visible, and bounded
    assert torch_result.status == "skipped" and "FP32 PyTorch weights" in torch_result.reason


def test_fp16_emulation_rounds_exactly_the_fp16_nodes(tiny_bundle):
    import onnxruntime as ort
    from vsrdeploy.calib.fp16 import emulate_fp16
    b = Bundle(tiny_bundle)
    model = onnx.load(str(b.cell_path("backward_trunk")))
    rng = np.random.default_rng(0)
    feed = {"lr": rng.random((1, 3, 32, 32), dtype=np.float32),
            "feat_in": rng.standard_normal((1, 8, 32, 32)).astype(np.float32)}

    def run(m):
        return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)[0]

    exact = run(model)
    everything = run(emulate_fp16(model, "backward_trunk", []))
    kept = run(emulate_fp16(model, "backward_trunk", [KeepRule.parse("cell=backward_trunk")]))
    assert np.array_equal(kept, exact)
    err = np.abs(everything - exact).max() / np.abs(exact).max()
    assert 1e-5 < err < 2e-2  # FP16 rounding (11-bit mantissa) shows, and only that
    # the output itself is an FP16 value (it went through a final cast pair)
    assert np.array_equal(everything, everything.astype(np.float16).astype(np.float32))


def test_reduced_precision_on_a_real_clip_with_the_trained_model(tmp_path):
    """The shipped (trained) BasicVSR on real frames: INT8 (CPU form) within 0.3 dB PSNR-Y of FP32,
    FP16 (emulated, default keep list) within 0.1 dB. Calibration frames are disjoint from the test frames."""
    from vsrdeploy.calib.fp16 import DEFAULT_KEEP_FP32, emulate_fp16
    from vsrdeploy.evaluate.compare import read_clip
    from vsrdeploy.evaluate.degrade import degrade
    from vsrdeploy.demo import bundled_clip, shipped_model
    from vsrdeploy.evaluate.metrics import psnr
    hr, _ = read_clip(str(bundled_clip()), 18)
    calib, test_hr = degrade(hr[:6], "bi"), hr[8:18]
    test_lr = degrade(test_hr, "bi")
    fp32 = Bundle(vsrdeploy.export_onnx(shipped_model(), tmp_path / "shipped.vsr"))

    def y_psnr(bundle):
        out = Upscaler.create(bundle, "ort-cpu").upscale(test_lr)
        return float(np.mean([psnr(np.clip(o, 0, 1), g, y_channel=True) for o, g in zip(out, test_hr)]))

    base = y_psnr(fp32)
    int8 = Bundle(calibrate_bundle(fp32, calib, tmp_path / "int8.vsr", target="cpu", progress=False))
    rules = [KeepRule.parse(r) for r in DEFAULT_KEEP_FP32]
    emulated = {n: emulate_fp16(onnx.load(str(fp32.cell_path(n))), n, rules) for n in fp32.cells}
    fp16 = Bundle(fp32.derive(tmp_path / "fp16-emulated.vsr", emulated, "fp16", {"emulated": True}))
    drop_int8, drop_fp16 = base - y_psnr(int8), base - y_psnr(fp16)
    assert drop_int8 <= 0.3, drop_int8
    assert abs(drop_fp16) <= 0.1, drop_fp16


def test_concat_and_cell_input_rules(pp_bundle):
    feat = onnx.load(str(pp_bundle.cell_path("feat_extract")))
    first = nodes_to_keep(feat, "feat_extract", [KeepRule.parse("cell-input")])
    assert len(first) == 1 and first[0].endswith("main.0/Conv")  # the conv on the LR frame
    backbone = onnx.load(str(pp_bundle.cell_path("backward_1_backbone")))
    on_concat = nodes_to_keep(backbone, "backward_1_backbone", [KeepRule.parse("concat-input")])
    producers = {o: n.op_type for n in backbone.graph.node for o in n.output}
    convs = {n.name: n for n in backbone.graph.node if n.op_type == "Conv"}
    assert on_concat and all(producers[convs[name].input[0]] == "Concat" for name in on_concat)
    assert str(KeepRule.parse("cell-input")) == "cell-input"


def test_frame_input_rule_keeps_convs_on_frames_only(pp_bundle):
    """``frame-input``: the conv on the LR frame (3 channels), not the upsampling cell's first conv, which reads
    the reconstructed features the cell receives (``cell-input`` takes both)."""
    feat = onnx.load(str(pp_bundle.cell_path("feat_extract")))
    assert nodes_to_keep(feat, "feat_extract", [KeepRule.parse("frame-input")]) == \
        nodes_to_keep(feat, "feat_extract", [KeepRule.parse("cell-input")])
    upsample = onnx.load(str(pp_bundle.cell_path("upsample")))
    assert nodes_to_keep(upsample, "upsample", [KeepRule.parse("cell-input")])
    assert nodes_to_keep(upsample, "upsample", [KeepRule.parse("frame-input")]) == []
