"""Raw interleaved RGB frames on a pipe: rgb24 (8-bit) or rgb48le (16-bit), as ``ffmpeg -f rawvideo`` speaks."""
from __future__ import annotations

import contextlib
import sys
from typing import Iterator

import numpy as np

from ..errors import InputError, OutputError
from .base import (
    ALL,
    Converter,
    FrameSink,
    FrameSource,
    Notice,
    Selection,
    cannot_write,
    check_frame_bytes,
    frame_time_base,
    select,
)

RAW_DTYPES = {8: np.dtype(np.uint8), 16: np.dtype("<u2")}


def _read_exactly(stream, size: int) -> bytes:
    """Reads up to ``size`` bytes, fewer only at the end of the stream (pipes return short reads)."""
    data = bytearray()
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def _raw_frames(stream, width: int, height: int, dtype: np.dtype, fps: float | None) -> Iterator[tuple]:
    frame_bytes = width * height * 3 * dtype.itemsize
    index = 0
    while data := _read_exactly(stream, frame_bytes):
        if len(data) < frame_bytes:
            raise InputError(f"stdin ended inside a frame: got {len(data)} of {frame_bytes} bytes for a "
                             f"{width}x{height} frame; check --raw-size and the raw pixel format")
        yield np.frombuffer(data, dtype).reshape(height, width, 3), (index / fps if fps else None), index
        index += 1


def open_stdin(raw_size, bit_depth: int, stdin, notice: Notice, fps: float | None = None,
               selection: Selection = ALL) -> FrameSource:
    if raw_size is None:
        raise InputError("raw frames on stdin need their size: pass --raw-size WxH")
    width, height = raw_size
    if width <= 0 or height <= 0:
        raise InputError(f"invalid raw frame size {width}x{height}; pass --raw-size WxH with positive numbers")
    if bit_depth not in RAW_DTYPES:
        raise InputError(f"raw bit depth must be 8 (rgb24) or 16 (rgb48le), got {bit_depth}")
    check_frame_bytes(width, height, RAW_DTYPES[bit_depth].itemsize, "raw")
    stream = stdin if stdin is not None else sys.stdin.buffer
    pixel_format = "rgb24" if bit_depth == 8 else "rgb48le"
    items = select(_raw_frames(stream, width, height, RAW_DTYPES[bit_depth], fps), selection)
    return FrameSource(items, converter=Converter(notice), label=f"raw {pixel_format} stdin", fps=fps,
                       num_frames=selection.frames, bit_depth=bit_depth, selection=selection, kind="raw",
                       time_base=frame_time_base(fps))


class RawSink(FrameSink):
    def __init__(self, stdout, bit_depth: int):
        super().__init__("-", bit_depth)
        self._stream = stdout if stdout is not None else sys.stdout.buffer

    def _write_image(self, image: np.ndarray, pts) -> None:
        with _stdout_errors():
            self._stream.write(image.astype(RAW_DTYPES[self.bit_depth], copy=False).tobytes())
            self._stream.flush()

    def close(self) -> None:
        with _stdout_errors():
            self._stream.flush()


@contextlib.contextmanager
def _stdout_errors():
    """A closed pipe or a failed write on stdout as one-line OutputErrors."""
    try:
        yield
    except BrokenPipeError:
        raise OutputError("cannot write to stdout: the reading process closed the pipe; check the command "
                          "that reads vsrdeploy's output") from None
    except OSError as e:
        raise cannot_write("stdout", e) from None
