"""Recording cells' real inputs from a stream (``evaluate.cell_parity.first_call_inputs`` / ``first_calls``)."""
import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from vsrdeploy.bundle import Bundle  # noqa: E402
from vsrdeploy.evaluate.cell_parity import first_call_inputs, first_calls, tap_cells  # noqa: E402
from vsrdeploy.runtimes.engine import Upscaler  # noqa: E402

from tests.conftest import random_clip  # noqa: E402


def test_first_call_inputs_replay_to_the_streamed_outputs(tiny_bundle):
    """The recorded feeds are the first call's: the cell run on them again gives what it gave in the stream."""
    bundle = Bundle(tiny_bundle)
    lr = random_clip(t=3, h=24, w=24, seed=2)[0].numpy()
    feeds = first_call_inputs(bundle, "backward_trunk", lr)
    assert set(feeds) == {p["name"] for p in bundle.manifest["cells"]["backward_trunk"]["inputs"]}

    up = Upscaler.create(bundle, "ort-cpu")
    first = {}

    def keep(name, inputs, outputs):
        if name == "backward_trunk" and not first:
            first.update(outputs)
    with tap_cells(up.backend, keep):
        up.upscale(lr)
    again = up.backend.run("backward_trunk", {k: torch.from_numpy(v) for k, v in feeds.items()})
    assert set(again) == set(first)
    for k, v in again.items():
        assert np.array_equal(v.numpy(), first[k])
    with pytest.raises(ValueError, match="never called"):
        first_call_inputs(bundle, "no_such_cell", lr)


def test_first_calls_records_every_cell_from_one_stream(tiny_bundle):
    """One stream records each called cell's first inputs, the same arrays ``first_call_inputs`` gives one cell;
    ``cells`` keeps only those named."""
    bundle = Bundle(tiny_bundle)
    lr = random_clip(t=3, h=24, w=24, seed=2)[0].numpy()
    every = first_calls(bundle, lr)
    assert "backward_trunk" in every and set(every) <= set(bundle.cells)
    one = first_call_inputs(bundle, "backward_trunk", lr)
    assert set(one) == set(every["backward_trunk"])
    for k, v in one.items():
        assert np.array_equal(v, every["backward_trunk"][k])
    assert set(first_calls(bundle, lr, cells={"backward_trunk"})) == {"backward_trunk"}
