"""``vsrdeploy run``: frames from a source, through a bundle on a backend, into a sink.

Decoding, the network and encoding overlap (``io.pipeline``): the source is read on one thread and the sink
written on another, each behind a bounded queue. Every output is checked for NaN/Inf before it is written.
SIGTERM stops the run like Ctrl-C: the unfinished output is removed and the exit status is non-zero.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import signal
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from .errors import BundleError
from .io import Selection, open_sink, open_source
from .io.base import KEEP
from .io.pipeline import BackgroundWriter, Prefetch
from .models.heap import DEFAULT_HEAP_POLICY
from .models.spill import DEFAULT_RESIDENT_BYTES
from .runtimes.engine import Upscaler
from .export.cache import bundle_for

#: frames streamed before ``--start`` to warm the recurrent state (see README: "Seeking")
DEFAULT_WARMUP = 16
QUEUE_DEPTH = 4


class Terminated(SystemExit):
    """SIGTERM, turned into an exception so that every ``finally`` and sink abort runs."""

    def __init__(self):
        super().__init__(143)


@contextlib.contextmanager
def sigterm_as_exception():
    """While inside, SIGTERM raises :class:`Terminated` in the main thread (no-op on other threads)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _bundle_hash(bundle) -> str:
    return hashlib.sha256((bundle.path / "manifest.json").read_bytes()).hexdigest()


def _input_identity(source: str, info) -> str:
    """The input as the resume record names it: resolved path (so ./a.mp4 and a.mp4 match), size, length."""
    path = Path(source)
    name = str(path.resolve()) if source != "-" and path.exists() else source
    return f"{name} ({info.width}x{info.height}, {info.num_frames if info.num_frames is not None else '?'} frames)"


def _check_finite(frame: np.ndarray, index: int) -> None:
    # one float64 sum per frame: NaN and +/-Inf survive a sum, and it costs one pass without a temporary
    if not math.isfinite(float(frame.sum(dtype=np.float64))):
        raise BundleError(f"the network produced NaN or Inf at output frame {index}; the bundle's weights or "
                          "precision are broken (check them with `vsrdeploy compare`); nothing was left under "
                          "the output name")


