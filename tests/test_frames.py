"""Frame sources and sinks: round trips, conversions, atomic writes and every user-facing error."""
import io
import sys

import numpy as np
import pytest

from vsrdeploy.errors import InputError, OutputError
from vsrdeploy.io import existing_frames, open_sink, open_source

cv2 = pytest.importorskip("cv2")


def make_frames(n=3, h=24, w=32, seed=0):
    """Smooth float32 (3, H, W) RGB frames in [0, 1] that differ per frame and per channel."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        a, b, c = rng.uniform(0.2, 0.8, 3)
        frames.append(np.stack([a * x / w, b * y / h, np.full((h, w), c, np.float32)]).astype(np.float32))
    return frames


def read_all(spec, **kwargs):
    with open_source(spec, **kwargs) as source:
        return source.info, list(source)


def write_all(spec, frames, **kwargs):
    with open_sink(spec, **kwargs) as sink:
        for frame in frames:
            sink.write(frame)
    return sink


# ------------------------------------------------------------------------------------------ raw stdio


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_raw_stdout_stdin_round_trip(bit_depth):
    frames = make_frames()
    out = io.BytesIO()
    sink = write_all("-", frames, bit_depth=bit_depth, stdout=out)
    bytes_per_sample = bit_depth // 8
    assert sink.frames_written == 3 and len(out.getvalue()) == 3 * 24 * 32 * 3 * bytes_per_sample
    notices = []
    info, back = read_all("-", raw_size=(32, 24), raw_bit_depth=bit_depth, stdin=io.BytesIO(out.getvalue()),
                          notice=notices.append)
    assert (info.width, info.height, info.fps, info.num_frames) == (32, 24, None, None)
    assert len(back) == 3 and all(f.dtype == np.float32 and f.shape == (3, 24, 32) for f in back)
    step = 1 / (2 ** bit_depth - 1)
    for a, b in zip(frames, back):
        np.testing.assert_allclose(a, b, atol=step / 2 + 1e-6)
    assert notices == (["input is 16-bit: converted to float"] if bit_depth == 16 else [])


def test_raw_layout_is_interleaved_rgb48le():
    frame = np.zeros((3, 1, 2), np.float32)
    frame[0, 0, 0], frame[2, 0, 1] = 1.0, 2.0  # 2.0 is clipped to 1
    out = io.BytesIO()
    write_all("-", [frame], bit_depth=16, stdout=out)
    assert np.frombuffer(out.getvalue(), "<u2").tolist() == [65535, 0, 0, 0, 0, 65535]


def test_raw_stdin_needs_size():
    with pytest.raises(InputError, match=r"--raw-size WxH"):
        open_source("-", stdin=io.BytesIO(b"\0" * 12))


def test_raw_stdin_partial_trailing_frame():
    data = io.BytesIO(bytes(2 * 2 * 3 + 5))
    with open_source("-", raw_size=(2, 2), stdin=data) as source:
        next(source)
        with pytest.raises(InputError, match=r"got 5 of 12 bytes"):
            next(source)


def test_raw_stdin_empty():
    with pytest.raises(InputError, match=r"stdin contains no frames"):
        open_source("-", raw_size=(2, 2), stdin=io.BytesIO())


# ------------------------------------------------------------------------------------ PNG directories


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_png_directory_round_trip(tmp_path, bit_depth):
    frames = make_frames()
    sink = write_all(str(tmp_path / "out"), frames, bit_depth=bit_depth)
    assert sink.frames_written == 3 and sink.path == str(tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"frame_00000{i}.png" for i in range(3)]
    assert cv2.imread(str(tmp_path / "out" / "frame_000000.png"), cv2.IMREAD_UNCHANGED).dtype == (
        np.uint16 if bit_depth == 16 else np.uint8)
    notices = []
    info, back = read_all(str(tmp_path / "out"), notice=notices.append)
    assert (info.width, info.height, info.fps, info.num_frames) == (32, 24, None, 3)
    assert info.description.startswith("image directory") and "32x24, 3 frames" in info.description
    step = 1 / (2 ** bit_depth - 1)
    for a, b in zip(frames, back):
        np.testing.assert_allclose(a, b, atol=step / 2 + 1e-6)
    assert notices == (["input is 16-bit: converted to float"] if bit_depth == 16 else [])


def test_directory_natural_order_and_extensions(tmp_path):
    for value, name in [(10, "f10.PNG"), (2, "f2.jpg"), (1, "f1.bmp"), (3, "f3.TIF")]:
        cv2.imwrite(str(tmp_path / name.lower()), np.full((4, 4, 3), value * 20, np.uint8))
        (tmp_path / name.lower()).rename(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not a frame")
    _, back = read_all(str(tmp_path))
    assert [round(float(f.mean()) * 255 / 20) for f in back] == [1, 2, 3, 10]


def test_bgr_alpha_and_grayscale_conversions(tmp_path):
    rgba_dir, gray_dir = tmp_path / "rgba", tmp_path / "gray"
    rgba_dir.mkdir(), gray_dir.mkdir()
    for i in range(3):
        cv2.imwrite(str(rgba_dir / f"{i}.png"), np.full((4, 5, 4), (10, 20, 30, 128), np.uint8))  # BGRA
        cv2.imwrite(str(gray_dir / f"{i}.png"), np.full((4, 5), 1000 * (i + 1), np.uint16))
    notices = []
    _, back = read_all(str(rgba_dir), notice=notices.append)
    assert notices == ["input has an alpha channel: dropped"]
    assert back[0].shape == (3, 4, 5)
    np.testing.assert_allclose(back[0][:, 0, 0], np.array([30, 20, 10]) / 255, atol=1e-6)
    notices = []
    _, back = read_all(str(gray_dir), notice=notices.append)
    assert sorted(notices) == ["input is 16-bit: converted to float", "input is grayscale: converted to RGB"]
    np.testing.assert_allclose(back[2], np.full((3, 4, 5), 3000 / 65535), atol=1e-6)


def test_png_sink_refuses_existing_frames_and_resumes(tmp_path):
    out = tmp_path / "out"
    frames = make_frames(5)
    write_all(str(out), frames[:3])
    with pytest.raises(OutputError, match=r"already has 3 frames; pass --resume"):
        open_sink(str(out))
    sink = write_all(str(out), frames[3:], resume=True)
    assert sink.start_index == 3 and sink.frames_written == 2
    assert existing_frames(out) == 5
    _, back = read_all(str(out))
    for a, b in zip(frames, back):
        np.testing.assert_allclose(a, b, atol=0.5 / 255 + 1e-6)


def test_png_sink_abort_keeps_completed_frames(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with open_sink(str(out)) as sink:
            sink.write(make_frames(1)[0])
            raise RuntimeError("interrupted")
    assert sorted(p.name for p in out.iterdir()) == ["frame_000000.png"]


def test_existing_frames_counts_consecutive_from_zero(tmp_path):
    for i in (0, 1, 3):
        (tmp_path / f"frame_{i:06d}.png").touch()
    assert existing_frames(tmp_path) == 2
    assert existing_frames(tmp_path / "missing") == 0


# ----------------------------------------------------------------------------------------------- video


def test_video_round_trip_mjpg_avi(tmp_path):
    path = tmp_path / "clip.AVI"
    frames = make_frames(5, h=48, w=64)
    sink = write_all(str(path), frames, fps=10, codec="MJPG")
    assert sink.frames_written == 5 and path.is_file()
    info, back = read_all(str(path))
    assert (info.width, info.height, info.num_frames, info.fps) == (64, 48, 5, 10.0)
    assert info.description == f"video {path} (64x48, 10.0 fps, 5 frames)"
    assert len(back) == 5
    for a, b in zip(frames, back):
        assert b.shape == (3, 48, 64) and np.abs(a - b).mean() < 0.03


def test_video_write_is_atomic(tmp_path):
    path, temp = tmp_path / "clip.avi", tmp_path / ".clip.avi.partial.avi"
    frames = make_frames(3)
    sink = open_sink(str(path), fps=10, codec="MJPG")
    for frame in frames:
        sink.write(frame)
    assert not path.exists() and temp.exists()
    sink.close()
    assert path.exists() and not temp.exists()

    path.unlink()
    with pytest.raises(KeyboardInterrupt):
        with open_sink(str(path), fps=10, codec="MJPG") as sink:
            sink.write(frames[0])
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_video_default_fps_notice(tmp_path):
    notices = []
    write_all(str(tmp_path / "a.avi"), make_frames(1), codec="mjpeg", notice=notices.append)
    assert len(notices) == 1 and "25 fps" in notices[0]
    assert read_all(str(tmp_path / "a.avi"))[0].fps == 25.0


# ---------------------------------------------------------------------------------------------- errors


def test_missing_input(tmp_path):
    with pytest.raises(InputError, match=r"input not found: .*nope\.mp4"):
        open_source(str(tmp_path / "nope.mp4"))


def test_directory_without_images(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(InputError, match=r"no images in directory"):
        open_source(str(tmp_path))


def test_undecodable_video(tmp_path):
    (tmp_path / "x.mp4").write_bytes(b"not a video at all" * 64)
    with pytest.raises(InputError, match=r"cannot decode video .*x\.mp4"):
        open_source(str(tmp_path / "x.mp4"))


def test_undecodable_image_is_named(tmp_path):
    cv2.imwrite(str(tmp_path / "a1.png"), np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "a2.png").write_bytes(b"garbage")
    with open_source(str(tmp_path)) as source, pytest.raises(InputError, match=r"cannot decode image .*a2\.png"):
        list(source)


def test_images_of_different_sizes(tmp_path):
    cv2.imwrite(str(tmp_path / "1.png"), np.zeros((4, 4, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "2.png"), np.zeros((4, 6, 3), np.uint8))
    with open_source(str(tmp_path)) as source, pytest.raises(InputError, match=r"2\.png is 6x4 .* first image is 4x4"):
        list(source)


def test_devices_and_streams_that_do_not_open(monkeypatch):
    opened = []

    class ClosedCapture:
        def __init__(self, target):
            opened.append(target)

        def isOpened(self):
            return False

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoCapture", ClosedCapture)
    with pytest.raises(InputError, match=r"cannot open capture device 3"):
        open_source("device:3")
    with pytest.raises(InputError, match=r"cannot open capture device 0"):
        open_source("0")
    assert opened == [3, 0]


def test_stream_that_does_not_open():
    pytest.importorskip("av")
    with pytest.raises(InputError, match=r"cannot open stream rtsp://127\.0\.0\.1:9/live: .*check that it exists"):
        open_source("rtsp://127.0.0.1:9/live")


def test_video_under_missing_directory(tmp_path):
    with pytest.raises(OutputError, match=r"cannot write .*out\.mp4: directory .* does not exist"):
        open_sink(str(tmp_path / "missing" / "out.mp4"))


def test_png_directory_that_cannot_be_created(tmp_path):
    (tmp_path / "taken").write_text("a file, not a directory")
    with pytest.raises(OutputError, match=r"cannot write .*taken: it exists and is not a directory"):
        open_sink(str(tmp_path / "taken"))
    with pytest.raises(OutputError, match=r"cannot write .*taken.*sub"):
        open_sink(str(tmp_path / "taken" / "sub"))


@pytest.mark.parametrize("kwargs, message", [
    ({"codec": "H26"}, r"unknown video encoder 'H26'; choose one of libx264, libx265"),
    ({"bit_depth": 16}, r"bit depth is set by --pix-fmt \(e\.g\. yuv420p10le\), not --bit-depth 16"),
    ({"codec": "libx264", "crf": 60}, r"--crf for libx264 must be in 0\.\.51, got 60"),
    ({"codec": "ffv1", "crf": 10}, r"--crf does not apply to ffv1"),
    ({"codec": "libx264", "pix_fmt": "rgb48le"}, r"encoder libx264 cannot write pixel format rgb48le"),
    ({"bit_depth": 12}, r"bit depth must be 8 or 16"),
    ({"resume": True}, r"--resume works only with a PNG directory"),
])
def test_bad_video_sink_options(tmp_path, kwargs, message):
    with pytest.raises(OutputError, match=message):
        open_sink(str(tmp_path / "out.mp4"), **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_codec_the_container_refuses(tmp_path):
    with pytest.raises(OutputError, match=r"\.webm files cannot hold libx264 video; choose another --codec"):
        open_sink(str(tmp_path / "out.webm"), fps=10, codec="libx264")
    assert list(tmp_path.iterdir()) == []


def test_missing_opencv(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(InputError, match=r'pip install "vsrdeploy\[video\]"'):
        open_source(str(tmp_path))
    with pytest.raises(OutputError, match=r'pip install "vsrdeploy\[video\]"'):
        open_sink(str(tmp_path / "out"))
    out = io.BytesIO()
    write_all("-", make_frames(1), stdout=out)  # raw stdio needs no OpenCV
    assert len(read_all("-", raw_size=(32, 24), stdin=io.BytesIO(out.getvalue()))[1]) == 1
