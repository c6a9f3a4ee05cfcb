"""Spatial tiles: a frame cut into equal, overlapping tiles, each an independent batch element.

Each tile carries its own recurrent state through the same schedule on every backend. Since 0.3.9 the
stream runs the tiles apart, each through its own copy of the schedule: with a spill file a whole window per
tile, one tile after another, its output tiles and carried state waiting in the file
(``schedule._tile_by_tile``), without one the tiles' windows in turn (``schedule._tiles_in_turn``). Either way
a call and a step's working set are one tile's, not the whole frame's. Tiles stay side by side on the batch
axis only for a schedule that decides on the whole frame (``Schedule.tiles_apart`` False: RealBasicVSR).
Each tile's output is pasted into the frame: where two tiles overlap, each output pixel is taken from the tile whose border is farther
away (the overlap is split at its middle), so every kept pixel is at least ``overlap // 2`` LR pixels
from an interior tile border. Tiling is an approximation: flow estimation and the convolutions near
a tile border see no content beyond it; its cost is measured by ``benchmarks/tile_quality.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import ConfigError
from . import arrays
from .budget import CellCosts, parse_bytes

#: LR tile sizes ``--memory-budget`` tries, largest first
CANDIDATE_TILES = (512, 448, 384, 320, 256, 224, 192, 160, 128, 112, 96, 80, 64, 48, 32, 16)
#: default overlap between neighbouring tiles (LR pixels); chosen by benchmarks/tile_quality.py
DEFAULT_TILE_OVERLAP = 16


def tile_size(tile) -> tuple[int, int]:
    """``256`` or ``(h, w)`` -> (h, w); ConfigError for anything else or a size below 1."""
    if isinstance(tile, bool):
        tile = None
    if isinstance(tile, int):
        th = tw = tile
    elif isinstance(tile, (tuple, list)) and len(tile) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                     for v in tile):
        th, tw = tile
    else:
        raise ConfigError(f"tile must be an int or (height, width) of LR pixels, got {tile!r}; e.g. tile=256")
    if th < 1 or tw < 1:
        raise ConfigError(f"tile must be a positive size in LR pixels, got {tile!r}; e.g. --tile 256")
    return th, tw


def check_tile_args(tile, overlap: int, min_size: int) -> tuple[int, int]:
    """Validate user tile arguments against the network's minimum input size; returns (h, w)."""
    th, tw = tile_size(tile)
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
        raise ConfigError(f"tile overlap must be an int >= 0 (LR pixels), got {overlap!r}; e.g. --tile-overlap 16")
    if min(th, tw) < min_size:
        raise ConfigError(f"tile {tw}x{th} (WxH) is smaller than this network's minimum input of {min_size}x{min_size} "
                          f"LR pixels; use --tile {min_size} or larger")
    if overlap >= min(th, tw):
        raise ConfigError(f"tile overlap {overlap} must be smaller than the tile {tw}x{th} (WxH); lower --tile-overlap "
                          f"(e.g. {min(th, tw) // 4}) or raise --tile")
    return th, tw


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if tile >= length:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def even_tile(length: int, tile: int, overlap: int) -> int:
    """The smallest tile that covers ``length`` with as many tiles as ``tile`` needs, at ``overlap``: the
    frame cut evenly. A 540-row frame in tiles of 256 with overlap 16 takes 3 tiles either way; evenly they
    are 191 rows each (573 rows computed) instead of 256 (768 rows, the last tile shifted back over the
    second)."""
    if tile >= length:
        return length
    count = len(_starts(length, tile, overlap))
    return min(tile, -(-(length + (count - 1) * overlap) // count))


def _owned(starts: list[int], tile: int, length: int) -> list[tuple[int, int]]:
    """The part of the frame each tile's output is kept for: overlaps split at their middle."""
    bounds = [0]
    for prev, cur in zip(starts, starts[1:]):
        bounds.append((cur + prev + tile) // 2)
    bounds.append(length)
    return list(zip(bounds, bounds[1:]))


@dataclass(frozen=True)
class TileGrid:
    """Tiles of ``tile_h`` x ``tile_w`` (clamped to the frame) covering an ``height`` x ``width`` frame."""

    height: int
    width: int
    tile_h: int
    tile_w: int
    overlap: int

    def __post_init__(self):
        object.__setattr__(self, "tile_h", min(self.tile_h, self.height))
        object.__setattr__(self, "tile_w", min(self.tile_w, self.width))

    @property
    def ys(self) -> list[int]:
        return _starts(self.height, self.tile_h, self.overlap)

    @property
    def xs(self) -> list[int]:
        return _starts(self.width, self.tile_w, self.overlap)

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)

    def split(self, frame):
        """(N, C, H, W) -> (tiles * N, C, tile_h, tile_w), tile-major."""
        th, tw = self.tile_h, self.tile_w
        return arrays.cat([frame[..., y:y + th, x:x + tw] for y in self.ys for x in self.xs], 0)

    def stitch(self, tiles, scale: int):
        """(tiles * N, C, s*tile_h, s*tile_w) -> (N, C, s*H, s*W), each overlap split at its middle."""
        n = tiles.shape[0] // len(self)
        out = self.canvas(tiles[:n], scale)
        for k in range(len(self)):
            self.paste(out, k, tiles[k * n:(k + 1) * n], scale)
        return out

    def canvas(self, part, scale: int):
        """An empty (N, C, s*H, s*W) frame for the tiles of which ``part`` (N, C, s*tile_h, s*tile_w) is one."""
        return arrays.empty(part, (part.shape[0], part.shape[1], self.height * scale, self.width * scale))

    def paste(self, out, k: int, part, scale: int) -> None:
        """Copy the pixels tile ``k`` (tile-major) owns from its output ``part`` into the frame ``out``."""
        ys, xs = self.ys, self.xs
        row, col = divmod(k, len(xs))
        r0, r1 = _owned(ys, self.tile_h, self.height)[row]
        c0, c1 = _owned(xs, self.tile_w, self.width)[col]
        y, x = ys[row], xs[col]
        out[..., r0 * scale:r1 * scale, c0 * scale:c1 * scale] = \
            part[..., (r0 - y) * scale:(r1 - y) * scale, (c0 - x) * scale:(c1 - x) * scale]


def plan_tiles(height: int, width: int, *, tile=None, overlap: int = DEFAULT_TILE_OVERLAP, min_size: int = 1,
               memory_budget=None, costs: CellCosts | None = None, frames_held: int = 1,
               base_bytes: int = 0, history: int = 0, held_bytes: int | None = None,
               tiled_held_bytes: Callable[[TileGrid], int | None] | None = None,
               overhead: float = 1.0) -> TileGrid | None:
    """The tile grid for frames of ``height`` x ``width``: ``tile`` as given, or, with ``memory_budget``,
    the largest candidate tile (cut evenly over the frame: :func:`even_tile`) whose working set fits the
    budget after the held state and ``base_bytes`` (the process so far); the
    budget then also caps ``costs.batch_bytes``. ``None`` when no tiling is needed. The held state is
    ``held_bytes`` (the schedule's own count, :meth:`Schedule.held_bytes` plus the input frames), or without
    it every stateful cell's outputs for each of ``frames_held`` frames. When nothing fits, the ConfigError
    names the least budget these settings need and how many frames (``frames_held``, of which ``history``
    are earlier frames the schedule reads) the budget can hold. With a candidate grid the held state is
    ``tiled_held_bytes(grid)`` (the schedule's count for tiles run apart: one tile's state at a time with a
    spill file), or, without it or where it gives ``None``, the whole frame's scaled by the pixels the tiles
    add. Every estimate is scaled by ``overhead``, the runtime's resident bytes per estimated byte
    (``Backend.memory_overhead``)."""
    if tile is not None:
        th, tw = check_tile_args(tile, overlap, min_size)
        if th >= height and tw >= width:
            return None
        return TileGrid(height, width, th, tw, overlap)
    if memory_budget is None:
        return None
    budget = parse_bytes(memory_budget)
    check_tile_args(max(min_size, overlap + 1), overlap, min_size)  # the overlap itself must be valid
    if held_bytes is None:
        per_frame = int(costs.held_per_frame(height, width) * overhead)
        held = frames_held * per_frame
    else:
        held = int(held_bytes * overhead)
        per_frame = max(1, held // max(1, frames_held))  # per held frame, on average
    limit = costs.batch_bytes

    def cap(room: int) -> None:
        """Each call's working set must fit in ``room`` beside the held state (``batch_bytes`` counts estimated
        bytes); without room the limit stays as given."""
        bound = int(room / overhead)
        costs.batch_bytes = min(limit or bound, bound) if room > 0 else limit

    room = budget - base_bytes - held
    cap(room)
    whole = int(costs.largest_item(height, width) * overhead)
    if room > 0 and whole <= room:
        return None
    # nothing fits yet: the most frames any choice leaves room for, the least budget these settings need
    fits = int((budget - base_bytes - whole) // per_frame)
    least = base_bytes + held + whole
    best = None  # the tile grid needing least: (grid, its held state, its largest call)
    tried = set()
    for t in CANDIDATE_TILES:
        if t < min_size or t <= overlap or t >= max(height, width):
            continue
        # each candidate cut evenly: fewer pixels computed twice, so less state and less work
        th, tw = (max(min_size, overlap + 1, even_tile(n, t, overlap)) for n in (height, width))
        if (th, tw) in tried:
            continue
        tried.add((th, tw))
        grid = TileGrid(height, width, th, tw, overlap)
        extra = (len(grid) * grid.tile_h * grid.tile_w - height * width) / (height * width)
        tiled = tiled_held_bytes(grid) if tiled_held_bytes is not None else None
        tiled = int(tiled * overhead) if tiled is not None else int(held * (1 + extra))
        cap(budget - base_bytes - tiled)
        call = int(costs.largest_item(grid.tile_h, grid.tile_w) * overhead)
        if base_bytes + tiled + call <= budget:
            return grid
        fits = max(fits, int((budget - base_bytes - call) // max(1, tiled // max(1, frames_held))))
        if base_bytes + tiled + call < least:
            least, best = base_bytes + tiled + call, (grid, tiled, call)
    mb = 2**20
    fix = f"raise --memory-budget to at least {least / mb:.0f} MB"
    if 0 < fits < frames_held:
        fix += (f", or lower --window / --lookahead so that at most {fits} frames are held (now {frames_held}: "
                f"window + lookahead + {history} of history)")
    else:
        fix += " or lower --window / --lookahead"
    raise ConfigError(
        f"memory budget {budget / mb:.0f} MB is too small for {width}x{height} frames: the process already "
        f"uses {base_bytes / mb:.0f} MB; untiled, the window's state needs about {held / mb:.0f} MB "
        f"({frames_held} frames of {per_frame / mb:.0f} MB) and its largest call {whole / mb:.0f} MB"
        + (f"; the tiles needing least, {len(best[0])} of {best[0].tile_w}x{best[0].tile_h} (WxH), hold "
           f"{best[1] / mb:.0f} MB of state beside a largest call of {best[2] / mb:.0f} MB" if best else "")
        + f"; {fix}")
