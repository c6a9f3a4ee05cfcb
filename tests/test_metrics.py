"""Metrics (PSNR/SSIM parity with scikit-image on real images) and the BI/BD degradations."""
import math

import numpy as np
import pytest

from vsrdeploy.evaluate.degrade import DEGRADATIONS, bd_degrade, bicubic_resize, degrade, gaussian_kernel
from vsrdeploy.errors import ConfigError, InputError, VSRDeployError
from vsrdeploy.evaluate.metrics import check_finite, clip_metrics, max_abs_error, psnr, rgb_to_y, ssim

skdata = pytest.importorskip("skimage.data")
skmetrics = pytest.importorskip("skimage.metrics")
ndimage = pytest.importorskip("scipy.ndimage")


def sk_ssim(a, b):
    return skmetrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                           data_range=1.0, channel_axis=0 if a.ndim == 3 else None)


def crop(img, border):
    return img[..., border:img.shape[-2] - border, border:img.shape[-1] - border] if border else img


def real_image(name):
    """A bundled scikit-image photo as float64 (3, H, W) in [0, 1] (these ship with scikit-image: no download)."""
    return getattr(skdata, name)().transpose(2, 0, 1).astype(np.float64) / 255.0


@pytest.fixture(scope="module", params=["astronaut", "chelsea"])
def pair_set(request):
    ref = real_image(request.param)
    rng = np.random.default_rng(0)
    noisy = np.clip(ref + rng.normal(0.0, 0.04, ref.shape), 0.0, 1.0)
    blurred = np.stack([ndimage.gaussian_filter(c, 1.2) for c in ref])
    return ref, {"noisy": noisy, "blurred": blurred}


@pytest.mark.parametrize("border", [0, 4])
def test_psnr_ssim_match_scikit_image(pair_set, border):
    ref, tests = pair_set
    for kind, test in tests.items():
        r, t = crop(ref, border), crop(test, border)
        # RGB
        expected = skmetrics.peak_signal_noise_ratio(r, t, data_range=1.0)
        assert psnr(test, ref, crop_border=border) == pytest.approx(expected, rel=1e-6), kind
        assert abs(ssim(test, ref, crop_border=border) - sk_ssim(t, r)) < 1e-6, kind
        # Y (BT.601 luma, same formula as upstream rgb2ycbcr y_only)
        ry, ty = rgb_to_y(r), rgb_to_y(t)
        expected = skmetrics.peak_signal_noise_ratio(ry, ty, data_range=1.0)
        assert psnr(test, ref, crop_border=border, y_channel=True) == pytest.approx(expected, rel=1e-6), kind
        assert abs(ssim(test, ref, crop_border=border, y_channel=True) - sk_ssim(ty, ry)) < 1e-6, kind


def test_float32_input_gives_float64_exact_metrics():
    ref = real_image("chelsea")[:, :96, :128]
    test = np.clip(ref + np.random.default_rng(3).normal(0, 0.03, ref.shape), 0, 1)
    ref32, test32 = ref.astype(np.float32), test.astype(np.float32)
    # metrics run in float64 on the float32 values as given
    assert abs(ssim(test32, ref32) - sk_ssim(test32.astype(np.float64), ref32.astype(np.float64))) < 1e-12
    assert psnr(test32, ref32) == pytest.approx(
        skmetrics.peak_signal_noise_ratio(ref32.astype(np.float64), test32.astype(np.float64), data_range=1.0),
        rel=1e-12)


def test_no_quantization_or_clamping():
    ref = np.full((3, 16, 16), 0.5)
    out = ref + 1e-4  # far below an 8-bit level
    assert psnr(out, ref) == pytest.approx(80.0)
    over = ref.copy()
    over[0, 0, 0] = 1.5  # out of range values are used as they are
    assert psnr(over, ref) == pytest.approx(10 * math.log10(1 / (1.0 / (3 * 16 * 16))))


def test_rgb_to_y_levels():
    white = np.ones((3, 4, 5), np.float32)
    black = np.zeros((3, 4, 5), np.float32)
    np.testing.assert_allclose(rgb_to_y(white), 235 / 255, rtol=0, atol=1e-7)
    np.testing.assert_allclose(rgb_to_y(black), 16 / 255, rtol=0, atol=1e-7)
    assert rgb_to_y(white).shape == (4, 5)
    red = np.zeros((3, 1, 1))
    red[0] = 1.0
    assert rgb_to_y(red)[0, 0] == pytest.approx((16 + 65.481) / 255)


def test_identical_images():
    img = real_image("astronaut")[:, :64, :64]
    assert psnr(img, img) == math.inf
    assert psnr(img, img, y_channel=True, crop_border=4) == math.inf
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    assert ssim(img[0], img[0]) == pytest.approx(1.0, abs=1e-12)


