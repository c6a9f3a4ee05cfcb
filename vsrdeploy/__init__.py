"""vsrdeploy: recurrent video super-resolution networks from PyTorch checkpoints to deployable runtimes.

Importing the package is cheap: torch and the runtimes are imported on first use of a name that needs them
(``vsrdeploy.load_checkpoint``, ``vsrdeploy.open_bundle``, ...), so ``vsrdeploy --help`` starts at once.
"""
from __future__ import annotations

import importlib

from .errors import (BackendUnavailable, BundleError, CheckpointError, ConfigError, InputError, OutputError,
                     VSRDeployError)

__version__ = "0.3.12"

#: public name -> module it lives in (imported on first access, PEP 562)
_LAZY = {
    "load_checkpoint": ".checkpoint",
    "build_model": ".models",
    "list_models": ".models",
    "Upscaler": ".runtimes.engine",
    "SHIPPED_MODELS": ".shipped",
    "shipped_model": ".shipped",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


def export_onnx(*args, **kwargs):
    """See :func:`vsrdeploy.export.onnx_export.export_onnx` (imported lazily: it needs onnx)."""
    from .export import export_onnx as _export
    return _export(*args, **kwargs)


def open_bundle(*args, **kwargs):
    """See :func:`vsrdeploy.api.open_bundle`."""
    from .api import open_bundle as _open
    return _open(*args, **kwargs)


__all__ = ["load_checkpoint", "build_model", "list_models", "export_onnx", "open_bundle", "Upscaler",
           "SHIPPED_MODELS", "shipped_model", "VSRDeployError", "CheckpointError", "BundleError",
           "BackendUnavailable", "OutputError", "ConfigError", "InputError", "__version__"]
