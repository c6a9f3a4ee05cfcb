"""The inputs of a batch job: expanding paths and globs, counting frames, naming outputs."""
from __future__ import annotations

import glob
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, open_source


@dataclass
class BatchInput:
    source: Path
    output: Path  # OUTDIR/NAME, same kind as the input (video file or PNG directory)
    video: bool
    num_frames: int
    width: int
    height: int
    fps: float | None

    @property
    def name(self) -> str:
        return self.output.name

    def fingerprint(self) -> str:
        """Changes when the input changes (size, mtime and frame count; a directory's file list)."""
        parts = [str(self.source.resolve()), str(self.num_frames), f"{self.width}x{self.height}"]
        files = [self.source] if self.video else sorted(self.source.iterdir())
        for f in files:
            st = f.stat()
            parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def expand_inputs(specs: Iterable[str]) -> list[Path]:
    """Video files and image directories, each spec a path or a glob, in the order given."""
    paths: list[Path] = []
    for spec in specs:
        matches = sorted(glob.glob(spec)) if glob.has_magic(spec) else [spec]
        if not matches:
            raise InputError(f"no file matches {spec!r}; check the pattern (quote it so the shell does not expand it)")
        for m in matches:
            p = Path(m)
            if not p.exists():
                raise InputError(f"input not found: {p}; give video files, image directories or globs")
            if p.is_file() and p.suffix.lower() not in VIDEO_EXTENSIONS:
                if glob.has_magic(spec):
                    continue  # a glob like dir/* may also match other files
                raise InputError(f"{p} is not a video ({', '.join(sorted(VIDEO_EXTENSIONS))}) or an image directory")
            if p not in paths:
                paths.append(p)
    if not paths:
        raise InputError("no video files or image directories among the inputs")
    return paths


def _count_frames(path: Path, notice: Callable[[str], None]) -> tuple[int, int, int, float | None]:
    """Frames, width, height, fps. Videos are decoded once to count: container headers can be wrong."""
    with open_source(str(path), notice=notice) as src:
        info = src.info
        if path.is_dir():
            return info.num_frames, info.width, info.height, info.fps
        count = sum(1 for _ in src)
    return count, info.width, info.height, info.fps


def describe_inputs(paths: list[Path], outdir: Path, notice: Callable[[str], None]) -> list[BatchInput]:
    names: dict[str, Path] = {}
    items = []
    for p in paths:
        video = p.is_file()
        name = p.name if video else p.resolve().name
        if name in names:
            raise InputError(f"{p} and {names[name]} would both be written to {outdir / name}; "
                             "rename one or run them into different output directories")
        names[name] = p
        if not video and not any(f.suffix.lower() in IMAGE_EXTENSIONS for f in p.iterdir()):
            raise InputError(f"no images in directory {p}; give a directory of frames")
        count, width, height, fps = _count_frames(p, notice)
        items.append(BatchInput(p, outdir / name, video, count, width, height, fps))
    return items