def test_clip_metrics_and_max_abs_error():
    ref = np.stack([real_image("astronaut")[:, :48, :48]] * 3).astype(np.float32)
    out = ref.copy()
    out[1, 2, 5, 7] += 0.25
    out[2] += 0.01
    m = clip_metrics(out, ref, crop_border=2)
    assert m["frames"] == 3
    assert m["psnr_rgb"][0] == math.inf and m["ssim_rgb"][0] == pytest.approx(1.0)
    assert m["psnr_rgb"][1] == pytest.approx(psnr(out[1], ref[1], crop_border=2))
    assert m["ssim_y"][2] == pytest.approx(ssim(out[2], ref[2], crop_border=2, y_channel=True))
    assert m["psnr_y_mean"] == math.inf
    assert m["ssim_rgb_mean"] == pytest.approx(np.mean(m["ssim_rgb"]))
    np.testing.assert_allclose(m["max_abs_error"], [0.0, 0.25, 0.01], atol=1e-6)
    assert m["max_abs_error_max"] == pytest.approx(0.25, abs=1e-6)
    assert max_abs_error(out, ref) == pytest.approx(0.25, abs=1e-6)


# -- bicubic (MATLAB imresize) -----------------------------------------------------------------------

def keys_cubic(x):
    x = abs(x)
    if x <= 1:
        return 1.5 * x ** 3 - 2.5 * x ** 2 + 1
    if x <= 2:
        return -0.5 * x ** 3 + 2.5 * x ** 2 - 4 * x + 2
    return 0.0


def expected_downscale_weights(out_index, n, factor=4):
    """{input index: weight} of one output pixel of an antialiased MATLAB bicubic 1/factor downscale."""
    centre = (out_index + 0.5) * factor - 0.5          # 1-based u = x*f + 0.5*(1-f), minus 1
    first = math.floor(centre - 2 * factor) + 1
    taps = range(first, first + 4 * factor)            # 16 taps: the stretched kernel's support
    raw = {i: keys_cubic((centre - i) / factor) / factor for i in taps}
    total = sum(raw.values())
    weights = {}
    for i, v in raw.items():
        j = i
        while not 0 <= j < n:                          # symmetric mirror, edge pixel repeated
            j = -j - 1 if j < 0 else 2 * n - 1 - j
        weights[j] = weights.get(j, 0.0) + v / total
    return weights


def test_bicubic_output_size_odd():
    img = np.random.default_rng(0).random((3, 37, 50)).astype(np.float32)
    out = bicubic_resize(img, 0.25)
    assert out.shape == (3, 10, 13) and out.dtype == np.float32
    assert bicubic_resize(np.stack([img, img]), 0.25).shape == (2, 3, 10, 13)
    assert bicubic_resize(img, 2).shape == (3, 74, 100)


def test_bicubic_constant_stays_constant():
    img = np.full((3, 37, 50), 0.3, np.float32)
    np.testing.assert_allclose(bicubic_resize(img, 0.25), 0.3, atol=1e-6)
    np.testing.assert_allclose(bicubic_resize(img, 3), 0.3, atol=1e-6)


def test_bicubic_downscale_matches_kernel_formula():
    rng = np.random.default_rng(1)
    img = rng.random((3, 41, 53))
    out = bicubic_resize(img, 0.25)
    assert out.shape == (3, 11, 14)
    for oy, ox in [(0, 0), (0, 13), (5, 7), (10, 13), (10, 0), (3, 1)]:
        wy = expected_downscale_weights(oy, 41)
        wx = expected_downscale_weights(ox, 53)
        for c in range(3):
            expected = sum(vy * vx * img[c, iy, ix] for iy, vy in wy.items() for ix, vx in wx.items())
            assert out[c, oy, ox] == pytest.approx(expected, abs=1e-6), (oy, ox, c)


def test_bicubic_upscale_keeps_a_ramp():
    w = 20
    ramp = np.broadcast_to(np.arange(w, dtype=np.float64) / w, (3, 6, w)).copy()
    out = bicubic_resize(ramp, 2)
    x = np.arange(2 * w)
    expected = ((x + 0.5) / 2 - 0.5) / w
    interior = slice(4, 2 * w - 4)
    np.testing.assert_allclose(out[:, :, interior], np.broadcast_to(expected[interior], out[:, :, interior].shape),
                               atol=1e-12)


# -- BD (Gaussian blur + subsampling) ----------------------------------------------------------------

