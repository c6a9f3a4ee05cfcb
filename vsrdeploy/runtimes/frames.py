"""Sources and sinks of video frames.

Inside vsrdeploy a frame is a float32 numpy array of shape (3, H, W), RGB, with values in [0, 1].
``open_source`` reads raw RGB from stdin, an image directory, a video file, a capture device or a
stream; ``open_sink`` writes raw RGB to stdout, a video file or a directory of PNGs. Files appear
under their final names only when complete, so an interrupted run never leaves a truncated one.
OpenCV is an optional extra and is imported only where it is needed.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import InputError, OutputError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mkv", ".mov", ".m4v"})
FRAME_NAME = "frame_{:06d}.png"
DEFAULT_FPS = 25.0
_FRAME_FILE = re.compile(r"^frame_\d{6}\.png$")
_STREAM_URL = re.compile(r"^(rtsp|rtmp|https?|udp|tcp)://", re.IGNORECASE)
_DEVICE = re.compile(r"^(?:device:)?(\d+)$")
_RAW_DTYPES = {8: np.dtype(np.uint8), 16: np.dtype("<u2")}

Notice = Callable[[str], None]


def _stderr_notice(message: str) -> None:
    print(f"vsrdeploy: {message}", file=sys.stderr)


def _import_cv2(error: type[Exception]):
    try:
        import cv2
    except ImportError:
        raise error('reading and writing images and videos needs OpenCV: pip install "vsrdeploy[video]"') from None
    return cv2


# ---------------------------------------------------------------------------------------------- sources


@dataclass
class SourceInfo:
    width: int
    height: int
    fps: float | None  # None when unknown (image directories, raw stdin)
    num_frames: int | None  # None when unknown (streams, stdin)
    description: str  # e.g. "video clip.avi (768x576, 10.0 fps, 795 frames)"


class _Converter:
    """Turns decoded images (H, W[, C]) into frames, announcing each kind of conversion once."""

    def __init__(self, notice: Notice, bgr: bool):
        self._notice = notice
        self._bgr = bgr
        self._said: set[str] = set()

    def _say(self, message: str) -> None:
        if message not in self._said:
            self._said.add(message)
            self._notice(message)

    def _to_float(self, image: np.ndarray) -> np.ndarray:
        if image.dtype == np.uint8:
            return image.astype(np.float32) / 255.0
        if image.dtype.kind == "u" and image.dtype.itemsize == 2:  # uint16 of either byte order
            self._say("input is 16-bit: converted to float")
            return image.astype(np.float32) / 65535.0
        if image.dtype.kind == "f":
            return np.clip(image.astype(np.float32), 0.0, 1.0)
        raise InputError(f"unsupported pixel type {image.dtype}; convert the input to 8-bit or 16-bit RGB")

    def _to_three_channels(self, image: np.ndarray) -> np.ndarray:
        if image.ndim == 2:
            image = image[:, :, None]
        channels = image.shape[2]
        if channels == 1:
            self._say("input is grayscale: converted to RGB")
            return np.repeat(image, 3, axis=2)
        if channels == 4:
            self._say("input has an alpha channel: dropped")
            return image[:, :, :3]
        if channels == 3:
            return image
        raise InputError(f"unsupported image with {channels} channels; convert the input to RGB")

    def __call__(self, image: np.ndarray) -> np.ndarray:
        image = self._to_three_channels(self._to_float(image))
        if self._bgr:
            image = image[:, :, ::-1]
        return np.ascontiguousarray(image.transpose(2, 0, 1))


def _describe(label: str, width: int, height: int, fps: float | None, num_frames: int | None) -> str:
    details = [f"{width}x{height}"]
    if fps is not None:
        details.append(f"{round(fps, 3)} fps")
    if num_frames is not None:
        details.append(f"{num_frames} frame{'s' * (num_frames != 1)}")
    return f"{label} ({', '.join(details)})"


class FrameSource:
    """Iterable of float32 (3, H, W) RGB frames in [0, 1]. ``info`` is known right after opening
    because the first frame is decoded eagerly. Close it (or use it as a context manager)."""

    def __init__(self, images: Iterable[np.ndarray], *, label: str, fps: float | None,
                 num_frames: int | None, bgr: bool, notice: Notice, close: Callable[[], None] = lambda: None):
        self._images: Iterator[np.ndarray] = iter(images)
        self._release = close
        self._convert = _Converter(notice, bgr)
        try:
            first = next(self._images, None)
            if first is None:
                raise InputError(f"{label} contains no frames; give an input with at least one frame")
            self._first: np.ndarray | None = self._convert(first)
        except BaseException:
            self.close()
            raise
        height, width = self._first.shape[1:]
        self.info = SourceInfo(width, height, fps, num_frames, _describe(label, width, height, fps, num_frames))

    def __iter__(self) -> FrameSource:
        return self

    def __next__(self) -> np.ndarray:
        if self._first is not None:
            frame, self._first = self._first, None
            return frame
        return self._convert(next(self._images))

    def close(self) -> None:
        release, self._release = self._release, lambda: None
        release()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _read_exactly(stream, size: int) -> bytes:
    """Reads up to ``size`` bytes, fewer only at the end of the stream (pipes return short reads)."""
    data = bytearray()
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def _raw_frames(stream, width: int, height: int, dtype: np.dtype) -> Iterator[np.ndarray]:
    frame_bytes = width * height * 3 * dtype.itemsize
    while data := _read_exactly(stream, frame_bytes):
        if len(data) < frame_bytes:
            raise InputError(f"stdin ended inside a frame: got {len(data)} of {frame_bytes} bytes for a "
                             f"{width}x{height} frame; check --raw-size and the raw pixel format")
        yield np.frombuffer(data, dtype).reshape(height, width, 3)


def _open_stdin(raw_size, bit_depth: int, stdin, notice: Notice) -> FrameSource:
    if raw_size is None:
        raise InputError("raw frames on stdin need their size: pass --raw-size WxH")
    width, height = raw_size
    if width <= 0 or height <= 0:
        raise InputError(f"invalid raw frame size {width}x{height}; pass --raw-size WxH with positive numbers")
    if bit_depth not in _RAW_DTYPES:
        raise InputError(f"raw bit depth must be 8 (rgb24) or 16 (rgb48le), got {bit_depth}")
    stream = stdin if stdin is not None else sys.stdin.buffer
    pixel_format = "rgb24" if bit_depth == 8 else "rgb48le"
    return FrameSource(_raw_frames(stream, width, height, _RAW_DTYPES[bit_depth]), label=f"raw {pixel_format} stdin",
                       fps=None, num_frames=None, bgr=False, notice=notice)


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _image_files(directory: Path) -> list[Path]:
    files = [p for p in directory.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    return sorted(files, key=lambda p: _natural_key(p.name))


def _directory_images(paths: list[Path], cv2) -> Iterator[np.ndarray]:
    size = None
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise InputError(f"cannot decode image {path}; replace or remove the file")
        if size is None:
            size = image.shape[:2]
        elif image.shape[:2] != size:
            raise InputError(f"image {path} is {image.shape[1]}x{image.shape[0]} but the first image is "
                             f"{size[1]}x{size[0]}; give frames that all have the same size")
        yield image


def _open_directory(directory: Path, notice: Notice) -> FrameSource:
    cv2 = _import_cv2(InputError)
    paths = _image_files(directory)
    if not paths:
        raise InputError(f"no images in directory {directory}; "
                         f"put frames there as {', '.join(sorted(IMAGE_EXTENSIONS))} files")
    return FrameSource(_directory_images(paths, cv2), label=f"image directory {directory}", fps=None,
                       num_frames=len(paths), bgr=True, notice=notice)


def _capture_frames(capture) -> Iterator[np.ndarray]:
    while True:
        ok, image = capture.read()
        if not ok:
            return
        yield image


def _open_capture(target: str | int, label: str, is_file: bool, notice: Notice) -> FrameSource:
    cv2 = _import_cv2(InputError)
    capture = cv2.VideoCapture(target)
    if not capture.isOpened():
        capture.release()
        fix = "convert it with ffmpeg, e.g. to .mp4 (H.264)" if is_file else "check that it exists and is reachable"
        raise InputError(f"cannot {'decode' if is_file else 'open'} {label}: OpenCV cannot open it; {fix}")
    fps = capture.get(cv2.CAP_PROP_FPS)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if is_file else 0
    return FrameSource(_capture_frames(capture), label=label, fps=fps if fps > 0 else None,
                       num_frames=count if count > 0 else None, bgr=True, notice=notice, close=capture.release)


def open_source(spec: str, *, raw_size: tuple[int, int] | None = None, raw_bit_depth: int = 8,
                stdin=None, notice: Notice | None = None) -> FrameSource:
    """Opens ``spec``: "-" (raw RGB on stdin), an image directory, a video file, a capture device
    ("0", "device:0") or a stream URL. Raises InputError when it cannot be read."""
    notice = notice or _stderr_notice
    if spec == "-":
        return _open_stdin(raw_size, raw_bit_depth, stdin, notice)
    path = Path(spec)
    if path.is_dir():
        return _open_directory(path, notice)
    if path.is_file():
        return _open_capture(str(path), f"video {path}", True, notice)
    if device := _DEVICE.match(spec):
        return _open_capture(int(device.group(1)), f"capture device {device.group(1)}", False, notice)
    if _STREAM_URL.match(spec):
        return _open_capture(spec, f"stream {spec}", False, notice)
    raise InputError(f"input not found: {spec}; give a video file, an image directory, '-' for raw stdin, "
                     "a capture device number or a stream URL")


# ------------------------------------------------------------------------------------------------ sinks


class FrameSink:
    """Writes float32 (3, H, W) RGB frames (clipped to [0, 1], then quantized to ``bit_depth``).
    ``close()`` finalizes, ``abort()`` discards unfinished output; as a context manager it closes on
    success and aborts on an exception. ``start_index`` is the first frame number written (resume)."""

    def __init__(self, path: str, bit_depth: int):
        self.path = path
        self.bit_depth = bit_depth
        self.frames_written = 0
        self.start_index = 0

    def write(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame, dtype=np.float32)
        if frame.ndim != 3 or frame.shape[0] != 3:
            raise ValueError(f"a frame must have shape (3, H, W), got {frame.shape}")
        top, dtype = (255.0, np.uint8) if self.bit_depth == 8 else (65535.0, np.uint16)
        image = np.rint(np.clip(frame, 0.0, 1.0) * top).astype(dtype).transpose(1, 2, 0)
        self._write_image(np.ascontiguousarray(image))
        self.frames_written += 1

    def _write_image(self, image: np.ndarray) -> None:
        """Writes one (H, W, 3) RGB uint8/uint16 image."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def __enter__(self) -> FrameSink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class _RawSink(FrameSink):
    def __init__(self, stdout, bit_depth: int):
        super().__init__("-", bit_depth)
        self._stream = stdout if stdout is not None else sys.stdout.buffer

    def _write_image(self, image: np.ndarray) -> None:
        try:
            self._stream.write(image.astype(_RAW_DTYPES[self.bit_depth], copy=False).tobytes())
            self._stream.flush()
        except BrokenPipeError:
            raise OutputError("cannot write to stdout: the reading process closed the pipe; check the command "
                              "that reads vsrdeploy's output") from None


