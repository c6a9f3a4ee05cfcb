"""``RecurrentVSR``: the common face of every network (validation, whole-clip and windowed runs)."""
from __future__ import annotations

import functools
from typing import ClassVar, Iterable, Iterator

import torch
from torch import nn

from ..errors import InputError
from ..evaluate.memory import return_large_frees_to_os, rss_mb
from .budget import DEFAULT_BATCH_BYTES, CellCosts, parse_bytes
from .cells import Cell, TorchRunner
from .schedule import Schedule, stream_windows
from .spill import DEFAULT_RESIDENT_BYTES, SpillFile, check_spill, held_bytes_with_spill, plan_spill
from .tiles import DEFAULT_TILE_OVERLAP, check_tile_args, plan_tiles

#: frames assumed held by a whole-clip run (window=None) when a memory budget picks the tile
DEFAULT_HELD_FRAMES = 16


class RecurrentVSR(nn.Module):
    arch: ClassVar[str] = ""
    default_config: ClassVar[dict] = {}
    #: option -> (low, high) bounds beyond ``registry.COMMON_LIMITS`` (checked before building)
    config_limits: ClassVar[dict] = {}
    #: released model name -> constructor arguments (shown by ``vsrdeploy models``)
    upstream_configs: ClassVar[dict] = {}
    schedule_class: ClassVar[type[Schedule]] = Schedule
    scale: ClassVar[int] = 4
    #: smallest LR height/width the network accepts
    min_size: ClassVar[int] = 16
    #: frames are reflect-padded (bottom/right) to a multiple of this, outputs cropped back
    pad_multiple: int = 1

    # -- to be provided by each network -------------------------------------------------
    def build_cells(self) -> dict[str, Cell]:
        raise NotImplementedError

    def config(self) -> dict:
        raise NotImplementedError

    @staticmethod
    def infer_config(sd: dict) -> dict:
        raise NotImplementedError

    @staticmethod
    def detect(keys) -> bool:
        raise NotImplementedError

    @property
    def min_frames(self) -> int:
        return 1

    # -- shared -------------------------------------------------------------------------
    @property
    def cells(self) -> dict[str, Cell]:
        cells = self.__dict__.get("_cells")
        if cells is None:
            cells = self.build_cells()
            object.__setattr__(self, "_cells", cells)  # not registered: the weights belong to self
        return cells

    def schedule(self) -> Schedule:
        return self.schedule_class(self)

    def check_frames(self, lrs) -> None:
        if not isinstance(lrs, torch.Tensor):
            raise InputError(f"frames must be a torch.Tensor (N, T, 3, H, W), got {type(lrs).__name__}")
        if lrs.dim() != 5 or lrs.shape[2] != 3:
            raise InputError(f"frames must have shape (N, T, 3, H, W) (RGB, float in [0, 1]); "
                             f"got {tuple(lrs.shape)}")
        if not lrs.is_floating_point():
            raise InputError(f"frames must be floating point in [0, 1], got dtype {lrs.dtype}; "
                             "divide 8-bit frames by 255")
        if lrs.shape[1] < self.min_frames:
            raise InputError(f"{self.arch} needs at least {self.min_frames} frames, got {lrs.shape[1]}")

    @property
    def min_input_size(self) -> int:
        """Smallest input height/width (``min_size`` unless the network works below input resolution)."""
        return self.min_size

    def check_frame_size(self, h: int, w: int) -> None:
        """For fixed shapes (``--static-shape``). Streams pad smaller frames (reflect) up to
        ``min_input_size`` and crop the output back, in the Python API and the CLI alike."""
        m = self.min_input_size
        if h < m or w < m:
            raise InputError(f"{self.arch} needs frames of at least {m}x{m} pixels, got {w}x{h} (WxH)")

    def stream(self, frames: Iterable[torch.Tensor], window: int | None = None, lookahead: int = 0,
               stats: dict | None = None, batch_bytes: int | str | None = DEFAULT_BATCH_BYTES, tile=None,
               tile_overlap: int = DEFAULT_TILE_OVERLAP, memory_budget=None, spill="auto") -> Iterator[torch.Tensor]:
        """Upscale an iterable of (N, 3, H, W) frames window by window, yielding (N, 3, 4H, 4W).

        See :meth:`stream_cells` for ``batch_bytes``, ``tile``, ``tile_overlap``, ``memory_budget`` and ``spill``.
        """
        def checked(it):
            for x in it:
                if x.dim() != 4 or x.shape[1] != 3:
                    raise InputError(f"each frame must have shape (N, 3, H, W), got {tuple(x.shape)}")
                yield x
        return self.stream_cells(TorchRunner(self.cells), checked(frames), window, lookahead, stats=stats,
                                 batch_bytes=batch_bytes, tile=tile, tile_overlap=tile_overlap,
                                 memory_budget=memory_budget, spill=spill)

    def stream_cells(self, run, frames: Iterable[torch.Tensor], window: int | None, lookahead: int, *,
                     stats: dict | None = None, batch_bytes: int | str | None = DEFAULT_BATCH_BYTES, tile=None,
                     tile_overlap: int = DEFAULT_TILE_OVERLAP, memory_budget=None,
                     first_window: int | None = None, row_strips: bool = True,
                     memory_overhead: float = 1.0, spill="auto",
                     spill_resident: int | str = DEFAULT_RESIDENT_BYTES) -> Iterator[torch.Tensor]:
        """This network's schedule over ``frames`` with cells run by ``run`` (any backend).

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
        """
        if tile is not None:
            check_tile_args(tile, tile_overlap, self.min_input_size)
        return_large_frees_to_os()
        budget = parse_bytes(memory_budget) if memory_budget is not None else None
        costs = CellCosts(self, batch_bytes)
        schedule = self.schedule()
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
            return SpillFile(spill_plan, stats)

        def frames_bytes(h: int, w: int, pixels: int) -> int:
            """The input frames the stream keeps (``pixels`` LR pixels each) and an output frame on its way out."""
            return (held + 1) * 4 * 3 * pixels + 4 * 3 * h * w * self.scale ** 2

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
                        + 4 * 3 * tile_pixels * self.scale ** 2)

            return plan_tiles(h, w, tile=tile, overlap=tile_overlap, min_size=self.min_input_size,
                              memory_budget=budget, costs=costs, frames_held=held,
                              base_bytes=int(rss_mb() * 2**20), history=schedule.history, held_bytes=state,
                              tiled_held_bytes=tiled_state, overhead=memory_overhead)

        return stream_windows(schedule, run, frames, window, lookahead, pad_multiple=self.pad_multiple,
                              scale=self.scale, stats=stats, min_size=self.min_input_size, costs=costs,
                              tiles=plan if (tile is not None or budget is not None) else None,
                              first_window=first_window, row_strips=row_strips, spill=spill_file)

    def forward(self, lrs: torch.Tensor, window: int | None = None, lookahead: int = 0,
                spill="auto") -> torch.Tensor:
        """``lrs`` (N, T, 3, H, W) RGB in [0, 1] -> (N, T, 3, 4H, 4W), not clamped.

        ``window=None`` runs the whole clip at once (upstream); otherwise see ``schedule.py``. ``spill``: see
        :meth:`stream_cells` (same result either way).
        """
        self.check_frames(lrs)
        t = lrs.shape[1]
        result = None  # filled frame by frame: no list of outputs beside the result
        for i, out in enumerate(self.stream((lrs[:, i] for i in range(t)), window, lookahead, spill=spill)):
            if result is None:
                result = out.new_empty(out.shape[0], t, *out.shape[1:])
            result[:, i] = out
        return result

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config().items())
