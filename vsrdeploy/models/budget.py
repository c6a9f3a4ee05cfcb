"""How many frames (batch elements) a cell may take in one call: a byte budget per call.

The bytes one batch element of a cell needs are estimated from the cell's ports (the shapes the
bundle manifest records: ``(N, *dims, H*scale, W*scale)``) plus its largest single operation: the inputs
and output of that operation are what must be resident at the same moment. For BasicVSR's upsampling cell
at 180x320 LR that is one 64-channel 720x1280 map going into a convolution and one coming out (~470 MB per
frame), which is why the old fixed batch of 8 frames peaked at several GB.

The largest operation is found by running the cell on the ``meta`` device (shapes only, no data, no memory)
at two frame sizes (:data:`TRACE_SIZES`); at any other size it is read off the line through the two, in
bytes per LR pixel plus a constant (:class:`LargestOp`). Export records that line in the bundle manifest, so
a bundle's stream plans the same calls with or without PyTorch in the process (the ONNX Runtime and
OpenVINO CPU backends never import it), and a network run in PyTorch plans the same calls as its bundle.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import ConfigError
from .strips import plan_row_strips

#: default bytes one cell call may use (its batch of inputs, outputs and largest operation). 160 MiB cuts
#: BasicVSR's upsampling at 180x320 into 5 row strips (+11% rows for their context); OpenVINO keeps each
#: cell's largest call's buffers, and there 160 MiB peaked at 1.00 GB vs 1.13 GB with 256 MiB, for +5% time
#: (benchmarks/openvino_buffers.py; RESULTS.md, "Row strips")
DEFAULT_BATCH_BYTES = 160 * 2**20
#: used when a cell cannot be traced on the meta device: working set = ports x this
FALLBACK_FACTOR = 12

_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20, "mib": 2**20,
          "g": 2**30, "gb": 2**30, "gib": 2**30}


def parse_bytes(value, what: str = "memory budget") -> int:
    """``2GB``, ``1.5G``, ``512MB``, ``800MiB`` or a number of bytes -> bytes (binary units)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        n = float(value)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
        if not m or m.group(2).lower() not in _UNITS:
            raise ConfigError(f"{what} {value!r} is not a size; write it like 2GB, 1.5GB or 800MB")
        n = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not math.isfinite(n) or n <= 0:
        raise ConfigError(f"{what} must be positive (got {value!r}); write it like 2GB or 800MB")
    return int(n)


#: padded LR sizes (h, w) at which :func:`trace_largest_ops` runs each cell (multiples of every network's
#: ``pad_multiple`` and SPyNet's 32, at least every network's minimum input)
TRACE_SIZES = ((256, 256), (512, 512))


@dataclass(frozen=True)
class LargestOp:
    """The bytes of a cell's largest single operation for one batch element, as a line in LR pixels:
    ``per_pixel * h * w + constant`` at padded LR size ``h`` x ``w``."""
    per_pixel: float
    constant: float

    def at(self, h: int, w: int) -> int:
        return max(0, int(math.ceil(self.per_pixel * h * w + self.constant)))

    @classmethod
    def through(cls, points: list[tuple[int, int]]) -> "LargestOp":
        """The line through ``[(pixels, bytes), (pixels, bytes)]``."""
        (p0, b0), (p1, b1) = points
        per_pixel = (b1 - b0) / (p1 - p0)
        return cls(per_pixel, b0 - per_pixel * p0)


def trace_largest_ops(net) -> dict[str, LargestOp]:
    """Each cell of ``net`` (a PyTorch network) -> its :class:`LargestOp`, traced on the meta device at
    :data:`TRACE_SIZES`. Needs PyTorch; a bundle's manifest records the result (``export.onnx_export``)."""
    import torch

    from .dcn import whole_frame_alignment

    with torch.device("meta"):
        meta = type(net)(**net.config())
    fits = {}
    for name, c in meta.cells.items():
        points = []
        for h, w in TRACE_SIZES:
            try:
                probe = _largest_op_probe()
                # whole-frame alignments, as plugin-form bundles and the CUDA kernel run them; eager PyTorch and
                # decomposed and native exports cut them into row strips, where this is high (a BasicVSR++ align
                # call at 180x320: 848 MB estimated, 299-361 MB measured on torch / ort-cpu)
                with torch.no_grad(), whole_frame_alignment(), probe:
                    c(*[torch.empty(p.shape(1, h, w), device="meta") for p in c.inputs])
                largest = probe.largest
            except Exception:  # an op without a meta kernel: a multiple of the ports
                largest = port_bytes(c, h, w) * (FALLBACK_FACTOR - 1)
            points.append((h * w, largest))
        fits[name] = LargestOp.through(points)
    return fits


