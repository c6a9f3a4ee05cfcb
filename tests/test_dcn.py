"""The PyTorch deformable conv against ONNX Runtime's DeformConv (opset 19)."""
import numpy as np
import pytest
import torch

from functools import partial

from vsrdeploy.models.dcn import (EXPORT_TAPS_PER_CALL, deform_conv_all_taps, deform_conv_tap_groups,
                                  modulated_deform_conv2d)

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402


def _ort_deform_conv(x, w, offset, b, mask, groups):
    node = helper.make_node("DeformConv", ["X", "W", "offset", "B", "mask"], ["Y"], kernel_shape=[3, 3],
                            pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1], group=1, offset_group=groups)
    f = TensorProto.FLOAT
    graph = helper.make_graph([node], "dcn", [
        helper.make_tensor_value_info("X", f, x.shape), helper.make_tensor_value_info("W", f, w.shape),
        helper.make_tensor_value_info("offset", f, offset.shape), helper.make_tensor_value_info("B", f, b.shape),
        helper.make_tensor_value_info("mask", f, mask.shape)], [helper.make_tensor_value_info("Y", f, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"X": x, "W": w, "offset": offset, "B": b, "mask": mask})[0]


FORMS = {"all taps (eager)": deform_conv_all_taps,
         **{f"{m} taps per call": partial(deform_conv_tap_groups, taps_per_call=m) for m in (1, 2, 3, 4, 9)}}


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
@pytest.mark.parametrize("c,groups,h,w,spread", [(16, 4, 12, 15, 3.0), (32, 16, 9, 11, 12.0), (8, 8, 7, 7, 40.0)])
def test_deform_conv_matches_onnxruntime(c, groups, h, w, spread, form):
    """Every decomposition: all taps at once (eager PyTorch), and groups of taps per GridSample (exported graphs;
    2 and 4 leave a shorter last group)."""
    g = torch.Generator().manual_seed(c + groups)
    x = torch.randn(2, c, h, w, generator=g)
    weight = torch.randn(6, c, 3, 3, generator=g)
    bias = torch.randn(6, generator=g)
    offset = torch.randn(2, 2 * groups * 9, h, w, generator=g) * spread  # many samples fall outside
    mask = torch.rand(2, groups * 9, h, w, generator=g)
    ours = form(x, offset, mask, weight, bias, deform_groups=groups).numpy()
    theirs = _ort_deform_conv(*(t.numpy() for t in (x, weight, offset, bias, mask)), groups)
    scale = np.abs(theirs).max()
    assert np.abs(ours - theirs).max() <= 1e-5 * max(1.0, scale)


@pytest.mark.parametrize("taps_per_call", [1, 2, 3, 9])
@pytest.mark.parametrize("strips", [None, 3, 5])
def test_dcn_from_its_offset_conv_cut_by_groups_of_taps(taps_per_call, strips):
    """Decomposed exports convolve each group of taps' offsets and mask with its own rows of the offset conv
    (0.3.16): the same as splitting the whole conv's output ([o1 | o2 | mask]) and the deformable conv of that,
    with an offset transform, and in row strips (each with its rows' own coordinates; 5 strips of 12 rows: uneven)."""
    from vsrdeploy.models.dcn import deform_conv_from_features, row_strip_convs
    g = torch.Generator().manual_seed(taps_per_call)
    groups, c, h, w = 4, 8, 12, 13
    x, feat = torch.randn(2, c, h, w, generator=g), torch.randn(2, 5, h, w, generator=g)
    conv = torch.nn.Conv2d(5, 3 * groups * 9, 3, 1, 1)
    torch.nn.init.normal_(conv.weight, std=1.0, generator=g)
    weight, bias = torch.randn(6, c, 3, 3, generator=g), torch.randn(6, generator=g)
    shift = torch.tensor([1.5, -0.5]).view(1, 1, 1, 2, 1, 1)  # a transform in [x, y] order: +1.5 px in x

    with torch.no_grad():
        out = conv(feat)
        offset = out[:, :2 * groups * 9].view(2, groups, 9, 2, h, w)
        offset = (0.5 * offset + shift.flip(3)).view(2, -1, h, w)  # the conv's (dy, dx) order
        ref = deform_conv_all_taps(x, offset, torch.sigmoid(out[:, 2 * groups * 9:]), weight, bias,
                                   deform_groups=groups)

        def transform(raw):
            return 0.5 * raw + shift
        if strips is None:
            ours = deform_conv_from_features(x, partial(torch.nn.functional.conv2d, feat, padding=1), conv, weight,
                                             bias, groups, None, transform, taps_per_call=taps_per_call)
        else:
            parts = [deform_conv_from_features(x, conv_rows, conv, weight, bias, groups, grid, transform,
                                               taps_per_call=taps_per_call)
                     for _, conv_rows, grid in row_strip_convs(feat, strips, conv.padding)]
            ours = torch.cat(parts, dim=2)
            assert len(parts) == strips
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max().item() <= 1e-4 * max(1.0, ref.abs().max().item())


def test_zero_offsets_equal_plain_conv():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 8, 10, 10, generator=g)
    weight = torch.randn(4, 8, 3, 3, generator=g)
    bias = torch.randn(4, generator=g)
    out = modulated_deform_conv2d(x, torch.zeros(1, 2 * 2 * 9, 10, 10), torch.ones(1, 2 * 9, 10, 10),
                                  weight, bias, deform_groups=2)
    ref = torch.nn.functional.conv2d(x, weight, bias, padding=1)
    assert (out - ref).abs().max() <= 1e-5


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # as in export_onnx: the shapes are static
def test_exports_sample_a_group_of_taps_at_a_time():
    """The decomposed export samples ``EXPORT_TAPS_PER_CALL`` of the 9 taps per GridSample (no k-times tensor);
    eager PyTorch takes the all-taps form; both give the same output."""
    import io

    from vsrdeploy.models.dcn import ModulatedDeformConv2d
    torch.manual_seed(0)
    layer = ModulatedDeformConv2d(8, 4, 3, padding=1, deform_groups=2).eval()

    class Wrap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x, offset, mask):
            return self.layer.deform_conv(x, offset, mask)
    x, offset, mask = torch.randn(1, 8, 6, 7), torch.randn(1, 36, 6, 7), torch.rand(1, 18, 6, 7)
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(Wrap(), (x, offset, mask), buf, opset_version=17, dynamo=False)
    model = onnx.load_from_string(buf.getvalue())
    assert sum(n.op_type == "GridSample" for n in model.graph.node) == -(-9 // EXPORT_TAPS_PER_CALL)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    exported = sess.run(None, {i.name: t.numpy() for i, t in zip(model.graph.input, (x, offset, mask))})[0]
    with torch.no_grad():
        eager = Wrap()(x, offset, mask).numpy()
    assert np.abs(exported - eager).max() <= 1e-5


def _align_cell_and_inputs(h, w):
    from vsrdeploy.models.basicvsr_pp import BasicVSRPlusPlusNet
    torch.manual_seed(0)
    net = BasicVSRPlusPlusNet(mid_channels=8, num_blocks=1).eval()
    for align in net.deform_align.values():  # offsets of several pixels: samples far from the strip's rows
        torch.nn.init.normal_(align.conv_offset[-1].weight, std=0.05)
    cell = net.build_cells()["backward_2_align"]
    g = torch.Generator().manual_seed(1)
    inputs = [torch.randn(*p.shape(2, h, w), generator=g) * (3.0 if p.name.startswith("flow") else 1.0)
              for p in cell.inputs]
    return cell, inputs


def _assert_onnx_matches_eager(path, cell, inputs):
    """The exported cell on ONNX Runtime against the eager cell, at the inputs' size."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ours = sess.run(None, {p.name: t.numpy() for p, t in zip(cell.inputs, inputs)})[0]
    with torch.no_grad():
        eager = cell(*inputs)[0].numpy()
    assert ours.shape == eager.shape
    assert np.abs(ours - eager).max() <= 1e-4 * max(1.0, np.abs(eager).max())


def test_alignment_in_row_strips_is_the_whole_frame_computation():
    """BasicVSR++'s offset conv + deformable conv cut into row strips (what decomposed exports run) gives the
    whole-frame result, at a height the strips do not divide evenly."""
    from vsrdeploy.models.blocks import flow_warp
    cell, (feat_prop, feat_n2, spatial, flow_n1, flow_n2) = _align_cell_and_inputs(23, 19)
    align = cell.align
    with torch.no_grad():
        whole = cell(feat_prop, feat_n2, spatial, flow_n1, flow_n2)[0]
        cond = torch.cat([flow_warp(feat_prop, flow_n1), spatial, flow_warp(feat_n2, flow_n2)], dim=1)
        hidden = align.conv_offset[:-1](torch.cat([cond, flow_n1, flow_n2], dim=1))
        for strips in (2, 4, 7):
            cut = align._aligned_in_strips(torch.cat([feat_prop, feat_n2], dim=1), hidden, flow_n1, flow_n2, strips)
            assert cut.shape == whole.shape
            assert (cut - whole).abs().max().item() <= 1e-5


def test_eager_alignment_in_place_gives_the_same_bits_and_keeps_autograd():
    """Without autograd the eager alignment (BasicVSR++'s, EDVR's) computes offsets, mask and sampling
    coordinates in place (``dcn.may_overwrite``): the same bits as the out-of-place path autograd takes, and training still
    gets gradients (in-place ops on values a backward pass needs would raise)."""
    cell, inputs = _align_cell_and_inputs(23, 19)
    with torch.no_grad():
        in_place = cell(*inputs)[0]
    with torch.enable_grad():  # conftest turns autograd off for the suite
        recorded = cell(*inputs)[0]
        assert recorded.requires_grad and torch.equal(in_place, recorded)
        recorded.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in (cell.align.weight,
               cell.align.conv_offset[-1].weight, cell.align.conv_offset[0].weight))
    x, offset, mask = torch.randn(1, 8, 9, 11), torch.randn(1, 2 * 2 * 9, 9, 11) * 3, torch.rand(1, 2 * 9, 9, 11)
    w, b = torch.randn(4, 8, 3, 3), torch.randn(4)
    with torch.no_grad():
        in_place = deform_conv_all_taps(x, offset, mask, w, b, deform_groups=2)
    with torch.enable_grad():
        recorded = deform_conv_all_taps(x, offset.requires_grad_(), mask.requires_grad_(), w, b, deform_groups=2)
        assert torch.equal(in_place, recorded)
        recorded.sum().backward()
    assert torch.isfinite(offset.grad).all() and torch.isfinite(mask.grad).all()
    _, edvr_cell, edvr_inputs = _edvr_align_cell_and_inputs(20, 24)  # EDVR's packs (IconVSR): same rule
    with torch.no_grad():
        in_place = edvr_cell(*edvr_inputs)[0]
    with torch.enable_grad():
        recorded = edvr_cell(*edvr_inputs)[0]
    assert recorded.requires_grad and torch.equal(in_place, recorded)


def test_eager_inference_cuts_large_alignments_into_row_strips(monkeypatch):
    """Eager inference runs a deformable alignment whose sampled taps exceed ``dcn.EAGER_STRIP_BYTES`` in row
    strips (BasicVSR++'s and EDVR's): within 1e-5 of the whole frame; ``whole_frame_alignment`` (the speed
    tables' baseline) turns them off, and frames under the limit never see them."""
    from vsrdeploy.models import dcn
    from vsrdeploy.models.basicvsr_pp import SecondOrderDeformableAlignment
    cell, inputs = _align_cell_and_inputs(23, 19)
    _, edvr_cell, edvr_inputs = _edvr_align_cell_and_inputs(20, 24)
    with torch.no_grad():
        whole = cell(*inputs)[0], edvr_cell(*edvr_inputs)[0]
    cuts = []
    for owner, name in ((SecondOrderDeformableAlignment, "_aligned_in_strips"), (dcn.ModulatedDCNPack, "in_row_strips")):
        original = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda self, *a, _f=original: cuts.append(a[-1]) or _f(self, *a))
    monkeypatch.setattr(dcn, "EAGER_STRIP_BYTES", 4096)
    with torch.no_grad():
        cut = cell(*inputs)[0], edvr_cell(*edvr_inputs)[0]
        assert cuts and all(n > 1 for n in cuts)
        for a, b in zip(cut, whole):
            assert a.shape == b.shape and (a - b).abs().max().item() <= 1e-5
        cuts.clear()
        with dcn.whole_frame_alignment():
            assert all(torch.equal(a, b) for a, b in zip((cell(*inputs)[0], edvr_cell(*edvr_inputs)[0]), whole))
        assert not cuts and dcn.EAGER_STRIP_BYTES == 4096
        monkeypatch.setattr(dcn, "EAGER_STRIP_BYTES", 64 * 2**20)
        cell(*inputs)
        assert not cuts


def test_decomposed_export_runs_the_alignment_in_strips_at_any_size(tmp_path):
    """The exported strips take their cuts from the input's shape: a graph traced at one size is right at
    another (ONNX Runtime against eager PyTorch's whole-frame alignment)."""
    from vsrdeploy.export.onnx_export import export_cell
    cell, inputs = _align_cell_and_inputs(70, 45)
    path = tmp_path / "align.onnx"
    export_cell(cell, path, 17, (64, 80), None, "decomposed")
    graph = onnx.load(str(path)).graph
    ops = [n.op_type for n in graph.node]
    strips = cell.align.export_row_strips
    assert strips > 1
    # per strip and group of taps: the offset branch's last conv as two convs (the group's offsets, its mask
    # logits: nothing splits a 432-channel output) and one 1x1 conv (the weighted sums)
    groups = -(-9 // EXPORT_TAPS_PER_CALL)
    assert ops.count("Conv") == 3 + 3 * groups * strips
    assert not {"MatMul", "Split"} & set(ops)
    assert not _gathers_of_maps(graph)  # nor a gather of [dy, dx] into [x, y]
    assert ops.count("GridSample") == 2 + groups * strips  # two flow warps, then the groups of taps per strip
    _assert_onnx_matches_eager(path, cell, inputs)


def _gathers_of_maps(graph) -> list[str]:
    """Gather nodes of ``graph`` that read a computed tensor (gathers of a ``Shape`` are shape arithmetic)."""
    made_by = {out: node.op_type for node in graph.node for out in node.output}
    return [n.name for n in graph.node if n.op_type == "Gather" and made_by.get(n.input[0], "Shape") != "Shape"]


def _edvr_align_cell_and_inputs(h, w):
    from vsrdeploy.models.iconvsr import IconVSRNet
    torch.manual_seed(0)
    net = IconVSRNet(mid_channels=8, num_blocks=1).eval()
    for pack in (net.edvr.pcd_alignment.dcn_pack["l1"], net.edvr.pcd_alignment.cas_dcnpack):
        torch.nn.init.normal_(pack.conv_offset.weight, std=0.05)  # offsets of several pixels
    cell = net.build_cells()["edvr_align"]
    g = torch.Generator().manual_seed(1)
    inputs = [torch.randn(*p.shape(2, h, w), generator=g) for p in cell.inputs]
    return net, cell, inputs


def test_edvr_deformable_conv_in_row_strips_is_the_whole_frame_computation():
    """EDVR's DCN pack (IconVSR's refill alignment) cut into row strips gives the whole-frame result, at a
    height the strips do not divide evenly."""
    net, _, _ = _edvr_align_cell_and_inputs(8, 8)
    pack = net.edvr.pcd_alignment.cas_dcnpack
    assert pack.export_row_strips > 1 and net.edvr.pcd_alignment.dcn_pack["l2"].export_row_strips == 1
    g = torch.Generator().manual_seed(2)
    x, extra = torch.randn(2, 8, 23, 19, generator=g), torch.randn(2, 8, 23, 19, generator=g)
    with torch.no_grad():
        whole = pack(x, extra)
        for strips in (2, 4, 7):
            cut = pack.in_row_strips(x, extra, strips)
            assert cut.shape == whole.shape
            assert (cut - whole).abs().max().item() <= 1e-5


def test_decomposed_export_runs_edvr_alignment_in_strips_at_any_size(tmp_path):
    """The exported EDVR alignment cuts its full-resolution DCNs by the input's shape: traced at one size, right
    at another (ONNX Runtime against eager PyTorch's whole-frame alignment)."""
    from vsrdeploy.export.onnx_export import export_cell
    from vsrdeploy.models.edvr import EXPORT_ROW_STRIPS
    _, cell, inputs = _edvr_align_cell_and_inputs(44, 60)
    path = tmp_path / "edvr_align.onnx"
    export_cell(cell, path, 17, (32, 48), None, "decomposed")
    graph = onnx.load(str(path)).graph
    ops = [n.op_type for n in graph.node]
    from vsrdeploy.models.dcn import EXPORT_TAPS_PER_CALL
    groups = -(-9 // EXPORT_TAPS_PER_CALL)  # GridSamples per DCN
    assert ops.count("GridSample") == groups * (2 + 2 * EXPORT_ROW_STRIPS)  # L3, L2 whole; L1 and cascade in strips
    assert "Split" not in ops and not _gathers_of_maps(graph)  # each group of taps: its own offset and mask convs
    _assert_onnx_matches_eager(path, cell, inputs)


@pytest.mark.parametrize("h,w", [(45, 70), (23, 19), (8, 9)])
def test_native_export_runs_the_alignment_in_strips_at_any_size(tmp_path, h, w):
    """Native exports cut BasicVSR++'s alignment into row strips too: one DeformConv per strip with a row stride
    of ``strips`` on the whole input, its rows moved onto the strip's by the offsets (strips one row short
    included: 23 and 45 rows in 4 strips). Traced at one size, right at others (ONNX Runtime against eager
    PyTorch's whole-frame alignment)."""
    from vsrdeploy.export.onnx_export import export_cell
    cell, inputs = _align_cell_and_inputs(h, w)
    path = tmp_path / "align.onnx"
    export_cell(cell, path, 19, (64, 80), None, "native")
    nodes = [n for n in onnx.load(str(path)).graph.node if n.op_type == "DeformConv"]
    strips = cell.align.export_row_strips
    assert len(nodes) == strips > 1
    assert all(list(a.ints) == [strips, 1] for n in nodes for a in n.attribute if a.name == "strides")
    _assert_onnx_matches_eager(path, cell, inputs)


def test_native_export_runs_edvr_alignment_in_strips_at_any_size(tmp_path):
    """The same for EDVR's full-resolution DCN packs (IconVSR's refill alignment) in native exports."""
    from vsrdeploy.export.onnx_export import export_cell
    from vsrdeploy.models.edvr import EXPORT_ROW_STRIPS
    _, cell, inputs = _edvr_align_cell_and_inputs(44, 60)
    path = tmp_path / "edvr_align.onnx"
    export_cell(cell, path, 19, (32, 48), None, "native")
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("DeformConv") == 2 + 2 * EXPORT_ROW_STRIPS  # L3, L2 whole; L1 and cascade in strips
    _assert_onnx_matches_eager(path, cell, inputs)


def test_plugin_exports_keep_whole_frames():
    """The TensorRT plugin takes one stride for rows and columns: its exports are not cut into row strips."""
    from unittest import mock

    from vsrdeploy.models.dcn import dcn_export_mode
    cell, _ = _align_cell_and_inputs(8, 8)
    with dcn_export_mode("plugin"), mock.patch("torch.onnx.is_in_onnx_export", return_value=True):
        assert cell.align.row_strips(torch.zeros(1, 8, 64, 64)) == 1
    with dcn_export_mode("native"), mock.patch("torch.onnx.is_in_onnx_export", return_value=True):
        assert cell.align.row_strips(torch.zeros(1, 8, 64, 64)) == cell.align.export_row_strips


def test_row_strided_op_matches_onnxruntime_deformconv():
    """The op a native strip exports as (a DeformConv with strides [row_stride, 1]) computes in PyTorch what ONNX
    Runtime's DeformConv with those strides does (its eager body is what the export traces)."""
    from vsrdeploy.models.dcn import _deform_conv_op
    g = torch.Generator().manual_seed(5)
    x, weight = torch.randn(2, 8, 11, 9, generator=g), torch.randn(4, 8, 3, 3, generator=g)
    bias = torch.randn(4, generator=g)
    rows = (11 - 1) // 3 + 1
    offset = torch.randn(2, 2 * 2 * 9, rows, 9, generator=g) * 2
    mask = torch.rand(2, 2 * 9, rows, 9, generator=g)
    ours = _deform_conv_op(x, offset, mask, weight, bias, 1, 1, 1, 2, 3).numpy()
    node = helper.make_node("DeformConv", ["X", "W", "offset", "B", "mask"], ["Y"], kernel_shape=[3, 3],
                            pads=[1, 1, 1, 1], strides=[3, 1], offset_group=2)
    f = TensorProto.FLOAT
    graph = helper.make_graph([node], "dcn", [helper.make_tensor_value_info(n, f, None)
                                              for n in ("X", "W", "offset", "B", "mask")],
                              [helper.make_tensor_value_info("Y", f, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    theirs = sess.run(None, {"X": x.numpy(), "W": weight.numpy(), "offset": offset.numpy(), "B": bias.numpy(),
                             "mask": mask.numpy()})[0]
    assert ours.shape == theirs.shape == (2, 4, rows, 9)
    assert np.abs(ours - theirs).max() <= 1e-5 * max(1.0, np.abs(theirs).max())
