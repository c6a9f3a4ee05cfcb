"""Cells -> ONNX bundles (``export_onnx``); ONNX -> TensorRT engines."""
from .onnx_export import export_onnx

__all__ = ["export_onnx"]
