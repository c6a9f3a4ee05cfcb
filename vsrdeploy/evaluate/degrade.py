"""Low-resolution clips from high-resolution ones, with the degradations of the upstream VSR benchmarks.

The BasicVSR/IconVSR/BasicVSR++ and EDVR benchmark protocols use two degradations, both x4:

``"bi"`` -- MATLAB ``imresize(img, 1/4, 'bicubic')`` (:func:`bicubic_resize` with ``scale=1/4``):
    Keys cubic kernel with ``a = -0.5``; when downscaling, antialiasing stretches the kernel by
    ``1/scale`` (``h(x) = scale * k(scale * x)``, kernel width ``4 / scale``, i.e. 16 taps at x1/4) and the
    weights of each output pixel are normalised to sum to 1. Output pixel ``x`` (1-based) samples the
    input at ``u = x / scale + 0.5 * (1 - 1 / scale)``; 0-based this is ``u0 = (x0 + 0.5) / scale - 0.5``
    (pixel centres aligned). Indices falling outside the image are mirrored symmetrically with the edge
    pixel repeated (MATLAB's ``[1:n, n:-1:1]``). The resize is separable; MATLAB resizes the dimension
    with the smaller scale first, and with one scale for both it does rows (H) then columns (W), as here.
    The output size is ``ceil(H * scale) x ceil(W * scale)``.

``"bd"`` -- blur then subsample (:func:`bd_degrade`), as the MATLAB ``BD_degradation`` script used
    to make the Vimeo-90K-BD / Vid4-BD sets that BasicVSR-family BD models are trained and tested on:
    a normalised ``ceil(3 * sigma) * 2 + 2 = 12``-tap square Gaussian with sigma 1.6, applied as
    ``imfilter(img, kernel, 'replicate')`` (borders repeat the edge pixel), then rows and columns
    ``scale/2 : scale : end`` in MATLAB's 1-based indexing (0-based offset 1), giving
    ``ceil((H - 1) / 4) x ceil((W - 1) / 4)`` (= H/4 x W/4 for multiples of 4).

    DUF's ``DUF_downsample`` (BasicSR's ``duf_downsample``) differs: a 13-tap kernel, offset 0 and
    mirrored borders; ``bd_degrade(img, kernel_size=13, offset=0)`` gives its kernel and phase.

No clamping or rounding is applied unless asked (``degrade(..., quantize=True)`` rounds to 8-bit levels
the way upstream LR frames, stored as 8-bit PNGs, are).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ..errors import ConfigError, InputError

__all__ = ["DEGRADATIONS", "bicubic_resize", "bd_degrade", "degrade", "cubic", "gaussian_kernel"]

#: the degradations :func:`degrade` knows
DEGRADATIONS = ("bi", "bd")

_CUBIC_A = -0.5
_CUBIC_WIDTH = 4.0


def cubic(x) -> np.ndarray:
    """Keys cubic convolution kernel with ``a = -0.5`` (MATLAB ``imresize``'s bicubic), support [-2, 2]."""
    ax = np.abs(np.asarray(x, dtype=np.float64))
    ax2 = ax * ax
    ax3 = ax2 * ax
    a = _CUBIC_A
    inner = (a + 2.0) * ax3 - (a + 3.0) * ax2 + 1.0
    outer = a * ax3 - 5.0 * a * ax2 + 8.0 * a * ax - 4.0 * a
    return np.where(ax <= 1.0, inner, np.where(ax <= 2.0, outer, 0.0))


def _mirror(idx: np.ndarray, n: int) -> np.ndarray:
    """0-based indices folded into [0, n) by symmetric mirroring that repeats the edge (MATLAB's aux)."""
    m = np.mod(idx, 2 * n)
    return np.where(m >= n, 2 * n - 1 - m, m)


@lru_cache(maxsize=64)
def _cubic_weights(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(indices, weights), each (out_len, taps): MATLAB imresize 'contributions' for one axis, 0-based."""
    antialias = scale < 1.0
    width = _CUBIC_WIDTH / scale if antialias else _CUBIC_WIDTH
    x = np.arange(out_len, dtype=np.float64)
    u = (x + 0.5) / scale - 0.5                        # 0-based input coordinate of each output pixel
    left = np.floor(u - width / 2.0).astype(np.int64)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.int64)[None, :]
    dist = u[:, None] - idx
    w = scale * cubic(scale * dist) if antialias else cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    keep = np.any(w != 0.0, axis=0)                    # drop all-zero columns, as MATLAB does
    idx, w = _mirror(idx[:, keep], in_len), w[:, keep]
    idx.flags.writeable = False
    w.flags.writeable = False
    return idx, w


def _apply_axis(x: np.ndarray, idx: np.ndarray, w: np.ndarray, axis: int) -> np.ndarray:
    """Weighted gather along ``axis`` (-2 or -1): ``out[..., o, ...] = sum_t w[o, t] * x[..., idx[o, t], ...]``."""
    out = None
    for t in range(idx.shape[1]):
        if axis == -2:
            term = x[..., idx[:, t], :] * w[:, t, None]
        else:
            term = x[..., idx[:, t]] * w[:, t]
        out = term if out is None else out + term
    return out


def _as_frames(img, what: str) -> tuple[np.ndarray, np.dtype]:
    arr = np.asarray(img)
    if arr.ndim not in (3, 4) or arr.shape[-3] != 3:
        raise InputError(f"{what}: expected a frame (3, H, W) or a clip (T, 3, H, W), got shape "
                         f"{tuple(arr.shape)}; put the RGB channels before H and W")
    if arr.shape[-1] == 0 or arr.shape[-2] == 0:
        raise InputError(f"{what}: the frames are empty ({tuple(arr.shape)}); give frames of at least 1x1 pixel")
    dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    return arr, np.dtype(dtype)


def bicubic_resize(img, scale: float) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` (antialiased when downscaling) of ``(3, H, W)`` or ``(T, 3, H, W)``.

    Output ``(..., ceil(H * scale), ceil(W * scale))``; float64 input stays float64, anything else gives
    float32. Computed in float64 with precomputed per-axis index/weight tables; values are not clamped.
    """
    arr, dtype = _as_frames(img, "bicubic_resize")
    try:
        s = float(scale)
    except (TypeError, ValueError):
        raise InputError(f"bicubic_resize: scale must be a number such as 0.25, got {scale!r}") from None
    if not math.isfinite(s) or s <= 0:
        raise InputError(f"bicubic_resize: scale must be a positive number such as 0.25, got {scale!r}")
    h, w = arr.shape[-2:]
    oh, ow = int(math.ceil(h * s)), int(math.ceil(w * s))
    x = arr.astype(np.float64, copy=False)
    x = _apply_axis(x, *_cubic_weights(h, oh, s), axis=-2)
    x = _apply_axis(x, *_cubic_weights(w, ow, s), axis=-1)
    return x.astype(dtype, copy=False)


def gaussian_kernel(size: int = 13, sigma: float = 1.6) -> np.ndarray:
    """Normalised 2-D Gaussian ``size x size`` (MATLAB ``fspecial('gaussian', size, sigma)``), float64."""
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    k = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2.0 * sigma * sigma))
    k[k < np.finfo(np.float64).eps * k.max()] = 0.0
    return k / k.sum()


