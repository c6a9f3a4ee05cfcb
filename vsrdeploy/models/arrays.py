"""The few array operations the streaming machinery does outside cells, on numpy arrays or torch tensors.

Schedules, tiles, row strips and the spill file only copy, slice, concatenate and pad what the cells hand
them; all arithmetic happens inside the cells. So they work on whatever the runner exchanges: numpy arrays
for the ONNX Runtime and OpenVINO CPU backends (which then never import PyTorch: about 185 MB of resident
memory), torch tensors for PyTorch and the GPU backends. Every function here dispatches on its argument's
type and imports nothing heavy; a torch tensor can only exist when torch is already imported. Copies,
slices, concatenation and reflect / edge padding are exact, so both kinds give bit-identical results.
"""
from __future__ import annotations

import sys
from typing import Callable

import numpy as np


def is_torch(x) -> bool:
    """Whether ``x`` is a torch tensor (False without importing torch when torch is not loaded)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def cat(parts: list, axis: int = 0):
    """Concatenate arrays (all numpy or all torch) along ``axis``."""
    if is_torch(parts[0]):
        return sys.modules["torch"].cat(parts, axis)
    return np.concatenate(parts, axis)


def zeros(like, shape: tuple[int, ...]):
    """Zeros of ``like``'s dtype (and device), shaped ``shape``."""
    if is_torch(like):
        return like.new_zeros(shape)
    return np.zeros(shape, like.dtype)


def empty(like, shape: tuple[int, ...]):
    """An uninitialised array of ``like``'s dtype (and device), shaped ``shape``."""
    if is_torch(like):
        return like.new_empty(shape)
    return np.empty(shape, like.dtype)


def copy_into(buffers: dict, key, x):
    """A contiguous copy of ``x`` in ``buffers[key]``, which is made on first use and refilled after (the caller
    is done with the previous copy): repeated copies of one shape do not fault in fresh memory each time."""
    buf = buffers.get(key)
    if buf is None or tuple(buf.shape) != tuple(x.shape) or buf.dtype != x.dtype:
        buf = buffers[key] = empty(x, tuple(x.shape))
    if is_torch(x):
        buf.copy_(x)
    else:
        np.copyto(buf, x)
    return buf


def equal(a, b) -> bool:
    """Same shape and elements (NaN never equals NaN, as ``torch.equal``)."""
    if is_torch(a):
        return bool(sys.modules["torch"].equal(a, b))
    return a.shape == b.shape and bool(np.array_equal(a, b))


def pad_bottom_right(x, ph: int, pw: int, mode: str):
    """Pad the last two axes by ``ph`` rows at the bottom and ``pw`` columns at the right; ``mode`` is
    ``"reflect"`` (mirror without repeating the edge) or ``"replicate"`` (repeat the edge)."""
    if is_torch(x):
        return sys.modules["torch"].nn.functional.pad(x, [0, pw, 0, ph], mode=mode)
    widths = [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)]
    return np.pad(x, widths, mode={"reflect": "reflect", "replicate": "edge"}[mode])


def to_numpy(x) -> np.ndarray:
    """``x`` as a float32 numpy array on the CPU (a copy only where needed): for comparing and recording."""
    if is_torch(x):
        return x.detach().float().cpu().numpy()
    return np.asarray(x).astype(np.float32, copy=False)


def mean(x) -> float:
    """The mean of every element, as a Python float: PyTorch's float32 reduction for a tensor (upstream's),
    a float64 one for a numpy array (within float32 rounding of it; a decision at a threshold can differ
    only for a mean within that rounding of the threshold)."""
    if is_torch(x):
        return x.mean().item()
    return float(np.mean(x, dtype=np.float64))


def on_cpu(x) -> bool:
    return not is_torch(x) or x.device.type == "cpu"


def owned(x):
    """``x`` alone: a copy when it is a view into a larger array (a batch output), so that keeping it does not
    keep the whole batch."""
    if is_torch(x):
        return x.clone() if x.untyped_storage().nbytes() > x.nbytes else x
    root = x  # the array owning the memory (a runtime's output array may sit on an opaque buffer object)
    while isinstance(root.base, np.ndarray):
        root = root.base
    return x.copy() if root.nbytes > x.nbytes else x


def as_bytes(x) -> memoryview:
    """A flat byte view of a contiguous CPU copy of ``x`` (no copy when it already is one)."""
    if is_torch(x):  # through uint8: numpy has no bfloat16
        x = x.detach().contiguous().view(sys.modules["torch"].uint8).reshape(-1).numpy()
    return memoryview(np.ascontiguousarray(x)).cast("B")


def empty_like_kind(torch_kind: bool, shape: tuple[int, ...], dtype):
    """An uninitialised CPU array (a torch tensor when ``torch_kind``) for bytes read back from a file."""
    if torch_kind:
        return sys.modules["torch"].empty(shape, dtype=dtype)
    return np.empty(shape, dtype)


def tree_map(fn: Callable, tree):
    """``fn`` applied to every leaf of nested dicts, lists and tuples (other containers are leaves)."""
    if isinstance(tree, dict):
        return {k: tree_map(fn, v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [tree_map(fn, v) for v in tree]
    if isinstance(tree, tuple):
        mapped = [tree_map(fn, v) for v in tree]
        return type(tree)(*mapped) if hasattr(tree, "_fields") else type(tree)(mapped)  # named tuples by field
    return fn(tree)


def is_array(x) -> bool:
    return isinstance(x, np.ndarray) or is_torch(x)
