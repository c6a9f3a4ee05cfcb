"""A bundle streams on ort-cpu and openvino-cpu without PyTorch in the process, and gives the same bits as a
process that has it (the plan from the manifest, numpy arrays between cells: models.spec, models.arrays)."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import vsrdeploy
from vsrdeploy.bundle import Bundle
from vsrdeploy.models.arrays import owned
from vsrdeploy.models.budget import CellCosts
from vsrdeploy.models.spec import NetSpec
from vsrdeploy.runtimes.frame_types import frame_kind, from_network, to_network

#: put first on sys.meta_path in a child process: any import of torch fails there
BLOCK_TORCH = textwrap.dedent("""
    import sys

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"{name} is blocked: this process must run without PyTorch")

    sys.meta_path.insert(0, NoTorch())
""")

#: the streams each process runs (same arguments in both): name -> (backend, Upscaler.stream options)
STREAMS = {
    "ort-window": ("ort-cpu", {"window": 2, "lookahead": 1}),
    "ort-whole": ("ort-cpu", {"window": None, "lookahead": 0}),
    "ov-window": ("openvino-cpu", {"window": 3, "lookahead": 1}),
    "ort-tiles-spilled": ("ort-cpu", {"window": 2, "lookahead": 2, "tile": 64, "tile_overlap": 8,
                                      "spill": "SPILL", "spill_resident": 1}),
    "ov-budget": ("openvino-cpu", {"window": 2, "lookahead": 1, "batch_bytes": 20000}),
}

RUN = textwrap.dedent("""
    import json, sys
    import numpy as np
    import vsrdeploy

    bundle, frames_path, out_path, spill = sys.argv[1:5]
    streams = json.loads(sys.argv[5])
    if sys.argv[6] == "torch":  # the backends exchange torch tensors: schedules, tiles, spill on torch (0.3.11's path)
        import torch
        from vsrdeploy.runtimes.base import get_backend_class
        for name in ("ort-cpu", "openvino-cpu"):
            get_backend_class(name).arrays = "torch"
    frames = np.load(frames_path)
    results = {}
    for name, (backend, options) in streams.items():
        options = {k: (spill if v == "SPILL" else v) for k, v in options.items()}
        stats = {}
        with vsrdeploy.open_bundle(bundle, backend=backend, threads=1) as up:
            results[name] = np.stack(list(up.stream(list(frames), stats=stats, **options)))
            results[name + "-f32"] = up.upscale(frames.transpose(0, 3, 1, 2).astype(np.float32) / 255)
        results[name + "-stats"] = np.array(json.dumps([stats.get("tiles"), stats.get("spill", "").split(" ")[0]]))
    np.savez(out_path, **results)
    print(json.dumps(sorted(m for m in ("torch", "torchvision") if m in sys.modules)))
