"""What every frame source and sink shares: the frame convention, stamps, selection, atomic file helpers.

Inside vsrdeploy a frame is a float32 numpy array of shape (3, H, W), RGB, with values in [0, 1]. A source
yields frames and, when asked (``follow_stamps``), records for each frame a :class:`Stamp`: its
presentation time in the source's time base and its role (warm-up, kept, or tail context). A sink writes
frames, optionally with those presentation times, so variable frame rates survive a run.
"""
from __future__ import annotations

import errno
import os
import sys
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import InputError, OutputError

Notice = Callable[[str], None]

WARM, KEEP, TAIL = "warm", "keep", "tail"


def stderr_notice(message: str) -> None:
    print(f"vsrdeploy: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class Selection:
    """Which frames of a source a run keeps: from ``start`` seconds, ``frames`` of them or ``duration``
    seconds' worth. ``warmup`` frames before the start and ``tail`` frames after the end are delivered too
    (role WARM / TAIL) so that recurrent state sees the context a full run would give it."""
    start: float | None = None
    frames: int | None = None
    duration: float | None = None
    warmup: int = 0
    tail: int = 0

    def __post_init__(self):
        for name in ("start", "duration"):
            value = getattr(self, name)
            if value is not None and not (value >= 0 and np.isfinite(value)):
                raise InputError(f"--{name} must be a time >= 0 in seconds (or HH:MM:SS.ms), got {value}")
        if self.frames is not None and self.frames < 1:
            raise InputError(f"--frames must be >= 1, got {self.frames}")
        if self.warmup < 0 or self.tail < 0:
            raise InputError(f"--warmup must be >= 0, got {self.warmup}")

    @property
    def seeks(self) -> bool:
        return bool(self.start)

    @property
    def limited(self) -> bool:
        return self.frames is not None or self.duration is not None


ALL = Selection()


def frame_time_base(fps: float | None) -> Fraction | None:
    """1/fps as a fraction (pts counts frames), None without a rate."""
    return 1 / Fraction(fps).limit_denominator(1001000) if fps else None


def select(items: Iterable[tuple], selection: Selection) -> Iterator[tuple]:
    """Items (payload, time_s, pts) -> (payload, pts, role). ``time_s`` may be None only without a start."""
    warm: deque = deque(maxlen=selection.warmup or 1)
    started = selection.start is None or selection.start <= 0
    kept, first_time, tail = 0, None, 0
    for payload, time_s, pts in items:
        if not started:
            if time_s is None:
                raise InputError("this input has no timestamps, so --start cannot find its frames; give --fps")
            if time_s < selection.start - 1e-6:
                if selection.warmup:
                    warm.append((payload, pts))
                continue
            started = True
            for p, t in warm:
                yield p, t, WARM
            warm.clear()
        if first_time is None:
            first_time = time_s
        within = (selection.frames is None or kept < selection.frames) and (
            selection.duration is None or time_s is None or time_s - first_time < selection.duration - 1e-6)
        if within:
            kept += 1
            yield payload, pts, KEEP
        elif tail < selection.tail:
            tail += 1
            yield payload, pts, TAIL
        else:
            return


# ------------------------------------------------------------------------------------------------ sources


@dataclass
class SourceInfo:
    width: int
    height: int
    fps: float | None  # None when unknown (image directories, raw stdin without --fps)
    num_frames: int | None  # frames kept by the selection, None when unknown (streams, stdin)
    description: str  # e.g. "video clip.avi (768x576, 10.0 fps, 795 frames)"
    path: str | None = None  # the file or directory read, when there is one
    time_base: Fraction | None = None  # unit of the stamps' pts; None: stamps carry no pts
    kind: str = ""  # "video", "images", "raw", "device"
    bit_depth: int = 8
    color: dict = field(default_factory=dict)  # primaries, trc, matrix, range as FFmpeg's enum values
    rotation: float = 0.0  # degrees, from the display matrix
    pix_fmt: str | None = None
    selection: Selection = ALL


@dataclass(frozen=True)
class Stamp:
    pts: int | None  # in SourceInfo.time_base
    role: str  # WARM, KEEP or TAIL


class Converter:
    """Turns decoded images (H, W[, C]) into frames, announcing each kind of conversion once."""

    def __init__(self, notice: Notice, bgr: bool = False):
        self._notice = notice
        self._bgr = bgr
        self._said: set[str] = set()

    def say(self, message: str) -> None:
        if message not in self._said:
            self._said.add(message)
            self._notice(message)

    def said(self, message: str) -> None:
        """Marks ``message`` as already announced."""
        self._said.add(message)

    def _to_float(self, image: np.ndarray) -> np.ndarray:
        if image.dtype == np.uint8:
            return image.astype(np.float32) / 255.0
        if image.dtype.kind == "u" and image.dtype.itemsize == 2:  # uint16 of either byte order
            self.say("input is 16-bit: converted to float")
            return image.astype(np.float32) / 65535.0
        if image.dtype.kind == "f":
            return np.clip(image.astype(np.float32), 0.0, 1.0)
        raise InputError(f"unsupported pixel type {image.dtype}; convert the input to 8-bit or 16-bit RGB")

    def _to_three_channels(self, image: np.ndarray) -> np.ndarray:
        if image.ndim == 2:
            image = image[:, :, None]
        channels = image.shape[2]
        if channels == 1:
            self.say("input is grayscale: converted to RGB")
            return np.repeat(image, 3, axis=2)
        if channels == 4:
            self.say("input has an alpha channel: dropped")
            return image[:, :, :3]
        if channels == 3:
            return image
        raise InputError(f"unsupported image with {channels} channels; convert the input to RGB")

    def __call__(self, image: np.ndarray) -> np.ndarray:
        image = self._to_three_channels(self._to_float(image))
        if self._bgr:
            image = image[:, :, ::-1]
        return np.ascontiguousarray(image.transpose(2, 0, 1))


def describe(label: str, width: int, height: int, fps: float | None, num_frames: int | None) -> str:
    details = [f"{width}x{height}"]
    if fps is not None:
        details.append(f"{round(fps, 3)} fps")
    if num_frames is not None:
        details.append(f"{num_frames} frame{'s' * (num_frames != 1)}")
    return f"{label} ({', '.join(details)})"


class FrameSource:
    """Iterable of float32 (3, H, W) RGB frames in [0, 1]. ``info`` is known right after opening because the
    first frame is decoded eagerly. Close it (or use it as a context manager).

    ``items`` yields (payload, pts, role); ``decode(payload)`` gives the image (H, W[, C]) that the
    converter turns into a frame, so frames dropped by a selection are never converted."""

    def __init__(self, items: Iterable[tuple], *, decode: Callable[[object], np.ndarray] = lambda p: p,
                 converter: Converter, label: str, fps: float | None, num_frames: int | None,
                 close: Callable[[], None] = lambda: None, **info):
        self._items: Iterator[tuple] = iter(items)
        self._decode = decode
        self._release = close
        self._convert = converter
        self._stamps: deque | None = None
        try:
            first = next(self._items, None)
            if first is None:
                raise InputError(f"{label} contains no frames; give an input with at least one frame")
            self._first = (self._convert(self._decode(first[0])), Stamp(first[1], first[2]))
        except BaseException:
            self.close()
            raise
        height, width = self._first[0].shape[1:]
        self.info = SourceInfo(width, height, fps, num_frames, describe(label, width, height, fps, num_frames),
                               **info)

    def follow_stamps(self) -> deque:
        """Start recording one Stamp per frame delivered (a deque the caller pops from, in order)."""
        if self._stamps is None:
            self._stamps = deque()
        return self._stamps

    def __iter__(self) -> FrameSource:
        return self

    def __next__(self) -> np.ndarray:
        if self._first is not None:
            (frame, stamp), self._first = self._first, None
        else:
            payload, pts, role = next(self._items)
            frame, stamp = self._convert(self._decode(payload)), Stamp(pts, role)
        if self._stamps is not None:
            self._stamps.append(stamp)
        return frame

    def close(self) -> None:
        # finish the decoding generators first, while what they read from is still open
        items, self._items = self._items, iter(())
        if hasattr(items, "close"):
            items.close()
        release, self._release = self._release, lambda: None
        release()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -------------------------------------------------------------------------------------------------- sinks


def quantize(frame: np.ndarray, bit_depth: int) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> contiguous (H, W, 3) uint8 or uint16."""
    frame = np.asarray(frame, dtype=np.float32)
    if frame.ndim != 3 or frame.shape[0] != 3:
        raise ValueError(f"a frame must have shape (3, H, W), got {frame.shape}")
    top, dtype = (255.0, np.uint8) if bit_depth == 8 else (65535.0, np.uint16)
    return np.ascontiguousarray(np.rint(np.clip(frame, 0.0, 1.0) * top).astype(dtype).transpose(1, 2, 0))


class FrameSink:
    """Writes float32 (3, H, W) RGB frames (clipped to [0, 1], then quantized to ``bit_depth``).
    ``close()`` finalizes, ``abort()`` discards unfinished output; as a context manager it closes on
    success and aborts on an exception. ``start_index`` is the first frame number written (resume).
    ``write(frame, pts)`` takes the frame's presentation time in the time base the sink was opened with."""

    def __init__(self, path: str, bit_depth: int):
        self.path = path
        self.bit_depth = bit_depth
        self.frames_written = 0
        self.start_index = 0

    def write(self, frame: np.ndarray, pts: int | None = None) -> None:
        self._write_image(quantize(frame, self.bit_depth), pts)
        self.frames_written += 1

    def _write_image(self, image: np.ndarray, pts: int | None) -> None:
        """Writes one (H, W, 3) RGB uint8/uint16 image."""
        raise NotImplementedError

    def check_settings(self, settings: dict) -> None:
        """Sinks that can be resumed record ``settings`` and refuse to continue under different ones."""

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


# ----------------------------------------------------------------------------------------- file helpers


def cannot_write(target, error: BaseException, note: str = "") -> OutputError:
    """The one-line error for a failed write; says what to do about a full disk."""
    number = getattr(error, "errno", None)
    lines = str(error).strip().splitlines()
    reason = getattr(error, "strerror", None) or (lines[-1] if lines else type(error).__name__)
    if number in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(f"cannot write {target}: no space left on the device; free some space or write to "
                           f"another disk{note}")
    return OutputError(f"cannot write {target}: {reason}; choose a writable output path{note}")


def replace(source: Path, target: Path) -> None:
    try:
        os.replace(source, target)
    except OSError as e:
        raise cannot_write(target, e) from None


def remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def partial_name(path: Path) -> Path:
    """The temporary name a file is written under until it is complete."""
    return path.with_name(f".{path.name}.partial{path.suffix}")


def check_writable(directory: Path, target: Path) -> None:
    """Raises OutputError unless files can be created in ``directory`` (an existing directory)."""
    if not directory.is_dir():
        raise OutputError(f"cannot write {target}: directory {directory} does not exist; create it first")
    probe = directory / f".vsrdeploy-probe-{os.getpid()}"
    try:
        if not os.access(directory, os.W_OK):
            raise PermissionError(errno.EACCES, "permission denied")
        with open(probe, "xb"):
            pass
        probe.unlink()
    except OSError as e:
        raise cannot_write(target, e) from None


def write_file_atomically(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file; every write and the close are checked."""
    temp = partial_name(path)
    try:
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        remove(temp)
        raise cannot_write(path, e) from None
    replace(temp, path)


def refuse_same_file(output: Path, source_path: str | None) -> None:
    """An output that is the input (the same path, a symlink or a hard link to it) is refused."""
    if source_path is None or not output.exists():
        return
    try:
        same = os.path.samefile(output, source_path)
    except OSError:
        return
    if same:
        raise OutputError(f"output {output} is the input {source_path} (same file); choose another output path")


def check_frame_bytes(width: int, height: int, bytes_per_sample: int, what: str) -> None:
    """Refuses frames that cannot be held, before anything is allocated: a side over 32768 pixels, or a
    float32 frame plus its x4 output larger than the memory available."""
    limit = 32768
    if width > limit or height > limit:
        raise InputError(f"{what} frame size {width}x{height} is too large (each side at most {limit}); "
                         "check --raw-size WxH")
    needed = width * height * 3 * 4 * (1 + 16)  # float32 input + x4 float32 output
    available = _available_memory()
    if available is not None and needed > available:
        raise InputError(f"{what} frame size {width}x{height} needs {needed / 2**30:.1f} GiB per frame (input and "
                         f"x4 output as float32) but {available / 2**30:.1f} GiB is available; check --raw-size WxH")


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
