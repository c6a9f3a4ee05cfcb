"""Video files and network streams, read and written with PyAV (FFmpeg).

Reading keeps each frame's timestamp, decodes 10/12/16-bit video at full precision, converts YUV to RGB
with the matrix and range the stream is tagged with, and seeks (``--start``) with warm-up frames before
the start. Writing encodes with FFmpeg's encoders (libx264, libx265, libsvtav1, libvpx-vp9, ffv1,
prores_ks, ...), carries timestamps, colour tags and rotation over from the input, and copies the input's
audio, subtitle and data streams unchanged. The file appears under its name only once it is complete.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError, OutputError
from .base import (ALL, Converter, FrameSink, FrameSource, Notice, Selection, SourceInfo, cannot_write,
                   check_writable, partial_name, remove, replace, select)

DEFAULT_FPS = 25.0


def import_av(error: type[Exception]):
    try:
        import av
    except ImportError:
        raise error('reading and writing video files needs PyAV: pip install "vsrdeploy[video]"') from None
    return av


# ------------------------------------------------------------------------------------------- codecs


@dataclass(frozen=True)
class CodecProfile:
    """How ``--crf`` and ``--preset`` map onto one encoder's options, and its defaults."""
    quality: str | None  # the encoder option --crf sets ("crf", "qscale"), None: no quality knob
    default_quality: int | None
    quality_range: tuple[int, int] | None
    preset: str | None  # the encoder option --preset sets
    default_preset: str | None
    pix_fmt: str  # default for 8-bit input
    pix_fmt_high: str | None  # default for >8-bit input
    options: dict = field(default_factory=dict)


CODECS = {
    "libx264": CodecProfile("crf", 18, (0, 51), "preset", "medium", "yuv420p", "yuv420p10le"),
    "libx265": CodecProfile("crf", 18, (0, 51), "preset", "medium", "yuv420p", "yuv420p10le",
                            {"x265-params": "log-level=error"}),
    "libsvtav1": CodecProfile("crf", 24, (0, 63), "preset", "8", "yuv420p", "yuv420p10le"),
    "libvpx-vp9": CodecProfile("crf", 24, (0, 63), "cpu-used", "4", "yuv420p", "yuv420p10le",
                               {"b": "0", "row-mt": "1"}),
    "ffv1": CodecProfile(None, None, None, None, None, "gbrp", "gbrp16le", {"level": "3"}),
    "prores_ks": CodecProfile(None, None, None, "profile", "hq", "yuv422p10le", "yuv422p10le"),
    "mpeg4": CodecProfile("qscale", 2, (1, 31), None, None, "yuv420p", None),
    "mjpeg": CodecProfile("qscale", 2, (1, 31), None, None, "yuvj420p", None),
}
RECOMMENDED_CODECS = ("libx264", "libx265", "libsvtav1", "libvpx-vp9", "ffv1", "prores_ks")
CONTAINERS = {".mp4": "libx264", ".m4v": "libx264", ".mov": "libx264", ".mkv": "libx264", ".avi": "libx264",
              ".webm": "libvpx-vp9", ".nut": "ffv1"}
VIDEO_EXTENSIONS = frozenset(CONTAINERS)
FOURCCS = {"mp4v": "mpeg4", "xvid": "mpeg4", "mjpg": "mjpeg", "ffv1": "ffv1", "avc1": "libx264",
           "h264": "libx264", "x264": "libx264", "hevc": "libx265", "hvc1": "libx265", "vp09": "libvpx-vp9",
           "av01": "libsvtav1"}
_HIGH_BIT_RGB = "rgb48le"


@dataclass(frozen=True)
class VideoOptions:
    codec: str | None = None  # FFmpeg encoder name; None: the container's default
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    audio: bool = True  # copy audio streams of the input


def _resolve_codec(name: str | None, suffix: str, notice: Notice) -> str:
    if name is None:
        return CONTAINERS[suffix]
    if name.lower() in FOURCCS and name not in CODECS:
        codec = FOURCCS[name.lower()]
        notice(f"--codec {name} is a FourCC; using the FFmpeg encoder {codec} (pass --codec {codec})")
        return codec
    return name


