"""Host (CPU) buffers for the CPU runtimes without copies: numpy arrays as they are, numpy views of torch
tensors, and a cell call's output shapes computed before the call so outputs can be written into buffers
the caller owns.

Backends that hand the runtime their own output buffers (OpenVINO's ``set_output_tensor``) need the
shapes before the call. Manifest dimensions are integers or symbols such as ``'N'``, ``'H'``, ``'4W'``
or ``'H/4'`` (see :func:`vsrdeploy.export.onnx_export.port_shape`).
"""
from __future__ import annotations

import re
from typing import Mapping

import numpy as np

from ..models.arrays import is_torch


def cpu_array(t) -> np.ndarray:
    """A contiguous numpy array of ``t`` (a numpy array or a torch tensor): ``t`` itself or a view of its
    memory when it is contiguous and on the CPU (the usual case), else a copy."""
    if not is_torch(t):
        return np.ascontiguousarray(t)
    t = t.detach()
    if t.device.type != "cpu" or not t.is_contiguous():
        t = t.cpu().contiguous()
    return t.numpy()


def as_inputs_kind(outs: dict[str, np.ndarray], inputs: Mapping) -> dict:
    """The numpy outputs of a call, as torch tensors (sharing their memory) when its inputs were torch tensors:
    the CPU backends exchange numpy arrays, and give torch back to a caller that brings torch."""
    if not any(is_torch(v) for v in inputs.values()):
        return outs
    import torch
    return {k: torch.from_numpy(v) for k, v in outs.items()}


_SYMBOL = re.compile(r"(\d*)([NHW])(?:/(\d+))?")


def _parse(sym: str) -> tuple[int, str, int] | None:
    """'4H' -> (4, 'H', 1); 'H/4' -> (1, 'H', 4); None for a symbol of another form."""
    m = _SYMBOL.fullmatch(str(sym))
    if not m:
        return None
    return int(m.group(1) or 1), m.group(2), int(m.group(3) or 1)


def output_shapes(inputs_spec: list[dict], outputs_spec: list[dict],
                  shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]] | None:
    """Output name -> shape for inputs of ``shapes`` (name -> shape), or None when the manifest does
    not determine them exactly (an input missing or of another rank, a symbol that no input binds,
    a fractional size): the caller then lets the runtime allocate the outputs."""
    known: dict[str, int] = {}  # symbol as written -> value
    base: dict[str, int] = {}  # 'N' / 'H' / 'W' -> value
    for port in inputs_spec:
        shape = shapes.get(port["name"])
        if shape is None or len(shape) != len(port["shape"]):
            return None
        for sym, size in zip(port["shape"], shape):
            if isinstance(sym, int):
                if sym != size:
                    return None
                continue
            if known.setdefault(sym, size) != size:
                return None
            parsed = _parse(sym)
            if parsed is not None and parsed[0] == parsed[2] == 1:
                base[parsed[1]] = size
    out = {}
    for port in outputs_spec:
        dims = []
        for sym in port["shape"]:
            if isinstance(sym, int):
                dims.append(sym)
            elif sym in known:
                dims.append(known[sym])
            else:
                parsed = _parse(sym)
                if parsed is None or parsed[1] not in base or (base[parsed[1]] * parsed[0]) % parsed[2]:
                    return None
                dims.append(base[parsed[1]] * parsed[0] // parsed[2])
        out[port["name"]] = tuple(dims)
    return out
