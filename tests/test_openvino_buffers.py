"""OpenVINO's kept working sets (issue #12 memory / #13 speed): after a large call a cell hands its buffers
back unless it is one of the ``keep_working_sets`` most recently called large cells. Which cells are kept
must not change a single output bit."""
import pytest
import torch

import vsrdeploy
from vsrdeploy.errors import ConfigError
from vsrdeploy.runtimes import openvino_backend

from conftest import random_clip

pytest.importorskip("openvino")


class _Recorded:
    """A compiled cell whose ``release_memory`` calls are logged (everything else passes through)."""

    def __init__(self, name, compiled, log):
        self._name, self._compiled, self._log = name, compiled, log

    def release_memory(self):
        self._log.append(("release", self._name))
        self._compiled.release_memory()

    def __getattr__(self, attr):
        return getattr(self._compiled, attr)


def _stream_logged(bundle, keep, monkeypatch):
    monkeypatch.setattr(openvino_backend, "RELEASE_ABOVE_BYTES", 0)  # every call of the tiny model is "large"
    log = []
    with vsrdeploy.open_bundle(bundle, backend="openvino-cpu", keep_working_sets=keep) as up:
        backend = up.backend
        backend.compiled = {n: _Recorded(n, c, log) for n, c in backend.compiled.items()}
        run = backend.run

        def logged_run(cell, inputs):
            log.append(("call", cell))
            return run(cell, inputs)
        backend.run = logged_run
        lrs = random_clip(t=6, h=32, w=40)[0]
        outs = [torch.as_tensor(o) for o in up.stream(iter(lrs), window=3, lookahead=2, clamp=False)]
    return outs, log


@pytest.mark.parametrize("keep", [0, 2])
def test_only_cells_beyond_the_most_recent_keep_release(tiny_bundle, keep, monkeypatch):
    _, log = _stream_logged(tiny_bundle, keep, monkeypatch)
    recent: list[str] = []
    releases = 0
    for event, cell in log:
        if event == "call":
            if cell in recent:
                recent.remove(cell)
            recent.append(cell)
        else:
            releases += 1
            assert cell in recent
            if keep:
                assert cell not in recent[-keep:], (cell, recent[-keep:])
    calls = sum(event == "call" for event, _ in log)
    if keep == 0:
        assert releases == calls  # the default: every large call hands its buffers back
    else:  # the tiny BasicVSR calls more than two cells in turn, so some are still released
        assert 0 < releases < calls


def test_kept_working_sets_do_not_change_outputs(tiny_bundle, monkeypatch):
    released, _ = _stream_logged(tiny_bundle, 0, monkeypatch)
    kept, _ = _stream_logged(tiny_bundle, 3, monkeypatch)
    assert len(released) == len(kept) == 6
    assert all(torch.equal(a, b) for a, b in zip(released, kept))


@pytest.mark.parametrize("bad", [-1, "2", True, 1.5])
def test_bad_keep_working_sets_is_a_config_error(tiny_bundle, bad):
    with pytest.raises(ConfigError, match="keep_working_sets must be an integer >= 0"):
        vsrdeploy.open_bundle(tiny_bundle, backend="openvino-cpu", keep_working_sets=bad)
