"""vsrdeploy: recurrent video super-resolution networks from PyTorch checkpoints to deployable runtimes."""
from .checkpoint import load_checkpoint
from .errors import (BackendUnavailable, BundleError, CheckpointError, ConfigError, InputError, OutputError,
                     VSRDeployError)
from .models import build_model, list_models


def export_onnx(*args, **kwargs):
    """See :func:`vsrdeploy.export.onnx_export.export_onnx` (imported lazily: it needs onnx)."""
    from .export import export_onnx as _export
    return _export(*args, **kwargs)


def open_bundle(*args, **kwargs):
    """See :func:`vsrdeploy.runtimes.engine.open_bundle`."""
    from .runtimes import open_bundle as _open
    return _open(*args, **kwargs)

__version__ = "0.1.0"

__all__ = ["load_checkpoint", "build_model", "list_models", "export_onnx", "open_bundle", "VSRDeployError", "CheckpointError", "BundleError", "BackendUnavailable", "OutputError",
           "ConfigError", "InputError", "__version__"]
