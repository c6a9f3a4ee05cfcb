"""Capture devices (a webcam or grabber: "0", "device:0"), read with OpenCV, the simplest portable way."""
from __future__ import annotations

from typing import Iterator

from ..errors import InputError
from .base import ALL, Converter, FrameSource, Notice, Selection, select


def import_cv2(error: type[Exception]):
    try:
        import cv2
    except ImportError:
        raise error('reading and writing images and capture devices needs OpenCV: '
                    'pip install "vsrdeploy[video]"') from None
    return cv2


def _capture_frames(capture, fps: float | None) -> Iterator[tuple]:
    index = 0
    while True:
        ok, image = capture.read()
        if not ok:
            return
        yield image, (index / fps if fps else None), None
        index += 1


def open_device(number: int, notice: Notice, selection: Selection = ALL) -> FrameSource:
    cv2 = import_cv2(InputError)
    label = f"capture device {number}"
    capture = cv2.VideoCapture(number)
    if not capture.isOpened():
        capture.release()
        raise InputError(f"cannot open {label}: OpenCV cannot open it; check that it exists and is reachable")
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = fps if fps and fps > 0 else None
    return FrameSource(select(_capture_frames(capture, fps), selection), converter=Converter(notice, bgr=True),
                       label=label, fps=fps, num_frames=selection.frames, close=capture.release, kind="device",
                       selection=selection)
