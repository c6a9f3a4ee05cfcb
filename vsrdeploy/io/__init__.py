"""Frame sources and sinks: video files and streams (PyAV), image directories, raw pipes, capture devices.

``open_source`` and ``open_sink`` pick the endpoint from the spec; each kind lives in its own module.
Heavy libraries (PyAV, OpenCV) are imported only by the endpoint that needs them.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError, OutputError
from .base import (ALL, FrameSink, FrameSource, Notice, Selection, SourceInfo, Stamp, refuse_same_file,
                   stderr_notice)
from .images import FRAME_NAME, IMAGE_EXTENSIONS, RUN_RECORD, existing_frames
from .video import CONTAINERS, DEFAULT_FPS, RECOMMENDED_CODECS, VIDEO_EXTENSIONS, VideoOptions

__all__ = ["open_source", "open_sink", "FrameSource", "FrameSink", "SourceInfo", "Selection", "Stamp",
           "VideoOptions", "existing_frames", "FRAME_NAME", "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "CONTAINERS",
           "DEFAULT_FPS", "RECOMMENDED_CODECS", "RUN_RECORD"]

_DEVICE = re.compile(r"^(?:device:)?(\d+)$")


def open_source(spec: str, *, raw_size: tuple[int, int] | None = None, raw_bit_depth: int = 8, stdin=None,
                notice: Notice | None = None, fps: float | None = None, selection: Selection = ALL) -> FrameSource:
    """Opens ``spec``: "-" (raw RGB on stdin), an image directory, a video file, a capture device
    ("0", "device:0") or a stream URL. ``fps`` gives a rate to inputs that have none; ``selection``
    cuts a part out (with warm-up frames). Raises InputError when it cannot be read."""
    from . import capture, images, raw, video

    notice = notice or stderr_notice
    if fps is not None and not fps > 0:
        raise InputError(f"--fps must be > 0, got {fps}")
    if spec == "-":
        return raw.open_stdin(raw_size, raw_bit_depth, stdin, notice, fps, selection)
    path = Path(spec)
    if path.is_dir():
        return images.open_directory(path, notice, fps, selection)
    if path.is_file():
        return video.open_video(str(path), f"video {path}", notice, fps, selection)
    if device := _DEVICE.match(spec):
        return capture.open_device(int(device.group(1)), notice, selection)
    if video.is_url(spec):
        return video.open_video(spec, f"stream {spec}", notice, fps, selection)
    raise InputError(f"input not found: {spec}; give a video file, an image directory, '-' for raw stdin, "
                     "a capture device number or a stream URL")


def open_sink(spec: str, *, fps: float | None = None, codec: str | None = None, bit_depth: int = 8,
              resume: bool = False, stdout=None, notice: Notice | None = None, crf: int | None = None,
              preset: str | None = None, pix_fmt: str | None = None, audio: bool = True,
              like: SourceInfo | None = None) -> FrameSink:
    """Opens ``spec`` for writing: "-" (raw RGB on stdout), a video file (by extension: .mp4, .mkv, ...) or
    a directory of PNGs (a path without an extension). ``like`` is the input's SourceInfo: the video sink
    takes its timestamps, colour tags, rotation and other streams from it, and an output that is the
    input file is refused. Raises OutputError before any frame is processed when it cannot be written."""
    from . import images, raw, video

    notice = notice or stderr_notice
    if bit_depth not in (8, 16):
        raise OutputError(f"bit depth must be 8 or 16, got {bit_depth}")
    path = Path(spec)
    suffix = path.suffix.lower()
    is_video = suffix in VIDEO_EXTENSIONS
    if resume and (spec == "-" or is_video):
        raise OutputError("--resume works only with a PNG directory output; remove --resume or write a directory")
    if spec == "-":
        return raw.RawSink(stdout, bit_depth)
    refuse_same_file(path, like.path if like else None)
    if is_video:
        return video.open_video_sink(path, fps=fps, options=video.VideoOptions(codec, crf, preset, pix_fmt, audio),
                                     like=like, bit_depth=bit_depth, notice=notice)
    if suffix and not path.is_dir():
        raise OutputError(f"unknown output type {suffix!r} for {spec}; give a video file "
                          f"({', '.join(sorted(VIDEO_EXTENSIONS))}), a directory path without an extension "
                          "for PNG frames, or - for raw RGB on stdout")
    if codec or crf is not None or preset or pix_fmt:
        raise OutputError("--codec, --crf, --preset and --pix-fmt apply to video outputs; "
                          f"give a {', '.join(sorted(VIDEO_EXTENSIONS))} file or remove them")
    return images.open_png_sink(path, bit_depth, resume, notice)
