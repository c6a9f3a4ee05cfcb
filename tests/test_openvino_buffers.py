"""OpenVINO's kept working sets (issue #12 memory / #13 speed): before a large cell runs, the other large
cells hand their buffers back (released, or unloaded: their compiled models dropped, imported again when next
called) except the ``keep_working_sets`` most recently called ones. Which cells are kept, and how they hand
their buffers back, must not change a single output bit."""
import functools

import pytest
import torch

import vsrdeploy
from vsrdeploy.errors import ConfigError
from vsrdeploy.runtimes import openvino_backend

from conftest import moving_clip, random_clip

pytest.importorskip("openvino")


def _stream_logged(bundle, keep, monkeypatch, **options):
    monkeypatch.setattr(openvino_backend, "RELEASE_ABOVE_BYTES", 0)  # every call of the tiny model is "large"
    log = []
    with vsrdeploy.open_bundle(bundle, backend="openvino-cpu", keep_working_sets=keep, **options) as up:
        backend = up.backend
        hand_back = backend._hand_back

        def logged_hand_back(cell):
            log.append(("release", cell))
            hand_back(cell)
        backend._hand_back = logged_hand_back
        run = backend.run

        def logged_run(cell, inputs):
            out = run(cell, inputs)
            log.append(("call", cell))  # after the releases the call made room with
            return out
        backend.run = logged_run
        lrs = random_clip(t=6, h=32, w=40)[0]
        outs = [torch.as_tensor(o) for o in up.stream(iter(lrs), window=3, lookahead=2, clamp=False)]
    return outs, log


@pytest.mark.parametrize("keep", [0, 2])
def test_a_large_call_runs_with_at_most_keep_other_cells_holding_buffers(tiny_bundle, keep, monkeypatch):
    _, log = _stream_logged(tiny_bundle, keep, monkeypatch)
    holding: list[str] = []  # cells that ran and have not handed their buffers back, least recent first
    releases = repeats = 0
    previous = None
    for event, cell in log:
        if event == "call":
            assert len([c for c in holding if c != cell]) <= keep, (cell, holding)
            holding = [c for c in holding if c != cell] + [cell]
            repeats += cell == previous
            previous = cell
        else:  # made room for the next call
            releases += 1
            assert cell in holding
            if keep:
                assert cell not in holding[-keep:], (cell, holding)  # the least recently called go first
            holding.remove(cell)
    calls = sum(event == "call" for event, _ in log)
    assert 0 < releases < calls - repeats + 1  # same-cell calls in a row (row strips, batches) release nothing
    if keep == 0:
        assert releases >= calls - repeats - 1  # otherwise every change of cell hands the last one's back


def test_a_call_that_allocates_much_marks_its_cell_large(tiny_bundle, monkeypatch):
    """Small inputs and outputs but large buffers (a row strip of the upsampling tail, SPyNet): found by the
    resident memory the call added, and from then on its buffers go before another large cell runs."""
    rss = iter(range(0, 10**12, 64 * 2**20))  # every reading 64 MiB above the last: each call "allocated" it
    monkeypatch.setattr(openvino_backend, "resident_bytes", lambda: next(rss))
    with vsrdeploy.open_bundle(tiny_bundle, backend="openvino-cpu") as up:
        backend = up.backend
        lrs = random_clip(t=4, h=32, w=40)[0]
        list(up.stream(iter(lrs), window=2, lookahead=1))
        assert backend.large == set(backend.bundle.cells)  # the tiny cells' inputs and outputs are far below 16 MiB
        assert len(backend.kept) == 1


def test_an_unloaded_cell_is_imported_again_and_gives_the_same_bits(tiny_bundle):
    with vsrdeploy.open_bundle(tiny_bundle, backend="openvino-cpu") as up:
        backend = up.backend
        inputs = {"lr": torch.rand(2, 3, 32, 40), "feat_in": torch.rand(2, 8, 32, 40)}
        first = backend.run("backward_trunk", inputs)["feat_out"]
        backend._unload("backward_trunk")
        assert "backward_trunk" not in backend.compiled and "backward_trunk" not in backend.requests
        blob = backend.blobs["backward_trunk"]
        again = backend.run("backward_trunk", inputs)["feat_out"]
        assert "backward_trunk" in backend.compiled
        backend._unload("backward_trunk")
        assert backend.blobs["backward_trunk"] is blob  # exported once
        assert torch.equal(first, again)
        assert torch.equal(first, backend.run("backward_trunk", inputs)["feat_out"])


