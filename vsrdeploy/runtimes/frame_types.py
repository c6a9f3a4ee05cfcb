"""What kinds of frames the Python API takes, and how each comes back.

The rule is by type and dtype, never guessed from the shape:

==========================  ==============  ===========================  ==================================
input frame                 layout          values                       output frame
==========================  ==============  ===========================  ==================================
numpy float16/32/64         (3, H, W) CHW   RGB in [0, 1]                numpy float32 (3, sH, sW)
numpy uint8                 (H, W, 3) HWC   RGB 0..255 (PIL, imageio)    numpy uint8 (sH, sW, 3)
numpy uint16                (H, W, 3) HWC   RGB 0..65535                 numpy uint16 (sH, sW, 3)
torch float16/32/64, bf16   (3, H, W) CHW   RGB in [0, 1]                torch float32 (3, sH, sW)
torch uint8                 (3, H, W) CHW   RGB 0..255 (torchvision)     torch uint8 (3, sH, sW)
==========================  ==============  ===========================  ==================================

Integer outputs are rounded and always clamped to their range. Torch outputs stay on the backend's device
(``cuda`` for the GPU backends): nothing is copied to the CPU for them.

Frames go into the network as the backend's arrays (``Backend.arrays``): numpy for the ONNX Runtime and
OpenVINO CPU backends, which then run without PyTorch, torch tensors elsewhere. The conversions are the same
elementwise float32 operations either way (cast, one division by 255 / 65535; clamp, one multiplication,
round half to even), so both give the same bits.
"""
from __future__ import annotations

from dataclasses import dataclass

import sys

import numpy as np

from ..errors import InputError
from ..models.arrays import is_torch

_NUMPY_INT_MAX = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}
RULE = ("float frames are (3, H, W) RGB in [0, 1]; uint8/uint16 numpy frames are (H, W, 3) RGB; uint8 torch "
        "frames are (3, H, W)")


@dataclass(frozen=True)
class FrameKind:
    """How one input frame was given, so that its output can be given back the same way."""
    library: str  # "numpy" or "torch"
    channels_last: bool  # HWC (numpy integer frames) instead of CHW
    int_max: int | None  # 255 / 65535 for integer frames, None for float frames
    dtype: object  # the output dtype (numpy dtype or torch dtype)


def frame_kind(frame, index: int = 0) -> FrameKind:
    """The kind of ``frame`` (see the module's table); InputError for anything else."""
    if isinstance(frame, np.ndarray):
        if frame.dtype in _NUMPY_INT_MAX:
            kind = FrameKind("numpy", True, _NUMPY_INT_MAX[frame.dtype], frame.dtype)
        elif np.issubdtype(frame.dtype, np.floating):
            kind = FrameKind("numpy", False, None, np.dtype(np.float32))
        else:
            raise InputError(f"frame {index}: numpy dtype {frame.dtype} is not supported; {RULE}")
    elif is_torch(frame):
        torch = sys.modules["torch"]
        if frame.dtype == torch.uint8:
            kind = FrameKind("torch", False, 255, frame.dtype)
        elif frame.is_floating_point():
            kind = FrameKind("torch", False, None, torch.float32)
        else:
            raise InputError(f"frame {index}: torch dtype {frame.dtype} is not supported; {RULE}")
    else:
        raise InputError(f"frame {index}: expected a numpy array or a torch tensor, got {type(frame).__name__}; "
                         f"{RULE}")
    shape = tuple(frame.shape)
    channels = shape[-1] if kind.channels_last else (shape[0] if shape else None)
    if len(shape) != 3 or channels != 3:
        expected = "(H, W, 3)" if kind.channels_last else "(3, H, W)"
        hint = ""
        if not kind.channels_last and len(shape) == 3 and shape[-1] == 3:
            hint = " (an HWC float frame: pass frame.transpose(2, 0, 1), or uint8 HWC)"
        raise InputError(f"frame {index}: expected a {expected} RGB frame, got shape {shape}{hint}; {RULE}")
    return kind


def to_network(frame, kind: FrameKind, device, arrays: str = "torch"):
    """(1, 3, H, W) float32 in [0, 1] (integer frames scaled by their maximum): a torch tensor on ``device``, or
    a numpy array when ``arrays`` is ``"numpy"`` (the backend's kind)."""
    if arrays == "numpy" and kind.library == "numpy":
        a = np.asarray(frame)
        if kind.channels_last:
            a = a.transpose(2, 0, 1)
        a = a.astype(np.float32, order="C")  # a copy: the caller's frame is never the network's buffer
        if kind.int_max is not None:
            a = a / np.float32(kind.int_max)
        return a[None]
    torch = _torch()
    t = torch.from_numpy(np.ascontiguousarray(frame)) if kind.library == "numpy" else frame
    if kind.channels_last:
        t = t.permute(2, 0, 1)
    t = t.to(device=device, dtype=torch.float32)
    if kind.int_max is not None:
        t = t / kind.int_max
    t = t.unsqueeze(0)
    return t.contiguous().numpy() if arrays == "numpy" else t


def from_network(out, kind: FrameKind, clamp: bool = True):
    """One output frame (3, sH, sW) float (a torch tensor on the backend's device, or a numpy array), given back
    as ``kind``."""
    if not is_torch(out):
        out = out.astype(np.float32, copy=False)
        if kind.int_max is not None:
            out = np.round(np.clip(out, 0.0, 1.0) * np.float32(kind.int_max))
        elif clamp:
            out = np.clip(out, 0.0, 1.0)  # a new array: the schedule's own buffers are never written to
        if kind.channels_last:
            out = out.transpose(1, 2, 0)
        if kind.library == "torch":
            t = _torch().from_numpy(np.ascontiguousarray(out))
            return t.to(kind.dtype) if kind.dtype != t.dtype else t
        return np.ascontiguousarray(out.astype(kind.dtype, copy=False))
    torch = _torch()
    out = out.float()
    if kind.int_max is not None:
        out = (out.clamp(0.0, 1.0) * kind.int_max).round_()
    elif clamp:
        out = out.clamp(0.0, 1.0)  # a new tensor: the schedule's own buffers are never written to
    if kind.channels_last:
        out = out.permute(1, 2, 0)
    if kind.library == "torch":
        return out.to(kind.dtype) if kind.dtype != torch.float32 else out
    array = out.cpu().numpy()
    return np.ascontiguousarray(array.astype(kind.dtype, copy=False))


def _torch():
    import torch
    return torch
