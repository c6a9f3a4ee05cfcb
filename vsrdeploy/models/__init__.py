"""PyTorch networks, each written as cells + a schedule.

The networks need PyTorch; the streaming machinery beside them (``schedule``, ``schedules``, ``spec``,
``budget``, ``tiles``, ``strips``, ``spill``, ``arrays``, ``ports``) does not, so the names below are imported
on first use (PEP 562) and ``import vsrdeploy.models.schedule`` does not import torch.
"""
from __future__ import annotations

import importlib

_LAZY = {
    "RecurrentVSR": ".base",
    "build_model": ".registry",
    "get_model_class": ".registry",
    "list_models": ".registry",
    "model_classes": ".registry",
    "register_model": ".registry",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
