"""Image-quality metrics as the upstream video super-resolution benchmarks compute them.

Conventions
-----------
* Frames are float arrays ``(3, H, W)`` in RGB order with values in ``[0, 1]``; a clip is
  ``(T, 3, H, W)``. Single-channel images ``(H, W)`` are accepted by :func:`psnr` and :func:`ssim`.
* **No quantization and no clamping**: the metrics are computed on the float values exactly as
  given (internally in float64). Upstream tools usually convert outputs to 8-bit images first;
  whether to clamp to ``[0, 1]`` or round to 8-bit levels is the caller's decision.
* ``crop_border`` (default 0, as the upstream VSR benchmarks BasicVSR/IconVSR/BasicVSR++ use) removes
  that many pixels from each of the four sides before computing.
* ``y_channel=True`` evaluates on BT.601 luma as mmagic/BasicSR ``rgb2ycbcr(img, y_only=True)``
  compute it for ``[0, 1]`` float RGB:
  ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255`` (so Y lies in ``[16/255, 235/255]``).
  ``data_range`` stays as given (1.0), which is the same as upstream's 255 on the 0..255 scale.
* PSNR is ``10 log10(data_range**2 / MSE)``; identical images give ``inf``.
* SSIM is Wang et al. (2004) as in mmagic/BasicSR: an 11x11 Gaussian window with sigma 1.5,
  ``K1 = 0.01``, ``K2 = 0.03``, population (co)variances, the SSIM map averaged over the *valid* region
  only (the positions whose whole window lies inside the image), computed per channel and averaged
  over channels. This equals ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=data_range, channel_axis=0)`` given float64 input.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import InputError, VSRDeployError

__all__ = ["rgb_to_y", "psnr", "ssim", "max_abs_error", "clip_metrics", "check_finite",
           "SSIM_WINDOW", "SSIM_SIGMA"]

#: SSIM Gaussian window side and standard deviation (Wang et al. 2004)
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
_K1, _K2 = 0.01, 0.03

#: BT.601 studio-swing luma for [0, 1] RGB, as upstream's rgb2ycbcr(y_only=True)
_Y_OFFSET = 16.0
_Y_WEIGHTS = (65.481, 128.553, 24.966)


def rgb_to_y(img) -> np.ndarray:
    """BT.601 luma ``(16 + 65.481 R + 128.553 G + 24.966 B) / 255`` of RGB ``(..., 3, H, W)`` in [0, 1].

    Returns ``(..., H, W)``: float32 for float32 input, float64 otherwise.
    """
    arr = np.asarray(img)
    if arr.ndim < 3 or arr.shape[-3] != 3:
        raise InputError(f"rgb_to_y needs RGB frames shaped (3, H, W), got shape {tuple(arr.shape)}; "
                         "put the 3 colour channels first")
    dtype = np.float32 if arr.dtype == np.float32 else np.float64
    x = arr.astype(np.float64, copy=False)
    r, g, b = x[..., 0, :, :], x[..., 1, :, :], x[..., 2, :, :]
    y = (_Y_OFFSET + _Y_WEIGHTS[0] * r + _Y_WEIGHTS[1] * g + _Y_WEIGHTS[2] * b) / 255.0
    return y.astype(dtype, copy=False)


def _prepare(a, b, crop_border: int, y_channel: bool, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate a pair of images and return them as float64 (C, H, W), cropped and converted to Y."""
    x = np.asarray(a)
    r = np.asarray(b)
    if x.shape != r.shape:
        raise InputError(f"{what}: the two images differ in shape, {tuple(x.shape)} vs {tuple(r.shape)}; "
                         "give images of the same size (crop or resize one of them)")
    if x.ndim == 2:
        if y_channel:
            raise InputError(f"{what}: y_channel=True needs RGB images shaped (3, H, W), got {tuple(x.shape)}; "
                             "pass RGB frames or use y_channel=False")
        x, r = x[None], r[None]
    elif x.ndim != 3 or x.shape[0] != 3:
        hint = "use clip_metrics for (T, 3, H, W) clips" if x.ndim == 4 else "put the colour channels first"
        raise InputError(f"{what}: expected images shaped (3, H, W) or (H, W), got {tuple(x.shape)}; {hint}")
    if isinstance(crop_border, bool) or not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
        raise InputError(f"{what}: crop_border must be a non-negative integer, got {crop_border!r}")
    x = x.astype(np.float64, copy=False)
    r = r.astype(np.float64, copy=False)
    if crop_border:
        h, w = x.shape[-2:]
        if 2 * crop_border >= min(h, w):
            raise InputError(f"{what}: crop_border={crop_border} leaves nothing of a {w}x{h} image; "
                             "use a smaller crop_border")
        x = x[:, crop_border:h - crop_border, crop_border:w - crop_border]
        r = r[:, crop_border:h - crop_border, crop_border:w - crop_border]
    if y_channel:
        x = rgb_to_y(x)[None]
        r = rgb_to_y(r)[None]
    return x, r


def _check_range(data_range, what: str) -> float:
    value = float(data_range)
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"{what}: data_range must be a positive number, got {data_range!r}; "
                         "use 1.0 for [0, 1] images")
    return value


