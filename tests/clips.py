"""Test clips written with PyAV: video with timestamps, colour tags and bit depth of our choosing, plus audio."""
from __future__ import annotations

from fractions import Fraction

import numpy as np


def moving_frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """(n, h, w, 3) uint8 frames of smooth content that moves by 2 px per frame."""
    rng = np.random.default_rng(seed)
    base = rng.random((h + 2 * n + 8, w + 2 * n + 8, 3))
    k = np.ones(5) / 5
    for axis in (0, 1):
        base = np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), axis, base)
    return np.stack([(base[i:i + h, 2 * i:2 * i + w] * 255).astype(np.uint8) for i in range(n)])


def write_clip(path, frames: np.ndarray, *, codec="libx264", pix_fmt="yuv420p", fps=12, pts=None, time_base=None,
               audio_seconds: float | None = None, color: dict | None = None, options=None) -> list[int]:
    """Writes ``frames`` ((n, h, w, 3) uint8 or uint16 RGB). ``pts`` (in ``time_base``) makes it VFR; a sine
    tone of ``audio_seconds`` is added as AAC (or FLAC in .mkv). Returns the frames' pts."""
    import av

    n, h, w = frames.shape[:3]
    time_base = time_base or Fraction(1, fps)
    pts = list(pts) if pts is not None else [round(i / fps / time_base) for i in range(n)]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps, options=options or ({"crf": "10"} if codec.startswith("libx") else {}))
        stream.width, stream.height, stream.pix_fmt, stream.time_base = w, h, pix_fmt, time_base
        stream.codec_context.time_base = time_base
        for key, value in (color or {}).items():
            setattr(stream.codec_context, key, value)
        audio = out.add_stream("aac", rate=48000, layout="stereo") if audio_seconds else None
        src_fmt = "rgb24" if frames.dtype == np.uint8 else "rgb48le"
        matrix = (color or {}).get("colorspace", 1)
        rng_ = (color or {}).get("color_range", 1)
        for image, p in zip(frames, pts):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=src_fmt)
            frame = frame.reformat(format=pix_fmt, dst_colorspace=matrix, dst_color_range=rng_)
            frame.pts, frame.time_base = p, time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if audio is not None:
            samples = int(audio_seconds * 48000)
            t = np.arange(samples) / 48000
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for i in range(0, samples, 1024):
                chunk = tone[i:i + 1024]
                af = av.AudioFrame.from_ndarray(np.stack([chunk, chunk]), format="fltp", layout="stereo")
                af.sample_rate, af.pts = 48000, i
                for packet in audio.encode(af):
                    out.mux(packet)
            for packet in audio.encode():
                out.mux(packet)
    return pts


def probe(path) -> dict:
    """Everything the tests check about a written file: streams, pts, colour tags, decoded sizes."""
    import av

    with av.open(str(path)) as f:
        v = f.streams.video[0]
        info = {"codec": v.codec_context.name, "pix_fmt": v.codec_context.pix_fmt, "time_base": v.time_base,
                "streams": [s.type for s in f.streams], "audio_codecs": [s.codec_context.name for s in f.streams.audio]}
        frames = list(f.decode(v))
        info["pts"] = [fr.pts for fr in frames]
        info["times"] = [fr.time for fr in frames]
        info["size"] = (frames[0].width, frames[0].height)
        info["color"] = {"primaries": int(frames[0].color_primaries), "trc": int(frames[0].color_trc),
                         "matrix": int(frames[0].colorspace), "range": int(frames[0].color_range)}
        info["rotation"] = frames[0].rotation
    if info["audio_codecs"]:
        with av.open(str(path)) as f:
            samples = sum(fr.samples for fr in f.decode(f.streams.audio[0]))
        info["audio_seconds"] = samples / 48000
    return info
