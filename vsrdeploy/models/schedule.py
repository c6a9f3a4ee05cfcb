"""Schedules: plain Python that drives cells over frames, whole-clip or windowed.

A stream is cut into windows of ``window`` frames. For the window [start, end) the backward
branches run over the *span* [start, span_end) with ``span_end = min(end + lookahead, T)``,
starting from zero state at the span end, as if the clip ended there. Forward-direction state is
carried from one window to the next exactly (``WindowContext.state``). With
``window + lookahead >= T`` there is a single window and the result is the whole-clip network.

Schedules see cells only through ``run(cell_name, inputs) -> outputs`` and exchange the runner's arrays
(numpy arrays on the ONNX Runtime / OpenVINO CPU backends, torch tensors on the device elsewhere; only
copies, slices and concatenation happen here: ``models.arrays``), so one schedule drives every backend and
this module does not import PyTorch.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping, Sequence

from ..errors import ConfigError, InputError
from . import arrays
from .budget import CellCosts
from .ports import RunFn
from .spill import HeldFeatures, SpillFile, owned, park, unpark
from .strips import RowStripRun
from .tiles import TileGrid


Array = Any  # a numpy array or a torch tensor (``models.arrays``)

#: ``WindowContext.state`` key (with the cell name) of the flows kept for the next window
FLOW_CACHE = "flows carried to the next window"


@dataclass
class WindowContext:
    run: RunFn
    frames: dict[int, Array]  # global frame index -> (N, 3, H, W), [start - history, span_end)
    start: int
    end: int
    span_end: int
    total: int | None  # clip length when the stream has ended within this span, else None
    state: dict  # forward-direction state carried across windows (the schedule owns its content)
    mirror: bool = False  # whole clip is frames + reversed frames (upstream's mirror extension)
    costs: CellCosts | None = None  # batch elements per call of a cell (None: every item in one call)
    spill: SpillFile | None = None  # where held features beyond the resident limit go (None: memory)
    #: reuse the previous window's flows (:meth:`flows`); False recomputes every pair (tests compare both)
    reuse_flows: ClassVar[bool] = True

    def zeros(self, like, channels: int, scale: float = 1.0):
        n, _, h, w = like.shape
        return arrays.zeros(like, (n, channels, int(h * scale), int(w * scale)))

    def held(self) -> HeldFeatures:
        """A dict (frame index -> tensor) for features the schedule keeps for later steps: in memory, or
        beyond the stream's resident limit in its spill file (``models.spill``; bit-identical either way)."""
        return HeldFeatures(self.spill)

    def items_per_call(self, cell: str) -> int:
        if self.costs is None:
            return 1 << 30
        h, w = self.frames[self.start].shape[-2:]
        return self.costs.items_per_call(cell, h, w)

    def batch_iter(self, cell: str, items: Iterable[Mapping[str, Array]]) -> Iterator[dict[str, Array]]:
        """Run a stateless cell on many frames, as many per call as the byte budget allows, yielding each
        item's outputs in order. ``items`` is consumed lazily: an item is built only when its group runs."""
        limit = self.items_per_call(cell)
        group: list[Mapping[str, Array]] = []
        size = 0
        for item in items:
            n = item[next(iter(item))].shape[0]
            if group and size + n > limit:
                yield from self._run_group(cell, group)
                group, size = [], 0
            group.append(item)
            del item
            size += n
            if size >= limit:  # full: run it now, not after the next item has been built beside it
                yield from self._run_group(cell, group)
                group, size = [], 0
        if group:
            yield from self._run_group(cell, group)

    def _run_group(self, cell, group):
        n = group[0][next(iter(group[0]))].shape[0]
        stacked = {k: arrays.cat([it[k] for it in group], 0) if len(group) > 1 else group[0][k] for k in group[0]}
        count = len(group)
        group.clear()  # the caller's list: drop the items' references before the call's outputs exist
        out = self.run(cell, stacked)
        del stacked
        if count == 1:
            yield out
            return
        for j in range(count):
            yield {k: v[j * n:(j + 1) * n] for k, v in out.items()}

    def batch(self, cell: str, items: Iterable[Mapping[str, Array]]) -> list[dict[str, Array]]:
        """:meth:`batch_iter` collected into a list."""
        return list(self.batch_iter(cell, items))

    def flows(self, pairs: Iterable[tuple[int, int]], cell: str = "flow",
              reach: int = 2) -> dict[tuple[int, int], Array]:
        """``flow(i, j)`` = SPyNet(frame i, frame j): warps features of frame j onto frame i.

        Flows carry over between windows: a pair the previous window computed on the same frame tensors
        (its lookahead frames are this window's frames) is reused, not recomputed. What this window keeps
        for the next one (in ``state``) is only its pairs of frames from ``end - reach`` on (a schedule's
        next window asks for nothing older: BasicVSR++'s second-order step reads ``(end-1, end-2)``), so
        at most about two flows per lookahead frame are held. A frame tensor that changed (RealBasicVSR
        cleans the frames of each span anew) is a different tensor: its pairs are recomputed.
        """
        pairs = list(dict.fromkeys(pairs))
        key = (FLOW_CACHE, cell)
        cache = self.state.pop(key, {}) if self.reuse_flows else {}
        flows: dict[tuple[int, int], Array] = {}
        for i, j in pairs:
            hit = cache.get((i, j))
            if hit is not None and hit[0]() is self.frames[i] and hit[1]() is self.frames[j]:
                flows[(i, j)] = hit[2]
        del cache
        missing = [p for p in pairs if p not in flows]
        outs = self.batch(cell, [{"ref": self.frames[i], "supp": self.frames[j]} for i, j in missing])
        flows.update((p, o["flow"]) for p, o in zip(missing, outs))
        if self.reuse_flows and not (self.total is not None and self.end >= self.total):
            self.state[key] = {p: (weakref.ref(self.frames[p[0]]), weakref.ref(self.frames[p[1]]), owned(flows[p]))
                               for p in pairs if min(p) >= self.end - reach}
        return {p: flows[p] for p in pairs}

    def forward_pair(self, i: int) -> tuple[int, int]:
        """The frame pair whose flow aligns frame i-1 onto frame i.

        For a mirror-extended clip upstream reuses the backward flow of the mirrored position,
        which is the same pair of images: (T-1-i, T-i).
        """
        if self.mirror:
            return (self.total - 1 - i, self.total - i)
        return (i, i - 1)