def psnr(a, b, *, crop_border: int = 0, y_channel: bool = False, data_range: float = 1.0) -> float:
    """PSNR in dB between two images ``(3, H, W)`` or ``(H, W)``; ``inf`` when they are identical.

    Computed on the float values as given (no clamping, no 8-bit rounding), over all channels at once
    (RGB) or on BT.601 luma (``y_channel=True``), after removing ``crop_border`` pixels on each side.
    """
    rng = _check_range(data_range, "psnr")
    x, r = _prepare(a, b, crop_border, y_channel, "psnr")
    mse = float(np.mean((x - r) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(rng * rng / mse)


def _gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable correlation of a 2-D image with the 1-D window ``g``, 'valid' positions only."""
    n = g.size
    h, w = img.shape
    rows = g[0] * img[0:h - n + 1, :]
    for k in range(1, n):
        rows = rows + g[k] * img[k:h - n + 1 + k, :]
    out = g[0] * rows[:, 0:w - n + 1]
    for k in range(1, n):
        out = out + g[k] * rows[:, k:w - n + 1 + k]
    return out


def _ssim_plane(x: np.ndarray, y: np.ndarray, g: np.ndarray, data_range: float) -> float:
    c1 = (_K1 * data_range) ** 2
    c2 = (_K2 * data_range) ** 2
    mx = _filter_valid(x, g)
    my = _filter_valid(y, g)
    vx = _filter_valid(x * x, g) - mx * mx
    vy = _filter_valid(y * y, g) - my * my
    cxy = _filter_valid(x * y, g) - mx * my
    num = (2.0 * mx * my + c1) * (2.0 * cxy + c2)
    den = (mx * mx + my * my + c1) * (vx + vy + c2)
    return float(np.mean(num / den))


def ssim(a, b, *, crop_border: int = 0, y_channel: bool = False, data_range: float = 1.0) -> float:
    """Mean SSIM (Wang et al. 2004) between two images ``(3, H, W)`` or ``(H, W)``.

    11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, population statistics, SSIM map averaged
    over the valid region, per channel then averaged over channels; computed in float64 on the values
    as given. Needs at least 11x11 pixels after ``crop_border``.
    """
    rng = _check_range(data_range, "ssim")
    x, r = _prepare(a, b, crop_border, y_channel, "ssim")
    h, w = x.shape[-2:]
    if min(h, w) < SSIM_WINDOW:
        raise InputError(f"ssim: a {w}x{h} image (after crop_border={crop_border}) is smaller than the "
                         f"{SSIM_WINDOW}x{SSIM_WINDOW} SSIM window; use larger images or a smaller crop_border")
    g = _gaussian_window()
    return float(np.mean([_ssim_plane(x[c], r[c], g, rng) for c in range(x.shape[0])]))


def max_abs_error(a, b) -> float:
    """Largest absolute difference between two arrays of the same shape."""
    x = np.asarray(a)
    r = np.asarray(b)
    if x.shape != r.shape:
        raise InputError(f"max_abs_error: the arrays differ in shape, {tuple(x.shape)} vs {tuple(r.shape)}; "
                         "compare arrays of the same size")
    if x.size == 0:
        return 0.0
    return float(np.max(np.abs(x.astype(np.float64, copy=False) - r.astype(np.float64, copy=False))))


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def clip_metrics(out, ref, *, crop_border: int = 0) -> dict:
    """Per-frame and mean metrics of an output clip against a reference clip, both ``(T, 3, H, W)``.

    Returns a dict with ``frames`` (T), per-frame lists ``psnr_rgb``, ``psnr_y``, ``ssim_rgb``, ``ssim_y``,
    ``max_abs_error`` and the summaries ``psnr_rgb_mean``, ``psnr_y_mean``, ``ssim_rgb_mean``,
    ``ssim_y_mean`` and ``max_abs_error_max`` (overall). A mean PSNR is ``inf`` if a frame is identical.
    Values are used as given (no clamping); ``max_abs_error`` ignores ``crop_border``.
    """
    x = np.asarray(out)
    r = np.asarray(ref)
    if x.shape != r.shape:
        raise InputError(f"clip_metrics: the clips differ in shape, {tuple(x.shape)} vs {tuple(r.shape)}; "
                         "give clips with the same number of frames and frame size")
    if x.ndim != 4 or x.shape[1] != 3:
        raise InputError(f"clip_metrics: expected clips shaped (T, 3, H, W), got {tuple(x.shape)}; "
                         "stack RGB frames with the colour channels first")
    keys = ("psnr_rgb", "psnr_y", "ssim_rgb", "ssim_y", "max_abs_error")
    result: dict = {"frames": int(x.shape[0])}
    for key in keys:
        result[key] = []
    for o, g in zip(x, r):
        o64 = o.astype(np.float64, copy=False)
        g64 = g.astype(np.float64, copy=False)
        result["psnr_rgb"].append(psnr(o64, g64, crop_border=crop_border))
        result["ssim_rgb"].append(ssim(o64, g64, crop_border=crop_border))
        result["psnr_y"].append(psnr(o64, g64, crop_border=crop_border, y_channel=True))
        result["ssim_y"].append(ssim(o64, g64, crop_border=crop_border, y_channel=True))
        result["max_abs_error"].append(max_abs_error(o64, g64))
    for key in keys[:4]:
        result[f"{key}_mean"] = _mean(result[key])
    result["max_abs_error_max"] = max(result["max_abs_error"], default=0.0)
    return result


def check_finite(clip, name: str) -> None:
    """Raise :class:`VSRDeployError` naming the first frame (index along axis 0) holding NaN or Inf."""
    arr = np.asarray(clip)
    if arr.ndim == 0 or arr.size == 0:
        return
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.complexfloating):
        return
    bad = ~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)
    if not bad.any():
        return
    i = int(np.argmax(bad))
    kind = "NaN" if np.isnan(arr[i]).any() else "Inf"
    raise VSRDeployError(f"{name}: frame {i} contains {kind}; check the input frames and the runtime's "
                         "precision (fp16 can overflow; try fp32)")
