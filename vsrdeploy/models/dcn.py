"""Modulated deformable convolution (DCNv2), written once in plain PyTorch.

Same semantics and tensor layouts as mmcv ``modulated_deform_conv2d``, torchvision ``deform_conv2d``
and ONNX ``DeformConv`` (opset 19):

* offset (n, 2*G*kh*kw, ho, wo): per deform group g and kernel tap k (row-major), channel
  ``g*2K + 2k`` is dy and ``g*2K + 2k + 1`` is dx;
* mask (n, G*kh*kw, ho, wo), already passed through a sigmoid;
* the G deform groups split the input channels into contiguous blocks;
* bilinear sampling where every neighbour outside the image contributes zero.

Sampling is ``grid_sample(align_corners=True, padding_mode='zeros')``, which follows that boundary
rule exactly; the weighted sum is a matmul over all kernel taps at once in eager PyTorch, and one 1x1
convolution per group of taps (accumulated) in exported graphs. Frames must be at least 2 pixels in each direction.
"""
from __future__ import annotations

import contextlib
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import base_grid, grid_extent
from .dcn_names import DCN_EXPORT_MODES, PLUGIN_DOMAIN, PLUGIN_NODE, PLUGIN_OP, PLUGIN_VERSION  # noqa: F401 (re-exported)


def modulated_deform_conv2d(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor,
                            weight: torch.Tensor, bias: torch.Tensor | None, stride: int = 1,
                            padding: int = 1, dilation: int = 1, deform_groups: int = 1,
                            out_grid: torch.Tensor | None = None) -> torch.Tensor:
    """Exported graphs take the taps ``EXPORT_TAPS_PER_CALL`` at a time (less memory than all at once, and faster
    on OpenVINO); eager PyTorch takes them all at once (faster there). Measured: benchmarks/RESULTS.md,
    "Deformable conv one tap at a time" and "The deformable conv three taps at a time" (tests/test_dcn.py holds
    every form to ONNX Runtime's DeformConv). ``out_grid``: a row strip's own coordinates
    (:func:`deform_conv_tap_groups`)."""
    fn = deform_conv_tap_groups if torch.onnx.is_in_onnx_export() else deform_conv_all_taps
    return fn(x, offset, mask, weight, bias, stride, padding, dilation, deform_groups, out_grid=out_grid)


def may_overwrite(*tensors: torch.Tensor) -> bool:
    """Whether eager code may compute in place on these intermediates: no autograd graph needs their values
    and no ONNX export traces them (in-place ops on views would be exported as scatters). Same values
    either way; in place is what keeps an eager BasicVSR++ alignment at 180x320 from holding several
    offset- or tap-sized temporaries at once."""
    return not torch.onnx.is_in_onnx_export() and not any(t.requires_grad for t in tensors)