def _pick_pix_fmt(codec, profile: CodecProfile | None, requested: str | None, source_bits: int,
                  source_pix_fmt: str | None, notice: Notice) -> str:
    supported = [f.name for f in (codec.video_formats or [])]
    if requested:
        if supported and requested not in supported:
            raise OutputError(f"encoder {codec.name} cannot write pixel format {requested}; "
                              f"it takes {', '.join(supported)}")
        return requested
    if source_bits > 8 and source_pix_fmt in supported:
        return source_pix_fmt
    candidates = [profile.pix_fmt_high if source_bits > 8 and profile else None, profile.pix_fmt if profile else None,
                  "yuv420p"] + supported
    choice = next(c for c in candidates if c and (not supported or c in supported))
    if source_bits > 8 and _format_bits(choice) <= 8:
        notice(f"input is {source_bits}-bit but {codec.name} writes {choice} (8-bit); pass --pix-fmt or "
               "another --codec to keep the bit depth")
    return choice


def _format_bits(pix_fmt: str) -> int:
    import av
    return max(c.bits for c in av.VideoFormat(pix_fmt).components)


# ------------------------------------------------------------------------------------------- reading


def _matrix(color: dict, height: int) -> int:
    """FFmpeg colour-matrix value for YUV<->RGB: the tagged one, else BT.709 for HD and BT.601 below."""
    value = color.get("matrix", 2)
    if value in (1, 4, 5, 6, 7, 9, 10):
        return 9 if value == 10 else value
    return 1 if height >= 720 else 5


def _range(color: dict) -> int:
    return 2 if color.get("range") == 2 else 1  # JPEG (full) only when tagged so


def _color_of(frame) -> dict:
    return {"primaries": int(frame.color_primaries), "trc": int(frame.color_trc),
            "matrix": int(frame.colorspace), "range": int(frame.color_range)}


class _VideoDecoder:
    """av.VideoFrame -> (H, W, 3) RGB uint8, or uint16 for inputs above 8 bits, with the stream's matrix."""

    def __init__(self, color: dict, height: int, bits: int, is_rgb: bool):
        self.format = "rgb24" if bits <= 8 else _HIGH_BIT_RGB
        self._kwargs = {} if is_rgb else {"src_colorspace": _matrix(color, height), "src_color_range": _range(color),
                                          "dst_color_range": 2}

    def __call__(self, frame) -> np.ndarray:
        return frame.to_ndarray(format=self.format, **self._kwargs)


def _frame_times(decoded: Iterator, stream, first_frames: list) -> Iterator[tuple]:
    """(frame, seconds, pts) for each decoded frame; pts made up from the rate where the file has none."""
    rate = stream.average_rate or stream.guessed_rate or Fraction(int(DEFAULT_FPS))
    tb = stream.time_base
    step = max(1, round(1 / (rate * tb))) if tb else 1
    last = None

    def stamped(frame):
        nonlocal last
        pts = frame.pts if frame.pts is not None else (last + step if last is not None else 0)
        last = pts
        return frame, float(pts * tb), pts

    for frame in first_frames:
        yield stamped(frame)
    for frame in decoded:
        yield stamped(frame)


def _decode_errors(av, label: str, frames: Iterator) -> Iterator:
    try:
        yield from frames
    except av.FFmpegError as e:
        raise InputError(f"cannot decode {label}: {e}; check the file (e.g. with ffprobe) or convert it with "
                         "ffmpeg") from None


def _seek(container, stream, start: float, warmup: int, rate: Fraction) -> tuple[list, Iterator]:
    """Positions the demuxer so that ``warmup`` frames before ``start`` will be decoded. Returns the frames
    decoded while checking and the decoding iterator to continue with."""
    margin = (warmup + 2) / float(rate)
    origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    seeked = False
    while True:
        target = start - margin
        if target <= origin:
            if seeked:
                container.seek(stream.start_time or 0, stream=stream, backward=True)
            return [], container.decode(stream)
        container.seek(int(target / stream.time_base), stream=stream, backward=True)
        seeked = True
        decoded = container.decode(stream)
        first = next(decoded, None)
        if first is None:
            return [], decoded
        if first.time is None or first.time <= start - (warmup + 0.5) / float(rate):
            return [first], decoded
        margin *= 2


