"""Byte-budgeted batching (issue #12): same frames as unbounded batching; spatial tiles; tile argument errors."""
import re
import numpy as np
import pytest
import torch

import vsrdeploy
from vsrdeploy.errors import ConfigError
from vsrdeploy.models.base import RecurrentVSR
from vsrdeploy.models.budget import CellCosts, parse_bytes
from vsrdeploy.models.cells import TorchRunner
from vsrdeploy.models.tiles import TileGrid, even_tile, plan_tiles

from conftest import AliveOutputs, moving_clip, random_clip

TINY = {"basicvsr": {"mid_channels": 8, "num_blocks": 1},
        "iconvsr": {"mid_channels": 8, "num_blocks": 1},
        "basicvsr_pp": {"mid_channels": 8, "num_blocks": 1},
        "realbasicvsr": {"mid_channels": 8, "num_propagation_blocks": 1, "num_cleaning_blocks": 1}}


class CountingRun:
    """A run callable that records the batch size of every call of each cell."""

    def __init__(self, run):
        self.run, self.calls = run, {}

    def __call__(self, cell, inputs):
        self.calls.setdefault(cell, []).append(next(iter(inputs.values())).shape[0])
        return self.run(cell, inputs)


def _stream(net_or_up, run, lrs, **kw):
    net = net_or_up if isinstance(net_or_up, RecurrentVSR) else net_or_up.net
    frames = (lrs[:, i] for i in range(lrs.shape[1]))
    return torch.cat(list(net.stream_cells(run, frames, 3, 2, **kw)), 0)


@pytest.mark.parametrize("arch", list(TINY))
def test_budget_gives_the_same_frames_as_unbounded_batching(arch):
    torch.manual_seed(0)
    net = vsrdeploy.build_model(arch, **TINY[arch]).eval()
    size = 64 if arch == "basicvsr_pp" else 32  # BasicVSR++ needs 64x64
    lrs = random_clip(t=6, h=size, w=size)
    big, one = CountingRun(TorchRunner(net.cells)), None
    unbounded = _stream(net, big, lrs, batch_bytes=None)
    one = CountingRun(big.run)
    budgeted = _stream(net, one, lrs, batch_bytes=1)  # 1 byte: every stateless call takes one frame
    assert float((unbounded - budgeted).abs().max()) <= 1e-6
    stateless = [c for c, cell in net.cells.items() if cell.stateless and c in one.calls]
    assert stateless and all(n == 1 for c in stateless for n in one.calls[c])
    assert any(max(big.calls[c]) > 1 for c in stateless)  # the unbounded run did batch frames


@pytest.mark.parametrize("backend", ["torch", "ort-cpu", "openvino-cpu"])
def test_budget_gives_the_same_frames_on_every_cpu_backend(tiny_bundle, backend):
    up = vsrdeploy.open_bundle(tiny_bundle, backend=backend)
    lrs = random_clip(t=6, h=32, w=40)[0].numpy()
    unbounded = np.stack(list(up.stream(iter(lrs), window=3, lookahead=2, batch_bytes=None)))
    default = np.stack(list(up.stream(iter(lrs), window=3, lookahead=2)))
    single = np.stack(list(up.stream(iter(lrs), window=3, lookahead=2, batch_bytes=1)))
    assert float(np.abs(unbounded - single).max()) <= 1e-6
    assert float(np.abs(unbounded - default).max()) <= 1e-6
    whole = up.upscale(lrs)
    assert whole.shape == (6, 3, 128, 160)
    assert float(np.abs(whole - up.upscale(lrs, batch_bytes=1)).max()) <= 1e-6


def test_cost_estimate_scales_with_pixels_and_splits_large_frames():
    with torch.device("meta"):
        net = vsrdeploy.build_model("basicvsr", mid_channels=64, num_blocks=2)
    costs = CellCosts(net)
    up = costs.per_item("upsample", 180, 320)
    # 64-channel 720x1280 maps into and out of a conv (+ a layout copy); the old 8-frame chunk needed 8x that
    assert 600 * 2**20 < up < 900 * 2**20  # measured RSS increase of PyTorch CPU: ~730 MB
    assert costs.items_per_call("upsample", 180, 320) == 1
    assert costs.per_item("upsample", 90, 160) == pytest.approx(up / 4, rel=0.05)
    assert costs.items_per_call("flow", 64, 64) > 8


