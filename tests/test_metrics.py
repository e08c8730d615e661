import math

import numpy as np
import pytest

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
