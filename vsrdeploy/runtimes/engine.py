"""Streaming frames through a bundle on a backend: ``open_bundle(...).stream(frames)``."""
from __future__ import annotations

import os
import sys
from collections import deque
from typing import Iterable, Iterator

import numpy as np

from ..bundle import Bundle
from ..errors import BackendUnavailable, InputError
from ..models.arrays import is_torch
from ..models.budget import DEFAULT_BATCH_BYTES
from ..models.heap import DEFAULT_HEAP_POLICY
from ..models.spill import DEFAULT_RESIDENT_BYTES, SpillFiles
from ..models.streaming import stream_network
from ..models.tiles import DEFAULT_TILE_OVERLAP
from .base import Backend, create_backend
from .frame_types import frame_kind, from_network, to_network

DEFAULT_WINDOW = 16
DEFAULT_LOOKAHEAD = 8


class Upscaler:
    """A bundle running on one backend: ``upscale`` a whole clip or ``stream`` frames through it.

    Frames may be numpy arrays or torch tensors (float CHW in [0, 1], numpy uint8/uint16 HWC, torch uint8
    CHW: see :mod:`vsrdeploy.runtimes.frame_types`), a whole clip as one 4-D array / tensor, an iterable
    or generator of frames, or a path (video file or image directory, read with
    :func:`vsrdeploy.io.open_source`). Each output comes back as its input frame came: torch in, torch out
    on the backend's device (no copy to the CPU on GPU backends); numpy in, numpy out; uint8 HWC in, uint8
    HWC out. Frames read from a path come back as numpy float32 (3, sH, sW).
    Outputs are clamped to [0, 1] unless ``clamp=False`` (integer outputs are always clamped).

    Use it as a context manager, or call :meth:`close`, to release the runtime's sessions and memory.

    On the ONNX Runtime and OpenVINO CPU backends nothing here imports PyTorch (the plan comes from the
    bundle's manifest, ``models.spec``, and cells exchange numpy arrays), unless the caller brings torch tensors.
    """

    def __init__(self, bundle: Bundle, backend: Backend):
        self.bundle = bundle
        self.backend = backend
        self.spill_files = SpillFiles()  # its streams' spill files, kept between them (models.spill)
        self.net = bundle.spec()
        self.scale = self.net.scale
        static = bundle.manifest.get("static_shape")
        self.static_shape = tuple(static) if static else None

    @classmethod
    def create(cls, bundle: Bundle, backend: str, **options) -> "Upscaler":
        """``bundle`` on the backend named ``backend`` (``options`` go to the backend; an option it does not
        take raises TypeError naming the ones it does)."""
        return cls(bundle, create_backend(backend, bundle, **options))

    def close(self) -> None:
        """Release the backend (sessions, compiled models, device memory) and the spill files kept for the next
        stream. Idempotent."""
        backend, self.backend = self.backend, None
        if backend is not None:
            backend.close()
        self.spill_files.close()

    @property
    def closed(self) -> bool:
        return self.backend is None

    def __enter__(self) -> "Upscaler":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> Backend:
        if self.backend is None:
            raise BackendUnavailable("this Upscaler is closed; open another with vsrdeploy.open_bundle(...)")
        return self.backend

    def check_frame_size(self, h: int, w: int, index: int = 0) -> None:
        """InputError (one line) when the bundle has a static shape and an (h, w) frame does not fit it."""
        if self.static_shape and (h, w) != self.static_shape:
            sh, sw = self.static_shape
            raise InputError(f"frame {index} is {w}x{h} (WxH) but the bundle {self.bundle.path} was exported for "
                             f"{sw}x{sh} frames only (--static-shape); export it again without --static-shape, "
                             f"or with --static-shape {w}x{h}")

    def _frames(self, frames: Iterable, kinds: deque) -> Iterator:
        backend = self._check_open()
        for i, f in enumerate(frames):
            kind = frame_kind(f, i)
            t = to_network(f, kind, backend.device, backend.arrays)
            if i == 0:
                self.check_frame_size(*t.shape[-2:], index=i)
            kinds.append(kind)
            yield t

    def stream(self, frames, window: int | None = DEFAULT_WINDOW, lookahead: int = DEFAULT_LOOKAHEAD,
               stats: dict | None = None, batch_bytes: int | str | None = DEFAULT_BATCH_BYTES, tile=None,
               tile_overlap: int = DEFAULT_TILE_OVERLAP, memory_budget=None,
               first_window: int | None = None, clamp: bool = True, spill="auto",
               spill_resident=DEFAULT_RESIDENT_BYTES, heap: str = DEFAULT_HEAP_POLICY) -> Iterator:
        """Yield the upscaled frames in order, each as soon as it is final, each of its input's kind.

        ``frames``: an iterable / generator of frames, a 4-D array or tensor (a clip, frames on axis 0) or a
        path (video file or image directory). Holds at most ``window + lookahead`` frames' state (plus the
        schedule's short history).
        ``batch_bytes`` bounds each cell call (frames per call of stateless cells; it does not change
        the result); ``tile`` (int or (h, w) LR pixels) / ``tile_overlap`` cut large frames into
        overlapping tiles, ``memory_budget`` (e.g. ``"2GB"``) picks the tile when a frame would not fit.
        ``first_window``: length of the first window (segments use it to align windows with a full run).
        ``clamp=False`` keeps float outputs outside [0, 1] as the network made them.
        ``spill``: ``"auto"`` (default), ``"off"`` or a directory: where held features beyond a resident limit
        go (``models.spill``; bit-identical results, less memory for networks that hold many maps per frame);
        ``spill_resident`` (bytes or ``"16MB"``) is that limit. A stream's spill file is kept for the next stream of
        this Upscaler, which writes over it (cheaper than growing a new file) until :meth:`close`.
        ``heap``: ``"return"`` (default) hands freed maps back to the OS at once (least memory); ``"keep"`` lets
        malloc keep them for reuse (faster: no page faults on every allocation; more memory): ``models.heap``.
        Bad arguments raise at once (ConfigError), not at the first frame.
        """
        backend = self._check_open()
        source, owned = _open_frames(frames)
        kinds: deque = deque()
        try:
            outs = stream_network(self.net, backend.run, self._frames(source, kinds), window, lookahead, stats=stats,
                                         batch_bytes=batch_bytes, tile=tile, tile_overlap=tile_overlap,
                                         memory_budget=memory_budget, first_window=first_window,
                                         row_strips=backend.row_strips, memory_overhead=backend.memory_overhead,
                                         spill=spill, spill_resident=spill_resident, heap=heap,
                                         spill_files=self.spill_files)
        except BaseException:
            if owned:
                source.close()
            raise
        return _converted(outs, kinds, clamp, source if owned else None)

    def upscale(self, frames, clamp: bool = True, **options):
        """Whole clip at once (upstream semantics): T frames in, T upscaled frames out, as one array of
        the input's kind: (T, 3, H, W) float -> (T, 3, sH, sW); numpy (T, H, W, 3) uint8 -> (T, sH, sW, 3)
        uint8; a list or generator of frames -> its frames' kind stacked; a path -> numpy float32.

        ``options`` as for :meth:`stream` (``tile``, ``batch_bytes``, ...). The result is filled frame by
        frame, so no second copy of the clip's outputs exists when the clip's length is known.
        """
        if (isinstance(frames, np.ndarray) or is_torch(frames)) and frames.ndim == 3:
            raise InputError("upscale takes a clip of frames, got one 3-D frame; pass frame[None] for a "
                             "one-frame clip")
        count = len(frames) if hasattr(frames, "__len__") and not isinstance(frames, (str, os.PathLike)) else None
        if count == 0:
            raise InputError("empty clip: no frames to upscale")
        result = None
        collected = []
        for i, out in enumerate(self.stream(frames, window=None, lookahead=0, clamp=clamp, **options)):
            if count is None:
                collected.append(out)
                continue
            if result is None:
                result = (out.new_empty((count, *out.shape)) if is_torch(out)
                          else np.empty((count, *out.shape), out.dtype))
            result[i] = out
        if count is None:
            if not collected:
                raise InputError("empty clip: no frames to upscale")
            stack = sys.modules["torch"].stack if is_torch(collected[0]) else np.stack
            result = stack(collected)
        return result

    def __repr__(self) -> str:
        where = "closed" if self.backend is None else self.backend.describe()
        return f"Upscaler({self.bundle!r}, backend={where})"


def _open_frames(frames):
    """(iterable of frames, whether we opened it and must close it) from what the API accepts; a path is
    opened with ``vsrdeploy.io.open_source``; the caller's own iterables are never closed here."""
    if isinstance(frames, (str, os.PathLike)):
        from ..io import open_source
        return open_source(os.fspath(frames)), True
    if isinstance(frames, np.ndarray) or is_torch(frames):
        if frames.ndim != 4:
            raise InputError(f"frames must be a clip (4-D, frames on axis 0) or an iterable of frames, got an "
                             f"array of shape {tuple(frames.shape)}; pass frame[None] for a single frame")
        return iter(frames), False
    if not hasattr(frames, "__iter__"):
        raise InputError(f"frames must be an iterable of frames, a 4-D array or tensor, or a video / image-directory "
                         f"path; got {type(frames).__name__}")
    return frames, False


def _converted(outs, kinds: deque, clamp: bool, owned_source):
    try:
        for out in outs:
            yield from_network(out[0], kinds.popleft(), clamp)
    finally:
        if owned_source is not None:
            owned_source.close()
