"""What the streaming machinery knows of a cell without PyTorch: its ports, whether it is stateless, its halo.

:class:`Port` describes one named input or output: ``(N, *dims, H*scale, W*scale)`` for image-like arrays
(``scale`` relative to the LR frame) or ``(N, *dims)`` when ``scale`` is ``None``. A PyTorch cell
(``models.cells.Cell``) and a :class:`CellSpec` read from a bundle manifest both have ``inputs``,
``outputs``, ``stateless`` and ``halo``, so schedules, budgets and row strips take either.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class Port:
    name: str
    dims: tuple[int, ...]
    scale: float | None = 1.0

    def shape(self, n: int, h: int, w: int) -> tuple[int, ...]:
        if self.scale is None:
            return (n, *self.dims)
        return (n, *self.dims, int(h * self.scale), int(w * self.scale))


class PortNames:
    """``input_names`` / ``output_names`` of anything with ``inputs`` and ``outputs`` ports."""
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]

    @property
    def input_names(self) -> list[str]:
        return [p.name for p in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [p.name for p in self.outputs]


@dataclass(frozen=True)
class CellSpec(PortNames):
    """A cell as a bundle describes it (no weights, no code)."""
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    stateless: bool = True
    #: rows of LR context each output row depends on for a spatially local cell, else None (``Cell.halo``)
    halo: int | None = None


#: ``run(cell_name, inputs) -> outputs``: named arrays (numpy or torch) in, named arrays out
RunFn = Callable[[str, Mapping[str, Any]], dict[str, Any]]
