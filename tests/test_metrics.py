import math

import numpy as np
import pytest
from skimage.color import deltaE_ciede2000, rgb2lab

from kmquant import metrics


def test_psnr_matches_its_definition(crop_pixels):
    noisy = np.clip(crop_pixels.astype(int) + 3, 0, 255).astype(np.uint8)
    mse = np.mean((crop_pixels.astype(float) - noisy) ** 2)
    assert metrics.mse(crop_pixels, noisy) == pytest.approx(mse)
    assert metrics.psnr(crop_pixels, noisy) == pytest.approx(10 * math.log10(255**2 / mse))


def test_identical_images_are_lossless(crop_pixels):
    assert metrics.psnr(crop_pixels, crop_pixels) == math.inf
    assert metrics.ssim(crop_pixels, crop_pixels) == pytest.approx(1.0)


def test_ssim_drops_with_damage(crop_pixels):
    blocky = (crop_pixels // 64 * 64).astype(np.uint8)
    assert 0 < metrics.ssim(crop_pixels, blocky) < 0.95


def test_ssim_of_tiny_images():
    a = np.zeros((5, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0] = 9
    assert metrics.ssim(a, b) < 1.0  # 3×3 window still fits
    assert metrics.ssim(a[:1, :1], b[:1, :1]) is None
    assert metrics.ssim(a[:1, :1], a[:1, :1]) == 1.0


def test_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        metrics.psnr(np.zeros((2, 2, 3), np.uint8), np.zeros((2, 3, 3), np.uint8))


def test_bits_per_pixel():
    assert metrics.bits_per_pixel(1000, 100, 10) == 8.0


def test_visible_ignores_colour_under_full_transparency():
    a = np.zeros((8, 8, 4), np.uint8)
    a[..., :3] = 200
    a[:4, :, 3] = 0  # invisible, whatever the colour
    a[4:, :, 3] = 255
    b = a.copy()
    b[:4, :, :3] = 0
    assert metrics.psnr(metrics.visible(a), metrics.visible(b)) == math.inf
    half = a.copy()
    half[4:, :, 3] = 128  # half-transparent colour counts half
    assert metrics.visible(half)[5, 0, 0] == round(200 * 128 / 255)
    rgb = a[..., :3]
    assert metrics.visible(rgb) is rgb


# --- delta_e


def _shifted(pixels: np.ndarray, by: int) -> np.ndarray:
    return np.clip(pixels.astype(int) + by, 0, 255).astype(np.uint8)


def test_identical_images_differ_by_zero(crop_pixels):
    assert metrics.delta_e(crop_pixels, crop_pixels) == 0.0
    assert metrics.delta_e(crop_pixels, crop_pixels, percentile=95) == 0.0


def test_matches_scikit_image_per_pixel(crop_pixels):
    shifted = _shifted(crop_pixels, 6)
    per_pixel = deltaE_ciede2000(rgb2lab(crop_pixels), rgb2lab(shifted))
    result = metrics.delta_e(crop_pixels, shifted)
    assert result > 0
    assert result == pytest.approx(per_pixel.mean(), rel=1e-12)


def test_black_to_white_is_100():
    # CIEDE2000 of L* 0 vs 100 with no chroma: ΔL' = 100, S_L = 1 at mean L' = 50.
    black, white = np.zeros((2, 3, 3), np.uint8), np.full((2, 3, 3), 255, np.uint8)
    assert metrics.delta_e(black, white) == pytest.approx(100.0, abs=0.01)


@pytest.mark.parametrize("q", [0, 10, 50, 95, 100])
def test_percentile_matches_numpy_to_a_thousandth(crop_pixels, q):
    blocky = (crop_pixels // 48 * 48).astype(np.uint8)
    per_pixel = deltaE_ciede2000(rgb2lab(crop_pixels), rgb2lab(blocky))
    expected = np.percentile(per_pixel, q, method="inverted_cdf")
    assert metrics.delta_e(crop_pixels, blocky, percentile=q) == pytest.approx(expected, abs=1e-3)


def test_chunks_give_the_same_answer(crop_pixels, monkeypatch):
    blocky = (crop_pixels // 48 * 48).astype(np.uint8)
    def both():
        return [metrics.delta_e(crop_pixels, blocky, percentile=q) for q in (None, 90)]

    whole = both()
    monkeypatch.setattr(metrics, "_DELTA_E_CHUNK", 100)  # one row (96 pixels) per chunk
    assert both() == pytest.approx(whole, rel=1e-12)


def test_alpha_is_ignored_and_grey_is_the_rgb_grey(crop_pixels):
    shifted = _shifted(crop_pixels, -4)
    expected = metrics.delta_e(crop_pixels, shifted)
    opaque = np.full(crop_pixels.shape[:2] + (1,), 255, np.uint8)
    clear = np.zeros_like(opaque)
    rgba = np.dstack([crop_pixels, opaque]), np.dstack([shifted, clear])
    assert metrics.delta_e(*rgba) == expected
    grey, grey_shifted = crop_pixels[:, :, 1:2], shifted[:, :, 1:2]
    as_rgb = metrics.delta_e(np.repeat(grey, 3, axis=2), np.repeat(grey_shifted, 3, axis=2))
    assert metrics.delta_e(grey, grey_shifted) == as_rgb > 0


def test_bad_inputs():
    a = np.zeros((2, 2, 3), np.uint8)
    with pytest.raises(ValueError, match="shape"):
        metrics.delta_e(a, np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(ValueError, match="C = 1, 3 or 4"):
        metrics.delta_e(np.zeros((2, 2, 2), np.uint8), np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="no pixels"):
        metrics.delta_e(a[:0], a[:0])
    with pytest.raises(ValueError, match="percentile"):
        metrics.delta_e(a, a, percentile=101)