def _largest_op_probe():
    """A ``TorchDispatchMode`` that records the largest bytes any single operation needs: its inputs and
    outputs, plus one more copy of its largest tensor (runtimes reorder a convolution's input or output into
    a blocked layout; with that copy the estimate for BasicVSR's upsampling cell at 180x320 is within 5% of
    the measured RSS increase of PyTorch CPU running it, ~730 MB, without it 35% low)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class LargestOpProbe(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.largest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            sizes = [t.numel() * t.element_size() for t in tree_leaves((args, kwargs, out))
                     if isinstance(t, torch.Tensor)]
            if sizes:
                self.largest = max(self.largest, sum(sizes) + max(sizes))
            return out

    return LargestOpProbe()


def port_bytes(cell, h: int, w: int) -> int:
    """Bytes of one batch element's inputs and outputs (float32) at LR frame size ``h`` x ``w``."""
    return sum(4 * math.prod(p.shape(1, h, w)) for p in (*cell.inputs, *cell.outputs))


class CellCosts:
    """Bytes per batch element of each cell of ``net``, and how many elements fit in ``batch_bytes``
    (``None``: no limit, every frame of a window in one call). ``net`` is a PyTorch network (its cells'
    largest operations traced once per network, on first use: ``RecurrentVSR.largest_ops``) or a bundle's
    ``models.spec.NetSpec`` (read from the manifest: no PyTorch)."""

    def __init__(self, net, batch_bytes: int | None = DEFAULT_BATCH_BYTES):
        if batch_bytes is not None:
            batch_bytes = parse_bytes(batch_bytes, "batch_bytes")
        self.batch_bytes = batch_bytes
        self._net = net
        self._cache: dict[tuple[str, int, int], int] = {}

    def _cells(self):
        return self._net.cells

    def cell(self, name: str):
        """The cell ``name``, for its ports and halo."""
        return self._cells()[name]

    def padded(self, h: int, w: int) -> tuple[int, int]:
        """The size the network's cells see for an ``h`` x ``w`` frame: padded to its ``pad_multiple``, as the
        stream pads frames (IconVSR at 270x480 runs at 272x480; traced at 270 its EDVR estimate was 3x high)."""
        m = max(1, int(getattr(self._net, "pad_multiple", 1)))
        return -(-h // m) * m, -(-w // m) * m

    def per_item(self, cell: str, h: int, w: int) -> int:
        """Estimated peak bytes of one batch element of ``cell`` at LR frame size ``h`` x ``w``."""
        h, w = self.padded(h, w)
        key = (cell, h, w)
        if key not in self._cache:
            self._cache[key] = port_bytes(self.cell(cell), h, w) + self._net.largest_ops[cell].at(h, w)
        return self._cache[key]

    def items_per_call(self, cell: str, h: int, w: int) -> int:
        """Batch elements of ``cell`` per call (at least 1)."""
        if self.batch_bytes is None:
            return 1 << 30
        return max(1, self.batch_bytes // max(1, self.per_item(cell, h, w)))

    def least_call(self, cell: str, h: int, w: int) -> int:
        """The least bytes one call of ``cell`` can need: one element, in row strips when the cell is local
        and one element does not fit ``batch_bytes`` (``models.strips``)."""
        per = self.per_item(cell, h, w)
        rows, strips = plan_row_strips(self.cell(cell), per, h, self.batch_bytes)
        return per * rows // h if strips else per

    def largest_item(self, h: int, w: int) -> int:
        """The largest least-call cost over all cells (what one call must be able to hold)."""
        return max(self.least_call(name, h, w) for name in self._cells())

    def output_bytes(self, cell: str, h: int, w: int) -> int:
        """Bytes of one batch element's outputs of ``cell`` (float32) at LR frame size ``h`` x ``w``."""
        return sum(4 * math.prod(p.shape(1, h, w)) for p in self.cell(cell).outputs)

    def held_per_frame(self, h: int, w: int) -> int:
        """Rough bytes a schedule keeps per frame of its span: the input frame and every stateful cell's
        outputs (features kept for later branches / the other direction)."""
        cells = self._cells()
        keep = sum(4 * math.prod(p.shape(1, h, w)) for c in cells.values() if not c.stateless for p in c.outputs)
        return keep + 4 * 3 * h * w
