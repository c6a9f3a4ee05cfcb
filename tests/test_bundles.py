"""Export to bundles and run them on every runtime available here."""
import json
import shutil

import numpy as np
import pytest
import torch

import vsrdeploy
from vsrdeploy import BackendUnavailable, BundleError, ConfigError, InputError
from vsrdeploy.bundle import Bundle
from vsrdeploy.evaluate.reference import NOT_IN_WEIGHTS, load_index
from tests.conftest import random_clip

pytest.importorskip("onnxruntime")
TOLERANCE = 1e-4
from vsrdeploy.runtimes import availability  # noqa: E402

HAVE_OPENVINO = availability()["openvino-cpu"] is None

# (case, dcn, backends): every reference case, native and decomposed DCN where the net has DCN
MATRIX = [
    ("basicvsr_c16n2", "native", ["torch", "ort-cpu", "openvino-cpu"]),
    ("basicvsr_c16n2_mirror", "native", ["ort-cpu", "openvino-cpu"]),
    ("iconvsr_c64n1_pad2", "native", ["torch", "ort-cpu"]),
    ("iconvsr_c64n1_pad2", "decomposed", ["ort-cpu", "openvino-cpu"]),
    ("basicvsrpp_c16n2", "native", ["torch", "ort-cpu"]),
    ("basicvsrpp_c16n2", "decomposed", ["ort-cpu", "openvino-cpu"]),
    ("realbasicvsr_c16b2", "native", ["torch", "ort-cpu", "openvino-cpu"]),
    ("psrt_e24d1x2", "native", ["torch", "ort-cpu", "openvino-cpu"]),
]


@pytest.fixture(scope="session")
def reference_bundles(vectors, tmp_path_factory):
    cases = {c["name"]: c for c in load_index(str(vectors))}
    root = tmp_path_factory.mktemp("bundles")
    cache = {}

    def get(name, dcn):
        if (name, dcn) not in cache:
            case = cases[name]
            overrides = {k: v for k, v in case["config"].items() if k in NOT_IN_WEIGHTS}
            ckpt = case["files"].get("mmagic_checkpoint") or case["files"]["basicsr_checkpoint"]
            path = vsrdeploy.export_onnx(vectors / ckpt, root / f"{name}-{dcn}.vsr",
                                         dcn=dcn, **overrides)
            cache[name, dcn] = (path, np.load(vectors / case["files"]["io"]))
        return cache[name, dcn]
    return get


@pytest.mark.parametrize("name,dcn,backend", [(n, d, b) for n, d, bs in MATRIX for b in bs])
def test_bundle_matches_upstream_reference(reference_bundles, name, dcn, backend):
    if backend.startswith("openvino") and not HAVE_OPENVINO:
        pytest.skip("openvino not installed")
    path, io = reference_bundles(name, dcn)
    out = vsrdeploy.open_bundle(path, backend=backend).upscale(io["lrs"][0], clamp=False)
    err = float(np.abs(out - io["out"][0]).max())
    assert err <= TOLERANCE, f"{name} {dcn} on {backend}: {err:.2e}"


def test_manifest_and_graphs(reference_bundles):
    import onnx
    path, _ = reference_bundles("basicvsrpp_c16n2", "native")
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["model"] == {"arch": "basicvsr_pp", "config": {"mid_channels": 16, "num_blocks": 2,
                                                                   "max_residue_magnitude": 10.0,
                                                                   "is_low_res_input": True}}
    assert manifest["dcn"] == "native" and manifest["opset"] == 19 and manifest["scale"] == 4
    assert set(manifest["versions"]) >= {"vsrdeploy", "torch", "onnx"}
    align = manifest["cells"]["backward_1_align"]
    assert "DeformConv" in align["ops"] and "GridSample" in align["ops"]
    assert align["inputs"][0] == {"name": "feat_prop", "dtype": "float32", "shape": ["N", 16, "H", "W"], "scale": 1.0}
    # what a stream plans with, recorded so that it needs no PyTorch (models.spec)
    assert align["halo"] is None and manifest["cells"]["upsample"]["halo"] == 2 and manifest["min_input_size"] == 64
    assert all(len(c["largest_op"]) == 2 for c in manifest["cells"].values())
    assert manifest["cells"]["reconstruct"]["outputs"][0]["shape"] == ["N", 16, "H", "W"]
    assert manifest["cells"]["upsample"]["outputs"][0]["shape"] == ["N", 3, "4H", "4W"]
    for cell in manifest["cells"].values():
        onnx.checker.check_model(onnx.load(str(path / cell["file"])))
        assert cell["file"] in manifest["files"]