def _cannot_write(target: Path, error: OSError) -> OutputError:
    return OutputError(f"cannot write {target}: {error.strerror or error}; choose a writable output path")


def _replace(source: Path, target: Path) -> None:
    try:
        os.replace(source, target)
    except OSError as e:
        raise _cannot_write(target, e) from None


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


class _VideoSink(FrameSink):
    def __init__(self, path: Path, fps: float, fourcc: int, codec: str, cv2):
        super().__init__(str(path), 8)
        self._final = path
        self._temp = path.with_name(f".{path.name}.partial{path.suffix}")
        self._fps, self._fourcc, self._codec, self._cv2 = fps, fourcc, codec, cv2
        self._writer = None
        self._size: tuple[int, int] | None = None

    def _open_writer(self, width: int, height: int) -> None:
        writer = self._cv2.VideoWriter(str(self._temp), self._fourcc, self._fps, (width, height))
        if not writer.isOpened():
            writer.release()
            _remove(self._temp)
            raise OutputError(f"cannot write video {self._final} with codec {self._codec}; "
                              "try another codec, e.g. --codec MJPG with an .avi file")
        self._writer, self._size = writer, (width, height)

    def _write_image(self, image: np.ndarray) -> None:
        height, width = image.shape[:2]
        if self._writer is None:
            self._open_writer(width, height)
        elif (width, height) != self._size:
            raise ValueError(f"frame is {width}x{height} but the video is {self._size[0]}x{self._size[1]}")
        self._writer.write(image[:, :, ::-1])

    def _release(self) -> bool:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.release()
        return writer is not None

    def close(self) -> None:
        if self._release():
            _replace(self._temp, self._final)

    def abort(self) -> None:
        self._release()
        _remove(self._temp)


