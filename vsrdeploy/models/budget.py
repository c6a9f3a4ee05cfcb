"""How many frames (batch elements) a cell may take in one call: a byte budget per call.

The bytes one batch element of a cell needs are estimated from the cell's ports (the shapes the
bundle manifest records: ``(N, *dims, H*scale, W*scale)``) plus its largest single operation, found by
running the cell once on the ``meta`` device (shapes only, no data, no memory): the inputs and output
of that operation are what must be resident at the same moment. For BasicVSR's upsampling cell at
180x320 LR that is one 64-channel 720x1280 map going into a convolution and one coming out (~470 MB
per frame), which is why the old fixed batch of 8 frames peaked at several GB.
"""
from __future__ import annotations

import math
import re

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ..errors import ConfigError
from .dcn import whole_frame_alignment
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


class _LargestOp(TorchDispatchMode):
    """Records the largest bytes any single operation needs: its inputs and outputs, plus one more copy
    of its largest tensor (runtimes reorder a convolution's input or output into a blocked layout; with
    that copy the estimate for BasicVSR's upsampling cell at 180x320 is within 5% of the measured
    RSS increase of PyTorch CPU running it, ~730 MB, without it 35% low)."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        sizes = [t.numel() * t.element_size() for t in tree_leaves((args, kwargs, out)) if isinstance(t, torch.Tensor)]
        if sizes:
            self.largest = max(self.largest, sum(sizes) + max(sizes))
        return out


def port_bytes(cell, h: int, w: int) -> int:
    """Bytes of one batch element's inputs and outputs (float32) at LR frame size ``h`` x ``w``."""
    return sum(4 * math.prod(p.shape(1, h, w)) for p in (*cell.inputs, *cell.outputs))


class CellCosts:
    """Bytes per batch element of each cell of ``net`` (a network, usually on the meta device), and how many
    elements fit in ``batch_bytes`` (``None``: no limit, every frame of a window in one call)."""

    def __init__(self, net, batch_bytes: int | None = DEFAULT_BATCH_BYTES):
        if batch_bytes is not None:
            batch_bytes = parse_bytes(batch_bytes, "batch_bytes")
        self.batch_bytes = batch_bytes
        self._meta = net if _on_meta(net) else None
        self._net = net
        self._cache: dict[tuple[str, int, int], int] = {}

    def _meta_cells(self):
        if self._meta is None:
            with torch.device("meta"):
                self._meta = type(self._net)(**self._net.config())
        return self._meta.cells

    def cell(self, name: str):
        """The (meta) cell ``name``, for its ports and halo."""
        return self._meta_cells()[name]

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
            c = self._meta_cells()[cell]
            ports = port_bytes(c, h, w)
            try:
                probe = _LargestOp()
                # whole-frame alignments, as plugin-form bundles and the CUDA kernel run them; eager PyTorch and
                # decomposed and native exports cut them into row strips, where this is high (a BasicVSR++ align
                # call at 180x320: 848 MB estimated, 299-361 MB measured on torch / ort-cpu)
                with torch.no_grad(), whole_frame_alignment(), probe:
                    c(*[torch.empty(p.shape(1, h, w), device="meta") for p in c.inputs])
                self._cache[key] = ports + probe.largest
            except Exception:  # an op without a meta kernel: fall back to a multiple of the ports
                self._cache[key] = ports * FALLBACK_FACTOR
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
        return max(self.least_call(name, h, w) for name in self._meta_cells())

    def output_bytes(self, cell: str, h: int, w: int) -> int:
        """Bytes of one batch element's outputs of ``cell`` (float32) at LR frame size ``h`` x ``w``."""
        return sum(4 * math.prod(p.shape(1, h, w)) for p in self.cell(cell).outputs)

    def held_per_frame(self, h: int, w: int) -> int:
        """Rough bytes a schedule keeps per frame of its span: the input frame and every stateful cell's
        outputs (features kept for later branches / the other direction)."""
        cells = self._meta_cells()
        keep = sum(4 * math.prod(p.shape(1, h, w)) for c in cells.values() if not c.stateless for p in c.outputs)
        return keep + 4 * 3 * h * w


def _on_meta(net) -> bool:
    p = next(iter(net.parameters()), None)
    return p is not None and p.device.type == "meta"
