"""Registry of network architectures: name -> class. Add a network with ``@register_model``.

Configurations are validated here (types from ``default_config``, bounds from ``config_limits``), before
any module is built: a config can come from an untrusted bundle manifest or a ``--config`` flag.
"""
from __future__ import annotations

import math

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


#: bounds of integer and float options shared by several networks; a class adds its own in ``config_limits``
COMMON_LIMITS = {"mid_channels": (1, 512), "num_blocks": (0, 256)}
#: bound of any other integer option (list items included)
DEFAULT_INT_LIMITS = (0, 1024)
MAX_LIST_LENGTH = 16


def _type_name(value) -> str:
    return type(value).__name__


def config_problems(cls, config) -> list[str]:
    """Every way ``config`` does not fit ``cls``: unknown keys, wrong types, values out of bounds."""
    if not isinstance(config, dict):
        return [f"config must be a mapping of option -> value, got {_type_name(config)}"]
    defaults = cls.default_config
    limits = {**COMMON_LIMITS, **getattr(cls, "config_limits", {})}
    problems = []
    unknown = sorted(map(str, set(config) - set(defaults)))
    if unknown:
        problems.append(f"{cls.arch} has no option(s) {', '.join(unknown)}; options: {', '.join(sorted(defaults))}")
    for key, value in config.items():
        if key not in defaults:
            continue
        default = defaults[key]
        lo, hi = limits.get(key, DEFAULT_INT_LIMITS)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                problems.append(f"{key} must be true or false, got {value!r}")
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append(f"{key} must be an integer, got {value!r} ({_type_name(value)})")
            elif not lo <= value <= hi:
                problems.append(f"{key} must be between {lo} and {hi}, got {value}")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                problems.append(f"{key} must be a finite number, got {value!r}")
            elif not lo <= value <= hi:
                problems.append(f"{key} must be between {lo:g} and {hi:g}, got {value:g}")
        elif isinstance(default, list):
            if (not isinstance(value, list) or not 1 <= len(value) <= MAX_LIST_LENGTH
                    or any(isinstance(v, bool) or not isinstance(v, int) for v in value)):
                problems.append(f"{key} must be a list of 1 to {MAX_LIST_LENGTH} integers like {default}, "
                                f"got {value!r}")
            elif any(not lo <= v <= hi for v in value):
                problems.append(f"{key} items must be between {lo} and {hi}, got {value}")
    return problems


def validate_config(arch: str, config) -> dict:
    """``config`` checked against ``arch`` (every problem in one ``ConfigError``), merged over the defaults."""
    cls = get_model_class(arch)
    problems = config_problems(cls, config)
    if problems:
        raise ConfigError(f"invalid {arch} config: {'; '.join(problems)}")
    return {**cls.default_config, **config}


def build_model(arch: str, **config):
    """Build a network with random weights: ``build_model('basicvsr', mid_channels=16, num_blocks=2)``."""
    return get_model_class(arch)(**validate_config(arch, config))


def _ensure_loaded():
    from . import basicvsr, basicvsr_pp, iconvsr, psrt, realbasicvsr, spynet_model  # noqa: F401 (registers)