def test_decomposed_and_plugin_dcn_forms(reference_bundles, tmp_path, vectors):
    path, _ = reference_bundles("basicvsrpp_c16n2", "decomposed")
    ops = Bundle(path).cell_ops()
    assert "DeformConv" not in ops and "GridSample" in ops and "MatMul" not in ops  # 1x1 convs per group of taps
    plugin = vsrdeploy.export_onnx(vectors / "basicvsrpp_c16n2.mmagic.pth", tmp_path / "p.vsr", dcn="plugin")
    import onnx
    graph = onnx.load(str(plugin / "cells" / "forward_2_align.onnx")).graph
    node = next(n for n in graph.node if n.op_type == "ModulatedDeformConv2d")
    assert node.domain == "vsrdeploy"
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs == {"stride": [1, 1], "padding": [1, 1], "dilation": [1, 1], "groups": 1, "deform_groups": 16,
                     "plugin_namespace": b"vsrdeploy", "plugin_version": b"1"}
    with pytest.raises(BackendUnavailable, match="cannot import vsrdeploy::ModulatedDeformConv2d"):
        vsrdeploy.open_bundle(plugin, backend="ort-cpu")


@pytest.mark.skipif(not HAVE_OPENVINO, reason="openvino not installed")
def test_openvino_refuses_native_deformconv(reference_bundles):
    path, _ = reference_bundles("basicvsrpp_c16n2", "native")
    with pytest.raises(BackendUnavailable, match="cannot import DeformConv.*--dcn decomposed"):
        vsrdeploy.open_bundle(path, backend="openvino-cpu")


@pytest.mark.parametrize("arch,config,sizes", [
    ("basicvsr", {"mid_channels": 8, "num_blocks": 1}, [(32, 40), (45, 70)]),
    ("basicvsr_pp", {"mid_channels": 8, "num_blocks": 1}, [(64, 64), (72, 100)]),
    ("iconvsr", {"mid_channels": 8, "num_blocks": 1}, [(32, 32), (30, 53)]),
])
def test_one_bundle_serves_several_frame_sizes(tmp_path, arch, config, sizes):
    torch.manual_seed(0)
    net = vsrdeploy.build_model(arch, **config).eval()
    path = vsrdeploy.export_onnx(net, tmp_path / "b.vsr", dcn="native")
    up = vsrdeploy.open_bundle(path, backend="ort-cpu")
    for h, w in sizes:
        lrs = random_clip(t=5, h=h, w=w, seed=h)
        expected = net(lrs)[0].numpy()
        out = up.upscale(lrs[0].numpy(), clamp=False)
        assert out.shape == expected.shape == (5, 3, 4 * h, 4 * w)
        assert np.abs(out - expected).max() <= TOLERANCE


def test_static_shape_export(tmp_path):
    net = vsrdeploy.build_model("basicvsr", mid_channels=8, num_blocks=1).eval()
    path = vsrdeploy.export_onnx(net, tmp_path / "s.vsr", static_shape=(32, 48))
    manifest = Bundle(path).manifest
    assert manifest["static_shape"] == [32, 48]
    assert manifest["cells"]["upsample"]["outputs"][0]["shape"] == ["N", 3, 128, 192]
    with pytest.raises(ConfigError, match="multiple of 4"):
        vsrdeploy.export_onnx(vsrdeploy.build_model("iconvsr", mid_channels=8, num_blocks=1), tmp_path / "i.vsr",
                              static_shape=(30, 32))


def test_simplified_bundle_keeps_parity(tmp_path):
    torch.manual_seed(0)
    net = vsrdeploy.build_model("basicvsr", mid_channels=8, num_blocks=1).eval()
    path = vsrdeploy.export_onnx(net, tmp_path / "slim.vsr", simplify=True)
    assert Bundle(path).manifest["simplified"] is True
    lrs = random_clip(t=4, h=32, w=32)
    out = vsrdeploy.open_bundle(path, backend="ort-cpu").upscale(lrs[0].numpy(), clamp=False)
    assert np.abs(out - net(lrs)[0].numpy()).max() <= TOLERANCE