@pytest.mark.parametrize("value, expected", [("2GB", 2 * 2**30), ("512MB", 512 * 2**20), ("1.5g", int(1.5 * 2**30)),
                                             (1000, 1000)])
def test_parse_bytes(value, expected):
    assert parse_bytes(value) == expected


@pytest.mark.parametrize("value", ["lots", "2 parsecs", "-1GB", 0])
def test_parse_bytes_rejects(value):
    with pytest.raises(ConfigError, match="like 2GB"):
        parse_bytes(value)


@pytest.mark.parametrize("h, w, tile, overlap", [(64, 64, 32, 8), (70, 45, 24, 5), (40, 100, (40, 32), 0),
                                                 (30, 30, 64, 16)])
def test_tiles_split_and_stitch_back_exactly(h, w, tile, overlap):
    th, tw = (tile, tile) if isinstance(tile, int) else tile
    grid = TileGrid(h, w, th, tw, overlap)
    frame = torch.rand(2, 3, h, w)
    tiles = grid.split(frame)
    assert tiles.shape == (2 * len(grid), 3, grid.tile_h, grid.tile_w)
    assert torch.equal(grid.stitch(tiles, 1), frame)
    up = torch.nn.functional.interpolate(tiles, scale_factor=4, mode="nearest")
    assert torch.equal(grid.stitch(up, 4), torch.nn.functional.interpolate(frame, scale_factor=4, mode="nearest"))


def test_tiled_stream_close_to_untiled_and_whole_frame_tile_exact():
    torch.manual_seed(0)
    net = vsrdeploy.build_model("basicvsr", mid_channels=8, num_blocks=1).eval()
    lrs = random_clip(t=4, h=48, w=64)
    frames = [lrs[:, i] for i in range(4)]
    untiled = torch.cat(list(net.stream(iter(frames), window=3, lookahead=2)))
    same = torch.cat(list(net.stream(iter(frames), window=3, lookahead=2, tile=(48, 64))))
    assert torch.equal(untiled, same)  # one tile covering the frame is no tiling
    stats = {}
    tiled = torch.cat(list(net.stream(iter(frames), window=3, lookahead=2, tile=(48, 40), tile_overlap=16, stats=stats)))
    assert stats["tiles"] == (2, 48, 40)
    assert tiled.shape == untiled.shape
    # random weights, tiny model: measured 50+ dB here; the bound leaves a margin but catches misplaced tiles
    mse = float(((tiled - untiled) ** 2).mean())
    assert 10 * np.log10(1.0 / mse) > 40


def test_tiled_bundle_stream_runs_each_tile_apart(tiny_bundle, monkeypatch):
    """Each tile goes through its own window, one call per tile (a step's working set is one tile's), and gives
    what the two tiles side by side on the batch axis give."""
    lrs = random_clip(t=4, h=40, w=72)[0].numpy()
    outs, calls = {}, {}
    for apart in (True, False):
        monkeypatch.setattr(vsrdeploy.models.basicvsr.BidirectionalSchedule, "tiles_apart", apart)
        with vsrdeploy.open_bundle(tiny_bundle, backend="ort-cpu") as up:
            run = CountingRun(up.backend.run)
            up.backend.run = run
            outs[apart] = np.stack(list(up.stream(iter(lrs), window=2, lookahead=1, tile=(40, 40), tile_overlap=8)))
            calls[apart] = run.calls["backward_trunk"]
    assert outs[True].shape == (4, 3, 160, 288)
    assert calls[True] and set(calls[True]) == {1}  # one tile per call
    assert calls[False] and set(calls[False]) == {2}  # 2 tiles per frame on the batch axis
    np.testing.assert_allclose(outs[True], outs[False], rtol=0, atol=1e-6)