@lru_cache(maxsize=64)
def _bd_weights(in_len: int, scale: int, sigma: float, size: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, weights) of blur-and-subsample along one axis, edge replicated (imfilter 'replicate')."""
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(t * t) / (2.0 * sigma * sigma))
    g = g / g.sum()                                     # the 2-D kernel is the outer product of this
    centres = np.arange(offset, in_len, scale, dtype=np.int64)
    # imfilter's anchor for an n-tap kernel is tap floor((n + 1) / 2) (1-based) -> (n - 1) // 2 (0-based)
    idx = centres[:, None] + (np.arange(size, dtype=np.int64) - (size - 1) // 2)[None, :]
    idx = np.clip(idx, 0, in_len - 1)
    w = np.broadcast_to(g, idx.shape).copy()
    idx.flags.writeable = False
    w.flags.writeable = False
    return idx, w


def bd_degrade(img, scale: int = 4, sigma: float = 1.6, *, kernel_size: int = 12, offset: int = 1) -> np.ndarray:
    """"BD" degradation of ``(3, H, W)`` or ``(T, 3, H, W)``: Gaussian blur, then keep every ``scale``-th pixel.

    Blur with a normalised ``kernel_size``-square Gaussian of ``sigma`` using replicated borders (MATLAB
    ``imfilter(img, fspecial('gaussian', 12, 1.6), 'replicate')``), then subsample rows and columns
    ``offset, offset + scale, ...`` (offset 1 = MATLAB ``2:4:end``). Output
    ``ceil((H - offset) / scale) x ceil((W - offset) / scale)``; float64 stays float64, else float32.
    Only the kept pixels are computed (the Gaussian is separable).
    """
    arr, dtype = _as_frames(img, "bd_degrade")
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise InputError(f"bd_degrade: scale must be a positive integer subsampling factor such as 4, got {scale!r}")
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, (int, np.integer)) or kernel_size < 1:
        raise InputError(f"bd_degrade: kernel_size must be a positive integer such as 13, got {kernel_size!r}")
    if not isinstance(offset, (int, np.integer)) or not 0 <= offset < scale:
        raise InputError(f"bd_degrade: offset must be an integer in [0, {scale}), got {offset!r}")
    try:
        s = float(sigma)
    except (TypeError, ValueError):
        s = math.nan
    if not math.isfinite(s) or s <= 0:
        raise InputError(f"bd_degrade: sigma must be a positive number such as 1.6, got {sigma!r}")
    h, w = arr.shape[-2:]
    if offset >= min(h, w):
        raise InputError(f"bd_degrade: a {w}x{h} frame is too small for offset {offset}; use larger frames")
    x = arr.astype(np.float64, copy=False)
    x = _apply_axis(x, *_bd_weights(h, int(scale), s, int(kernel_size), int(offset)), axis=-2)
    x = _apply_axis(x, *_bd_weights(w, int(scale), s, int(kernel_size), int(offset)), axis=-1)
    return x.astype(dtype, copy=False)


def degrade(clip, kind: str, *, quantize: bool = False) -> np.ndarray:
    """LR clip ``(T, 3, h, w)`` float32 from an HR clip ``(T, 3, H, W)`` with the x4 ``"bi"`` or ``"bd"`` degradation.

    ``quantize=True`` clamps to [0, 1] and rounds to 8-bit levels, like upstream LR frames stored as PNG.
    """
    key = kind.lower() if isinstance(kind, str) else kind
    if key not in DEGRADATIONS:
        raise ConfigError(f"unknown degradation {kind!r}; choose one of: {', '.join(DEGRADATIONS)}")
    arr = np.asarray(clip)
    if arr.ndim != 4 or arr.shape[1] != 3:
        raise InputError(f"degrade: expected a clip shaped (T, 3, H, W), got {tuple(arr.shape)}; "
                         "stack RGB frames with the colour channels first")
    frames = []
    for frame in arr:                                   # one frame at a time keeps the float64 copies small
        lr = bicubic_resize(frame, 0.25) if key == "bi" else bd_degrade(frame, 4, 1.6)
        if quantize:
            lr = np.round(np.clip(lr, 0.0, 1.0) * 255.0) / 255.0
        frames.append(lr.astype(np.float32, copy=False))
    if not frames:
        raise InputError("degrade: the clip has no frames; give at least one frame")
    return np.stack(frames)