# -- streaming ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_pp(tmp_path_factory):
    torch.manual_seed(0)
    net = vsrdeploy.build_model("basicvsr_pp", mid_channels=8, num_blocks=1).eval()
    path = vsrdeploy.export_onnx(net, tmp_path_factory.mktemp("pp") / "pp.vsr", dcn="native")
    return net, path


def test_stream_first_window_exact_and_in_order(tiny_pp):
    net, path = tiny_pp
    up = vsrdeploy.open_bundle(path, backend="ort-cpu")
    lrs = random_clip(t=9, h=64, w=64)
    whole = net(lrs)[0].numpy()
    stats = {}
    outs = list(up.stream((f for f in lrs[0].numpy()), window=3, lookahead=9, stats=stats))
    assert len(outs) == 9
    # every window's span reaches the clip end here, so every frame equals the whole clip, in order
    assert max(float(np.abs(o - whole[i]).max()) for i, o in enumerate(outs)) <= TOLERANCE
    # short lookahead: frames come out in order and match the PyTorch windowed schedule
    short = list(up.stream(iter(lrs[0].numpy()), window=3, lookahead=1, stats=stats))
    expected = net(lrs, window=3, lookahead=1)[0].numpy()
    assert max(float(np.abs(o - expected[i]).max()) for i, o in enumerate(short)) <= TOLERANCE


def test_stream_holds_at_most_window_plus_lookahead(tiny_pp):
    _, path = tiny_pp
    up = vsrdeploy.open_bundle(path, backend="ort-cpu")
    seen = []

    def frames():
        for i in range(20):
            seen.append(i)
            yield np.random.default_rng(i).random((3, 64, 64), dtype=np.float32)

    stats = {}
    produced = 0
    for _ in up.stream(frames(), window=4, lookahead=3, stats=stats):
        produced += 1
        # read-ahead is bounded: never more than one span (+1 to detect the end) beyond the output
        assert len(seen) - produced <= 4 + 3 + 1
    assert produced == 20
    history = up.net.schedule().history
    assert stats["max_frames_held"] <= 4 + 3 + history + 1


def test_small_frames_are_padded_and_cropped(tiny_pp):
    net, path = tiny_pp
    up = vsrdeploy.open_bundle(path, backend="ort-cpu")
    out = up.upscale(random_clip(t=3, h=40, w=50)[0].numpy())  # BasicVSR++ needs 64x64
    assert out.shape == (3, 3, 160, 200) and np.isfinite(out).all()


# -- bad input ----------------------------------------------------------------------------

def _copy(src, tmp_path):
    dst = tmp_path / "copy.vsr"
    shutil.copytree(src, dst)
    return dst


def test_tampered_file_is_refused(tiny_pp, tmp_path):
    path = _copy(tiny_pp[1], tmp_path)
    cell = path / "cells" / "reconstruct.onnx"
    cell.write_bytes(cell.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(BundleError, match="reconstruct.onnx does not match its sha256"):
        vsrdeploy.open_bundle(path, backend="ort-cpu")


@pytest.mark.parametrize("evil", ["../outside.onnx", "/etc/passwd", "cells/../../x.onnx"])
def test_manifest_path_escaping_the_bundle_is_refused(tiny_pp, tmp_path, evil):
    path = _copy(tiny_pp[1], tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["cells"]["flow"]["file"] = evil
    manifest["files"][evil] = "0" * 64
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="absolute|escapes the bundle directory"):
        Bundle(path)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="has no manifest.json"):
        Bundle(tmp_path)


def test_unknown_backend_lists_known(tiny_pp):
    with pytest.raises(ConfigError, match="unknown backend 'onnx'; known: ") as err:
        vsrdeploy.open_bundle(tiny_pp[1], backend="onnx")
    assert {"ort-cpu", "openvino-cpu"} <= set(str(err.value).split("known: ")[1].rstrip(".").split(", "))


def test_empty_clip(tiny_pp):
    up = vsrdeploy.open_bundle(tiny_pp[1], backend="ort-cpu")
    with pytest.raises(InputError, match="empty clip"):
        up.upscale(np.zeros((0, 3, 64, 64), np.float32))


def test_bad_frame_shape(tiny_pp):
    up = vsrdeploy.open_bundle(tiny_pp[1], backend="ort-cpu")
    with pytest.raises(InputError, match=r"frame 0: expected a \(3, H, W\)"):
        up.upscale(np.zeros((2, 64, 64, 3), np.float32))