# LR frame size, tile: 4 tiles of the frame (BasicVSR++: 2, its tiles are at least 64 pixels)
TILED = {"basicvsr": ((48, 72), (32, 40)), "iconvsr": ((48, 72), (32, 40)), "basicvsr_pp": ((64, 150), (64, 96))}


@pytest.mark.parametrize("arch, spill", [(arch, spill) for arch in sorted(TILED) for spill in ("off", "dir")
                                          if (arch, spill) != ("basicvsr_pp", "off")]
                         + [pytest.param("basicvsr_pp", "off", marks=pytest.mark.slow)])  # ~25 s on 2 cores
def test_tiles_apart_give_exactly_what_tiles_on_the_batch_axis_give(arch, spill, monkeypatch, tmp_path):
    """Tiles run apart (each with its own schedule, state and flows, windows crossed, a batch of 2) give what
    they gave side by side on the batch axis (to float rounding: a call's batch size may change a kernel's
    summation order; 0.0 on torch 2.13 here), and bit-identically what each tile streamed alone gives: in turn
    without a spill file, and a whole window per tile with one (every output tile and carried state spilled)."""
    torch.manual_seed(0)
    net = vsrdeploy.build_model(arch, **TINY[arch]).eval()
    (h, w), tile = TILED[arch]
    frames = [random_clip(t=5, h=h, w=w, n=2)[:, i] for i in range(5)]  # windows [0, 3) and [3, 5)
    schedule_class = type(net.schedule())
    outs, stats = {}, {True: {}, False: {}}
    for apart in (True, False):
        monkeypatch.setattr(schedule_class, "tiles_apart", apart)
        with torch.no_grad():
            outs[apart] = torch.stack(list(net.stream_cells(
                TorchRunner(net.cells), iter(frames), 3, 2, tile=tile, tile_overlap=8, stats=stats[apart],
                spill=str(tmp_path) if spill == "dir" else "off", spill_resident=1)))
    if spill == "dir":  # the held features of every tile, its output tiles and its carried state
        assert stats[True]["spilled_bytes"] > stats[False]["spilled_bytes"] > 0
    assert outs[True].shape == (5, 2, 3, 4 * h, 4 * w)
    torch.testing.assert_close(outs[True], outs[False], rtol=0, atol=1e-6)
    grid = TileGrid(h, w, *tile, overlap=8)
    with torch.no_grad():
        alone = [torch.stack(list(net.stream(iter([grid.split(f)[2 * k:2 * k + 2] for f in frames]), window=3,
                                             lookahead=2))) for k in range(len(grid))]
    for t in range(5):
        assert torch.equal(grid.stitch(torch.cat([a[t] for a in alone]), 4), outs[True][t])


def test_realbasicvsr_keeps_its_tiles_on_the_batch_axis():
    """RealBasicVSR decides its cleaning passes on the whole frame (every tile's residue), so its tiles stay
    side by side: each call carries every tile of a frame."""
    torch.manual_seed(0)
    net = vsrdeploy.build_model("realbasicvsr", **TINY["realbasicvsr"]).eval()
    run = CountingRun(TorchRunner(net.cells))
    frames = [random_clip(t=4, h=40, w=72)[:, i] for i in range(4)]
    with torch.no_grad():
        list(net.stream_cells(run, iter(frames), 2, 1, tile=(40, 40), tile_overlap=8))
    assert run.calls["backward_trunk"] and set(run.calls["backward_trunk"]) == {2}


@pytest.mark.parametrize("tile, overlap, match", [
    (0, 0, "positive"), (-8, 0, "positive"), ((32, 0), 0, "positive"), ("big", 0, "int or"),
    (32, 32, "must be smaller than the tile"), (32, 40, "must be smaller than the tile"), (8, 16, "minimum input"),
    (32, -1, "overlap must be an int >= 0"), (8, 2, "minimum input of 16x16"),
])
def test_bad_tile_arguments(tile, overlap, match):
    net = vsrdeploy.build_model("basicvsr", mid_channels=8, num_blocks=1).eval()
    with pytest.raises(ConfigError, match=match):
        net.stream(iter([torch.rand(1, 3, 32, 32)]), tile=tile, tile_overlap=overlap)