""")


@pytest.fixture(scope="module")
def pp_bundle(tmp_path_factory):
    """A decomposed BasicVSR++ c8n1 bundle (openvino-cpu takes it; deformable alignment, second-order flows)."""
    torch.manual_seed(1)
    net = vsrdeploy.build_model("basicvsr_pp", mid_channels=8, num_blocks=1).eval()
    return vsrdeploy.export_onnx(net, tmp_path_factory.mktemp("pp") / "pp.vsr", dcn="decomposed")


def _streams(bundle, tmp_path, block: bool, frames) -> tuple[dict, list]:
    frames_path, out_path = tmp_path / "frames.npy", tmp_path / f"out-{block}.npz"
    np.save(frames_path, frames)
    spill = tmp_path / f"spill-{block}"
    spill.mkdir()
    code = (BLOCK_TORCH if block else "") + RUN
    done = subprocess.run([sys.executable, "-c", code, str(bundle), str(frames_path), str(out_path), str(spill),
                           json.dumps(STREAMS), "numpy" if block else "torch"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out_path) as data:
        return {k: data[k] for k in data.files}, json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("which", ["basicvsr", "basicvsr_pp"])
def test_stream_without_torch_is_bit_identical(which, tiny_bundle, pp_bundle, tmp_path):
    bundle = tiny_bundle if which == "basicvsr" else pp_bundle
    frames = (np.random.default_rng(3).random((5, 72, 88, 3)) * 255).astype(np.uint8)  # uint8 HWC clip
    free, free_modules = _streams(bundle, tmp_path, True, frames)
    with_torch, torch_modules = _streams(bundle, tmp_path, False, frames)
    assert free_modules == [] and torch_modules == ["torch"]
    assert set(free) == set(with_torch)
    for name in free:
        np.testing.assert_array_equal(free[name], with_torch[name], err_msg=name)
    assert json.loads(str(free["ort-tiles-spilled-stats"])) == [[4, 64, 64], "spilling"]
    assert free["ort-window"].dtype == np.uint8 and free["ort-window"].shape == (5, 288, 352, 3)


def test_torch_callers_get_the_same_frames_as_numpy_callers(tiny_bundle):
    """torch in, torch out on a numpy backend: the arrays change kind at the edges only."""
    clip = np.random.default_rng(4).random((3, 3, 24, 28)).astype(np.float32)
    with vsrdeploy.open_bundle(tiny_bundle, backend="ort-cpu") as up:
        as_numpy = up.upscale(clip)
        as_torch = up.upscale(torch.from_numpy(clip))
        # the network path beside it: same cells in PyTorch, ORT's rounding apart
        reference = up.bundle.load_network()(torch.from_numpy(clip)[None]).clamp(0, 1)[0].numpy()
    assert isinstance(as_torch, torch.Tensor)
    np.testing.assert_array_equal(as_torch.numpy(), as_numpy)
    np.testing.assert_allclose(as_numpy, reference, atol=1e-5)


def test_frame_conversions_numpy_and_torch_agree_on_every_integer_value():
    """uint8 / uint16 frames scale to float32 and back with the same bits through numpy and through torch."""
    for dtype, top in ((np.uint8, 255), (np.uint16, 65535)):
        values = np.arange(top + 1, dtype=np.int64)
        side = int(np.ceil(np.sqrt(values.size)))
        frame = np.resize(values, side * side).reshape(side, side, 1).repeat(3, axis=2).astype(dtype)
        kind = frame_kind(frame)
        a = to_network(frame, kind, "cpu", "numpy")
        t = to_network(frame, kind, "cpu", "torch")
        assert isinstance(a, np.ndarray) and a.dtype == np.float32
        np.testing.assert_array_equal(a, t.numpy())
        out_a, out_t = from_network(a[0], kind), from_network(t[0], kind)
        np.testing.assert_array_equal(out_a, out_t)
        np.testing.assert_array_equal(out_a, frame)  # and the round trip is exact
    # float outputs: clamped alike, NaN kept alike
    out = np.array([[[-0.5, 0.25, 1.5, np.nan]]] * 3, dtype=np.float32)
    kind = frame_kind(np.zeros((3, 2, 2), np.float32))
    np.testing.assert_array_equal(from_network(out, kind), from_network(torch.from_numpy(out), kind))


def test_spec_from_manifest_plans_like_the_network(pp_bundle):
    """The manifest's record (ports, halos, largest operations, minimum size) gives the planner what the
    network gives it: same per-call costs, same cells."""
    bundle = Bundle(pp_bundle)
    spec = NetSpec.from_manifest(bundle.manifest)
    net = bundle.load_network()
    assert spec is not None and type(spec.schedule()) is type(net.schedule())
    assert (spec.scale, spec.pad_multiple, spec.min_input_size) == (net.scale, net.pad_multiple, net.min_input_size)
    assert spec.mid_channels == net.mid_channels
    spec_costs, net_costs = CellCosts(spec), CellCosts(net)
    for name, cell in net.cells.items():
        got = spec.cells[name]
        assert (got.inputs, got.outputs, got.stateless, got.halo) == (cell.inputs, cell.outputs, cell.stateless,
                                                                      cell.halo)
        for size in ((180, 320), (270, 480), (37, 53)):
            assert spec_costs.per_item(name, *size) == net_costs.per_item(name, *size)


def test_old_bundles_without_the_record_fall_back_to_the_network(tiny_bundle, tmp_path):
    """A manifest without the 0.3.12 record (halo, largest_op, port scales, min_input_size) is planned from the
    network's code (PyTorch), as before."""
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    del manifest["min_input_size"]
    assert NetSpec.from_manifest(manifest) is None
    bundle = Bundle(tiny_bundle)
    assert isinstance(bundle.spec(), NetSpec)
    assert isinstance(bundle.skeleton(), torch.nn.Module)


def test_without_torch_an_edited_manifest_is_still_refused(tiny_bundle, tmp_path, monkeypatch):
    """The manifest check builds the network (PyTorch); a process without PyTorch has a child process do it, and
    remembers a manifest that passed. An edited, re-hashed manifest is refused there as here."""
    import shutil

    from vsrdeploy.manifest import HASH_KEY, description_sha256
    monkeypatch.setenv("VSRDEPLOY_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "bad.vsr"
    shutil.copytree(tiny_bundle, bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["cells"]["extra_cell"] = dict(manifest["cells"]["warp"])
    manifest[HASH_KEY] = description_sha256(manifest)
    (bad / "manifest.json").write_text(json.dumps(manifest))
    code = BLOCK_TORCH + textwrap.dedent("""
        import sys
        from vsrdeploy.bundle import Bundle
        from vsrdeploy.errors import BundleError
        Bundle(sys.argv[1])  # passes (checked in a child), and is remembered
        try:
            Bundle(sys.argv[2])
        except BundleError as e:
            print(e)
    """)
    done = subprocess.run([sys.executable, "-c", code, str(tiny_bundle), str(bad)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "extra_cell" in done.stdout and "does not have" in done.stdout
    remembered = list((tmp_path / "cache" / "checked-manifests").rglob("*"))
    assert [p.name for p in remembered if p.is_file()] == [description_sha256(
        json.loads((tiny_bundle / "manifest.json").read_text()))]


def test_owned_copies_only_views_of_larger_arrays():
    batch = np.zeros((4, 8, 5, 5), np.float32)
    part = batch[1:2]
    kept = owned(part)
    assert kept is not part and kept.base is None and np.shares_memory(part, batch)
    whole = np.zeros((1, 8, 5, 5), np.float32)
    assert owned(whole) is whole
    reshaped = batch.reshape(4, 200)
    assert owned(reshaped) is reshaped  # a view of the same bytes: nothing else kept alive, no copy
    # a runtime's output array on its own buffer object (ONNX Runtime's outputs sit on a capsule): kept as is,
    # and a slice of it copied
    on_buffer = np.frombuffer(bytearray(4 * 8 * 25 * 4), np.float32).reshape(4, 8, 5, 5)
    assert owned(on_buffer) is on_buffer and owned(on_buffer[:1]).base is None
