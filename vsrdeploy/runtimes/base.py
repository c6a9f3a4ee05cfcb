"""The backend interface and its registry.

A backend loads a bundle's cells and runs one cell on named arrays of its kind (``Backend.arrays``): numpy
arrays for the ONNX Runtime and OpenVINO CPU backends, which so run a bundle without importing PyTorch, and
``torch.Tensor``s on the backend's device elsewhere (``torch.device``: recurrent state stays on the GPU
between steps). Backends import their runtime (onnxruntime, openvino, tensorrt, torch) only when constructed.
"""
from __future__ import annotations

import inspect
from typing import ClassVar, Mapping

from ..bundle import Bundle
from ..errors import BackendUnavailable, ConfigError

_BACKENDS: dict[str, type["Backend"]] = {}


def register_backend(name: str):
    def deco(cls):
        cls.name = name
        _BACKENDS[name] = cls
        return cls
    return deco


class Backend:
    name: str = ""
    #: the ONNX operator types this runtime cannot import (checked against the bundle's cells)
    unsupported_ops: frozenset[str] = frozenset()
    #: DCN export mode used when this backend is given a checkpoint instead of a bundle
    preferred_dcn: str = "native"
    #: whether this backend runs the bundle's exported cells (False: the network rebuilt from the bundle's
    #: weights, the same computation whichever DCN form the bundle was exported in)
    runs_exported_cells: bool = True
    #: precision name -> constructor options; precisions missing here are reported as unsupported
    precisions: dict[str, dict] = {"fp32": {}}
    #: precisions this runtime can give an INT8 bundle's float ops (the ones left unquantized: deformable
    #: sampling, excluded convs), named ``int8-<p>`` (e.g. ``int8-bf16``); their options come from ``precisions``
    int8_float_precisions: tuple[str, ...] = ()
    #: options read from ``self.options`` rather than named in ``__init__`` (the others come from signatures)
    extra_options: frozenset[str] = frozenset()
    #: attributes holding the runtime's sessions / compiled models, dropped by :meth:`close`
    resources: tuple[str, ...] = ()
    #: whether local cells may be called on row strips (input heights the frame size does not have);
    #: False where shapes are fixed ahead of time (TensorRT optimization profiles)
    row_strips: bool = True
    #: this runtime's resident memory per byte of the cells' own tensors, which ``--memory-budget`` estimates
    #: (1.0: ONNX Runtime and PyTorch, measured at or under the estimate)
    memory_overhead: float = 1.0
    #: the arrays ``run`` exchanges: "numpy" (host memory; no PyTorch in the process) or "torch" (tensors on
    #: ``device``)
    arrays: ClassVar[str] = "torch"

    def __init__(self, bundle: Bundle, **options):
        self.bundle = bundle
        self.options = options
        self.device = "cpu"  # a torch.device on the backends whose arrays are torch tensors on a GPU
        self.precision = "fp32"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this backend cannot run on this machine (one line), or None."""
        return None

    @classmethod
    def unimportable_ops(cls, bundle: Bundle) -> list[str]:
        """The operator types of ``bundle``'s cells this runtime cannot import (sorted; empty: none)."""
        return sorted(bundle.cell_ops() & cls.unsupported_ops)

    def check_bundle(self, bundle: Bundle) -> None:
        bad = self.unimportable_ops(bundle)
        if bad:
            raise BackendUnavailable(
                f"{self.name} cannot run this bundle: it cannot import {', '.join(bad)} "
                f"(bundle dcn={bundle.dcn}); export with --dcn decomposed")

    @classmethod
    def option_names(cls) -> list[str]:
        """Every constructor option this backend takes (``threads`` is taken by all; backends without a CPU
        thread pool of their own ignore it)."""
        names = {"threads"}
        for klass in cls.__mro__:
            if not issubclass(klass, Backend):
                continue
            names |= set(klass.__dict__.get("extra_options", ()))
            init = klass.__dict__.get("__init__")
            if init is not None:
                names |= {p.name for p in inspect.signature(init).parameters.values()
                          if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in ("self", "bundle")}
        return sorted(names)

    def run(self, cell: str, inputs: Mapping) -> dict:
        raise NotImplementedError

    def close(self) -> None:
        """Drop the runtime's sessions / compiled models so their memory goes back. Idempotent."""
        for name in self.resources:
            if hasattr(self, name):
                delattr(self, name)
        if getattr(self.device, "type", self.device) == "cuda":
            import torch
            torch.cuda.empty_cache()

    __call__ = run

    def describe(self) -> str:
        precision = self.bundle.precision if self.bundle.precision != "fp32" else self.precision
        if self.bundle.precision == "int8" and self.precision != "fp32":
            precision = f"int8-{self.precision}"  # float ops at a reduced precision
        return f"{self.name} ({self.device}, {precision})"


