"""PyTorch networks, each written as cells + a schedule.

The networks need PyTorch; the streaming machinery beside them (``schedule``, ``schedules``, ``spec``,
``budget``, ``tiles``, ``strips``, ``spill``, ``arrays``, ``ports``) does not, so the names below are imported
on first use (PEP 562) and ``import vsrdeploy.models.schedule`` does not import torch.
"""
from __future__ import annotations

from ..lazy import lazy_attributes

_LAZY = {
    "RecurrentVSR": ".base",
    "build_model": ".registry",
    "get_model_class": ".registry",
    "list_models": ".registry",
    "model_classes": ".registry",
    "register_model": ".registry",
}

__all__ = list(_LAZY)
__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
