"""Image directories: frames read from image files in natural order, written as frame_NNNNNN.png.

A PNG directory can be resumed bit-exactly. The settings of the run that wrote it (model hash, backend,
precision, window, lookahead, tiling, input, selection) are recorded beside the frames in
``.vsrdeploy-run.json``; a resume under different settings is refused.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError, OutputError
from .base import (ALL, Converter, FrameSink, FrameSource, Notice, Selection, cannot_write, check_writable,
                   frame_time_base, remove, replace, select, write_file_atomically)
from .capture import import_cv2

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
FRAME_NAME = "frame_{:06d}.png"
RUN_RECORD = ".vsrdeploy-run.json"
_FRAME_FILE = re.compile(r"^frame_\d{6}\.png$")


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def image_files(directory: Path) -> list[Path]:
    files = [p for p in directory.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    return sorted(files, key=lambda p: _natural_key(p.name))


class _ImageReader:
    """Decodes one image file; checks every image has the first one's size."""

    def __init__(self, cv2):
        self._cv2 = cv2
        self._size = None

    def __call__(self, path: Path) -> np.ndarray:
        image = self._cv2.imread(str(path), self._cv2.IMREAD_UNCHANGED)
        if image is None:
            raise InputError(f"cannot decode image {path}; replace or remove the file")
        if self._size is None:
            self._size = image.shape[:2]
        elif image.shape[:2] != self._size:
            raise InputError(f"image {path} is {image.shape[1]}x{image.shape[0]} but the first image is "
                             f"{self._size[1]}x{self._size[0]}; give frames that all have the same size")
        return image


def _timed(paths: list[Path], fps: float | None) -> Iterator[tuple]:
    for index, path in enumerate(paths):
        yield path, (index / fps if fps else None), index


def open_directory(directory: Path, notice: Notice, fps: float | None = None,
                   selection: Selection = ALL) -> FrameSource:
    cv2 = import_cv2(InputError)
    paths = image_files(directory)
    if not paths:
        raise InputError(f"no images in directory {directory}; "
                         f"put frames there as {', '.join(sorted(IMAGE_EXTENSIONS))} files")
    count = len(paths) if not (selection.seeks or selection.limited) else selection.frames
    return FrameSource(select(_timed(paths, fps), selection), decode=_ImageReader(cv2),
                       converter=Converter(notice, bgr=True), label=f"image directory {directory}", fps=fps,
                       num_frames=count, path=str(directory), kind="images", time_base=frame_time_base(fps),
                       selection=selection)


# ------------------------------------------------------------------------------------------------ sink


class PngDirSink(FrameSink):
    def __init__(self, directory: Path, bit_depth: int, start_index: int, resume: bool, notice: Notice, cv2,
                 created: bool = False):
        super().__init__(str(directory), bit_depth)
        self._created = created
        self._directory = directory
        self.start_index = start_index
        self._resume = resume
        self._notice = notice
        self._cv2 = cv2

    def check_settings(self, settings: dict) -> None:
        record = self._directory / RUN_RECORD
        settings = json.loads(json.dumps(settings))  # as it reads back
        if self._resume and self.start_index:
            try:
                previous = json.loads(record.read_text())
            except FileNotFoundError:
                self._notice(f"{self._directory} has no record of the run that wrote it; resuming without "
                             "checking that the settings match")
                previous = None
            except (OSError, ValueError) as e:
                raise OutputError(f"cannot read {record}: {e}; delete it to resume without the check") from None
            if previous is not None and previous != settings:
                keys = sorted(k for k in set(previous) | set(settings) if previous.get(k) != settings.get(k))
                differ = "; ".join(f"{k}: was {previous.get(k)!r}, now {settings.get(k)!r}" for k in keys)
                raise OutputError(f"cannot resume {self._directory}: the settings differ ({differ}); "
                                  "resume with the same settings or write to a new directory")
        write_file_atomically(record, json.dumps(settings, indent=1, sort_keys=True).encode())

    def _write_image(self, image: np.ndarray, pts) -> None:
        final = self._directory / FRAME_NAME.format(self.start_index + self.frames_written)
        temp = final.with_name(f".{final.name}.partial.png")
        try:
            ok, encoded = self._cv2.imencode(".png", image[:, :, ::-1])
        except self._cv2.error as e:
            ok, reason = False, str(e).strip().splitlines()[-1]
        else:
            reason = "OpenCV could not encode the PNG"
        if not ok:
            raise OutputError(f"cannot write {final}: {reason}; check the frame size")
        try:
            with open(temp, "wb") as f:
                f.write(encoded.tobytes())
        except OSError as e:
            remove(temp)
            raise cannot_write(final, e) from None
        replace(temp, final)


    def abort(self) -> None:
        """Completed frames stay (a resume continues them); a directory this run created and wrote no frame
        into is removed again."""
        if self._created and not _frame_files(self._directory):
            for name in os.listdir(self._directory):
                if name == RUN_RECORD or name.endswith(".partial.png") or name.endswith(".partial.json"):
                    remove(self._directory / name)
            try:
                self._directory.rmdir()
            except OSError:
                pass


def _frame_files(directory: Path) -> set[str]:
    return {name for name in os.listdir(directory) if _FRAME_FILE.match(name)} if directory.is_dir() else set()


def existing_frames(directory) -> int:
    """Number of consecutive frames frame_000000.png, frame_000001.png, ... present from 0."""
    names = _frame_files(Path(directory))
    count = 0
    while FRAME_NAME.format(count) in names:
        count += 1
    return count


def open_png_sink(directory: Path, bit_depth: int, resume: bool, notice: Notice) -> FrameSink:
    cv2 = import_cv2(OutputError)
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"cannot write {directory}: it exists and is not a directory; choose a directory path")
    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise cannot_write(directory, e) from None
    check_writable(directory, directory)
    present = len(_frame_files(directory))
    if present and not resume:
        raise OutputError(f"output directory {directory} already has {present} frames; "
                          "pass --resume to continue it or choose an empty directory")
    return PngDirSink(directory, bit_depth, existing_frames(directory) if resume else 0, resume, notice, cv2,
                      created)