def open_video(spec: str, label: str, notice: Notice, fps: float | None = None, selection: Selection = ALL,
               options: dict | None = None) -> FrameSource:
    av = import_av(InputError)
    try:
        container = av.open(spec, options=options or {}, timeout=10)
    except av.FFmpegError as e:
        is_file = Path(spec).exists()
        fix = "convert it with ffmpeg, e.g. to .mp4 (H.264)" if is_file else "check that it exists and is reachable"
        raise InputError(f"cannot {'decode' if is_file else 'open'} {label}: {e.strerror or e}; {fix}") from None
    try:
        if not container.streams.video:
            raise InputError(f"{label} has no video stream; give a file with video")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        if fps and rate:
            notice(f"{label} has its own frame rate ({float(rate):g} fps); --fps ignored")
        source_fps = float(rate) if rate else fps
        first, decoded = _seek(container, stream, selection.start, selection.warmup,
                               rate or Fraction(int(DEFAULT_FPS))) if selection.seeks else ([], container.decode(stream))
        frames = _decode_errors(av, label, _frame_times(decoded, stream, first))
        probe = next(frames, None)
        if probe is None:
            raise InputError(f"{label} contains no frames; give an input with at least one frame")
        frame0 = probe[0]
        bits = max(c.bits for c in frame0.format.components)
        color = _color_of(frame0)
        is_rgb = frame0.format.name.startswith(("rgb", "bgr", "gbr", "argb", "abgr"))
        if bits > 8:
            notice(f"input is {bits}-bit ({frame0.format.name}): decoded at 16-bit precision")
        decoder = _VideoDecoder(color, frame0.height, bits, is_rgb)
        count = stream.frames or None
        if selection.seeks or selection.limited:
            count = selection.frames
        rotation = float(getattr(frame0, "rotation", 0) or 0)

        def chained():
            yield probe
            yield from frames

        converter = Converter(notice)
        converter.said("input is 16-bit: converted to float")  # announced above with the real depth
        source = FrameSource(select(chained(), selection), decode=decoder, converter=converter,
                             label=f"{label}", fps=source_fps, num_frames=count, close=container.close,
                             path=spec if Path(spec).exists() else None, kind="video", time_base=stream.time_base,
                             bit_depth=bits, color=color, rotation=rotation, pix_fmt=frame0.format.name,
                             selection=selection)
    except BaseException:
        container.close()
        raise
    return source


# ------------------------------------------------------------------------------------------- writing


class _Remuxer:
    """Copies the non-video streams of the input into the output, interleaved with the video by time,
    shifted so the output starts at the first kept frame."""

    def __init__(self, av, output, suffix: str, path: str, start: float, audio: bool, notice: Notice):
        self._input = av.open(path)
        self._pairs = {}
        supported = output.supported_codecs
        for stream in self._input.streams:
            if stream.type == "video" or (stream.type == "audio" and not audio):
                continue
            name = stream.codec_context.name if stream.codec_context else None
            if stream.type in ("audio", "subtitle") and name not in supported:
                notice(f"{stream.type} stream {stream.index} ({name}) cannot go into {suffix} "
                       "files: left out (choose .mkv to keep it)")
                continue
            try:
                self._pairs[stream.index] = output.add_stream_from_template(stream)
            except (ValueError, av.FFmpegError) as e:
                notice(f"{stream.type} stream {stream.index} cannot be copied ({e}): left out")
        self._start = start
        self._packets = self._input.demux([s for s in self._input.streams if s.index in self._pairs]) \
            if self._pairs else iter(())
        if start > 0 and self._pairs:
            self._input.seek(int(start * 1_000_000), backward=True)  # AV_TIME_BASE units, all streams
        self._pending = None

    @property
    def start(self) -> float:
        return self._start

    @property
    def streams(self) -> int:
        return len(self._pairs)

    def _next(self):
        for packet in self._packets:
            if packet.dts is None and packet.pts is None:
                continue
            if packet.stream.index in self._pairs:
                return packet
        return None

    def copy_until(self, output, until: float | None) -> None:
        """Muxes the packets that start before ``until`` seconds after the start (all when None)."""
        while True:
            packet = self._pending or self._next()
            self._pending = None
            if packet is None:
                return
            tb = packet.time_base
            when = float((packet.pts if packet.pts is not None else packet.dts) * tb)
            if self._start > 0 and when < self._start - 1e-6:
                continue  # before the cut (without a cut nothing is dropped: priming packets have negative times)
            if until is not None and when - self._start >= until:
                self._pending = packet
                return
            shift = round(self._start / tb)
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = self._pairs[packet.stream.index]
            output.mux(packet)

    def close(self) -> None:
        self._input.close()


