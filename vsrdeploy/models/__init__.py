"""PyTorch networks, each written as cells + a schedule."""
from .base import RecurrentVSR
from .registry import build_model, get_model_class, list_models, model_classes, register_model

__all__ = ["RecurrentVSR", "build_model", "get_model_class", "list_models", "model_classes", "register_model"]