class _PngDirSink(FrameSink):
    def __init__(self, directory: Path, bit_depth: int, start_index: int, cv2):
        super().__init__(str(directory), bit_depth)
        self._directory = directory
        self.start_index = start_index
        self._cv2 = cv2

    def _write_image(self, image: np.ndarray) -> None:
        final = self._directory / FRAME_NAME.format(self.start_index + self.frames_written)
        temp = final.with_name(f".{final.name}.partial.png")
        try:
            written = self._cv2.imwrite(str(temp), image[:, :, ::-1])
        except self._cv2.error as e:
            written, reason = False, str(e).strip().splitlines()[-1]
        else:
            reason = "OpenCV could not write the PNG"
        if not written:
            _remove(temp)
            raise OutputError(f"cannot write {final}: {reason}; check free disk space and permissions")
        _replace(temp, final)


def _frame_files(directory: Path) -> set[str]:
    return {name for name in os.listdir(directory) if _FRAME_FILE.match(name)} if directory.is_dir() else set()


def existing_frames(directory) -> int:
    """Number of consecutive frames frame_000000.png, frame_000001.png, ... present from 0."""
    names = _frame_files(Path(directory))
    count = 0
    while FRAME_NAME.format(count) in names:
        count += 1
    return count


def _check_writable(directory: Path, target: Path) -> None:
    """Raises OutputError unless files can be created in ``directory`` (an existing directory)."""
    if not directory.is_dir():
        raise OutputError(f"cannot write {target}: directory {directory} does not exist; create it first")
    probe = directory / f".vsrdeploy-probe-{os.getpid()}"
    try:
        if not os.access(directory, os.W_OK):
            raise PermissionError("permission denied")
        with open(probe, "xb"):
            pass
        probe.unlink()
    except OSError as e:
        raise _cannot_write(target, e) from None


