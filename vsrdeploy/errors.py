"""Exceptions raised for users' mistakes. Each message says how to fix the problem."""


class VSRDeployError(Exception):
    """Base class of every error vsrdeploy raises on purpose."""


class CheckpointError(VSRDeployError):
    """A checkpoint file cannot be read or does not fit the network."""


class InputError(VSRDeployError):
    """Frames given to a network have the wrong shape, size or length."""


class ConfigError(VSRDeployError):
    """An unknown architecture or an invalid configuration value."""


class OutputError(VSRDeployError):
    """An output path cannot be written."""


class BundleError(VSRDeployError):
    """A bundle directory is missing, damaged or tampered with."""


class BackendUnavailable(VSRDeployError):
    """A runtime cannot run here (package missing, no GPU, unsupported bundle); the message says why."""
