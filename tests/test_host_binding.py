"""Copy-free binding on the CPU runtimes (issue #13, item 3): OpenVINO tensors on the input arrays' memory
and outputs written into per-call buffers give the same bits as OpenVINO's copying ``infer``; ONNX Runtime's
``session.run`` (already copy-free on numpy views: I/O binding measured no faster, see RESULTS.md) gives the
same bits as on explicit copies; on both, an output handed out is never written by a later call."""
import numpy as np
import pytest
import torch

import vsrdeploy
from vsrdeploy.runtimes.engine import Upscaler
from vsrdeploy.runtimes.host_buffers import cpu_array, output_shapes

from conftest import random_clip

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")


def _plain_ort(backend):
    """``backend.run`` replaced by ONNX Runtime's plain ``session.run`` on numpy copies (the former path)."""
    def run(cell, inputs):
        feed = {k: np.array(np.asarray(v), copy=True) for k, v in inputs.items()}  # numpy: the CPU backends' arrays
        outs = backend.sessions[cell].run(backend.output_names[cell], feed)
        return {k: np.array(v, copy=True) for k, v in zip(backend.output_names[cell], outs)}
    backend.run = run
    return backend


def _plain_openvino(backend):
    """``backend.run`` replaced by OpenVINO's copying ``infer`` on the request (the former path)."""
    def run(cell, inputs):
        result = backend.requests[cell].infer({k: np.asarray(v) for k, v in inputs.items()})
        return {name: np.array(result[port], copy=True) for name, port in backend.outputs[cell]}
    backend.run = run
    return backend


PLAIN = {"ort-cpu": _plain_ort, "openvino-cpu": _plain_openvino}


def _stream(up, lrs, **kw):
    return [torch.as_tensor(o) for o in up.stream(iter(lrs), window=3, lookahead=2, clamp=False, **kw)]


@pytest.mark.parametrize("backend", list(PLAIN))
@pytest.mark.parametrize("batch_bytes", [None, 1])
def test_binding_is_bit_identical_to_the_copying_path(tiny_bundle, backend, batch_bytes):
    lrs = random_clip(t=8, h=32, w=40)[0]  # 3 windows of 3 (+2 lookahead)
    with vsrdeploy.open_bundle(tiny_bundle, backend=backend) as up:
        bound = _stream(up, lrs, batch_bytes=batch_bytes)
    plain_backend = PLAIN[backend](vsrdeploy.open_bundle(tiny_bundle, backend=backend).backend)
    plain = _stream(Upscaler(plain_backend.bundle, plain_backend), lrs, batch_bytes=batch_bytes)
    assert len(bound) == len(plain) == 8
    assert all(torch.equal(a, b) for a, b in zip(bound, plain))


@pytest.mark.parametrize("backend", list(PLAIN))
def test_an_output_is_not_written_by_later_calls(tiny_bundle, backend):
    with vsrdeploy.open_bundle(tiny_bundle, backend=backend) as up:
        run = up.backend.run
        feat = torch.rand(2, 8, 32, 40)
        first = run("backward_trunk", {"lr": torch.rand(2, 3, 32, 40), "feat_in": feat})["feat_out"]
        kept = first.clone()
        for _ in range(3):  # same shapes: a runtime reusing its buffers would write into ``first``
            later = run("backward_trunk", {"lr": torch.rand(2, 3, 32, 40), "feat_in": feat})["feat_out"]
            assert later.data_ptr() != first.data_ptr()
        assert torch.equal(first, kept)
        assert not torch.equal(later, kept)


def test_openvino_writes_outputs_into_the_handed_out_buffers(tiny_bundle):
    """No copy after the call: the request's output tensor is the returned tensor's memory, and its input
    tensor is the caller's."""
    with vsrdeploy.open_bundle(tiny_bundle, backend="openvino-cpu") as up:
        backend = up.backend
        lr = torch.rand(1, 3, 32, 32)
        out = backend.run("upsample", {"lr": lr, "backward": torch.rand(1, 8, 32, 32),
                                       "forward": torch.rand(1, 8, 32, 32)})["hr"]
        request = backend.requests["upsample"]
        (name, port), = backend.outputs["upsample"]
        assert out.shape == (1, 3, 128, 128)
        assert request.get_tensor(port).data.ctypes.data == out.data_ptr()
        assert request.get_tensor("lr").data.ctypes.data == lr.data_ptr()


def test_cpu_array_copies_only_what_it_must():
    t = torch.rand(2, 3, 4, 5)
    assert np.shares_memory(cpu_array(t), t.numpy())
    strided = t[:, :, :, ::2]
    a = cpu_array(strided)
    assert a.flags.c_contiguous and np.array_equal(a, strided.numpy())


def test_output_shapes_from_manifest_symbols():
    ins = [{"name": "lr", "shape": ["N", 3, "H", "W"]}, {"name": "f", "shape": ["N", 8, "H/4", "W/4"]}]
    outs = [{"name": "hr", "shape": ["N", 3, "4H", "4W"]}, {"name": "g", "shape": ["N", 2, "H/4", "W/4"]},
            {"name": "r", "shape": ["N"]}]
    assert output_shapes(ins, outs, {"lr": (2, 3, 64, 80), "f": (2, 8, 16, 20)}) == {
        "hr": (2, 3, 256, 320), "g": (2, 2, 16, 20), "r": (2,)}
    static = [{"name": "x", "shape": ["N", 3, 32, 40]}]
    assert output_shapes(static, [{"name": "y", "shape": ["N", 3, 128, 160]}], {"x": (1, 3, 32, 40)}) == {
        "y": (1, 3, 128, 160)}
    # not determined exactly: the runtime allocates instead
    assert output_shapes(static, outs[:1], {"x": (1, 3, 32, 40)}) is None  # 'H' bound by no input
    assert output_shapes(ins, outs, {"lr": (2, 3, 64, 80)}) is None  # an input missing
    assert output_shapes(static, [], {"x": (1, 3, 32, 41)}) is None  # a static size that does not match
    quarter = [{"name": "lr", "shape": ["N", 3, "H", "W"]}]
    assert output_shapes(quarter, [{"name": "q", "shape": ["N", 2, "H/4", "W/4"]}], {"lr": (1, 3, 66, 64)}) is None