class Schedule:
    """Base class. ``history``: frames before ``start`` a window reads."""

    history: int = 1
    #: the smallest window + lookahead the schedule can work with
    min_span: int = 1
    #: tiles of a frame can run one after another (each through its own window), not only side by side on the
    #: batch axis: nothing the schedule decides depends on other tiles' data. False for a schedule that
    #: decides on the whole frame (RealBasicVSR's cleaning passes use the mean residue over every tile)
    tiles_apart: ClassVar[bool] = True

    def __init__(self, net):
        self.net = net

    def run_window(self, ctx: WindowContext) -> Iterable[Array]:
        """The output frames of ``[ctx.start, ctx.end)`` in order (a generator: frames leave as they are final)."""
        raise NotImplementedError

    def held_bytes(self, out_bytes: Callable[[str], int], window: int, lookahead: int) -> int | None:
        """Bytes of cell outputs this schedule holds at its peak with ``window`` / ``lookahead`` (features kept
        for later branches or the other direction, flows), from ``out_bytes(cell)``, one frame's outputs of
        a cell; the budget adds the call in progress and the input frames. ``None``: not known, the budget
        then counts every stateful cell's outputs for every held frame (the safe side)."""
        return None

    def spilled_cells(self) -> tuple[str, ...]:
        """The cells whose outputs :meth:`run_window` keeps in ``ctx.held()`` (what a spill file can take out
        of memory; :func:`models.spill.held_bytes_with_spill`)."""
        return ()