def test_tile_below_network_minimum_names_it(tiny_bundle):
    net = vsrdeploy.build_model("basicvsr_pp", mid_channels=8, num_blocks=1).eval()
    with pytest.raises(ConfigError, match="use --tile 64 or larger"):
        net.stream(iter([torch.rand(1, 3, 64, 64)]), tile=48, tile_overlap=8)
    up = vsrdeploy.open_bundle(tiny_bundle, backend="ort-cpu")
    with pytest.raises(ConfigError, match="lower --tile-overlap"):
        up.stream(iter([]), tile=16, tile_overlap=16)  # raised at the call, before any frame


def test_memory_budget_picks_a_tile_only_when_needed():
    with torch.device("meta"):
        net = vsrdeploy.build_model("basicvsr", mid_channels=64, num_blocks=2)
    costs = CellCosts(net)
    assert plan_tiles(180, 320, memory_budget="8GB", costs=costs, frames_held=25, min_size=16) is None
    grid = plan_tiles(540, 960, memory_budget="2GB", costs=CellCosts(net), frames_held=4, min_size=16,
                      base_bytes=300 * 2**20)
    assert grid is not None and len(grid) > 1 and grid.tile_h >= 16
    with pytest.raises(ConfigError, match="raise --memory-budget to at least"):
        plan_tiles(540, 960, memory_budget="200MB", costs=CellCosts(net), frames_held=25, min_size=16)


def test_even_tiles_cut_the_frame_with_as_many_tiles_and_less_overlap():
    assert even_tile(540, 256, 16) == 191 and even_tile(960, 256, 16) == 252
    assert even_tile(100, 256, 16) == 100  # one tile: the frame
    for length, tile, overlap in [(540, 256, 16), (960, 256, 16), (181, 64, 8), (1000, 333, 0), (97, 48, 47)]:
        even = even_tile(length, tile, overlap)
        assert even <= tile
        grid, evened = TileGrid(length, 9, tile, 9, overlap), TileGrid(length, 9, even, 9, overlap)
        assert len(grid) == len(evened)
        ys = evened.ys
        assert ys[0] == 0 and ys[-1] + even == length
        assert all(b - a <= even - overlap for a, b in zip(ys, ys[1:]))  # every overlap still >= the asked one


def test_memory_budget_tiles_are_cut_evenly():
    with torch.device("meta"):
        net = vsrdeploy.build_model("basicvsr", mid_channels=64, num_blocks=2)
    grid = plan_tiles(540, 960, memory_budget="2GB", costs=CellCosts(net), frames_held=4, min_size=16,
                      base_bytes=300 * 2**20)
    assert grid is not None and len(grid) > 1
    assert (grid.tile_h, grid.tile_w) == (even_tile(540, grid.tile_h, 16), even_tile(960, grid.tile_w, 16))
    assert len(grid) * grid.tile_h * grid.tile_w < 1.25 * 540 * 960


@pytest.mark.parametrize("arch, config", [
    ("basicvsr", dict(mid_channels=8, num_blocks=1)),
    ("iconvsr", dict(mid_channels=8, num_blocks=1)),
    ("basicvsr_pp", dict(mid_channels=8, num_blocks=1)),
    ("realbasicvsr", dict(mid_channels=8, num_propagation_blocks=1, num_cleaning_blocks=1)),
])
def test_held_bytes_bounds_the_outputs_a_stream_keeps(arch, config):
    """The schedule's own count of the state it holds (what ``--memory-budget`` plans with) against the cell
    outputs really alive before each call of a stream, one frame per call: an upper bound, and not a loose one."""
    torch.manual_seed(0)
    net = vsrdeploy.build_model(arch, **config).eval()
    run = AliveOutputs(net)
    h = w = 64
    window, lookahead = 4, 3
    frames = (torch.rand(1, 3, h, w) for _ in range(11))
    with torch.no_grad():
        n = sum(1 for _ in net.stream_cells(run, frames, window, lookahead, batch_bytes="1KB", row_strips=False))
    assert n == 11
    held = run.peak
    costs = CellCosts(net)
    estimate = net.schedule().held_bytes(lambda cell: costs.output_bytes(cell, h, w), window, lookahead)
    assert held <= estimate, (held, estimate)
    assert held >= 0.6 * estimate, (held, estimate)


