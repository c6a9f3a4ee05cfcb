"""Package attributes imported on first use (PEP 562), so importing a package does not import its heavy parts."""
from __future__ import annotations

import importlib
from typing import Callable


def lazy_attributes(package: str, names: dict[str, str], namespace: dict) -> tuple[Callable, Callable]:
    """``(__getattr__, __dir__)`` for ``package`` whose attribute ``name`` lives in module ``names[name]``
    (relative to ``package``); an attribute is imported on first access and kept in ``namespace``."""
    def __getattr__(name: str):
        if name in names:
            value = getattr(importlib.import_module(names[name], package), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