class VideoFileSink(FrameSink):
    def __init__(self, path: Path, *, fps: float, codec: str, options: VideoOptions, like: SourceInfo | None,
                 notice: Notice, av):
        self._av = av
        self._final = path
        self._temp = partial_name(path)
        self._notice = notice
        self._options = options
        self._like = like
        self._fps = Fraction(fps).limit_denominator(1001000)
        self._codec_name = codec
        self._codec = av.codec.Codec(codec, "w")
        self._profile = CODECS.get(codec)
        self._pix_fmt = _pick_pix_fmt(self._codec, self._profile, options.pix_fmt,
                                      like.bit_depth if like else 8, like.pix_fmt if like else None, notice)
        super().__init__(str(path), 16 if _format_bits(self._pix_fmt) > 8 else 8)
        self._time_base = like.time_base if like and like.time_base else 1 / self._fps
        self._output = None
        self._stream = None
        self._remux: _Remuxer | None = None
        self._start_pts = None
        self._last_pts = None
        self._size = None
        self._encoder = self._encoder_options()  # validated before anything is created
        self._file = None
        try:
            # through a Python file, so that every failed write (a full disk) raises instead of being dropped
            self._file = open(self._temp, "wb")
            self._output = av.open(self._file, "w", format=_format_for(path))
        except (OSError, av.FFmpegError) as e:
            self.abort()
            raise cannot_write(path, e) from None
        if codec not in self._output.supported_codecs:
            self.abort()
            raise OutputError(f"{path.suffix} files cannot hold {codec} video; choose another --codec or container "
                              f"(e.g. .mkv takes them all)")

    # -- setup on the first frame
    def _encoder_options(self) -> dict:
        profile, o = self._profile, self._options
        options = dict(profile.options) if profile else {}
        if o.crf is not None:
            if not profile or profile.quality is None:
                raise OutputError(f"--crf does not apply to {self._codec_name}; it applies to "
                                  f"{', '.join(c for c, p in CODECS.items() if p.quality)}")
            low, high = profile.quality_range
            if not low <= o.crf <= high:
                raise OutputError(f"--crf for {self._codec_name} must be in {low}..{high}, got {o.crf}")
        if o.preset is not None and (not profile or profile.preset is None):
            raise OutputError(f"--preset does not apply to {self._codec_name}; it applies to "
                              f"{', '.join(c for c, p in CODECS.items() if p.preset)}")
        if profile and profile.quality == "crf":
            options["crf"] = str(o.crf if o.crf is not None else profile.default_quality)
        if profile and profile.preset:
            options[profile.preset] = str(o.preset if o.preset is not None else profile.default_preset)
        return options

    def _open_stream(self, width: int, height: int) -> None:
        av, like = self._av, self._like
        stream = self._output.add_stream(self._codec_name, rate=self._fps, options=self._encoder)
        stream.width, stream.height, stream.pix_fmt = width, height, self._pix_fmt
        stream.time_base = self._time_base
        ctx = stream.codec_context
        ctx.time_base = self._time_base
        profile = self._profile
        if profile and profile.quality == "qscale":
            ctx.qscale = True
            ctx.global_quality = (self._options.crf or profile.default_quality) * 118  # FF_QP2LAMBDA
        color = dict(like.color) if like else {}
        self._matrix = _matrix(color, height)
        self._range = 2 if self._pix_fmt.startswith("yuvj") else _range(color)
        is_rgb = self._pix_fmt.startswith(("gbr", "rgb", "bgr"))
        ctx.colorspace = 0 if is_rgb else self._matrix
        ctx.color_range = self._range
        if color.get("primaries") not in (None, 2):
            ctx.color_primaries = color["primaries"]
        if color.get("trc") not in (None, 2):
            ctx.color_trc = color["trc"]
        self._is_rgb = is_rgb
        if like and like.rotation:
            stream.set_display_rotation(like.rotation)
        if like and like.path and like.kind == "video":
            try:
                start = float(self._start_pts * self._time_base) if like.selection.seeks else 0.0
                self._remux = _Remuxer(av, self._output, self._final.suffix, like.path, start, self._options.audio, self._notice)
            except av.FFmpegError as e:
                self._notice(f"cannot copy the other streams of {like.path} ({e}): video only")
        self._stream, self._size = stream, (width, height)

    # -- writing
    def _mux(self, packets) -> None:
        for packet in packets:
            self._output.mux(packet)

    def _write_image(self, image: np.ndarray, pts: int | None) -> None:
        av = self._av
        height, width = image.shape[:2]
        if pts is None:  # a frame without a time: the next one at the frame rate
            pts = round(self.frames_written / (self._fps * self._time_base))
        if self._start_pts is None:
            self._start_pts = pts
        if self._like is not None and self._like.selection.seeks:
            pts -= self._start_pts  # a cut starts at 0, as with ffmpeg -ss
        try:
            if self._stream is None:
                self._open_stream(width, height)
            elif (width, height) != self._size:
                raise ValueError(f"frame is {width}x{height} but the video is {self._size[0]}x{self._size[1]}")
            if self._last_pts is not None and pts <= self._last_pts:
                pts = self._last_pts + 1  # keep presentation order strictly increasing
            self._last_pts = pts
            frame = av.VideoFrame.from_ndarray(image, format="rgb24" if image.dtype == np.uint8 else _HIGH_BIT_RGB)
            if self._is_rgb:
                frame = frame.reformat(format=self._pix_fmt)
            else:
                frame = frame.reformat(format=self._pix_fmt, dst_colorspace=self._matrix,
                                       dst_color_range=self._range)
            frame.pts = pts
            frame.time_base = self._time_base
            self._mux(self._stream.encode(frame))
            if self._remux is not None:
                self._remux.copy_until(self._output, float(pts * self._time_base))
        except (OSError, av.FFmpegError) as e:
            raise self._failed(e) from None

    def _failed(self, error) -> OutputError:
        if not isinstance(error, OSError):
            return OutputError(f"cannot encode {self._final} with {self._codec_name}: {error}; "
                               "try another --codec or --pix-fmt")
        return cannot_write(self._final, error, " (the unfinished file was removed)")

    def close(self) -> None:
        av = self._av
        if self._output is None:
            return
        if self._stream is None:
            self.abort()  # no frame came: nothing to publish
            return
        try:
            self._mux(self._stream.encode(None))
            if self._remux is not None:
                end = None
                if self._like and self._like.selection.limited:
                    end = float(self._last_pts * self._time_base + 1 / self._fps)
                self._remux.copy_until(self._output, end)
            output, self._output = self._output, None
            output.close()
            file, self._file = self._file, None
            file.flush()
            os.fsync(file.fileno())
            file.close()
        except (OSError, av.FFmpegError) as e:
            self.abort()
            raise self._failed(e) from None
        finally:
            self._close_remux()
        replace(self._temp, self._final)

    def _close_remux(self) -> None:
        remux, self._remux = self._remux, None
        if remux is not None:
            remux.close()

    def abort(self) -> None:
        output, self._output = self._output, None
        if output is not None:
            try:
                output.close()
            except Exception:  # noqa: BLE001 - the output is being discarded; its own errors do not matter
                pass
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError:
                pass
        self._close_remux()
        remove(self._temp)


