"""FLOPs of one cell call, counted by PyTorch's ``FlopCounterMode`` on the network's own cells.

The cell runs on meta tensors of the call's input shapes (no memory, no arithmetic), so counting a
180x320 trunk step costs milliseconds; results are cached per (cell, input shapes).

What is counted: the operators ``FlopCounterMode`` knows (convolutions, matmul / bmm / addmm / baddbmm,
attention). What is not: ``grid_sample`` (flow warping, the decomposed DCN's bilinear sampling),
``interpolate``, element-wise ops and activations. Cells made mostly of those show fewer FLOPs than they
execute; their GFLOP/s is a lower bound. Nothing is estimated in their place.
"""
from __future__ import annotations

from typing import Mapping

#: what the counts leave out, for table footers and JSON
NOT_COUNTED = ("grid_sample (flow warping, the decomposed DCN's sampling), interpolate, element-wise ops and "
               "activations are not counted by torch.utils.flop_counter.FlopCounterMode; GFLOP/s of cells made "
               "of them are lower bounds")

ShapeKey = tuple[tuple[str, tuple[int, ...], str], ...]


def shape_key(inputs: Mapping) -> ShapeKey:
    """(name, shape, dtype) of each input, hashable: what a call's FLOP count depends on."""
    return tuple((k, tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in inputs.items())


class CellFlops:
    """``flops(cell, key)`` for the cells of ``net`` (a network, e.g. ``Bundle.skeleton()``; its weights
    may live on the meta device), cached per (cell, shapes)."""

    def __init__(self, net):
        self.cells = net.cells
        self._cache: dict[tuple[str, ShapeKey], int] = {}

    def flops(self, cell: str, key: ShapeKey) -> int:
        if (cell, key) not in self._cache:
            self._cache[(cell, key)] = self._count(cell, key)
        return self._cache[(cell, key)]

    def _count(self, cell: str, key: ShapeKey) -> int:
        import torch
        from torch.utils.flop_counter import FlopCounterMode
        module = self.cells[cell]
        device = next((p.device for p in module.parameters()), torch.device("meta"))
        args = {name: torch.empty(shape, dtype=getattr(torch, dtype), device="meta") for name, shape, dtype in key}
        if device.type != "meta":  # a network with real weights: count on zero tensors of the same shapes
            args = {k: torch.zeros(v.shape, dtype=v.dtype, device=device) for k, v in args.items()}
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            module(*[args[k] for k in module.input_names])
        return int(counter.get_total_flops())
