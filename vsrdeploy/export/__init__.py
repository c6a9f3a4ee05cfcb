"""Cells -> ONNX bundles (``export_onnx``); ONNX -> TensorRT engines.

``export_onnx`` needs PyTorch and onnx and is imported on first use (PEP 562), so ``vsrdeploy.export.cache``
(opening a bundle) does not import them.
"""
from __future__ import annotations

from ..lazy import lazy_attributes

__getattr__, __dir__ = lazy_attributes(__name__, {"export_onnx": ".onnx_export"}, globals())

__all__ = ["export_onnx"]
