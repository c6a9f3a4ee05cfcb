"""Cells: per-frame ``nn.Module`` steps with named inputs and outputs, and a runner for PyTorch.

A cell's ``forward`` takes its inputs positionally in ``inputs`` order and returns a tuple in
``outputs`` order. Every port is described by a :class:`Port` so exporters know its shape:
``(N, *dims, H*scale, W*scale)`` for image-like tensors (``scale`` relative to the LR frame) or
``(N, *dims)`` when ``scale`` is ``None``. Weights belong to the network; a cell only refers to them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch import nn


@dataclass(frozen=True)
class Port:
    name: str
    dims: tuple[int, ...]
    scale: float | None = 1.0

    def shape(self, n: int, h: int, w: int) -> tuple[int, ...]:
        if self.scale is None:
            return (n, *self.dims)
        return (n, *self.dims, int(h * self.scale), int(w * self.scale))


class Cell(nn.Module):
    inputs: tuple[Port, ...] = ()
    outputs: tuple[Port, ...] = ()
    #: stateless cells take a batch of independent frames on the batch axis
    stateless: bool = True
    #: rows of LR context each output row depends on, for a spatially local cell (convolutions, pixel
    #: shuffle, bilinear upsampling: no flow warping, no attention over the frame). Such a cell may run in
    #: horizontal strips with this many rows of context on each side, which gives the same output
    #: (``models.strips``). ``None``: not local, always run whole.
    halo: int | None = None

    @property
    def input_names(self) -> list[str]:
        return [p.name for p in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [p.name for p in self.outputs]


RunFn = Callable[[str, Mapping[str, torch.Tensor]], dict[str, torch.Tensor]]


class TorchRunner:
    """``run(cell_name, inputs) -> outputs`` over a dict of PyTorch cells."""

    def __init__(self, cells: Mapping[str, Cell]):
        self.cells = cells

    def __call__(self, name: str, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cell = self.cells[name]
        outs = cell(*[inputs[k] for k in cell.input_names])
        return dict(zip(cell.output_names, outs))
