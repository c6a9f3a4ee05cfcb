"""Row strips (issue #12): local cells whose one-frame call does not fit the byte budget run in strips with
``Cell.halo`` rows of context, and give the same frames as the whole-frame call."""
import numpy as np
import pytest
import torch

import vsrdeploy
from vsrdeploy.models import basicvsr
from vsrdeploy.models.cells import Cell, Port
from vsrdeploy.models.strips import plan_row_strips, row_multiple, splittable

from conftest import random_clip

TINY = {"basicvsr": {"mid_channels": 8, "num_blocks": 1},
        "iconvsr": {"mid_channels": 8, "num_blocks": 1},
        "basicvsr_pp": {"mid_channels": 8, "num_blocks": 1},
        "realbasicvsr": {"mid_channels": 8, "num_propagation_blocks": 1, "num_cleaning_blocks": 1},
        "psrt_recurrent": {"mid_channels": 8, "embed_dim": 12, "depths": [2], "num_heads": [2]}}
#: the cells each architecture cuts into strips (BasicVSR++: its reconstruction trunk and its x4 tail)
LOCAL_CELLS = {"basicvsr": ("upsample",), "iconvsr": ("upsample",), "basicvsr_pp": ("reconstruct", "upsample"),
               "realbasicvsr": ("upsample",), "psrt_recurrent": ("reconstruct",)}
STRIP_BUDGET = 2**20  # 1 MiB: a 96x64 frame's upsampling does not fit, a strip does


def _net(arch):
    torch.manual_seed(0)
    return vsrdeploy.build_model(arch, **TINY[arch]).eval()


def _stream(net, lrs, **kw):
    frames = (lrs[:, i] for i in range(lrs.shape[1]))
    return torch.cat(list(net.stream(frames, 3, 2, **kw)), 0)


@pytest.mark.parametrize("arch", list(TINY))
def test_row_strips_give_the_same_frames_as_whole_frame_calls(arch):
    net = _net(arch)
    lrs = random_clip(t=5, h=96, w=64)
    whole = _stream(net, lrs, batch_bytes=None)
    stats = {}
    strips = _stream(net, lrs, batch_bytes=STRIP_BUDGET, stats=stats)
    for cell in LOCAL_CELLS[arch]:
        assert stats["row_strips"].get(cell, 0) >= 2, stats  # the cell really ran in strips
    assert float((whole - strips).abs().max()) <= 1e-5


def test_a_halo_too_small_changes_the_frames(monkeypatch):
    """The check above is sensitive: with one row of context fewer than declared, strip borders show."""
    net = _net("basicvsr")
    lrs = random_clip(t=3, h=96, w=64)
    whole = _stream(net, lrs, batch_bytes=None)
    monkeypatch.setattr(basicvsr.UpsampleCell, "halo", basicvsr.UpsampleCell.halo - 1)
    cut = _stream(net, lrs, batch_bytes=STRIP_BUDGET)
    assert float((whole - cut).abs().max()) > 1e-4


@pytest.mark.parametrize("backend", ["ort-cpu", "openvino-cpu"])
def test_row_strips_on_cpu_runtimes(tiny_bundle, backend):
    up = vsrdeploy.open_bundle(tiny_bundle, backend=backend)
    lrs = random_clip(t=5, h=96, w=64)[0].numpy()
    whole = np.stack(list(up.stream(iter(lrs), window=3, lookahead=2, batch_bytes=None)))
    stats = {}
    strips = np.stack(list(up.stream(iter(lrs), window=3, lookahead=2, batch_bytes=STRIP_BUDGET, stats=stats)))
    assert stats["row_strips"].get("upsample", 0) >= 2
    assert float(np.abs(whole - strips).max()) <= 1e-5
    up.close()


def test_tensorrt_backends_never_cut_rows():
    from vsrdeploy.runtimes.base import get_backend_class
    assert get_backend_class("tensorrt").row_strips is False
    assert get_backend_class("ort-trt").row_strips is False
    assert get_backend_class("ort-cpu").row_strips is True


class _Local(Cell):
    halo = 3
    inputs = (Port("x", (8,)),)
    outputs = (Port("y", (3,), 4),)


@pytest.mark.parametrize("height", [36, 50, 97, 180])
@pytest.mark.parametrize("budget_share", [0.9, 0.5, 0.25, 0.01])
def test_strip_plan_covers_every_row_once_with_equal_strips(height, budget_share):
    per_call = 1000
    rows, strips = plan_row_strips(_Local(), per_call, height, int(per_call * budget_share))
    assert strips, "a call over budget must be cut"
    cores = [(c0, c1) for _, c0, c1 in strips]
    assert cores[0][0] == 0 and cores[-1][1] == height
    assert all(a[1] == b[0] for a, b in zip(cores, cores[1:]))  # contiguous, no row twice
    for start, c0, c1 in strips:
        assert 0 <= start and start + rows <= height  # every strip the same height, inside the frame
        assert c0 - start >= min(c0, _Local.halo) and start + rows - c1 >= min(height - c1, _Local.halo)
    assert rows < height


def test_strip_plan_leaves_fitting_and_non_local_calls_whole():
    assert plan_row_strips(_Local(), 100, 180, 200) == (180, [])  # fits
    assert plan_row_strips(_Local(), 100, 180, None) == (180, [])  # no budget

    class Global(_Local):
        halo = None
    assert not splittable(Global())
    assert plan_row_strips(Global(), 1000, 180, 10) == (180, [])

    class PerFrameScalar(_Local):
        outputs = (Port("y", (3,), 4), Port("score", (), None))
    assert not splittable(PerFrameScalar())

    class Quarter(_Local):
        inputs = (Port("x", (8,), 0.25),)
    assert row_multiple(Quarter()) == 4
    rows, strips = plan_row_strips(Quarter(), 1000, 96, 300)
    assert rows % 4 == 0 and all(v % 4 == 0 for s in strips for v in s)


def test_bench_baseline_is_upstream_cost_and_same_frames():
    """bench's whole-clip baseline computes model(lrs)'s frames without row strips (upstream has none): at a
    budget that cuts BasicVSR++'s reconstruction and tail into strips, the stream does, the baseline does not."""
    from vsrdeploy.evaluate.bench import upstream_forward
    net = _net("basicvsr_pp")
    lrs = random_clip(t=3, h=96, w=64)
    cut, baseline = {}, {}
    with torch.no_grad():
        strips = _stream(net, lrs, batch_bytes=STRIP_BUDGET, stats=cut)
        whole = torch.cat(upstream_forward(net, lrs, batch_bytes=STRIP_BUDGET, stats=baseline), 0)
    assert cut["row_strips"].get("reconstruct", 0) >= 2 and cut["row_strips"].get("upsample", 0) >= 2
    assert not baseline.get("row_strips")
    assert float((whole - strips).abs().max()) <= 1e-5
