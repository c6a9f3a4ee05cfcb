"""The job directory of one input: finished segments on disk, and the final output made from them.

``OUTDIR/.vsrdeploy-job-NAME/`` holds ``job.json`` (the settings the segments were made with) and
``segments/NNNNNN/`` (a segment's PNG frames plus ``segment.json``). A segment is written into a
uniquely named partial directory and renamed into place in one ``os.replace``, so a segment
directory either holds every frame or does not exist: rerunning the same command redoes only the
missing ones. The final output is assembled from the segments under a temporary name and renamed
into place only when every segment is present; then the job directory is removed.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError, OutputError
from ..io import open_sink, open_source

JOB_PREFIX = ".vsrdeploy-job-"
SEGMENT_META = "segment.json"


def write_json_atomic(path: Path, data: dict) -> None:
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    temp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(temp, path)


class JobDir:
    def __init__(self, outdir: Path, name: str):
        self.outdir = Path(outdir)
        self.path = self.outdir / f"{JOB_PREFIX}{name}"
        self.segments_dir = self.path / "segments"

    # ------------------------------------------------------------------ settings

    def open(self, settings: dict, force: bool) -> None:
        """Create the job directory, or reuse one made with the same ``settings`` (its segments are valid).

        A job directory made with other settings is an error (its segments would not fit together),
        unless ``force``, which starts the job over.
        """
        meta = self.path / "job.json"
        if meta.exists():
            old = json.loads(meta.read_text())
            if old != settings:
                if not force:
                    changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
                    raise ConfigError(f"{self.path} holds segments made with other settings ({', '.join(changed)}); "
                                      "rerun with the same settings to continue it, or pass --force to start over")
                shutil.rmtree(self.path)
        self.segments_dir.mkdir(parents=True, exist_ok=True)
        if not meta.exists():
            write_json_atomic(meta, settings)

    # ------------------------------------------------------------------ segments

    def segment_path(self, index: int) -> Path:
        return self.segments_dir / f"{index:06d}"

    def is_done(self, index: int) -> bool:
        return (self.segment_path(index) / SEGMENT_META).is_file()

    def missing(self, count: int) -> list[int]:
        return [i for i in range(count) if not self.is_done(i)]

    def write_segment(self, index: int, frames, meta: dict, bit_depth: int = 8) -> int:
        """Write ``frames`` (float (3, H, W)) as segment ``index``; returns the frame count.

        Safe to call twice for one segment (a retried task): the first complete copy wins.
        """
        final = self.segment_path(index)
        partial = self.segments_dir / f".{index:06d}-partial-{uuid.uuid4().hex}"  # no suffix: a PNG directory
        count = 0
        try:
            with open_sink(str(partial), bit_depth=bit_depth) as sink:
                for frame in frames:
                    sink.write(frame)
                    count += 1
            write_json_atomic(partial / SEGMENT_META, {**meta, "frames": count})
            try:
                os.replace(partial, final)
            except OSError:
                if not self.is_done(index):
                    raise
        finally:
            if partial.exists():
                shutil.rmtree(partial, ignore_errors=True)
        return count

    def segment_meta(self, index: int) -> dict:
        return json.loads((self.segment_path(index) / SEGMENT_META).read_text())

    def segment_frames(self, index: int) -> list[Path]:
        return sorted(p for p in self.segment_path(index).iterdir() if p.suffix == ".png")

    # ------------------------------------------------------------------ final output

    def assemble(self, count: int, output: Path, *, video: bool, fps: float | None, codec: str,
                 notice: Callable[[str], None]) -> int:
        """Write ``output`` from segments 0..count-1 (all must be present); returns the frame count."""
        missing = self.missing(count)
        if missing:
            raise OutputError(f"cannot assemble {output}: segments {missing} are missing; rerun the command")
        frames = 0
        if video:
            with open_sink(str(output), fps=fps, codec=codec, notice=notice) as sink:
                for i in range(count):
                    with open_source(str(self.segment_path(i)), notice=notice) as src:
                        for frame in src:
                            sink.write(frame)
                            frames += 1
        else:
            frames = self._assemble_png_dir(count, output)
        shutil.rmtree(self.path, ignore_errors=True)
        return frames

    def _assemble_png_dir(self, count: int, output: Path) -> int:
        from ..io import FRAME_NAME

        partial = output.with_name(f".{output.name}.partial-{uuid.uuid4().hex}")
        partial.mkdir()
        n = 0
        try:
            for i in range(count):
                for src in self.segment_frames(i):
                    target = partial / FRAME_NAME.format(n)
                    try:
                        os.link(src, target)
                    except OSError:
                        shutil.copyfile(src, target)
                    n += 1
            replace_dir(partial, output)
        finally:
            if partial.exists():
                shutil.rmtree(partial, ignore_errors=True)
        return n


def replace_dir(source: Path, target: Path) -> None:
    """Rename directory ``source`` to ``target``, replacing an existing ``target`` (the caller checked
    that replacing it was asked for): the old one is moved aside first, then removed."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex}")
        os.replace(target, old)
    os.replace(source, target)
    if old is not None:
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
