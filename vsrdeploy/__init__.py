"""vsrdeploy: recurrent video super-resolution networks from PyTorch checkpoints to deployable runtimes.

Importing the package is cheap: torch and the runtimes are imported on first use of a name that needs them
(``vsrdeploy.load_checkpoint``, ``vsrdeploy.open_bundle``, ...), so ``vsrdeploy --help`` starts at once.
"""
from __future__ import annotations

from .errors import (BackendUnavailable, BundleError, CheckpointError, ConfigError, InputError, OutputError,
                     VSRDeployError)
from .lazy import lazy_attributes

__version__ = "0.3.17"

#: public name -> module it lives in (imported on first access, PEP 562)
_LAZY = {
    "load_checkpoint": ".checkpoint",
    "build_model": ".models",
    "list_models": ".models",
    "Upscaler": ".runtimes.engine",
    "SHIPPED_MODELS": ".shipped",
    "shipped_model": ".shipped",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())


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
