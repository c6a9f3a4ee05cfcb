"""Running TensorRT engines that ``vsrdeploy build`` made: the engine index (verified plans), the TensorRT
import and logger, the GPU identity and the DCN plugin library. Used by the ``tensorrt`` backend; building
(``export/tensorrt.py``) re-uses it. ``tensorrt`` is imported only inside these functions."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..bundle import Bundle, safe_join
from ..errors import BackendUnavailable, BundleError, ConfigError, VSRDeployError

ENGINE_DIR = "engines/tensorrt"
PLUGIN_ENV = "VSRDEPLOY_TRT_PLUGIN"
PLUGIN_LIBRARY = "libvsrdeploy_dcn_plugin.so"


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailable("TensorRT is not installed: install NVIDIA's tensorrt Python package "
                                 "(JetPack ships it on Jetson)") from None
    major = tensorrt_major(trt.__version__)
    if major < 10:
        raise BackendUnavailable(f"TensorRT {trt.__version__} is too old: vsrdeploy needs TensorRT 10 or 11")
    return trt


def tensorrt_major(version: str) -> int:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        raise BackendUnavailable(f"cannot read the TensorRT version {version!r}") from None


def gpu_identity() -> tuple[str, str]:
    """(GPU name, compute capability 'major.minor') of the current CUDA device."""
    import torch
    if not torch.cuda.is_available():
        raise BackendUnavailable("TensorRT needs an NVIDIA GPU visible to PyTorch (torch.cuda.is_available() is False)")
    index = torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(index)
    return torch.cuda.get_device_name(index), f"{major}.{minor}"


def find_plugin(explicit: str | None = None) -> Path | None:
    """The DCN plugin library: --plugin, $VSRDEPLOY_TRT_PLUGIN, or the CMake build folder in the package."""
    for candidate in (explicit, os.environ.get(PLUGIN_ENV)):
        if candidate:
            p = Path(candidate)
            if not p.is_file():
                raise ConfigError(f"plugin library {p} does not exist; build it (README, 'Deploying to TensorRT')")
            return p
    default = Path(__file__).parents[1] / "export" / "plugins" / "dcn" / "build" / PLUGIN_LIBRARY
    return default if default.is_file() else None


_loaded_plugins: dict[str, object] = {}


def load_plugin(trt, path: Path) -> None:
    """Register the plugin library's creators with TensorRT (once per process)."""
    key = str(Path(path).resolve())
    if key in _loaded_plugins:
        return
    handle = trt.get_plugin_registry().load_library(key)
    if not handle:
        raise VSRDeployError(f"TensorRT could not load the plugin library {path} (built against another "
                             "TensorRT version?)")
    _loaded_plugins[key] = handle


_LOGGER = None


def logger(trt, verbose: bool = False):
    """The process's TensorRT logger (TensorRT keeps the first one it is given), keeping errors for messages."""
    global _LOGGER
    if _LOGGER is None:
        class Logger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)
                self.errors: list[str] = []
                self.verbose = False

            def log(self, severity, msg):
                errors = (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR)
                if severity in errors:
                    self.errors.append(msg)
                if self.verbose or severity in errors or severity == trt.ILogger.Severity.WARNING:
                    print(f"[TensorRT] {msg}")
        _LOGGER = Logger()
    _LOGGER.verbose = verbose
    return _LOGGER


def engine_dir(bundle: Bundle) -> Path:
    return bundle.path / ENGINE_DIR


def read_engine_index(bundle: Bundle, precision: str) -> tuple[dict, dict[str, bytes]]:
    """The engine index of ``bundle`` at ``precision`` and each cell's plan bytes, verified: every plan
    path stays inside the bundle's engine folder and matches the sha256 the index recorded for it.
    The index names no library to load: the plugin comes only from ``find_plugin`` (--plugin, the
    environment variable, or the package's own build)."""
    folder = engine_dir(bundle)
    index_path = folder / f"index-{precision}.json"
    if not index_path.is_file():
        raise BackendUnavailable(f"no {precision} TensorRT engines for {bundle.path}: run "
                                 f"`vsrdeploy build {bundle.path} --precision {precision}`")
    rebuild = f"run `vsrdeploy build {bundle.path} --precision {precision} --rebuild`"
    try:
        index = json.loads(index_path.read_text())
        cells = index["cells"]
        entries = {name: (cells[name]["file"], cells[name]["sha256"]) for name in bundle.cells}
        for key in ("tensorrt", "gpu", "sm", "profile"):
            index[key]
    except (ValueError, KeyError, TypeError):
        raise BundleError(f"{index_path} is damaged or from an older vsrdeploy; {rebuild}") from None
    plans = {}
    for name, (file, digest) in entries.items():
        if not isinstance(file, str) or not isinstance(digest, str):
            raise BundleError(f"{index_path}: the entry of cell {name} is damaged; {rebuild}")
        path = safe_join(folder, file)
        if not path.is_file():
            raise BundleError(f"{index_path} names {file} for cell {name}, which is missing; {rebuild}")
        plan = path.read_bytes()
        if hashlib.sha256(plan).hexdigest() != digest:
            raise BundleError(f"{folder / file} does not match its sha256 in {index_path.name} (damaged or "
                              f"modified); {rebuild}")
        plans[name] = plan
    return index, plans
