"""Registry of network architectures: name -> class. Add a network with ``@register_model``."""
from __future__ import annotations

from ..errors import ConfigError

_MODELS: dict[str, type] = {}


def register_model(name: str):
    def deco(cls):
        cls.arch = name
        _MODELS[name] = cls
        return cls
    return deco


def get_model_class(arch: str) -> type:
    _ensure_loaded()
    try:
        return _MODELS[arch]
    except KeyError:
        raise ConfigError(f"unknown architecture {arch!r}; known: {', '.join(sorted(_MODELS))}") from None


def list_models() -> list[str]:
    _ensure_loaded()
    return sorted(_MODELS)


def model_classes() -> dict[str, type]:
    _ensure_loaded()
    return dict(_MODELS)


def build_model(arch: str, **config):
    """Build a network with random weights: ``build_model('basicvsr', mid_channels=16, num_blocks=2)``."""
    cls = get_model_class(arch)
    cfg = dict(cls.default_config)
    unknown = set(config) - set(cfg)
    if unknown:
        raise ConfigError(f"{arch} has no option(s) {', '.join(sorted(unknown))}; "
                          f"options: {', '.join(sorted(cfg))}")
    cfg.update(config)
    return cls(**cfg)


def _ensure_loaded():
    from . import basicvsr, basicvsr_pp, iconvsr, psrt, realbasicvsr, spynet_model  # noqa: F401 (registers)