def test_gaussian_kernel_formula():
    k = gaussian_kernel(13, 1.6)
    assert k.shape == (13, 13)
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    t = np.arange(13) - 6.0
    raw = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * 1.6 ** 2))
    np.testing.assert_allclose(k, raw / raw.sum(), rtol=1e-12, atol=1e-15)
    assert k[6, 6] == k.max()


def test_bd_size_and_constant():
    img = np.full((3, 37, 50), 0.7, np.float32)
    out = bd_degrade(img)  # MATLAB BD_degradation: offset 1 -> ceil(36 / 4) x ceil(49 / 4)
    assert out.shape == (3, 9, 13) and out.dtype == np.float32
    assert bd_degrade(img, kernel_size=13, offset=0).shape == (3, 10, 13)
    np.testing.assert_allclose(out, 0.7, atol=1e-6)


def test_bd_subsampling_offset():
    g1 = np.exp(-(np.arange(13) - 6.0) ** 2 / (2 * 1.6 ** 2))
    g1 /= g1.sum()
    g = dict(zip(range(-6, 7), g1))                    # 1-D weight by tap offset
    img = np.zeros((3, 24, 24))
    img[:, 0, 0] = 1.0
    out = bd_degrade(img, kernel_size=13, offset=0)  # the 13-tap, phase-0 variant (its taps are easy to list)
    assert out.shape == (3, 6, 6)
    near_edge = sum(g[t] for t in range(-6, 1))         # replicate: taps left of the edge read pixel 0
    assert out[0, 0, 0] == pytest.approx(near_edge ** 2, abs=1e-12)
    assert out[0, 0, 1] == pytest.approx(near_edge * sum(g[t] for t in range(-6, -3)), abs=1e-12)
    img = np.zeros((3, 24, 24))
    img[:, 1, 1] = 1.0
    out = bd_degrade(img, kernel_size=13, offset=0)
    assert out[1, 0, 0] == pytest.approx(g[1] ** 2, abs=1e-12)
    assert out[1, 0, 1] == pytest.approx(g[1] * g[-3], abs=1e-12)
    assert out[1, 1, 1] == pytest.approx(g[-3] ** 2, abs=1e-12)


@pytest.mark.parametrize("size, offset", [(13, 0), (12, 1)])
def test_bd_matches_opencv_replicate_filter(size, offset):
    cv2 = pytest.importorskip("cv2")
    img = np.random.default_rng(2).random((3, 40, 36))
    k = gaussian_kernel(size, 1.6)
    anchor = ((size - 1) // 2, (size - 1) // 2)
    blurred = np.stack([cv2.filter2D(c, -1, k, anchor=anchor, borderType=cv2.BORDER_REPLICATE) for c in img])
    expected = blurred[:, offset::4, offset::4]
    np.testing.assert_allclose(bd_degrade(img, kernel_size=size, offset=offset), expected, atol=1e-12)


def test_degrade_clip():
    clip = np.random.default_rng(4).random((2, 3, 32, 44)).astype(np.float32)
    assert DEGRADATIONS == ("bi", "bd")
    bi, bd = degrade(clip, "bi"), degrade(clip, "bd")
    assert bi.shape == bd.shape == (2, 3, 8, 11) and bi.dtype == bd.dtype == np.float32
    np.testing.assert_allclose(bi[1], bicubic_resize(clip[1], 0.25), atol=1e-7)
    q = degrade(clip, "bi", quantize=True)
    np.testing.assert_allclose(q * 255, np.round(q * 255), atol=1e-4)


# -- errors -------------------------------------------------------------------------------------------

def test_errors():
    a = np.zeros((3, 32, 32))
    with pytest.raises(InputError, match="differ in shape"):
        psnr(a, np.zeros((3, 32, 31)))
    with pytest.raises(InputError, match="differ in shape"):
        ssim(a, np.zeros((3, 31, 32)))
    with pytest.raises(InputError, match="SSIM window"):
        ssim(a, a, crop_border=12)
    with pytest.raises(InputError, match="clip_metrics"):
        psnr(np.zeros((2, 3, 8, 8)), np.zeros((2, 3, 8, 8)))
    with pytest.raises(ConfigError, match="bi, bd"):
        degrade(np.zeros((1, 3, 8, 8), np.float32), "gaussian")
    clip = np.zeros((10, 3, 4, 4), np.float32)
    check_finite(clip, "output")
    clip[7, 1, 2, 3] = np.nan
    clip[9, 0, 0, 0] = np.inf
    with pytest.raises(VSRDeployError, match="output: frame 7 contains NaN"):
        check_finite(clip, "output")
    clip[7] = 0
    with pytest.raises(VSRDeployError, match="output: frame 9 contains Inf"):
        check_finite(clip, "output")
