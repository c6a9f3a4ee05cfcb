"""vsrdeploy: recurrent video super-resolution networks from PyTorch checkpoints to deployable runtimes."""
from .checkpoint import load_checkpoint
from .errors import CheckpointError, ConfigError, InputError, VSRDeployError
from .models import build_model, list_models

__version__ = "0.1.0"

__all__ = ["load_checkpoint", "build_model", "list_models", "VSRDeployError", "CheckpointError",
           "ConfigError", "InputError", "__version__"]
