"""Checkpoints exported on first use into a cache of bundles: what lets ``run`` and ``open_bundle`` take a
checkpoint (or a shipped model's name) where a bundle is expected. Runtimes themselves consume bundles only."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..bundle import FORMAT_VERSION, MANIFEST, Bundle, sha256_file
from ..errors import InputError


def cache_dir() -> Path:
    return Path(os.environ.get("VSRDEPLOY_CACHE", Path.home() / ".cache" / "vsrdeploy"))


def bundle_for(path, backend: str = "ort-cpu", dcn: str | None = None, progress=None, **overrides) -> Bundle:
    """A bundle directory as is; a checkpoint exported once into the cache (keyed by its sha256); a shipped
    model's name (``basicvsr``, ``basicvsr_pp``) as its checkpoint."""
    from ..shipped import not_found_hint, resolve_model
    path = resolve_model(path)
    if path.is_dir():
        return Bundle(path)
    if not path.exists():
        raise InputError(f"not found: {path} (expected {not_found_hint()})")
    from .. import __version__
    from ..runtimes.base import get_backend_class
    from .onnx_export import export_onnx
    dcn = dcn or get_backend_class(backend).preferred_dcn
    key = hashlib.sha256(f"{sha256_file(path)}|{dcn}|{sorted(overrides.items())}|{__version__}|"
                         f"{FORMAT_VERSION}".encode())
    target = cache_dir() / "bundles" / f"{path.stem}-{dcn}-{key.hexdigest()[:16]}.vsr"
    if not (target / MANIFEST).exists():
        export_onnx(path, target, dcn=dcn, progress=progress, keep_existing=True, **overrides)
    return Bundle(target)
