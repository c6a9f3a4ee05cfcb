"""The one-call API: ``open_bundle`` takes a bundle, checkpoint or shipped model's name and opens it on a backend (the
checkpoint exported into the bundle cache first; see ``export/cache.py``)."""
from __future__ import annotations

from .export.cache import bundle_for
from .runtimes.base import check_options, get_backend_class
from .runtimes.engine import Upscaler


def open_bundle(path, backend: str = "ort-cpu", dcn: str | None = None, **options) -> Upscaler:
    """Open a bundle (or a checkpoint, exported to a cached bundle on first use, or a shipped model's name)
    on ``backend``. The result is a context manager (``with open_bundle(...) as up:``).

    ``options`` go to the backend (e.g. ``threads=2``; OpenVINO ``precision='fp32'``; ort-trt ``fp16=True``).
    """
    get_backend_class(backend)  # an unknown backend or option fails before any export
    check_options(backend, options)
    bundle = bundle_for(path, backend, dcn)
    return Upscaler.create(bundle, backend, **options)
