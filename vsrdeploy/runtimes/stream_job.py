"""``vsrdeploy run``: frames from a source, through a bundle on a backend, into a sink."""
from __future__ import annotations

import itertools
import time
from typing import Callable

from tqdm import tqdm

from .engine import Upscaler, bundle_for
from .frames import open_sink, open_source


def run_job(model: str, *, backend: str, source: str, sink: str, window: int | None, lookahead: int,
            dcn: str | None = None, codec: str = "mp4v", bit_depth: int = 8, raw_size=None, raw_bit_depth: int = 8,
            resume: bool = False, threads: int | None = None, overrides: dict | None = None,
            backend_options: dict | None = None, echo: Callable[[str], None] = print, progress: bool = True) -> dict:
    """Stream ``source`` through ``model`` (bundle or checkpoint) on ``backend`` into ``sink``.

    Opens the input and output before any heavy work, so bad paths fail at once. With ``resume`` a PNG
    directory continues where it stopped: the preceding frames are streamed again to re-warm the
    recurrent state (their outputs are not rewritten), so the resumed frames equal a full run's.
    ``backend_options`` go to the backend as well (e.g. ``precision='bf16'`` from a tune profile).
    Returns a summary dict.
    """
    with open_source(source, raw_size=raw_size, raw_bit_depth=raw_bit_depth, notice=echo) as src:
        info = src.info
        with open_sink(sink, fps=info.fps, codec=codec, bit_depth=bit_depth, resume=resume, notice=echo) as out:
            t0 = time.perf_counter()
            bundle = bundle_for(model, backend, dcn, progress=lambda c: echo(f"exporting cell {c}"),
                                **(overrides or {}))
            options = {**({"threads": threads} if threads else {}), **(backend_options or {})}
            upscaler = Upscaler.create(bundle, backend, **options)
            skip = out.start_index
            if skip:
                echo(f"resuming at frame {skip}: re-warming the recurrent state on the {skip} preceding frames")
            load_s = time.perf_counter() - t0
            total = info.num_frames
            bar = tqdm(total=total, unit="frame", desc=f"{bundle.arch} x{upscaler.scale} [{backend}]",
                       disable=not progress, dynamic_ncols=True, leave=False)
            t1 = time.perf_counter()
            written = 0
            frames = upscaler.stream(src, window=window, lookahead=lookahead)
            for frame in itertools.islice(frames, skip, None) if skip else frames:
                out.write(frame)
                written += 1
                bar.update(1)
            bar.close()
            run_s = time.perf_counter() - t1
    seen = skip + written
    if skip and written == 0:
        echo(f"nothing to resume: {out.path} already has all {seen} frames")
    summary = {"frames": written, "skipped": skip, "input": f"{info.width}x{info.height}",
               "output": f"{info.width * upscaler.scale}x{info.height * upscaler.scale}",
               "seconds": run_s, "load_seconds": load_s, "fps": (seen / run_s) if run_s > 0 else 0.0,
               "backend": upscaler.backend.describe(), "path": str(out.path)}
    echo(f"wrote {written} frames ({summary['input']} -> {summary['output']}) to {out.path} in {run_s:.1f} s "
         f"({summary['fps']:.2f} frames/s incl. re-warm) on {summary['backend']}; setup {load_s:.1f} s")
    return summary
