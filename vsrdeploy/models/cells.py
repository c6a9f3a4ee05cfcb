"""Cells: per-frame ``nn.Module`` steps with named inputs and outputs, and a runner for PyTorch.

A cell's ``forward`` takes its inputs positionally in ``inputs`` order and returns a tuple in
``outputs`` order. Every port is described by a :class:`~vsrdeploy.models.ports.Port` so exporters know its shape:
``(N, *dims, H*scale, W*scale)`` for image-like tensors (``scale`` relative to the LR frame) or
``(N, *dims)`` when ``scale`` is ``None``. Weights belong to the network; a cell only refers to them.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from .ports import Port, PortNames, RunFn

__all__ = ["Cell", "Port", "RunFn", "TorchRunner"]


class Cell(nn.Module, PortNames):
    inputs: tuple[Port, ...] = ()
    outputs: tuple[Port, ...] = ()
    #: stateless cells take a batch of independent frames on the batch axis
    stateless: bool = True
    #: rows of LR context each output row depends on, for a spatially local cell (convolutions, pixel
    #: shuffle, bilinear upsampling: no flow warping, no attention over the frame). Such a cell may run in
    #: horizontal strips with this many rows of context on each side, which gives the same output
    #: (``models.strips``). ``None``: not local, always run whole.
    halo: int | None = None


class TorchRunner:
    """``run(cell_name, inputs) -> outputs`` over a dict of PyTorch cells."""

    def __init__(self, cells: Mapping[str, Cell]):
        self.cells = cells

    def __call__(self, name: str, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cell = self.cells[name]
        outs = cell(*[inputs[k] for k in cell.input_names])
        return dict(zip(cell.output_names, outs))
