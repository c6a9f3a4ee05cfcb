"""What ``--memory-budget`` picks (issue #12): the tile grid the stream plans for each network x budget, without
running the network (the first cell call stops it; the plan is made from the first frame, before any call).

The planner sees this process's resident memory as the process so far (printed), the runtime's factor
(``--overhead``: ``Backend.memory_overhead``, openvino-cpu 1.3) and the spill setting. A refused budget shows the
least budget the error asks for; beside a grid, what the planner costed for it beyond the process so far (the
held state with that grid and its largest call, times the factor). Networks are c64 with random weights, as in
``memory_real_size.py``.

    python benchmarks/tile_plan.py --size 540x960 --budgets 2.5GB 1.6GB 1.2GB --overhead 1.3
"""
from __future__ import annotations

import argparse
import re

import torch

import vsrdeploy
import vsrdeploy.models.streaming as model_base
from vsrdeploy.errors import ConfigError
from vsrdeploy.evaluate.memory import rss_mb
from vsrdeploy.models.tiles import TileGrid

from memory_real_size import CONFIGS  # this directory is on sys.path when run


class _Planned(Exception):
    """Raised by the first cell call: the plan is made by then."""


def _stop(cell, inputs):
    raise _Planned


def plan(arch: str, budget: str, h: int, w: int, args) -> str:
    net = vsrdeploy.build_model(arch, **CONFIGS[arch](args.blocks)).eval()
    frame = torch.rand(1, 3, h, w)
    stats: dict = {}
    seen: dict = {}  # the planner's arguments, to print its estimate for the grid it picks
    planner = model_base.plan_tiles
    model_base.plan_tiles = lambda *a, **k: (seen.update(k), planner(*a, **k))[1]
    try:
        for _ in net.stream_cells(_stop, (frame for _ in range(args.window + args.lookahead + 8)), args.window,
                                  args.lookahead, stats=stats, memory_budget=budget,
                                  memory_overhead=args.overhead, spill=args.spill):
            break
    except _Planned:
        pass
    except ConfigError as e:
        least = re.search(r"at least (\d+) MB", str(e))
        return f"refused ({least.group(1)} MB)" if least else f"refused: {e}"
    finally:
        model_base.plan_tiles = planner
    tiles = stats.get("tiles")
    if tiles is None:
        return "no tiles"
    n, th, tw = tiles
    grid = TileGrid(h, w, th, tw, seen["overlap"])
    held = seen["tiled_held_bytes"](grid) if seen.get("tiled_held_bytes") else None
    if held is None:
        return f"{n} of {th}x{tw}"
    estimate = (held + seen["costs"].largest_item(th, tw)) * args.overhead / 2**20
    return f"{n} of {th}x{tw} (+{estimate:.0f} MB)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--archs", nargs="+", default=["basicvsr", "iconvsr", "basicvsr_pp", "realbasicvsr"])
    p.add_argument("--size", default="540x960", help="LR HxW")
    p.add_argument("--budgets", nargs="+", default=["2.5GB", "1.6GB", "1.2GB"])
    p.add_argument("--overhead", type=float, default=1.0, help="the runtime's factor (openvino-cpu: 1.3)")
    p.add_argument("--spill", default="auto")
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--lookahead", type=int, default=8)
    p.add_argument("--blocks", type=int, default=2)
    args = p.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    print(f"# vsrdeploy {vsrdeploy.__version__}; {args.size} LR, window {args.window}, lookahead {args.lookahead}, "
          f"spill {args.spill}, overhead {args.overhead}; this process before planning: {rss_mb():.0f} MB")
    print("| network | " + " | ".join(args.budgets) + " |")
    print("|---|" + "---|" * len(args.budgets))
    for arch in args.archs:
        print(f"| {arch} c64n{args.blocks} | " + " | ".join(plan(arch, b, h, w, args) for b in args.budgets) + " |")


if __name__ == "__main__":
    main()