def run_job(model: str, *, backend: str, source: str, sink: str, window: int | None, lookahead: int,
            dcn: str | None = None, codec: str | None = None, bit_depth: int = 8, raw_size=None,
            raw_bit_depth: int = 8, resume: bool = False, threads: int | None = None, overrides: dict | None = None,
            echo: Callable[[str], None] = print, progress: bool = True, crf: int | None = None,
            preset: str | None = None, pix_fmt: str | None = None, fps: float | None = None, audio: bool = True,
            start: float | None = None, max_frames: int | None = None, duration: float | None = None,
            warmup: int = DEFAULT_WARMUP, overlap: bool = True, settings: dict | None = None,
            tiling: dict | None = None, backend_options: dict | None = None, spill="auto",
            spill_resident: int | str = DEFAULT_RESIDENT_BYTES, heap: str = DEFAULT_HEAP_POLICY) -> dict:
    """Stream ``source`` through ``model`` (bundle or checkpoint) on ``backend`` into ``sink``.

    Opens the input and output before any heavy work, so bad paths fail at once. ``start`` (seconds),
    ``max_frames`` / ``duration`` cut a part out; ``warmup`` frames before the start and ``lookahead``
    frames after the end are streamed too (their outputs are not written) so the recurrent state sees the
    context a full run would. With ``resume`` a PNG directory continues where it stopped: the preceding frames
    are streamed again to re-warm the recurrent state (their outputs are not rewritten), so the resumed
    frames equal a full run's; the run's settings are recorded beside the frames and a resume under other
    settings is refused. ``tiling`` (``tile``, ``tile_overlap``, ``memory_budget``) goes to
    :meth:`Upscaler.stream` and into that record; ``settings`` adds further entries; ``backend_options`` go
    to the backend (e.g. ``precision='bf16'`` from a tune profile). ``spill`` (``auto``, ``off`` or a
    directory) is where held features go beyond ``spill_resident`` bytes held in memory (``models.spill``;
    neither changes the frames, so they are not part of the resume record); ``heap``: what malloc does with
    freed maps (``models.heap``; nor does it). Returns a summary dict.
    """
    limited = max_frames is not None or duration is not None
    selection = Selection(start=start, frames=max_frames, duration=duration, warmup=warmup if start else 0,
                          tail=lookahead if limited else 0)
    bar = None

    def say(message: str) -> None:
        if bar is not None:
            with bar.external_write_mode():
                echo(message)
        else:
            echo(message)

    with sigterm_as_exception():
        try:
            with open_source(source, raw_size=raw_size, raw_bit_depth=raw_bit_depth, notice=say, fps=fps,
                             selection=selection) as src:
                info = src.info
                with open_sink(sink, fps=info.fps or fps, codec=codec, bit_depth=bit_depth, resume=resume,
                               notice=say, crf=crf, preset=preset, pix_fmt=pix_fmt, audio=audio, like=info) as out:
                    t0 = time.perf_counter()
                    bundle = bundle_for(model, backend, dcn, progress=lambda c: say(f"exporting cell {c}"),
                                        **(overrides or {}))
                    options = {**({"threads": threads} if threads else {}), **(backend_options or {})}
                    upscaler = Upscaler.create(bundle, backend, **options)
                    upscaler.check_frame_size(info.height, info.width)  # a static-shape bundle: before any frame
                    out.check_settings({
                        "model_sha256": _bundle_hash(bundle), "backend": backend, "precision": (backend_options or {}).get("precision", bundle.precision),
                        "window": window, "lookahead": lookahead, "input": _input_identity(source, info),
                        "start": start, "frames": max_frames, "duration": duration,
                        "warmup": selection.warmup, **{k: v for k, v in (tiling or {}).items() if v is not None},
                        **(settings or {})})
                    skip = out.start_index
                    if skip:
                        say(f"resuming at frame {skip}: re-warming the recurrent state on the {skip} preceding "
                            "frames")
                    load_s = time.perf_counter() - t0
                    bar = tqdm(total=info.num_frames, unit="frame", desc=f"{bundle.arch} x{upscaler.scale} [{backend}]",
                               disable=not progress, dynamic_ncols=True, leave=False)
                    t1 = time.perf_counter()
                    written, kept = _stream(upscaler, src, out, window, lookahead, skip, bar, overlap,
                                            {**(tiling or {}), "spill": spill, "spill_resident": spill_resident,
                                             "heap": heap})
                    run_s = time.perf_counter() - t1
        finally:
            if bar is not None:
                bar.close()
                bar = None
    if skip and written == 0:
        echo(f"nothing to resume: {out.path} already has all {kept} frames")
    summary = {"frames": written, "skipped": skip, "input": f"{info.width}x{info.height}",
               "output": f"{info.width * upscaler.scale}x{info.height * upscaler.scale}",
               "seconds": run_s, "load_seconds": load_s, "fps": (kept / run_s) if run_s > 0 else 0.0,
               "backend": upscaler.backend.describe(), "path": str(out.path)}
    echo(f"wrote {written} frames ({summary['input']} -> {summary['output']}) to {out.path} in {run_s:.1f} s "
         f"({summary['fps']:.2f} frames/s incl. re-warm) on {summary['backend']}; setup {load_s:.1f} s")
    return summary


def _stream(upscaler, src, out, window, lookahead, skip: int, bar, overlap: bool,
            tiling: dict | None) -> tuple[int, int]:
    """Runs the frames through; returns (frames written, kept frames seen)."""
    stamps = src.follow_stamps()
    reader = Prefetch(src, QUEUE_DEPTH) if overlap else None
    writer = BackgroundWriter(out.write, QUEUE_DEPTH) if overlap else None
    written = kept = 0
    try:
        # unclamped, so that _check_finite sees +/-Inf (the sinks clip to their range when they quantize)
        outputs = upscaler.stream(reader if overlap else src, window=window, lookahead=lookahead, clamp=False,
                                  **(tiling or {}))
        for index, frame in enumerate(outputs):
            stamp = stamps.popleft()
            if stamp.role != KEEP:
                continue
            kept += 1
            if kept <= skip:
                continue
            _check_finite(frame, index)
            if writer is not None:
                writer.put(frame, stamp.pts)
            else:
                out.write(frame, stamp.pts)
            written += 1
            bar.update(1)
        if writer is not None:
            writer.finish()
            writer = None
    finally:
        if writer is not None:
            writer.stop()
        if reader is not None:
            reader.close()
    return written, kept
