"""A network's schedule over a stream of frames: windows, the byte budget per call, tiles, spill.

:func:`stream_network` is the one planner behind ``RecurrentVSR.stream`` (cells run in PyTorch) and
``Upscaler.stream`` (a bundle's cells on a backend). It reads only what a bundle's manifest records
(``models.spec``), so it needs no PyTorch.
"""
from __future__ import annotations

import functools
from typing import Iterable, Iterator

from ..evaluate.memory import rss_mb
from .budget import DEFAULT_BATCH_BYTES, CellCosts, parse_bytes
from .heap import DEFAULT_HEAP_POLICY, check_heap_policy, set_heap_policy
from .schedule import stream_windows
from .spill import DEFAULT_RESIDENT_BYTES, SpillFile, SpillFiles, check_spill, held_bytes_with_spill, plan_spill
from .tiles import DEFAULT_TILE_OVERLAP, check_tile_args, plan_tiles

#: frames assumed held by a whole-clip run (window=None) when a memory budget picks the tile
DEFAULT_HELD_FRAMES = 16


def stream_network(net, run, frames: Iterable, window: int | None, lookahead: int, *,
                   stats: dict | None = None, batch_bytes: int | str | None = DEFAULT_BATCH_BYTES, tile=None,
                   tile_overlap: int = DEFAULT_TILE_OVERLAP, memory_budget=None,
                   first_window: int | None = None, row_strips: bool = True,
                   memory_overhead: float = 1.0, spill="auto",
                   spill_resident: int | str = DEFAULT_RESIDENT_BYTES,
                   heap: str | None = DEFAULT_HEAP_POLICY, spill_files: SpillFiles | None = None) -> Iterator:
    """``net``'s schedule over ``frames`` with cells run by ``run`` (any backend). ``net`` is a PyTorch network
    (``RecurrentVSR``) or a bundle's :class:`~vsrdeploy.models.spec.NetSpec`: the same plan either way.

    - ``batch_bytes``: bytes one cell call may use; stateless cells take as many frames per call as
      fit (estimated by :class:`CellCosts`). ``None``: every frame of a window in one call.
      It only groups independent frames, so it does not change the result.
    - ``tile`` (int or (h, w), LR pixels) and ``tile_overlap``: cut frames into overlapping tiles (each
      with its own recurrent state, run one after another: ``models.tiles``) and stitch the outputs.
    - ``memory_budget`` (``"2GB"``, bytes): choose the tile (if any is needed) so that the process
      stays within it, and cap ``batch_bytes`` by it.
    - ``first_window``: length of the first window (a segment that starts mid-clip uses it to keep its
      window boundaries where a run from frame 0 has them).
    - ``row_strips``: local cells (``Cell.halo``, e.g. the upsampling tail) whose one-frame call does not
      fit ``batch_bytes`` run in row strips with enough context to give the same rows
      (``models.strips``). ``False`` for runtimes whose shapes are fixed in advance (TensorRT profiles).
    - ``memory_overhead``: the runtime's resident bytes per byte of estimated tensors (``Backend.memory_overhead``);
      ``memory_budget`` plans with the estimates scaled by it.
    - ``spill``: where the features the schedule holds for later steps go beyond ``spill_resident`` bytes
      (``models.spill``): ``"auto"`` (the system temp directory when it is on disk and the held state
      would exceed the resident limit), ``"off"``, or a directory. Bit-identical results either way;
      ``stats["spill"]`` says what was done, ``stats["spilled_bytes"]`` how much.
    - ``heap``: what malloc does with freed maps, process-wide (``models.heap``): ``"return"`` (default: least
      memory) or ``"keep"`` (faster, more memory); None leaves the allocator as it is (the whole-clip baseline of
      the speed tables, which runs as upstream's code does). ``stats["heap"]`` says what was applied.
    - ``spill_files``: spill files kept between streams (``models.spill.SpillFiles``; an ``Upscaler`` passes its
      own): the stream writes over a kept file instead of growing a new one. None: a file of its own.
    """
    if tile is not None:
        check_tile_args(tile, tile_overlap, net.min_input_size)
    if heap is not None:
        check_heap_policy(heap)
    budget = parse_bytes(memory_budget) if memory_budget is not None else None
    costs = CellCosts(net, batch_bytes)
    schedule = net.schedule()
    held = (window or DEFAULT_HELD_FRAMES) + lookahead + schedule.history
    resident = parse_bytes(spill_resident, "spill resident limit")
    check_spill(spill)  # a bad value or directory raises now, not at the first frame
    frames_held = window or DEFAULT_HELD_FRAMES

    @functools.lru_cache(maxsize=None)
    def held_state(h: int, w: int):
        """The schedule's held-state estimate at this frame size, and where its features go (decided once:
        the tile plan and the spill file both ask)."""
        out_bytes = lambda cell: costs.output_bytes(cell, h, w)  # noqa: E731
        state = schedule.held_bytes(out_bytes, frames_held, lookahead)
        spill_plan = plan_spill(spill, state, resident)
        if spill_plan.directory is not None:  # only the resident part stays in memory
            state = held_bytes_with_spill(schedule, out_bytes, frames_held, lookahead, resident)
        return state, spill_plan

    def spill_file(h: int, w: int) -> SpillFile | None:
        spill_plan = held_state(h, w)[1]
        if spill_plan.directory is None:
            if stats is not None:
                stats["spill"] = spill_plan.reason
            return None
        return SpillFile(spill_plan, stats, spill_files)

    def frames_bytes(h: int, w: int, pixels: int) -> int:
        """The input frames the stream keeps (``pixels`` LR pixels each) and an output frame on its way out."""
        return (held + 1) * 4 * 3 * pixels + 4 * 3 * h * w * net.scale ** 2

    def plan(h: int, w: int):
        state = None
        if budget is not None:
            state = held_state(h, w)[0]
            if state is not None:
                state += frames_bytes(h, w, h * w)

        def tiled_state(grid) -> int | None:
            """Held bytes with frames cut by ``grid`` and its tiles run apart (``schedule.stream_windows``):
            with a spill file one tile's state at a time (the others' and the output tiles wait in the
            file), without one every tile's."""
            if not schedule.tiles_apart:
                return None  # tiles on the batch axis: the whole frame's state and the tiles' extra pixels
            tile_out = lambda cell: costs.output_bytes(cell, grid.tile_h, grid.tile_w)  # noqa: E731
            if held_state(h, w)[1].directory is not None:  # spilled as the stream decides it: whole frame
                one = held_bytes_with_spill(schedule, tile_out, frames_held, lookahead, resident)
                tiles_held = 1
            else:
                one = schedule.held_bytes(tile_out, frames_held, lookahead)
                tiles_held = len(grid)
            if one is None:
                return None
            tile_pixels = grid.tile_h * grid.tile_w  # the input frames are kept tiled; one output tile in flight
            return (tiles_held * one + frames_bytes(h, w, len(grid) * tile_pixels)
                    + 4 * 3 * tile_pixels * net.scale ** 2)

        return plan_tiles(h, w, tile=tile, overlap=tile_overlap, min_size=net.min_input_size,
                          memory_budget=budget, costs=costs, frames_held=held,
                          base_bytes=int(rss_mb() * 2**20), history=schedule.history, held_bytes=state,
                          tiled_held_bytes=tiled_state, overhead=memory_overhead)

    if heap is not None:  # every argument checked: now the process-wide part
        applied = set_heap_policy(heap)
        if stats is not None:
            stats["heap"] = applied
    return stream_windows(schedule, run, frames, window, lookahead, pad_multiple=net.pad_multiple,
                          scale=net.scale, stats=stats, min_size=net.min_input_size, costs=costs,
                          tiles=plan if (tile is not None or budget is not None) else None,
                          first_window=first_window, row_strips=row_strips, spill=spill_file)
