"""Standalone SPyNet as a registered model (for its own checkpoints and flow parity)."""
from __future__ import annotations

from .registry import register_model
from .spynet import SPyNet


@register_model("spynet")
class SPyNetModel(SPyNet):
    """Optical flow only: ``model(ref, supp)`` -> flow (not a super-resolution network)."""

    default_config: dict = {}
    upstream_configs: dict = {"flow (mmagic init weights)": {}}
    #: the standalone upstream file holds only ``basic_module.*`` (mean/std are fixed constants)
    optional_keys = ("mean", "std")

    def config(self) -> dict:
        return {}

    @staticmethod
    def infer_config(sd: dict) -> dict:
        return {}

    @staticmethod
    def detect(keys) -> bool:
        return bool(keys) and all(k.startswith("basic_module.") or k in ("mean", "std") for k in keys)
