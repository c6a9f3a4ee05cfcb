"""The models and the clip shipped inside the package, and the one place that turns a model name into a path.

Wherever a command or function takes a model (a checkpoint file or a .vsr bundle directory), the name of a
shipped model (``basicvsr``, ``basicvsr_pp``) is accepted too. A file or directory of that name in the
current directory wins over the shipped model.
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from .errors import ConfigError

SHIPPED_MODELS = {"basicvsr": "basicvsr_c16n4_opencv.pth", "basicvsr_pp": "basicvsrpp_c16n2_opencv.pth"}
BUNDLED_CLIP = "vtest_heldout_320x240.avi"


def package_file(*parts: str) -> Path:
    return Path(str(resources.files("vsrdeploy").joinpath(*parts)))


def shipped_model(name: str = "basicvsr") -> Path:
    """A model shipped in the package (``SHIPPED_MODELS``; model cards beside them)."""
    if name not in SHIPPED_MODELS:
        raise ConfigError(f"no shipped model {name!r}; shipped: {', '.join(SHIPPED_MODELS)}")
    return package_file("weights", SHIPPED_MODELS[name])


def bundled_clip() -> Path:
    return package_file("data", BUNDLED_CLIP)


def resolve_model(spec) -> Path:
    """``spec`` as a path: an existing file or directory as it is, else a shipped model's name -> its
    checkpoint, else the path unchanged (the caller reports it missing, naming the shipped models)."""
    path = Path(os.fspath(spec))
    if not path.exists() and str(spec) in SHIPPED_MODELS:
        return shipped_model(str(spec))
    return path


def not_found_hint() -> str:
    return f"a checkpoint file, a .vsr bundle directory, or a shipped model ({', '.join(SHIPPED_MODELS)})"