def test_memory_budget_plans_with_the_runtimes_overhead():
    """A runtime whose resident memory runs above the estimate (openvino-cpu) gets smaller tiles from the same
    budget, and the budget is refused sooner."""
    from vsrdeploy.runtimes.openvino_backend import OpenVINOCpuBackend
    from vsrdeploy.runtimes.onnxruntime_backend import OrtCpuBackend
    assert OrtCpuBackend.memory_overhead == 1.0 and OpenVINOCpuBackend.memory_overhead > 1.0
    with torch.device("meta"):
        net = vsrdeploy.build_model("basicvsr", mid_channels=64, num_blocks=2)

    def plan(budget, **overhead):
        return plan_tiles(540, 960, memory_budget=budget, costs=CellCosts(net), frames_held=7, min_size=16,
                          base_bytes=300 * 2**20, held_bytes=1000 * 2**20, **overhead)
    plain, scaled = plan("2.5GB"), plan("2.5GB", overhead=1.3)
    assert plain is None and scaled is not None and len(scaled) > 1
    with pytest.raises(ConfigError, match="raise --memory-budget"):
        plan("1.5GB", overhead=1.3)


def test_memory_budget_refusal_names_what_would_fit():
    """Too little budget for the window: the error names the least budget these settings need and how many
    held frames the given budget allows; both are consistent with what plan_tiles then accepts."""
    with torch.device("meta"):
        net = vsrdeploy.build_model("basicvsr", mid_channels=64, num_blocks=2)
    base = 300 * 2**20
    with pytest.raises(ConfigError) as err:
        plan_tiles(540, 960, memory_budget="2GB", costs=CellCosts(net), frames_held=25, min_size=16,
                   base_bytes=base, history=1)
    msg = str(err.value)
    least = int(re.search(r"at least (\d+) MB", msg).group(1))
    fits = int(re.search(r"at most (\d+) frames are held \(now 25: window \+ lookahead \+ 1 of history\)",
                         msg).group(1))
    assert 0 < fits < 25
    # neither raises now (the plan may be a grid or no tiles at all)
    plan_tiles(540, 960, memory_budget=f"{least + 1}MB", costs=CellCosts(net), frames_held=25, min_size=16,
               base_bytes=base)
    plan_tiles(540, 960, memory_budget="2GB", costs=CellCosts(net), frames_held=fits, min_size=16, base_bytes=base)


def test_memory_budget_counts_one_tiles_state_when_tiles_run_apart(monkeypatch, tmp_path):
    """With a spill file the tiles run one after another (``_tile_by_tile``), so the planner counts one tile's
    held state, not every tile's: the same budget gets fewer, larger tiles than without a spill file (where
    every tile's state is alive at once), and the stream gives what the same tiles given by hand give."""
    import vsrdeploy.models.streaming as streaming
    monkeypatch.setattr(streaming, "rss_mb", lambda: 0.0)  # the budget is for the stream alone here
    torch.manual_seed(0)
    net = vsrdeploy.build_model("basicvsr", **TINY["basicvsr"]).eval()
    clip = [torch.rand(1, 3, 96, 128) for _ in range(6)]

    def stream(frames=clip, **kw):
        stats = {}
        out = torch.cat(list(net.stream_cells(TorchRunner(net.cells), iter(frames), 3, 2, stats=stats,
                                              spill_resident=1, **kw)))
        return out, stats
    with pytest.raises(ConfigError, match="raise --memory-budget") as err:
        stream(memory_budget="1MB", spill=str(tmp_path))
    # the refusal names the tiles needing least and what they need: state + call = the least budget (MB, rounded)
    got = re.search(r"uses (\d+) MB.*the tiles needing least, \d+ of \d+x\d+ \(WxH\), hold (\d+) MB of state beside a "
                    r"largest call of (\d+) MB; raise --memory-budget to at least (\d+) MB", str(err.value))
    assert got, str(err.value)
    used, state, call, least = map(int, got.groups())
    assert abs(used + state + call - least) <= 2
    _, in_memory = stream(clip[:1], memory_budget="13MB", spill="off")  # the plan is the window's, not the clip's
    planned, spilled = stream(memory_budget="13MB", spill=str(tmp_path))
    n, th, tw = spilled["tiles"]
    assert 1 < n < in_memory["tiles"][0] and spilled["spilled_bytes"] > 0
    by_hand, _ = stream(tile=(th, tw), spill=str(tmp_path))  # batched differently (the budget caps calls)
    assert float((planned - by_hand).abs().max()) <= 1e-6


