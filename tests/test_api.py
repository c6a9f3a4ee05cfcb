"""The Python API (issue 14 item 4): what `Upscaler.upscale` / `stream` take and give back, clamping,
close() and the context manager, unknown backend options, static-shape bundles, shipped model names."""
import numpy as np
import pytest
import torch

import vsrdeploy
from vsrdeploy.bundle import Bundle
from vsrdeploy.errors import BackendUnavailable, InputError
from vsrdeploy.runtimes.engine import Upscaler
from vsrdeploy.runtimes.frame_types import frame_kind

from tests.conftest import random_clip

pytest.importorskip("onnxruntime")

T, H, W = 3, 32, 40


@pytest.fixture(scope="module")
def up(tiny_bundle):
    with vsrdeploy.open_bundle(tiny_bundle, backend="ort-cpu") as u:
        yield u


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return random_clip(t=T, h=H, w=W)[0].numpy()  # (T, 3, H, W) float32 in [0, 1]


@pytest.fixture(scope="module")
def expected(up, clip) -> np.ndarray:
    return up.upscale(clip, clamp=False)


def test_numpy_float_chw_in_numpy_float_out(up, clip, expected):
    out = up.upscale(clip)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (T, 3, 4 * H, 4 * W)
    np.testing.assert_allclose(out, np.clip(expected, 0, 1), atol=0)
    frames = list(up.stream(iter(clip), window=2, lookahead=1))
    assert all(isinstance(f, np.ndarray) and f.shape == (3, 4 * H, 4 * W) for f in frames)


def test_torch_in_torch_out_on_backend_device(up, clip, expected):
    out = up.upscale(torch.from_numpy(clip))
    # the backend's device: "cpu" (a string) on the numpy backends, a torch.device on the torch ones
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and str(out.device) == str(up.backend.device)
    np.testing.assert_allclose(out.numpy(), np.clip(expected, 0, 1), atol=0)
    streamed = list(up.stream(torch.from_numpy(clip), window=None, lookahead=0))
    assert all(isinstance(f, torch.Tensor) and str(f.device) == str(up.backend.device) for f in streamed)
    # float64 / float16 tensors are taken too; outputs are float32
    assert up.upscale(torch.from_numpy(clip).double()).dtype == torch.float32


def test_uint8_and_uint16_hwc_numpy(up, clip, expected):
    hwc8 = np.round(clip.transpose(0, 2, 3, 1) * 255).astype(np.uint8)  # (T, H, W, 3)
    out8 = up.upscale(hwc8)
    assert out8.dtype == np.uint8 and out8.shape == (T, 4 * H, 4 * W, 3)
    ref8 = up.upscale(hwc8.transpose(0, 3, 1, 2).astype(np.float32) / 255)
    np.testing.assert_array_equal(out8, np.round(ref8.transpose(0, 2, 3, 1) * 255).astype(np.uint8))
    hwc16 = np.round(clip.transpose(0, 2, 3, 1) * 65535).astype(np.uint16)
    out16 = up.upscale(list(hwc16))  # a list of frames: stacked in their kind
    assert out16.dtype == np.uint16 and out16.shape == (T, 4 * H, 4 * W, 3)
    assert np.abs(out16.astype(np.float64) / 65535 - np.clip(expected, 0, 1).transpose(0, 2, 3, 1)).max() < 1e-4


def test_uint8_chw_torch(up, clip):
    chw8 = torch.from_numpy(np.round(clip * 255).astype(np.uint8))
    out = up.upscale(chw8)
    assert out.dtype == torch.uint8 and tuple(out.shape) == (T, 3, 4 * H, 4 * W)


def test_generator_and_path(up, clip, expected, tmp_path):
    def frames():
        yield from clip
    out = up.upscale(frames())
    assert isinstance(out, np.ndarray) and out.shape == expected.shape
    np.testing.assert_allclose(out, np.clip(expected, 0, 1), atol=0)

    import cv2
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(clip):
        cv2.imwrite(str(folder / f"{i:04d}.png"), np.round(f.transpose(1, 2, 0)[:, :, ::-1] * 255).astype(np.uint8))
    from_dir = up.upscale(str(folder))
    assert isinstance(from_dir, np.ndarray) and from_dir.shape == expected.shape
    quantized = up.upscale(np.round(clip * 255) / 255)
    np.testing.assert_allclose(from_dir, quantized, atol=1e-5)
    assert len(list(up.stream(folder, window=2, lookahead=1))) == T


def test_clamp(up, clip):
    # the network adds a residual to the bilinear-upsampled input: an input beyond [0, 1] gives outputs beyond it
    wild = clip * 3 - 1
    raw = up.upscale(wild, clamp=False)
    assert raw.min() < 0 and raw.max() > 1
    clamped = up.upscale(wild)
    np.testing.assert_array_equal(clamped, np.clip(raw, 0, 1))
    streamed = np.stack(list(up.stream(wild, window=None, lookahead=0, clamp=False)))
    np.testing.assert_allclose(streamed, raw, atol=0)
    as_torch = up.upscale(torch.from_numpy(wild))
    assert float(as_torch.min()) == 0 and float(as_torch.max()) == 1