def _format_for(path: Path) -> str:
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi",
            ".nut": "nut"}[path.suffix.lower()]


def open_video_sink(path: Path, *, fps: float | None, options: VideoOptions, like: SourceInfo | None,
                    bit_depth: int, notice: Notice) -> FrameSink:
    av = import_av(OutputError)
    if bit_depth != 8:
        raise OutputError(f"a video's bit depth is set by --pix-fmt (e.g. yuv420p10le), not --bit-depth "
                          f"{bit_depth}; remove --bit-depth or write a PNG directory")
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a directory; choose a video file name")
    check_writable(path.parent, path)
    codec = _resolve_codec(options.codec, path.suffix.lower(), notice)
    try:
        av.codec.Codec(codec, "w")
    except (ValueError, av.FFmpegError):
        raise OutputError(f"unknown video encoder {codec!r}; choose one of {', '.join(RECOMMENDED_CODECS)} "
                          "(or any FFmpeg encoder PyAV has)") from None
    if fps is None:
        fps = DEFAULT_FPS
        notice(f"frame rate unknown: writing {path} at {DEFAULT_FPS:g} fps (pass --fps to change it)")
    if not (fps > 0 and math.isfinite(fps)):
        raise OutputError(f"--fps must be > 0, got {fps}")
    return VideoFileSink(path, fps=fps, codec=codec, options=options, like=like, notice=notice, av=av)


def is_url(spec: str) -> bool:
    return "://" in spec and spec.split("://", 1)[0].lower() in {"rtsp", "rtmp", "http", "https", "udp", "tcp",
                                                                 "srt", "rtp"}