# -- vsrdeploy run --tile / --tile-overlap / --memory-budget ------------------------------------

def _clip(path):
    return moving_clip(path, 4, 48, 36)


def test_run_cli_tiles(tiny_bundle, tmp_path):
    from click.testing import CliRunner

    from vsrdeploy.cli import main
    clip = _clip(tmp_path / "in.avi")
    out = tmp_path / "frames"
    result = CliRunner().invoke(main, ["run", str(tiny_bundle), "-i", str(clip), "-o", str(out), "--window", "2",
                                       "--lookahead", "1", "--tile", "36x32", "--tile-overlap", "8"])
    assert result.exit_code == 0, result.output
    assert "wrote 4 frames (48x36 -> 192x144)" in result.output
    assert len(list(out.glob("*.png"))) == 4


@pytest.mark.parametrize("args, message", [
    (["--tile", "0"], "tile must be a positive size"),
    (["--tile", "32", "--tile-overlap", "32"], "lower --tile-overlap"),
    (["--tile", "8"], "use --tile 16 or larger"),
    (["--tile", "big"], "write --tile 256 or --tile 256x192 (WxH"),
    (["--memory-budget", "lots"], "write it like 2GB"),
])
def test_run_cli_bad_tile_arguments_are_one_line_errors(tiny_bundle, tmp_path, args, message):
    from click.testing import CliRunner

    from vsrdeploy.cli import main
    clip = _clip(tmp_path / "in.avi")
    result = CliRunner().invoke(main, ["run", str(tiny_bundle), "-i", str(clip), "-o", str(tmp_path / "o"), *args])
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*.png"))


def test_iconvsr_aligns_neighbours_on_the_batch_axis():
    """EDVR's refill is three cells: each frame's pyramid once, the neighbours' PCD alignments as batch elements
    (one per call under a tight budget: what bounds the call's memory), and the fusion once per keyframe."""
    torch.manual_seed(0)
    net = vsrdeploy.build_model("iconvsr", mid_channels=8, num_blocks=1, keyframe_stride=3, padding=2).eval()
    lrs = random_clip(t=8, h=32, w=32)
    whole = CountingRun(TorchRunner(net.cells))
    unbounded = _stream(net, whole, lrs, batch_bytes=None)
    tight = CountingRun(whole.run)
    budgeted = _stream(net, tight, lrs, batch_bytes=1)
    assert float((unbounded - budgeted).abs().max()) <= 1e-6
    keys = len(whole.calls["edvr_fusion"])
    assert keys >= 3 and whole.calls["edvr_align"] == [5] * keys  # five neighbours per keyframe, one call
    assert tight.calls["edvr_align"] == [1] * (5 * keys)
    # a frame's pyramid is made once per keyframe window it is in, not once per (key, neighbour)
    assert sum(whole.calls["edvr_pyramid"]) < 5 * keys


class _TwoPerCall:
    def items_per_call(self, cell, h, w):
        return 2