@pytest.mark.parametrize("frames,match", [
    (np.zeros((2, 8, 8, 3), np.float32), r"frame 0: expected a \(3, H, W\) RGB frame, got shape \(8, 8, 3\) "
                                         r"\(an HWC float frame: pass frame.transpose\(2, 0, 1\)"),
    (np.zeros((2, 3, 8, 8), np.uint8), r"frame 0: expected a \(H, W, 3\) RGB frame, got shape \(3, 8, 8\)"),
    (np.zeros((2, 3, 8, 8), np.int32), r"numpy dtype int32 is not supported"),
    ([[1, 2, 3]], r"expected a numpy array or a torch tensor, got list"),
    (np.zeros((3, 8, 8), np.float32), r"upscale takes a clip of frames, got one 3-D frame; pass frame\[None\]"),
    ([], r"empty clip"),
    (iter([]), r"empty clip"),
    (5, r"frames must be an iterable of frames, a 4-D array or tensor, or a video / image-directory path; "
        r"got int"),
])
def test_bad_frames_are_one_line_input_errors(up, frames, match):
    with pytest.raises(InputError, match=match):
        up.upscale(frames)


def test_frame_kind_rule():
    assert frame_kind(np.zeros((4, 5, 3), np.uint8)).channels_last
    assert not frame_kind(np.zeros((3, 4, 5), np.float32)).channels_last
    # a 3x3 RGB float frame is CHW: the dtype decides, never the shape
    assert not frame_kind(np.zeros((3, 3, 3), np.float64)).channels_last
    assert frame_kind(np.zeros((3, 3, 3), np.uint16)).int_max == 65535


def test_close_and_context_manager(tiny_bundle, clip):
    with vsrdeploy.open_bundle(tiny_bundle, backend="ort-cpu") as u:
        backend = u.backend
        assert backend.sessions and u.upscale(clip[:2]).shape[0] == 2
    assert u.closed and not hasattr(backend, "sessions") and "closed" in repr(u)
    with pytest.raises(BackendUnavailable, match="this Upscaler is closed; open another"):
        u.upscale(clip[:2])
    u.close()  # idempotent


@pytest.mark.parametrize("backend,options,match", [
    ("ort-cpu", {"thread": 2}, r"backend ort-cpu got unknown option\(s\) thread; it takes: arena, threads"),
    ("torch", {"precision": "fp16"}, r"backend torch got unknown option\(s\) precision; it takes: dcn_kernel, fp16, "
                                     r"fp32_weights, threads"),
    ("openvino-cpu", {"fp16": True, "zz": 1}, r"unknown option\(s\) fp16, zz; it takes: fp32_coordinates, keep_working_sets, precision, threads, unload_outputs_above"),
])
def test_unknown_backend_option_is_a_type_error(tiny_bundle, backend, options, match):
    with pytest.raises(TypeError, match=match):
        vsrdeploy.open_bundle(tiny_bundle, backend=backend, **options)
    with pytest.raises(TypeError, match=match):
        Upscaler.create(Bundle(tiny_bundle), backend, **options)


def test_static_shape_bundle_other_size(tmp_path):
    torch.manual_seed(0)
    net = vsrdeploy.build_model("basicvsr", mid_channels=8, num_blocks=1).eval()
    path = vsrdeploy.export_onnx(net, tmp_path / "s.vsr", static_shape=(32, 48))
    with vsrdeploy.open_bundle(path, backend="ort-cpu") as u:
        assert u.upscale(random_clip(t=2, h=32, w=48)[0]).shape == (2, 3, 128, 192)
        with pytest.raises(InputError, match=r"frame 0 is 40x32 \(WxH\) but the bundle .* was exported for 48x32 "
                                             r"frames only \(--static-shape\); export it again"):
            u.upscale(random_clip(t=2, h=32, w=40)[0])


def test_shipped_model_name_opens(monkeypatch, tmp_path):
    monkeypatch.setenv("VSRDEPLOY_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    from vsrdeploy.export.cache import bundle_for
    bundle = bundle_for("basicvsr", "ort-cpu")
    assert bundle.arch == "basicvsr"
    with pytest.raises(InputError, match=r"not found: nope \(expected a checkpoint file, a .vsr bundle directory, "
                                         r"or a shipped model \(basicvsr, basicvsr_pp\)\)"):
        bundle_for("nope", "ort-cpu")


def test_torch_frames_are_not_moved_off_the_backend_device():
    # no GPU here: the meta device stands in for cuda; the conversions never copy torch frames to the CPU
    from vsrdeploy.runtimes.frame_types import from_network, to_network
    meta = torch.device("meta")
    for frame in (torch.zeros(3, 2, 2), torch.zeros(3, 2, 2, dtype=torch.uint8)):
        kind = frame_kind(frame)
        assert to_network(frame, kind, meta).device == meta
        out = from_network(torch.empty(3, 8, 8, device=meta), kind)
        assert out.device == meta and out.dtype == frame.dtype