def is_mirror_extended(frames: Sequence[Array]) -> bool:
    """Upstream's check: an even clip whose second half is the first half reversed."""
    t = len(frames)
    if t % 2:
        return False
    return all(arrays.equal(frames[i], frames[t - 1 - i]) for i in range(t // 2))


def pad_frame(x: Array, multiple: int, min_size: int = 1) -> Array:
    """Pad (bottom/right) a frame (N, C, H, W) to at least ``min_size`` and a multiple of ``multiple``.

    Reflection, as upstream IconVSR; edge replication where the pad is too large to reflect.
    """
    h, w = x.shape[-2:]
    th, tw = max(h, min_size), max(w, min_size)
    ph, pw = th - h + (-th) % multiple, tw - w + (-tw) % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return arrays.pad_bottom_right(x, ph, pw, mode)


class SplitRun:
    """``run`` that splits a call's batch axis into groups that fit the byte budget (tiles of one frame
    are independent batch elements, stateful cells included) and concatenates the outputs."""

    def __init__(self, run: RunFn, costs: CellCosts, size: tuple[int, int]):
        self.run, self.costs, self.size = run, costs, size

    def __call__(self, cell: str, inputs: Mapping[str, Array]) -> dict[str, Array]:
        n = inputs[next(iter(inputs))].shape[0]
        limit = self.costs.items_per_call(cell, *self.size)
        if n <= limit:
            return self.run(cell, inputs)
        parts = [self.run(cell, {k: v[i:i + limit] for k, v in inputs.items()}) for i in range(0, n, limit)]
        return {k: arrays.cat([p[k] for p in parts], 0) for k in parts[0]}


def stream_windows(schedule: Schedule, run: RunFn, frames: Iterable[Array], window: int | None = None,
                   lookahead: int = 0, pad_multiple: int = 1, scale: int = 4, stats: dict | None = None,
                   min_size: int = 1, costs: CellCosts | None = None,
                   tiles: Callable[[int, int], TileGrid | None] | None = None,
                   first_window: int | None = None, row_strips: bool = True,
                   spill: Callable[[int, int], SpillFile | None] | None = None) -> Iterator[Array]:
    """Yield output frames (N, 3, sH, sW) in order, each as soon as it is final.

    ``frames`` yields (N, 3, H, W) tensors. At most ``window + lookahead + history`` input frames
    are held. ``window=None`` means the whole clip as one window (upstream behaviour). Frames are
    padded to ``min_size`` and ``pad_multiple`` and outputs cropped back. ``costs`` bounds the batch of
    every cell call (``None``: every frame of a window in one call). ``tiles(H, W)`` may return a
    :class:`TileGrid`: each frame is then cut into tiles, run apart (:func:`_tile_by_tile` with a spill file,
    :func:`_tiles_in_turn` without; on the batch axis for a schedule whose ``tiles_apart`` is False), and
    the outputs stitched.
    ``first_window`` makes the first window that long (then ``window``): a segment that starts mid-clip
    uses it to put its window boundaries where a run from frame 0 has them.
    ``row_strips``: a call of a local cell (``Cell.halo``) that does not fit ``costs`` runs in row strips
    (``models.strips``; same result); ``stats["row_strips"]`` then names the cells cut and into how many.
    ``spill(H, W)`` may return a :class:`SpillFile` for the features the schedule holds (``models.spill``); it
    is closed (and its anonymous file freed) when the stream ends or is abandoned.
    """
    if window is not None and window < 1:
        raise ConfigError(f"window must be >= 1 (got {window})")
    if lookahead < 0:
        raise ConfigError(f"lookahead must be >= 0 (got {lookahead})")
    if window is not None and window + lookahead < schedule.min_span:
        raise ConfigError(
            f"{type(schedule).__name__} needs window + lookahead >= {schedule.min_span} "
            f"(got {window} + {lookahead}); raise --lookahead or --window")
    if first_window is not None and (window is None or first_window < 1
                                     or first_window + lookahead < schedule.min_span):
        raise ConfigError(f"first window {first_window} needs a window and first window + lookahead >= "
                          f"{schedule.min_span}; raise --lookahead or --warmup")
    it = iter(frames)
    buf: dict[int, Array] = {}
    apart: list[_TileRun] = []  # one per tile when tiles run apart
    loaded = 0
    ended = False
    start = 0
    state: dict = {}
    in_size = None
    grid: TileGrid | None = None
    spill_file: SpillFile | None = None
    if stats is not None:
        stats.setdefault("max_frames_held", 0)
    if row_strips and costs is not None and costs.batch_bytes is not None:
        run = RowStripRun(run, costs)
        if stats is not None:
            stats["row_strips"] = run.used

    def load_until(n: int):
        nonlocal loaded, ended, in_size, grid, run, spill_file
        while not ended and (n is None or loaded < n):
            try:
                x = next(it)
            except StopIteration:
                ended = True
                break
            if in_size is None:
                in_size = tuple(x.shape[-2:])
                grid = tiles(*in_size) if tiles is not None else None
                if stats is not None:
                    stats["tiles"] = (len(grid), grid.tile_h, grid.tile_w) if grid is not None else None
                if grid is not None and schedule.tiles_apart:
                    apart.extend(_TileRun(type(schedule)(schedule.net)) for _ in range(len(grid)))
                elif grid is not None and costs is not None:
                    th, tw = pad_frame(x[..., :grid.tile_h, :grid.tile_w], pad_multiple, min_size).shape[-2:]
                    run = SplitRun(run, costs, (th, tw))
                spill_file = spill(*in_size) if spill is not None else None
            elif tuple(x.shape[-2:]) != in_size:
                raise InputError(f"frame {loaded} is {tuple(x.shape[-2:])}, earlier frames were {in_size}; "
                                 "all frames of a clip must have the same size")
            if grid is not None:
                x = grid.split(x)
            buf[loaded] = pad_frame(x, pad_multiple, min_size)
            if apart:
                per = buf[loaded].shape[0] // len(grid)  # frames of the batch, each cut into len(grid) tiles
                for k, tile in enumerate(apart):
                    tile.frames[loaded] = buf[loaded][k * per:(k + 1) * per]
            loaded += 1

    try:
        while True:
            if window is None:
                load_until(None)
                end = loaded
            else:
                size = first_window if (first_window and start == 0) else window
                load_until(start + size + lookahead + 1)  # +1: know whether the span ends the clip
                end = min(start + size, loaded)
            if start >= loaded:
                break
            span_end = loaded if window is None else min(end + lookahead, loaded)
            total = loaded if (ended and span_end == loaded) else None
            if stats is not None:
                stats["max_frames_held"] = max(stats["max_frames_held"], len(buf))
            mirror = (total is not None and start == 0 and span_end == total
                      and is_mirror_extended([buf[i] for i in range(total)]))  # the whole frames decide

            def context(frames_: dict, state_: dict) -> WindowContext:
                return WindowContext(run=run, frames=frames_, start=start, end=end, span_end=span_end, total=total,
                                     state=state_, costs=costs, spill=spill_file, mirror=mirror)

            h, w = (grid.tile_h, grid.tile_w) if grid is not None else in_size
            if apart and spill_file is not None:
                yield from _tile_by_tile(grid, apart, context, spill_file, h * scale, w * scale, scale)
            elif apart:
                yield from _tiles_in_turn(grid, [t.schedule.run_window(context(t.frames, t.state)) for t in apart],
                                          h * scale, w * scale, scale)
            else:
                for out in schedule.run_window(context(buf, state)):
                    out = out[..., :h * scale, :w * scale]
                    yield grid.stitch(out, scale) if grid is not None else out
            start = end
            for i in [k for k in buf if k < start - schedule.history]:
                del buf[i]
                for tile in apart:
                    del tile.frames[i]
    finally:
        if spill_file is not None:
            spill_file.close()


@dataclass
class _TileRun:
    """One tile of a stream whose tiles run apart: its own schedule (a schedule may keep per-window attributes,
    as IconVSR's refill), its frames (views of the tiled frames, kept: flows are reused by identity) and the
    state it carries from window to window."""
    schedule: Schedule
    frames: dict[int, Array] = field(default_factory=dict)
    state: dict = field(default_factory=dict)


def _tile_by_tile(grid: TileGrid, tiles: list[_TileRun], context: Callable[[dict, dict], WindowContext],
                  spill: SpillFile, out_h: int, out_w: int, scale: int) -> Iterator[Array]:
    """Stitched output frames of one window, its tiles run one whole window after another: only one tile's
    working set, held features and in-progress state exist at a time. Each tile's output frames and, between
    windows, its carried state wait in the spill file; the frames are stitched when the last tile is done.
    ``context(frames, state)`` is the window's context for one tile."""
    outs = HeldFeatures(spill)
    count = None
    for k, tile in enumerate(tiles):
        state = tile.state
        for key in list(state):
            state[key] = unpark(state[key], spill)
        n = 0
        for out in tile.schedule.run_window(context(tile.frames, state)):
            outs[(k, n)] = out[..., :out_h, :out_w]
            del out
            n += 1
        for key in list(state):
            state[key] = park(state[key], spill)
        if count is not None and n != count:
            raise RuntimeError(f"tile {k} gave {n} frames of a window whose tile 0 gave {count}: a schedule must "
                               "yield the same frames for every tile")
        count = n
    for j in range(count or 0):
        frame = None
        for k in range(len(tiles)):
            part = outs[(k, j)]
            outs.discard((k, j))
            if frame is None:
                frame = grid.canvas(part, scale)
            grid.paste(frame, k, part, scale)
            del part
        yield frame


def _tiles_in_turn(grid: TileGrid, windows: list[Iterator[Array]], out_h: int, out_w: int,
                   scale: int) -> Iterator[Array]:
    """Stitched output frames from one window generator per tile, driven in turn (without a spill file, where
    :func:`_tile_by_tile` would hold a window of output tiles in memory): each tile's cell calls see only that
    tile, so a step's working set is one tile's, but every tile's suspended window (its locals, its
    held features) is alive at once. Each tile's output is pasted into the frame as it comes. Every generator
    runs to its end (a schedule may keep state after its last frame)."""
    while True:
        frame = None
        done = 0
        for k, window in enumerate(windows):
            out = next(window, None)
            if out is None:
                done += 1
                continue
            out = out[..., :out_h, :out_w]
            if frame is None:
                frame = grid.canvas(out, scale)
            grid.paste(frame, k, out, scale)
            del out
        if done == len(windows):
            return
        if done:
            raise RuntimeError(f"{done} of {len(windows)} tiles ended their window early: a schedule must yield "
                               "the same frames for every tile")
        yield frame