def test_a_full_group_runs_before_the_next_item_is_built():
    """A group that reaches the budget runs at once: the next item (for BasicVSR++'s reconstruction, five
    feature maps read back from the spill file) is not built while the full group waits beside it."""
    from vsrdeploy.models.schedule import WindowContext
    events = []

    def run(cell, inputs):
        events.append(("call", inputs["x"].shape[0]))
        return {"y": inputs["x"] * 2}

    def items():
        for i in range(5):
            events.append(("built", i))
            yield {"x": torch.full((1, 1, 4, 4), float(i))}

    ctx = WindowContext(run=run, frames={0: torch.zeros(1, 3, 4, 4)}, start=0, end=1, span_end=1, total=None,
                        state={}, costs=_TwoPerCall())
    outs = [o["y"] for o in ctx.batch_iter("cell", items())]
    assert [float(o[0, 0, 0, 0]) for o in outs] == [0, 2, 4, 6, 8]
    assert events == [("built", 0), ("built", 1), ("call", 2), ("built", 2), ("built", 3), ("call", 2),
                      ("built", 4), ("call", 1)]


class FakeLibc:
    """Stands in for glibc's mallopt: records what a heap policy sets."""

    def __init__(self):
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append((param, value))
        return 1


@pytest.fixture
def fake_libc(monkeypatch):
    from vsrdeploy.models import heap
    libc = FakeLibc()
    monkeypatch.setattr(heap, "_glibc", lambda: libc)
    monkeypatch.setattr(heap, "_applied", None)
    return libc


def test_heap_policies_give_the_same_frames_and_set_mallopt(tiny_bundle, fake_libc):
    from vsrdeploy.models.heap import HEAP_POLICIES
    up = vsrdeploy.open_bundle(tiny_bundle, backend="ort-cpu")
    lrs = random_clip(t=5, h=32, w=40)[0].numpy()
    outs = {}
    for policy in HEAP_POLICIES:
        stats = {}
        outs[policy] = np.stack(list(up.stream(iter(lrs), window=3, lookahead=1, stats=stats, heap=policy)))
        assert stats["heap"] == policy
    assert np.array_equal(outs["return"], outs["keep"])  # malloc's policy never changes a value
    # return: 1 MB mmap threshold (-3) and glibc's initial 128 KiB trim threshold (-1); keep: 32 MB / 64 MB
    assert fake_libc.calls == [(-3, 1 << 20), (-1, 128 << 10), (-3, 32 << 20), (-1, 64 << 20)]
    with pytest.raises(ConfigError, match="heap policy must be one of return, keep"):
        up.stream(iter(lrs), heap="hold")
    assert len(fake_libc.calls) == 4  # a bad policy is refused before anything is set


def test_heap_policy_off_glibc_says_it_was_not_applied(tiny_bundle, monkeypatch):
    from vsrdeploy.models import heap
    monkeypatch.setattr(heap, "_glibc", lambda: None)
    monkeypatch.setattr(heap, "_applied", None)
    stats = {}
    up = vsrdeploy.open_bundle(tiny_bundle, backend="ort-cpu")
    list(up.stream(iter(random_clip(t=2, h=32, w=32)[0].numpy()), stats=stats, heap="keep"))
    assert stats["heap"].startswith("keep: not applied") and "not glibc" in stats["heap"]


def test_whole_clip_baseline_leaves_malloc_alone(fake_libc):
    """bench's upstream-equivalent row runs with the C library's default malloc, as upstream's code does."""
    from vsrdeploy.evaluate.bench import upstream_forward
    torch.manual_seed(0)
    net = vsrdeploy.build_model("basicvsr", **TINY["basicvsr"]).eval()
    stats = {}
    with torch.no_grad():
        upstream_forward(net, random_clip(t=3, h=32, w=32), stats=stats)
        assert "heap" not in stats and fake_libc.calls == []
        net(random_clip(t=3, h=32, w=32))  # the product's own whole-clip path streams with the default policy
    assert fake_libc.calls == [(-3, 1 << 20), (-1, 128 << 10)]