def test_unloading_cells_does_not_change_outputs(tiny_bundle, monkeypatch):
    released, _ = _stream_logged(tiny_bundle, 0, monkeypatch, unload_outputs_above=None)
    unloaded, log = _stream_logged(tiny_bundle, 0, monkeypatch, unload_outputs_above=0)
    assert any(event == "release" for event, _ in log)  # cells handed back (unloads at 0: see the next test)
    assert len(released) == len(unloaded) == 6
    assert all(torch.equal(a, b) for a, b in zip(released, unloaded))


@pytest.mark.parametrize("limit,unloads", [(0, True), (None, False), ("1GB", False)])
def test_cells_are_unloaded_only_once_outputs_were_above_the_limit(tiny_bundle, monkeypatch, limit, unloads):
    monkeypatch.setattr(openvino_backend, "RELEASE_ABOVE_BYTES", 0)
    with vsrdeploy.open_bundle(tiny_bundle, backend="openvino-cpu", unload_outputs_above=limit) as up:
        list(up.stream(iter(random_clip(t=4, h=32, w=40)[0]), window=2, lookahead=1))
        assert bool(up.backend.blobs) == unloads  # a cell is exported when first unloaded


def test_the_unload_limit_counts_one_batch_item(tiny_bundle):
    """A batch of frames (stateless cells) or tiles is not a larger frame: the limit is held against the
    outputs of one batch item."""
    with vsrdeploy.open_bundle(tiny_bundle, backend="openvino-cpu") as up:
        out = up.backend.run("backward_trunk", {"lr": torch.rand(4, 3, 32, 40), "feat_in": torch.rand(4, 8, 32, 40)})
        assert up.backend.largest_output == out["feat_out"].nbytes // 4


@pytest.mark.parametrize("bad", ["lots", -1, True])
def test_bad_unload_outputs_above_is_a_config_error(tiny_bundle, bad):
    with pytest.raises(ConfigError, match=r"unload_outputs_above .*\(or 0: unload from the first call; null"):
        vsrdeploy.open_bundle(tiny_bundle, backend="openvino-cpu", unload_outputs_above=bad)


def test_kept_working_sets_do_not_change_outputs(tiny_bundle, monkeypatch):
    released, _ = _stream_logged(tiny_bundle, 0, monkeypatch)
    kept, _ = _stream_logged(tiny_bundle, 3, monkeypatch)
    assert len(released) == len(kept) == 6
    assert all(torch.equal(a, b) for a, b in zip(released, kept))


@pytest.mark.parametrize("bad", [-1, "2", True, 1.5])
def test_bad_keep_working_sets_is_a_config_error(tiny_bundle, bad):
    with pytest.raises(ConfigError, match="keep_working_sets must be an integer >= 0"):
        vsrdeploy.open_bundle(tiny_bundle, backend="openvino-cpu", keep_working_sets=bad)


def test_run_cli_passes_backend_options(tiny_bundle, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from vsrdeploy.cli import main
    seen = []
    real_init = openvino_backend._OpenVINOBackend.__init__

    @functools.wraps(real_init)  # the same signature: the backend's option names come from it
    def spy(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        seen.append(self.keep_working_sets)
    monkeypatch.setattr(openvino_backend._OpenVINOBackend, "__init__", spy)
    clip = moving_clip(tmp_path / "in.avi", 3, 40, 32)
    out = tmp_path / "frames"
    result = CliRunner().invoke(main, ["run", str(tiny_bundle), "-b", "openvino-cpu", "-i", str(clip), "-o", str(out),
                                       "-O", "keep_working_sets=2", "--window", "2", "--lookahead", "1"])
    assert result.exit_code == 0, result.output
    assert seen == [2] and len(list(out.glob("*.png"))) == 3


@pytest.mark.parametrize("item, message", [
    ("keep_working_sets", "takes KEY=VALUE"),
    ("no_such=1", "unknown option(s) no_such; it takes: fp32_coordinates, keep_working_sets, precision, threads, unload_outputs_above"),
    ("keep_working_sets=-1", "keep_working_sets must be an integer >= 0"),
    ("keep_working_sets=two", "keep_working_sets must be an integer >= 0"),
    ("fp32_coordinates=yes", "fp32_coordinates must be true or false"),
])
def test_run_cli_bad_backend_options_are_one_line(tiny_bundle, tmp_path, item, message):
    from click.testing import CliRunner

    from vsrdeploy.cli import main
    clip = moving_clip(tmp_path / "in.avi", 3, 40, 32)
    result = CliRunner().invoke(main, ["run", str(tiny_bundle), "-b", "openvino-cpu", "-i", str(clip), "-o",
                                       str(tmp_path / "o"), "-O", item])
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()
