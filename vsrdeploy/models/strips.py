"""Row strips: a spatially local cell whose call does not fit the byte budget runs in horizontal strips.

Upsampling cells hold the largest maps of the whole network (BasicVSR's tail: 64 channels at 4x the LR
size, ~710 MB for one 180x320 frame, ~1.6 GB for 270x480), more than all recurrent state together, and
one frame is the least a batch can hold. They are local, though: an output row depends only on
``Cell.halo`` rows of input around it. So the frame is cut into strips of equal height with ``halo``
rows of context on each side (fewer at the frame's edges, where the strip is shifted inwards so every
strip has the same shape), each strip runs alone, and only its core rows are kept. The context makes
every kept row the same as the whole-frame call's (to float rounding; the tests check <= 1e-5), unlike
spatial tiles of the recurrent cells (``models.tiles``), whose flows and state do change at tile borders.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING, Mapping

from . import arrays
from .ports import CellSpec as Cell, Port, RunFn

if TYPE_CHECKING:  # budget imports this module
    from .budget import CellCosts


def row_multiple(cell: Cell) -> int:
    """Strip offsets and heights, in LR rows, must be multiples of this so every port's rows are whole."""
    m = 1
    for port in (*cell.inputs, *cell.outputs):
        if port.scale is not None:
            m = math.lcm(m, Fraction(port.scale).limit_denominator(64).denominator)
    return m


def splittable(cell: Cell) -> bool:
    """A cell with a halo whose every port is a map (a per-frame scalar output cannot be cut in rows)."""
    return cell.halo is not None and all(p.scale is not None for p in (*cell.inputs, *cell.outputs))


def plan_row_strips(cell: Cell, per_call: int, height: int, budget: int | None) -> tuple[int, list[tuple[int, int, int]]]:
    """Strips for one call of ``cell`` on frames ``height`` LR rows high that needs ``per_call`` bytes whole:
    ``(rows, [(start, core_start, core_end), ...])`` in LR rows, every strip ``start .. start + rows``;
    ``(height, [])`` when the call runs whole (it fits ``budget``, the cell is not local, or strips would
    not be smaller than the frame). Cost is taken as proportional to a strip's rows; when no strip count
    meets the budget the smallest strips (core rows >= halo) are used."""
    if budget is None or per_call <= budget or not splittable(cell):
        return height, []
    m = row_multiple(cell)
    halo = _round_up(cell.halo, m)
    if height % m:
        return height, []
    best = None
    for k in range(2, height // max(m, halo) + 1):
        core = _round_up(_round_up(height, k) // k, m)  # ceil(height / k), up to a multiple of m
        rows = min(height, core + 2 * halo)
        if rows >= height:
            continue
        best = (core, rows)
        if per_call * rows / height <= budget:
            break
    if best is None:
        return height, []
    core, rows = best
    strips = []
    for c0 in range(0, height, core):
        c1 = min(height, c0 + core)
        start = min(max(c0 - halo, 0), height - rows)
        strips.append((start, c0, c1))
    return rows, strips


class RowStripRun:
    """``run`` that splits a call of a local cell into row strips when it does not fit ``costs.batch_bytes``
    (see :func:`plan_row_strips`); every other call goes to ``run`` unchanged. ``used`` records, per cell,
    the most strips one call was cut into."""

    def __init__(self, run: RunFn, costs: "CellCosts"):
        self.run, self.costs = run, costs
        self.used: dict[str, int] = {}

    def __call__(self, name: str, inputs: Mapping) -> dict:
        cell = self.costs.cell(name)
        if not splittable(cell):
            return self.run(name, inputs)
        port = _frame_port(cell)
        t = inputs[port.name]
        height, width = (int(round(v / port.scale)) for v in t.shape[-2:])
        per_call = t.shape[0] * self.costs.per_item(name, height, width)
        rows, strips = plan_row_strips(cell, per_call, height, self.costs.batch_bytes)
        if not strips:
            return self.run(name, inputs)
        self.used[name] = max(self.used.get(name, 0), len(strips))
        scales = {p.name: p.scale for p in cell.inputs}
        out_scales = {p.name: p.scale for p in cell.outputs}
        result: dict = {}
        # every strip has the same shape: one input buffer each, refilled per strip (a fresh one per strip faults
        # in new pages every time; RESULTS.md, "What numpy arrays cost in time")
        buffers: dict = {}
        for start, c0, c1 in strips:
            part = {k: arrays.copy_into(buffers, k, _rows(v, start, rows, scales[k])) for k, v in inputs.items()}
            outs = self.run(name, part)
            del part
            for k, v in outs.items():
                s = out_scales[k]
                if k not in result:
                    result[k] = arrays.empty(v, (*v.shape[:-2], int(height * s), v.shape[-1]))
                result[k][..., int(c0 * s):int(c1 * s), :] = v[..., int((c0 - start) * s):int((c1 - start) * s), :]
            del outs
        return result


def _frame_port(cell: Cell) -> Port:
    """The first map input: the LR frame size is read off it."""
    return next(p for p in cell.inputs if p.scale is not None)


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def _rows(t, start: int, rows: int, scale: float):
    return t[..., int(start * scale):int((start + rows) * scale), :]
