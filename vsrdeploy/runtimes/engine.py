"""Streaming frames through a bundle on a backend: ``open_bundle(...).stream(frames)``."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from ..bundle import FORMAT_VERSION, MANIFEST, Bundle, sha256_file
from ..errors import InputError
from ..models.budget import DEFAULT_BATCH_BYTES
from ..models.tiles import DEFAULT_TILE_OVERLAP
from .base import Backend, create_backend, get_backend_class

DEFAULT_WINDOW = 16
DEFAULT_LOOKAHEAD = 8


class Upscaler:
    """A bundle running on one backend."""

    def __init__(self, bundle: Bundle, backend: Backend):
        self.bundle = bundle
        self.backend = backend
        self.net = bundle.skeleton()
        self.scale = self.net.scale

    @classmethod
    def create(cls, bundle: Bundle, backend: str, **options) -> "Upscaler":
        """``bundle`` on the backend named ``backend`` (``options`` go to the backend)."""
        return cls(bundle, create_backend(backend, bundle, **options))

    def _frames(self, frames: Iterable) -> Iterator[torch.Tensor]:
        for i, f in enumerate(frames):
            t = torch.from_numpy(np.ascontiguousarray(f)) if isinstance(f, np.ndarray) else f
            if not isinstance(t, torch.Tensor) or t.dim() != 3 or t.shape[0] != 3:
                shape = tuple(getattr(f, "shape", ()))
                raise InputError(f"frame {i}: expected a (3, H, W) RGB array in [0, 1], got shape {shape}")
            yield t.to(self.backend.device, torch.float32).unsqueeze(0)

    def stream(self, frames: Iterable, window: int | None = DEFAULT_WINDOW, lookahead: int = DEFAULT_LOOKAHEAD,
               stats: dict | None = None, batch_bytes: int | str | None = DEFAULT_BATCH_BYTES, tile=None,
               tile_overlap: int = DEFAULT_TILE_OVERLAP, memory_budget=None,
               first_window: int | None = None) -> Iterator[np.ndarray]:
        """Yield upscaled frames (3, sH, sW) float32 in order, each as soon as it is final.

        Holds at most ``window + lookahead`` frames' state (plus the schedule's short history).
        ``batch_bytes`` bounds each cell call (frames per call of stateless cells; it does not change
        the result); ``tile`` (int or (h, w) LR pixels) / ``tile_overlap`` cut large frames into
        overlapping tiles, ``memory_budget`` (e.g. ``"2GB"``) picks the tile when a frame would not fit.
        ``first_window``: length of the first window (segments use it to align windows with a full run).
        Bad arguments raise at once (ConfigError), not at the first frame.
        """
        outs = self.net.stream_cells(self.backend.run, self._frames(frames), window, lookahead, stats=stats,
                                     batch_bytes=batch_bytes, tile=tile, tile_overlap=tile_overlap,
                                     memory_budget=memory_budget, first_window=first_window)
        return (out[0].float().cpu().numpy() for out in outs)

    def upscale(self, frames, **options) -> np.ndarray:
        """Whole clip at once (upstream semantics): (T, 3, H, W) -> (T, 3, sH, sW).

        ``options`` as for :meth:`stream` (``tile``, ``batch_bytes``, ...). The result is filled frame by
        frame, so no second copy of the clip's outputs exists.
        """
        if len(frames) == 0:
            raise InputError("empty clip: no frames to upscale")
        result = None
        for i, out in enumerate(self.stream(frames, window=None, lookahead=0, **options)):
            if result is None:
                result = np.empty((len(frames), *out.shape), np.float32)
            result[i] = out
        return result

    def __repr__(self) -> str:
        return f"Upscaler({self.bundle!r}, backend={self.backend.describe()})"


def cache_dir() -> Path:
    return Path(os.environ.get("VSRDEPLOY_CACHE", Path.home() / ".cache" / "vsrdeploy"))


def bundle_for(path, backend: str = "ort-cpu", dcn: str | None = None, progress=None, **overrides) -> Bundle:
    """A bundle directory as is; a checkpoint exported once into the cache (keyed by its sha256)."""
    path = Path(path)
    if path.is_dir():
        return Bundle(path)
    if not path.exists():
        raise InputError(f"not found: {path} (expected a checkpoint file or a .vsr bundle directory)")
    from .. import __version__
    from ..export import export_onnx
    dcn = dcn or get_backend_class(backend).preferred_dcn
    key = hashlib.sha256(f"{sha256_file(path)}|{dcn}|{sorted(overrides.items())}|{__version__}|"
                         f"{FORMAT_VERSION}".encode())
    target = cache_dir() / "bundles" / f"{path.stem}-{dcn}-{key.hexdigest()[:16]}.vsr"
    if not (target / MANIFEST).exists():
        export_onnx(path, target, dcn=dcn, progress=progress, keep_existing=True, **overrides)
    return Bundle(target)


def open_bundle(path, backend: str = "ort-cpu", dcn: str | None = None, **options) -> Upscaler:
    """Open a bundle (or a checkpoint, exported to a cached bundle on first use) on ``backend``.

    ``options`` go to the backend (e.g. ``threads=2``; OpenVINO ``precision='fp32'``; ort-trt ``fp16=True``).
    """
    bundle = bundle_for(path, backend, dcn)
    return Upscaler.create(bundle, backend, **options)