def _open_video_sink(path: Path, fps: float | None, codec: str, bit_depth: int, notice: Notice) -> FrameSink:
    cv2 = _import_cv2(OutputError)
    if bit_depth != 8:
        raise OutputError(f"video output is 8-bit; for --bit-depth {bit_depth} write a PNG directory "
                          "(an output path without a video extension)")
    if len(codec) != 4 or not codec.isascii():
        raise OutputError(f"codec must be a 4-character FourCC such as mp4v or MJPG, got {codec!r}")
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a directory; choose a video file name")
    _check_writable(path.parent, path)
    if fps is None:
        fps = DEFAULT_FPS
        notice(f"frame rate unknown: writing {path} at {DEFAULT_FPS:g} fps (pass --fps to change it)")
    return _VideoSink(path, fps, cv2.VideoWriter_fourcc(*codec), codec, cv2)


def _open_png_sink(directory: Path, bit_depth: int, resume: bool) -> FrameSink:
    cv2 = _import_cv2(OutputError)
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"cannot write {directory}: it exists and is not a directory; choose a directory path")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _cannot_write(directory, e) from None
    _check_writable(directory, directory)
    present = len(_frame_files(directory))
    if present and not resume:
        raise OutputError(f"output directory {directory} already has {present} frames; "
                          "pass --resume to continue it or choose an empty directory")
    return _PngDirSink(directory, bit_depth, existing_frames(directory) if resume else 0, cv2)


def open_sink(spec: str, *, fps: float | None = None, codec: str = "mp4v", bit_depth: int = 8,
              resume: bool = False, stdout=None, notice: Notice | None = None) -> FrameSink:
    """Opens ``spec`` for writing: "-" (raw RGB on stdout), a video file (by extension) or a directory
    of PNGs. Raises OutputError before any frame is processed when it cannot be written."""
    notice = notice or _stderr_notice
    if bit_depth not in (8, 16):
        raise OutputError(f"bit depth must be 8 or 16, got {bit_depth}")
    path = Path(spec)
    is_video = path.suffix.lower() in VIDEO_EXTENSIONS
    if resume and (spec == "-" or is_video):
        raise OutputError("--resume works only with a PNG directory output; remove --resume or write a directory")
    if spec == "-":
        return _RawSink(stdout, bit_depth)
    if is_video:
        return _open_video_sink(path, fps, codec, bit_depth, notice)
    return _open_png_sink(path, bit_depth, resume)