#: vsrdeploy's own backends -> the module that registers them, imported when one of its backends is first asked
#: for: opening a bundle on ort-cpu imports neither PyTorch (the torch and tensorrt modules) nor OpenVINO's module
BUILTIN_BACKENDS = {"ort-cpu": "onnxruntime_backend", "ort-cuda": "onnxruntime_backend",
                    "ort-trt": "onnxruntime_backend", "openvino-cpu": "openvino_backend",
                    "openvino-gpu": "openvino_backend", "tensorrt": "tensorrt_backend", "torch": "torch_backend",
                    "torch-cuda": "torch_backend"}


def list_backends() -> list[str]:
    return list(dict.fromkeys([*BUILTIN_BACKENDS, *_BACKENDS]))


def get_backend_class(name: str) -> type[Backend]:
    if name not in _BACKENDS and name in BUILTIN_BACKENDS:
        import importlib
        importlib.import_module(f".{BUILTIN_BACKENDS[name]}", __package__)  # registers its backends
    if name not in _BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; known: {', '.join(list_backends())}")
    return _BACKENDS[name]


def check_backend_names(names: list[str]) -> None:
    """Raise ConfigError naming every unknown backend in ``names`` and listing the known ones."""
    known = list_backends()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(known)}")


def int8_float_precision(precision: str) -> str | None:
    """``int8-bf16`` -> ``bf16`` (an INT8 bundle, its float ops at that precision); None for other precisions."""
    return precision.removeprefix("int8-") if precision.startswith("int8-") else None


def precision_options(name: str, precision: str, bundle: Bundle | None = None) -> dict:
    """Constructor options that make backend ``name`` run at ``precision``; raises BackendUnavailable
    (with the reason) when it cannot."""
    cls = get_backend_class(name)
    float_precision = int8_float_precision(precision)
    if float_precision is not None:  # an INT8 bundle, its float ops at a reduced precision
        if float_precision not in cls.int8_float_precisions:
            able = [n for n in list_backends() if float_precision in get_backend_class(n).int8_float_precisions]
            raise BackendUnavailable(f"{name} cannot run an INT8 bundle's float ops in {float_precision}; "
                                     f"{', '.join(able) or 'no backend here'} can")
        if bundle is not None and bundle.precision != "int8":
            raise BackendUnavailable(f"{precision} runs an INT8 bundle; the bundle is {bundle.precision}: make one "
                                     "with `vsrdeploy calibrate BUNDLE`")
        return dict(cls.precisions[float_precision])
    if bundle is not None and bundle.precision != "fp32":
        if precision != bundle.precision:
            also = [f"int8-{p}" for p in cls.int8_float_precisions] if bundle.precision == "int8" else []
            raise BackendUnavailable(f"the bundle is {bundle.precision}; it runs only at that precision"
                                     + (f" (on {name} also {', '.join(also)})" if also else ""))
        return {}
    if precision not in cls.precisions:
        raise BackendUnavailable(
            f"{name} runs {', '.join(cls.precisions)} from an FP32 bundle; {precision} needs a converted "
            f"bundle: `vsrdeploy convert BUNDLE --precision fp16` or `vsrdeploy calibrate BUNDLE`")
    return dict(cls.precisions[precision])


def check_options(name: str, options: Mapping) -> None:
    """TypeError naming the options backend ``name`` takes when ``options`` holds another."""
    valid = get_backend_class(name).option_names()
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(f"backend {name} got unknown option(s) {', '.join(unknown)}; it takes: {', '.join(valid)}")


def parse_backend_options(name: str, items) -> dict:
    """``["keep_working_sets=2", "arena=true"]`` -> ``{"keep_working_sets": 2, "arena": True}`` for backend
    ``name`` (the CLI's ``--backend-option``): values read as JSON where they parse (numbers, true / false,
    null), as text otherwise. ConfigError naming the options ``name`` takes for a malformed item or an
    unknown option; the backend itself validates the values."""
    import json
    options = {}
    for item in items or ():
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--backend-option takes KEY=VALUE (e.g. keep_working_sets=2), got {item!r}")
        try:
            options[key] = json.loads(text)
        except ValueError:
            options[key] = text
    try:
        check_options(name, options)
    except TypeError as e:
        raise ConfigError(str(e)) from None
    return options


def create_backend(name: str, bundle: Bundle, **options) -> Backend:
    cls = get_backend_class(name)
    check_options(name, options)
    reason = cls.unavailable_reason()
    if reason:
        raise BackendUnavailable(f"backend {name} is unavailable: {reason}")
    return cls(bundle, **options)


def availability() -> dict[str, str | None]:
    """Backend name -> None when it can run here, else the reason it cannot."""
    return {name: get_backend_class(name).unavailable_reason() for name in list_backends()}