def deform_conv_all_taps(x, offset, mask, weight, bias, stride=1, padding=1, dilation=1, deform_groups=1,
                         out_grid=None):
    """Every tap sampled into one (n, c * k, ho * wo) tensor, one matmul. Without autograd the coordinates
    and the mask are applied in place and each temporary is dropped at its last use (the same operations
    in the same order, so the same bits): BasicVSR++'s eager align call at 180x320 otherwise held the
    coordinates of every stage and the sampled taps twice (benchmarks/RESULTS.md, "Eager deformable alignment in
    place"). ``out_grid``: as in :func:`deform_conv_tap_groups` (a row strip's own coordinates)."""
    n, c, h, w = x.shape
    cout, cin_per_group, kh, kw = weight.shape
    if cin_per_group != c:
        raise ValueError("grouped convolution (groups > 1) is not supported by this DCN")
    k = kh * kw
    g = deform_groups
    ho, wo = offset.shape[-2:]
    off = offset.view(n, g, k, 2, ho, wo)
    # Position of each tap relative to the output pixel, before the learned offset.
    ky = torch.arange(kh, dtype=x.dtype, device=x.device).repeat_interleave(kw) * dilation - padding
    kx = torch.arange(kw, dtype=x.dtype, device=x.device).repeat(kh) * dilation - padding
    grid = base_grid(offset[:, :2]) if out_grid is None else out_grid  # (1, 2, ho, wo): output pixel coordinates
    py = grid[:, 1:2] * stride + ky.view(1, 1, k, 1, 1) + off[:, :, :, 0]  # (n, g, k, ho, wo)
    px = grid[:, 0:1] * stride + kx.view(1, 1, k, 1, 1) + off[:, :, :, 1]
    del off, grid
    extent = grid_extent(base_grid(x))  # (w - 1, h - 1) as a tensor: size-agnostic when traced
    if may_overwrite(py, px):
        gx = px.mul_(2.0).div_(extent[:, 0:1].unsqueeze(2)).sub_(1.0)
        gy = py.mul_(2.0).div_(extent[:, 1:2].unsqueeze(2)).sub_(1.0)
    else:
        gx = 2.0 * px / extent[:, 0:1].unsqueeze(2) - 1.0
        gy = 2.0 * py / extent[:, 1:2].unsqueeze(2) - 1.0
    del px, py
    sample_grid = torch.stack([gx, gy], dim=-1).reshape(n * g, k * ho, wo, 2)
    del gx, gy
    sampled = F.grid_sample(x.reshape(n * g, c // g, h, w), sample_grid, mode="bilinear",
                            padding_mode="zeros", align_corners=True)
    del sample_grid
    taps_mask = mask.view(n, g, 1, k, ho, wo)
    if may_overwrite(sampled, mask):
        sampled = sampled.view(n, g, c // g, k, ho, wo).mul_(taps_mask)
    else:
        sampled = sampled.view(n, g, c // g, k, ho, wo) * taps_mask
    out = torch.matmul(weight.reshape(cout, c * k), sampled.reshape(n, c * k, ho * wo))
    del sampled
    if bias is not None:
        out = out + bias.view(1, cout, 1)
    return out.view(n, cout, ho, wo)


#: kernel taps one GridSample and one 1x1 convolution of an exported deformable conv take at a time: 3, one row of
#: a 3x3 kernel. BasicVSR++'s NNCF INT8 stream on openvino-cpu at 180x320 (c64n7, Zen 5) was 1.14x as fast as with
#: one tap at a time (0.3.14's form) with the default heap and 1.02x with heap=keep, for 8% / 19% less peak memory
#: (two earlier ad-hoc runs: 0.98-1.09x, 1.09-1.11x); all 9 at once was slower in the stream (0.87-0.95x of 3) for
#: all its cell-level speed; FP32 and IconVSR the same speed within the runs' spread (benchmarks/RESULTS.md, "The
#: deformable conv three taps at a time").
EXPORT_TAPS_PER_CALL = 3


def _checked_weight(x, weight, taps_per_call: int) -> tuple[int, int, int, int]:
    """``weight``'s (cout, cin, kh, kw) as ints (static: traced exports see tensors there), after checking what
    the decompositions support."""
    cout, cin, kh, kw = (int(v) for v in weight.shape)
    if cin != x.shape[1]:
        raise ValueError("grouped convolution (groups > 1) is not supported by this DCN")
    if taps_per_call < 1:
        raise ValueError(f"taps_per_call must be at least 1, got {taps_per_call}")
    return cout, cin, kh, kw


def _tap_group_sum(groups, grid, mask, weight_taps, n: int, g: int, ho, wo):
    """One group of m taps of a decomposed DCN: ``groups`` (n * g, c / g, h, w) sampled at ``grid``
    (n * g, m * ho, wo, [x, y]), times ``mask`` (n * g, 1, m, ho * wo), summed over (channel, tap) by a 1x1
    convolution with ``weight_taps`` (cout, cin, m): (n, cout, ho, wo)."""
    cout, cin, m = (int(v) for v in weight_taps.shape)
    sampled = F.grid_sample(groups, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    sampled = sampled.reshape(n * g, cin // g, m, ho * wo) * mask
    # channels in (input channel, tap) order, as the weights' (cin, tap) flattened
    return F.conv2d(sampled.reshape(n, cin * m, ho, wo), weight_taps.reshape(cout, cin * m, 1, 1))


def deform_conv_tap_groups(x, offset, mask, weight, bias, stride=1, padding=1, dilation=1, deform_groups=1,
                           out_grid=None, taps_per_call: int = EXPORT_TAPS_PER_CALL):
    """``taps_per_call`` kernel taps at a time, summed (what exported graphs use): the sampled taps of all k at
    once are k times the input's size (BasicVSR++ c64 at 180x320: 265 MB per DCN call), one at a time is nine
    GridSamples, nine convolutions and eight sums of partial outputs.

    The sampling grids of all taps are computed at once, in the offsets' own (n, g, k, [dy, dx], h, w) layout,
    put into grid_sample's [x, y] order by one gather and one transpose to (n, g, k, h, w, 2); a group of taps
    is then one grid of ``taps * h`` rows per deform group, so one GridSample samples them all. (With nine
    per-tap stacks of x and y instead, one Concat each, a reference kernel in OpenVINO, a BasicVSR++ align
    cell took 1.07-1.17x as long on OpenVINO: benchmarks/RESULTS.md, "BasicVSR++ alignment on OpenVINO".)
    The mask multiplies the sampled taps as 4-D tensors (6-D, OpenVINO quantized the product with a reference
    kernel), and each group's weighted sum is a 1x1 convolution over (channel, tap) pairs (OpenVINO runs it in
    INT8 when its input is quantized; a ``MatMul`` before 0.3.13 dequantized its INT8 weights on every call:
    benchmarks/RESULTS.md, "INT8 alignment on OpenVINO, and BF16 sampling coordinates").

    ``out_grid`` (1, 2, ho, wo), [x, y]: the output pixels' coordinates when ``offset`` covers only some of
    the output's rows (a row strip: the rows' own coordinates in the whole output); default: all of it."""
    n, c, h, w = x.shape
    cout, cin, kh, kw = _checked_weight(x, weight, taps_per_call)
    k = kh * kw
    g = deform_groups
    ho, wo = offset.shape[-2:]
    off = offset.view(n, g, k, 2, ho, wo)
    # (dy, dx) of each tap before the learned offset: a constant of the graph
    tap_yx = torch.tensor([[ty * dilation - padding, tx * dilation - padding]
                           for ty in range(kh) for tx in range(kw)], dtype=x.dtype, device=x.device)
    if out_grid is None:
        out_grid = base_grid(offset[:, :2])
    grid_yx = out_grid.flip(1).view(1, 1, 1, 2, ho, wo)  # output pixel (y, x)
    extent_yx = grid_extent(base_grid(x)).flip(1).view(1, 1, 1, 2, 1, 1)  # (h - 1, w - 1), size-agnostic
    position = grid_yx * stride + tap_yx.view(1, 1, k, 2, 1, 1) + off  # (n, g, k, [y, x], ho, wo)
    normalized = 2.0 * position / extent_yx - 1.0
    xy_order = torch.tensor([1, 0], device=x.device)
    grids = normalized.index_select(3, xy_order).permute(0, 1, 2, 4, 5, 3)  # (n, g, k, ho, wo, [x, y])
    groups = x.reshape(n * g, c // g, h, w)
    taps_mask = mask.reshape(n * g, 1, k, ho * wo)
    weights = weight.reshape(cout, cin, k)
    out = None
    for t0 in range(0, k, taps_per_call):
        m = min(taps_per_call, k - t0)
        grid = grids[:, :, t0:t0 + m].reshape(n * g, m * ho, wo, 2)
        part = _tap_group_sum(groups, grid, taps_mask[:, :, t0:t0 + m], weights[:, :, t0:t0 + m], n, g, ho, wo)
        out = part if out is None else out + part
    if bias is not None:
        out = out + bias.view(1, cout, 1, 1)
    return out


def row_strip_convs(feat: torch.Tensor, strips: int, padding: tuple[int, int]):
    """Same-size convolutions of ``feat`` (``padding`` (rows, columns), stride 1) in ``strips`` row strips:
    yields each strip's output rows (a slice), a function ``conv(weight, bias)`` that convolves the strip's rows
    into those output rows, and their pixel coordinates (1, 2, rows, w), [x, y].

    Each strip slices its rows and their halo out of ``feat``; the first and last strip convolve with the
    conv's own zero padding above and below and drop the ``padding`` rows of output beyond their halo (an
    explicit ``Pad``, before 0.3.16, kept an INT8 convolution in float on OpenVINO once several convolutions
    read the padded rows). So an INT8 cell reads ``DequantizeLinear -> Slice -> Conv``, which OpenVINO runs as
    an INT8 convolution (a ``Pad`` before the ``Slice`` kept it in float too: benchmarks/RESULTS.md, "INT8
    alignment on OpenVINO, and BF16 sampling coordinates"). Cuts come from the traced shape, so an exported
    graph serves every frame size. Needs at least ``strips * padding[0]`` rows (every network's minimum size
    has more)."""
    pad_h, pad_w = padding
    grid = base_grid(feat)
    h = feat.shape[2]
    for i in range(strips):
        r0, r1 = h * i // strips, h * (i + 1) // strips
        first, last = i == 0, i == strips - 1
        rows = feat[:, :, r0 - (0 if first else pad_h):r1 + (0 if last else pad_h)]

        def conv(weight, bias, rows=rows, first=first, last=last, core=r1 - r0):
            if not (first or last):
                return F.conv2d(rows, weight, bias, padding=(0, pad_w))
            out = F.conv2d(rows, weight, bias, padding=(pad_h, pad_w))
            return out[:, :, :core] if first else out[:, :, -core:]
        yield slice(r0, r1), conv, grid[:, :, r0:r1]


def conv_in_row_strips(conv: nn.Conv2d, feat: torch.Tensor, strips: int):
    """``conv(feat)`` (stride 1, same size) in ``strips`` row strips (:func:`row_strip_convs`): yields each
    strip's rows (a slice), its output and its rows' pixel coordinates (1, 2, rows, w), [x, y], for the
    deformable conv that samples there."""
    for rows, conv_rows, grid in row_strip_convs(feat, strips, conv.padding):
        yield rows, conv_rows(conv.weight, conv.bias), grid


def offset_mask_channels(deform_groups: int, taps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where a DCN's offset conv puts each offset and mask (mmcv's and upstream's ``[o1 | o2 | mask]``, the
    offsets ``cat([o1, o2])`` in this module's layout): channel indices (g, k, [x, y]) of the offsets, x first
    (the conv gives dy, dx), and (g, k) of the mask logits."""
    gk = torch.arange(deform_groups * taps).view(deform_groups, taps)
    return torch.stack([2 * gk + 1, 2 * gk], dim=-1), 2 * deform_groups * taps + gk


def deform_conv_from_features(x, conv_feat, conv: nn.Conv2d, weight, bias, deform_groups: int, out_grid=None,
                              offset_transform=None, padding: int = 1, dilation: int = 1,
                              taps_per_call: int = EXPORT_TAPS_PER_CALL):
    """The decomposed export of a modulated DCN (stride 1) whose offsets and mask ``conv`` predicts from its
    input features: ``conv_feat(weight, bias)`` convolves them with some of ``conv``'s output channels (a row
    strip's rows: :func:`row_strip_convs`). Each group of ``taps_per_call`` taps gets its offsets ([x, y] order)
    and its mask logits from its own rows of ``conv``'s weights, so the graph never splits the offset conv's
    output: OpenVINO ran those splits (offsets from mask, the taps' grids and masks by group) with reference
    kernels, and the [dy, dx] -> [x, y] reorder with a gather. The same weighted sums as
    ``deform_conv_tap_groups(x, offsets, sigmoid(mask), ...)`` of the whole conv's output.

    ``offset_transform(raw)``: the offsets from the conv's raw ones, (n, g, taps, [x, y], h, w) (BasicVSR++:
    ``max_residue_magnitude * tanh`` plus the flows); ``out_grid`` (1, 2, ho, wo), [x, y]: a row strip's own
    coordinates, default the whole frame."""
    n, c, h, w = x.shape
    cout, cin, kh, kw = _checked_weight(x, weight, taps_per_call)
    k, g = kh * kw, deform_groups
    offset_channels, mask_channels = offset_mask_channels(g, k)
    # (dx, dy) of each tap before the learned offset: a constant of the graph
    tap_xy = torch.tensor([[tx * dilation - padding, ty * dilation - padding]
                           for ty in range(kh) for tx in range(kw)], dtype=x.dtype, device=x.device)
    extent = grid_extent(base_grid(x)).view(1, 1, 1, 2, 1, 1)  # (w - 1, h - 1), size-agnostic
    groups = x.reshape(n * g, c // g, h, w)
    weights = weight.reshape(cout, cin, k)
    out = None
    for t0 in range(0, k, taps_per_call):
        m = min(taps_per_call, k - t0)
        channels = offset_channels[:, t0:t0 + m].reshape(-1)
        raw = conv_feat(conv.weight[channels], conv.bias[channels])
        ho, wo = raw.shape[-2:]
        offset = raw.view(n, g, m, 2, ho, wo)
        if offset_transform is not None:
            offset = offset_transform(offset)
        if out_grid is None:
            out_grid = base_grid(raw[:, :2])
        position = out_grid.view(1, 1, 1, 2, ho, wo) + tap_xy[t0:t0 + m].view(1, 1, m, 2, 1, 1) + offset
        grid = (2.0 * position / extent - 1.0).permute(0, 1, 2, 4, 5, 3).reshape(n * g, m * ho, wo, 2)
        channels = mask_channels[:, t0:t0 + m].reshape(-1)
        mask = torch.sigmoid(conv_feat(conv.weight[channels], conv.bias[channels])).reshape(n * g, 1, m, ho * wo)
        part = _tap_group_sum(groups, grid, mask, weights[:, :, t0:t0 + m], n, g, ho, wo)
        out = part if out is None else out + part
    if bias is not None:
        out = out + bias.view(1, cout, 1, 1)
    return out


def native_deform_conv_rows(x, offset, mask, weight, bias, padding, dilation, deform_groups, out_grid, strips: int):
    """One row strip of a same-size (stride 1) deformable conv as ONE ONNX ``DeformConv`` node on the whole of
    ``x``: ONNX Runtime's kernel builds its sampling tables and columns for every output pixel at once (643 MB
    for a BasicVSR++ align call at 180x320), and a node's output size follows from its input's, so a strip
    cannot be asked for directly. With a row stride of ``strips`` the node's output has ceil(h / strips) rows,
    at least as many as any strip (:func:`conv_in_row_strips`); the offsets move each of its rows onto the
    strip's row (dy += strip row - node row: whole numbers), a strip one row short repeats its last offsets
    row, and that row of the output is dropped. The same samples and weighted sums as the whole frame; the
    sampling coordinates are rounded once more (float32, ~1e-5 pixel at 180 rows). (643 MB: what one call of the
    whole align cell rose by on ONNX Runtime with a whole-frame node, benchmarks/cell_memory.py.)"""
    n, gk2, rows, w = offset.shape
    node_rows = base_grid(offset[:, :1, :, :1])[:, 1:2] * float(strips)  # (1, 1, rows, 1): i * strips
    shift = out_grid[:, 1:2, :, :1] - node_rows  # (1, 1, rows, 1): strip row - node row
    shift = torch.cat([shift, torch.zeros_like(shift)], dim=1).view(1, 1, 2, rows, 1)  # dy only
    offset = (offset.view(n, gk2 // 2, 2, rows, w) + shift).view(n, gk2, rows, w)
    short = (x.shape[2] - 1) // strips + 1 - rows  # 0, or 1 for the strips one row short
    offset = torch.cat([offset, offset[:, :, rows - short:]], dim=2)
    mask = torch.cat([mask, mask[:, :, rows - short:]], dim=2)
    out = _deform_conv_op(x, offset, mask, weight, bias, 1, padding, dilation, deform_groups, strips)
    return out[:, :, :rows]


_export_mode = "decomposed"
_cuda_kernel = None  # set by dcn_cuda.enable(): the CUDA extension used for CUDA tensors


def set_cuda_kernel(fn) -> None:
    """Use ``fn`` (signature of ``modulated_deform_conv2d``) for DCNs on CUDA tensors; None restores PyTorch."""
    global _cuda_kernel
    _cuda_kernel = fn


def exporting_decomposed() -> bool:
    """True while an ONNX export traces the decomposed (GridSample + 1x1 Conv per group of taps) form."""
    return _export_mode == "decomposed" and torch.onnx.is_in_onnx_export()


#: decomposed exports of BasicVSR++'s and EDVR's DCNs compute each group of taps' offsets and mask with its own
#: rows of the offset conv (:func:`deform_conv_from_features`, 0.3.16); False: the whole offset conv, its output
#: split (0.3.15's graphs, for side-by-side runs: benchmarks/dcn_taps_ab.py)
EXPORT_OFFSETS_PER_TAP_GROUP = True


def exporting_offsets_per_tap_group() -> bool:
    """True while a decomposed export traces a DCN whose offset conv is cut by groups of taps."""
    return exporting_decomposed() and EXPORT_OFFSETS_PER_TAP_GROUP


def exporting_native() -> bool:
    """True while an ONNX export traces the native (ONNX ``DeformConv``) form."""
    return _export_mode == "native" and torch.onnx.is_in_onnx_export()


#: eager inference cuts a deformable alignment into row strips when the sampled taps of the whole frame would
#: take more than this many bytes (BasicVSR++ at 180x320: 265 MB, 5 strips); None: always whole frames.
#: Each strip convolves its rows of the offset features and samples the whole input (offsets are unbounded):
#: the frame's computation cut by output rows, within 1e-5 of the whole frame (tests/test_dcn.py), not the
#: same bits, so frames too small to need it stay whole (the upstream reference tests). Memory and speed:
#: benchmarks/RESULTS.md, "Eager deformable alignment in place".
EAGER_STRIP_BYTES: int | None = 64 * 2**20


def eager_row_strips(x: torch.Tensor, taps: int) -> int:
    """How many row strips an eager alignment sampling ``taps`` kernel taps of ``x`` runs in: 1 under the limit,
    with autograd on (training), while exporting, and on CUDA (where the CUDA kernel, ``set_cuda_kernel``,
    samples whole frames)."""
    sampled_bytes = x.numel() * x.element_size() * taps
    if (EAGER_STRIP_BYTES is None or torch.is_grad_enabled() or torch.onnx.is_in_onnx_export() or x.is_cuda
            or sampled_bytes <= EAGER_STRIP_BYTES):
        return 1
    return max(1, min(x.shape[2], -(-sampled_bytes // EAGER_STRIP_BYTES)))


@contextlib.contextmanager
def whole_frame_alignment():
    """Eager alignments on whole frames (no row strips) inside: upstream's computation at its cost, for the
    whole-clip baseline of the speed tables (``evaluate.bench.upstream_forward``)."""
    global EAGER_STRIP_BYTES
    previous, EAGER_STRIP_BYTES = EAGER_STRIP_BYTES, None
    try:
        yield
    finally:
        EAGER_STRIP_BYTES = previous


@contextlib.contextmanager
def dcn_export_mode(mode: str):
    global _export_mode
    if mode not in DCN_EXPORT_MODES:
        raise ValueError(f"dcn mode must be one of {DCN_EXPORT_MODES}, got {mode!r}")
    previous, _export_mode = _export_mode, mode
    try:
        yield
    finally:
        _export_mode = previous


@torch.library.custom_op("vsrdeploy::modulated_deform_conv2d", mutates_args=())
def _deform_conv_op(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
                    bias: torch.Tensor, stride: int, padding: int, dilation: int, deform_groups: int,
                    row_stride: int) -> torch.Tensor:
    """The same computation as one opaque op, so ONNX export can emit it as a single node. ``row_stride``
    (native exports' row strips, :func:`native_deform_conv_rows`; else equal to ``stride``): the stride
    between output rows."""
    if row_stride == stride:
        return modulated_deform_conv2d(x, offset, mask, weight, bias, stride, padding, dilation, deform_groups)
    strides = torch.tensor([float(stride), float(row_stride)], dtype=offset.dtype, device=offset.device)
    grid = base_grid(offset[:, :2]) * strides.view(1, 2, 1, 1)  # the output pixels' coordinates, [x, y]
    return modulated_deform_conv2d(x, offset, mask, weight, bias, 1, padding, dilation, deform_groups, out_grid=grid)


@_deform_conv_op.register_fake
def _(x, offset, mask, weight, bias, stride, padding, dilation, deform_groups, row_stride):
    return x.new_empty(x.shape[0], weight.shape[0], offset.shape[-2], offset.shape[-1])


def _deform_conv_symbolic(g, x, offset, mask, weight, bias, stride, padding, dilation, deform_groups, row_stride):
    """ONNX symbolic: ``DeformConv`` (native) or the plugin node
    ``vsrdeploy::ModulatedDeformConv2d(input, offset, mask, weight, bias)`` with int-list attributes
    stride, padding, dilation and ints groups, deform_groups (mmcv's layouts)."""
    from torch.onnx import symbolic_helper as sh
    stride, padding, dilation, groups, row_stride = (
        sh._get_const(v, "i", n) for v, n in ((stride, "stride"), (padding, "padding"), (dilation, "dilation"),
                                               (deform_groups, "deform_groups"), (row_stride, "row_stride")))
    if _export_mode == "native":
        k = weight.type().sizes()[-1]
        return g.op("DeformConv", x, weight, offset, bias, mask, dilations_i=[dilation, dilation], group_i=1,
                    kernel_shape_i=[k, k], offset_group_i=groups, pads_i=[padding] * 4,
                    strides_i=[row_stride, stride])
    if row_stride != stride:
        raise ValueError("the TensorRT plugin takes one stride for rows and columns; row strips are for native "
                         "exports")
    out = g.op(f"{PLUGIN_DOMAIN}::{PLUGIN_OP}", x, offset, mask, weight, bias, stride_i=[stride, stride],
               padding_i=[padding, padding], dilation_i=[dilation, dilation], groups_i=1, deform_groups_i=groups,
               plugin_namespace_s=PLUGIN_DOMAIN, plugin_version_s=PLUGIN_VERSION)
    out.setType(x.type())
    return out


torch.onnx.register_custom_op_symbolic("vsrdeploy::modulated_deform_conv2d", _deform_conv_symbolic, 16)


class ModulatedDeformConv2d(nn.Module):
    """Parameters ``weight`` (out, in, k, k) and ``bias`` as mmcv's ``ModulatedDeformConv2d``."""

    #: decomposed and native exports run a subclass's offset conv and deformable conv in this many row strips (1:
    #: whole frame), so their graphs need frames of at least this many rows (every network's ``min_size`` is
    #: larger); BasicVSR++'s alignment and EDVR's full-resolution packs set it (``row_strips``)
    export_row_strips = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, dilation: int = 1, deform_groups: int = 1):
        super().__init__()
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.deform_groups = deform_groups
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)

    def row_strips(self, x: torch.Tensor) -> int:
        """Row strips the alignment of ``x`` runs in: ``export_row_strips`` in a decomposed or native export (the
        native form needs a same-size convolution: :func:`native_deform_conv_rows`), else
        :func:`eager_row_strips` (eager inference on large frames; 1 in a plugin export)."""
        if exporting_decomposed():
            return self.export_row_strips
        if exporting_native():
            same_size = self.stride == 1 and 2 * self.padding == self.dilation * (self.kernel_size - 1)
            return self.export_row_strips if same_size else 1
        return eager_row_strips(x, self.kernel_size ** 2)

    def deform_conv_from(self, x, conv_feat, conv: nn.Conv2d, out_grid=None, offset_transform=None):
        """What decomposed exports compute: this DCN on ``x`` with the offsets and mask that ``conv`` predicts,
        ``conv_feat(weight, bias)`` convolving its input, one group of taps at a time
        (:func:`deform_conv_from_features`)."""
        if self.stride != 1:
            raise ValueError("the decomposed export of a DCN from its offset conv needs stride 1")
        return deform_conv_from_features(x, conv_feat, conv, self.weight, self.bias, self.deform_groups, out_grid,
                                         offset_transform, self.padding, self.dilation)

    def deform_conv(self, x, offset, mask, out_grid=None, strips: int | None = None):
        """The deformable conv of ``x`` at the output rows ``offset`` covers: all of them, or one of ``strips``
        row strips whose pixel coordinates are ``out_grid`` (:func:`conv_in_row_strips`)."""
        if out_grid is not None and strips is None:
            raise ValueError("a row strip (out_grid) needs the number of strips the frame is cut into")
        if out_grid is not None and exporting_native():
            return native_deform_conv_rows(x, offset, mask, self.weight, self.bias, self.padding, self.dilation,
                                           self.deform_groups, out_grid, strips)
        if out_grid is not None:
            return modulated_deform_conv2d(x, offset, mask, self.weight, self.bias, self.stride, self.padding,
                                           self.dilation, self.deform_groups, out_grid=out_grid)
        if _export_mode != "decomposed" and torch.onnx.is_in_onnx_export():
            return _deform_conv_op(x, offset, mask, self.weight, self.bias, self.stride, self.padding,
                                   self.dilation, self.deform_groups, self.stride)
        if _cuda_kernel is not None and x.is_cuda and not torch.onnx.is_in_onnx_export():
            return _cuda_kernel(x, offset, mask, self.weight, self.bias, self.stride, self.padding,
                                self.dilation, self.deform_groups)
        return modulated_deform_conv2d(x, offset, mask, self.weight, self.bias, self.stride,
                                       self.padding, self.dilation, self.deform_groups)


class ModulatedDCNPack(ModulatedDeformConv2d):
    """EDVR's DCN: offsets and mask predicted from ``extra_feat`` by ``conv_offset``. EDVR sets
    ``export_row_strips`` on its full-resolution packs (``PCDAlignment``), where the offsets and sampled taps of
    the whole frame were most of an IconVSR alignment call's memory."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1,
                 deform_groups: int = 8):
        super().__init__(in_channels, out_channels, kernel_size, 1, padding, 1, deform_groups)
        self.conv_offset = nn.Conv2d(in_channels, deform_groups * 3 * kernel_size * kernel_size,
                                     kernel_size, 1, padding)

    def forward(self, x, extra_feat):
        strips = self.row_strips(x)
        if exporting_offsets_per_tap_group() and strips == 1:
            return self.deform_conv_from(x, partial(F.conv2d, extra_feat, padding=self.conv_offset.padding),
                                         self.conv_offset)
        if strips > 1:
            return self.in_row_strips(x, extra_feat, strips)
        out = self.conv_offset(extra_feat)
        if may_overwrite(out):  # eager inference: [o1 | o2] is already one block of channels, the mask in place
            third = out.shape[1] // 3
            return self.deform_conv(x, out[:, :2 * third], out[:, 2 * third:].sigmoid_())
        o1, o2, mask = torch.chunk(out, 3, dim=1)
        return self.deform_conv(x, torch.cat([o1, o2], dim=1), torch.sigmoid(mask))

    def in_row_strips(self, x, extra_feat, strips: int):
        """The same computation cut by output rows: each strip convolves its rows of ``extra_feat`` (with the
        conv's zero padding above and below the frame) into its offsets and mask, and samples the whole of
        ``x`` at its rows' coordinates (offsets are unbounded). Cuts come from the traced shape, so one
        graph serves every frame size; a strip has at least one row where the frame has ``strips`` rows."""
        parts = []
        if exporting_offsets_per_tap_group():
            for _, conv_rows, grid in row_strip_convs(extra_feat, strips, self.conv_offset.padding):
                parts.append(self.deform_conv_from(x, conv_rows, self.conv_offset, grid))
            return torch.cat(parts, dim=2)
        for _, out, grid in conv_in_row_strips(self.conv_offset, extra_feat, strips):
            o1, o2, mask = torch.chunk(out, 3, dim=1)
            parts.append(self.deform_conv(x, torch.cat([o1, o2], dim=1), torch.sigmoid(mask), grid, strips))
        return torch.cat(parts, dim=2)
