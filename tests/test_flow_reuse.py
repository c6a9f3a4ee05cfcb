"""Flows carried across windows (issue 13, item 3): the next window reuses the flows of the previous
window's lookahead frames instead of recomputing them. Same frames out (to float rounding of a different
batch composition), every frame pair computed once per stream, a bounded number of flows held."""
import hashlib

import pytest
import torch

import vsrdeploy
from vsrdeploy.models.cells import TorchRunner
from vsrdeploy.models.schedule import FLOW_CACHE, WindowContext, stream_windows

from conftest import random_clip

TINY = {"basicvsr": ({"mid_channels": 8, "num_blocks": 1}, 32),
        "iconvsr": ({"mid_channels": 8, "num_blocks": 1}, 32),
        "basicvsr_pp": ({"mid_channels": 8, "num_blocks": 1}, 64),
        "realbasicvsr": ({"mid_channels": 8, "num_propagation_blocks": 1, "num_cleaning_blocks": 1}, 32)}
#: reuse changes which pairs share a batched call, so float rounding may move slightly (measured up to 6e-8 on
#: torch, 0 on ort-cpu / openvino-cpu: benchmarks/flow_reuse.py, RESULTS.md)
TOL = 1e-6


class FlowCount:
    """A run callable counting the frame pairs the flow cell computes, and which (by content)."""

    def __init__(self, run):
        self.run, self.items, self.pairs = run, 0, set()

    def __call__(self, cell, inputs):
        if cell == "flow":
            for ref, supp in zip(inputs["ref"], inputs["supp"]):
                self.items += 1
                self.pairs.add((hashlib.sha1(ref.numpy().tobytes()).hexdigest(),
                                hashlib.sha1(supp.numpy().tobytes()).hexdigest()))
        return self.run(cell, inputs)


def _stream(net, run, lrs, window, lookahead, **kw):
    frames = (lrs[:, i] for i in range(lrs.shape[1]))
    return torch.cat(list(net.stream_cells(run, frames, window, lookahead, **kw)), 0)


def _both(monkeypatch, fn):
    """fn() with flow reuse, then without."""
    reused = fn()
    monkeypatch.setattr(WindowContext, "reuse_flows", False)
    recomputed = fn()
    monkeypatch.setattr(WindowContext, "reuse_flows", True)
    return reused, recomputed


@pytest.mark.parametrize("arch", list(TINY))
@pytest.mark.parametrize("window,lookahead,batch_bytes", [(3, 2, None), (2, 5, None), (4, 4, 1)])
def test_reuse_gives_the_same_frames_and_computes_each_pair_once(monkeypatch, arch, window, lookahead, batch_bytes):
    config, size = TINY[arch]
    torch.manual_seed(0)
    net = vsrdeploy.build_model(arch, **config).eval()
    lrs = random_clip(t=11, h=size, w=size)
    counts = []

    def run():
        counts.append(FlowCount(TorchRunner(net.cells)))
        return _stream(net, counts[-1], lrs, window, lookahead, batch_bytes=batch_bytes)

    reused, recomputed = _both(monkeypatch, run)
    assert reused.shape == recomputed.shape == (11, 3, 4 * size, 4 * size)
    assert float((reused - recomputed).abs().max()) <= TOL
    on, off = counts
    if arch == "realbasicvsr":
        # frames are cleaned anew for each span: nothing carries over, nothing changes
        assert on.items == off.items and torch.equal(reused, recomputed)
    else:
        assert on.pairs == off.pairs
        assert on.items == len(on.pairs) < off.items  # every pair once, and fewer calls than before


def test_whole_clip_result_kept_when_spans_reach_the_clip_end(monkeypatch):
    """Several windows whose spans all reach the clip end equal the whole-clip network, with reuse."""
    config, size = TINY["basicvsr_pp"]
    torch.manual_seed(0)
    net = vsrdeploy.build_model("basicvsr_pp", **config).eval()
    lrs = random_clip(t=6, h=size, w=size)
    whole = net(lrs)[0]
    count = FlowCount(TorchRunner(net.cells))
    windowed = _stream(net, count, lrs, 2, 6)
    assert float((windowed - whole).abs().max()) <= 1e-5
    assert count.items == len(count.pairs)


def test_carried_flows_stay_bounded():
    config, size = TINY["basicvsr_pp"]
    torch.manual_seed(0)
    net = vsrdeploy.build_model("basicvsr_pp", **config).eval()
    schedule = net.schedule()
    held = []
    run_window = schedule.run_window

    def spy(ctx):
        yield from run_window(ctx)
        carried = ctx.state.get((FLOW_CACHE, "flow"), {})
        held.append(len(carried))
        # each carried flow owns its memory (not a view keeping a whole batch output alive)
        assert all(f.untyped_storage().nbytes() == f.nbytes for _, _, f in carried.values())

    schedule.run_window = spy
    lrs = random_clip(t=20, h=size, w=size)
    lookahead = 3
    outs = list(stream_windows(schedule, TorchRunner(net.cells), (lrs[:, i] for i in range(20)), window=2,
                               lookahead=lookahead, scale=4))
    assert len(outs) == 20
    # the pairs of frames from end - 2 on: backward (i, i+1) for i >= end - 2 (lookahead + 1) and forward
    # (i, i-1) for i >= end - 1 (lookahead + 1); the clip's length does not matter
    assert max(held) == 2 * lookahead + 2 and held[-1] == 0  # the last window keeps nothing


@pytest.mark.parametrize("backend,arch,dcn", [("ort-cpu", "basicvsr", "native"), ("openvino-cpu", "basicvsr", "native"),
                                              ("ort-cpu", "basicvsr_pp", "native"),
                                              ("openvino-cpu", "basicvsr_pp", "decomposed")])
def test_reuse_on_cpu_runtimes(monkeypatch, tmp_path, backend, arch, dcn):
    pytest.importorskip("onnxruntime")
    if backend.startswith("openvino"):
        pytest.importorskip("openvino")
    config, size = TINY[arch]
    torch.manual_seed(0)
    net = vsrdeploy.build_model(arch, **config).eval()
    bundle = vsrdeploy.export_onnx(net, tmp_path / "b.vsr", dcn=dcn)
    lrs = random_clip(t=9, h=size, w=size)[0]
    with vsrdeploy.open_bundle(bundle, backend=backend) as up:
        counts = []

        def run():
            counts.append(FlowCount(up.backend.run))
            return _stream(net, counts[-1], lrs[None], 3, 3)

        reused, recomputed = _both(monkeypatch, run)
    assert float((reused - recomputed).abs().max()) <= TOL
    assert counts[0].items == len(counts[0].pairs) < counts[1].items
