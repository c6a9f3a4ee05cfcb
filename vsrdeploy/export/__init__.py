"""Cells -> ONNX bundles (``export_onnx``); ONNX -> TensorRT engines.

``export_onnx`` needs PyTorch and onnx and is imported on first use (PEP 562), so ``vsrdeploy.export.cache``
(opening a bundle) does not import them.
"""
from __future__ import annotations


def __getattr__(name: str):
    if name == "export_onnx":
        from .onnx_export import export_onnx
        globals()[name] = export_onnx
        return export_onnx
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["export_onnx"]
