"""Metrics against scikit-image on whole images: the tiled pass must give the same figures.

The references are scikit-image 0.26's ``peak_signal_noise_ratio``, ``structural_similarity``
(``win_size=7`` or the largest odd side that fits, ``data_range=255``, ``channel_axis=2``) and the
per-pixel mean of ``deltaE_ciede2000(rgb2lab(a), rgb2lab(b))`` on the premultiplied images.
"""

from __future__ import annotations

import math
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from kmquant import metrics
from kmquant.metrics import Quality

# --- helpers


def _skimage(a: np.ndarray, b: np.ndarray) -> tuple[float, float | None, float]:
    """PSNR, SSIM and mean ΔE of two (already premultiplied) images by scikit-image, whole."""
    same = np.array_equal(a, b)
    psnr = math.inf if same else peak_signal_noise_ratio(a, b, data_range=255)
    side = min(a.shape[:2])
    if side < 3:
        ssim = 1.0 if same else None
    else:
        win = min(7, side if side % 2 else side - 1)
        ssim = structural_similarity(a, b, win_size=win, data_range=255, channel_axis=2)

    def rgb(x):
        return np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x[:, :, :3]

    return psnr, ssim, float(deltaE_ciede2000(rgb2lab(rgb(a)), rgb2lab(rgb(b))).mean())


def _assert_matches(quality: Quality, reference: tuple[float, float | None, float]) -> None:
    psnr, ssim, delta_e = reference
    if math.isinf(psnr):
        assert quality.psnr == math.inf
    else:
        assert quality.psnr == pytest.approx(psnr, rel=0, abs=1e-9)
    if ssim is None:
        assert quality.ssim is None
    else:
        assert quality.ssim == pytest.approx(ssim, rel=0, abs=1e-9)
    assert quality.delta_e == pytest.approx(delta_e, rel=1e-12, abs=1e-9)


def _check(original: np.ndarray, palette: np.ndarray, indices: np.ndarray) -> Quality:
    """measure and measure_arrays both equal scikit-image on the premultiplied images."""
    quantized = palette[indices]
    reference = _skimage(metrics.visible(original), metrics.visible(quantized))
    quality = metrics.measure(original, palette, indices)
    _assert_matches(quality, reference)
    _assert_matches(metrics.measure_arrays(original, quantized), reference)
    return quality


def _quantize(pixels: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A palette of ``k`` of the image's own colours and each pixel's nearest entry (plain NumPy)."""
    rng = np.random.default_rng(seed)
    flat = pixels.reshape(-1, pixels.shape[2])
    palette = flat[rng.choice(len(flat), k, replace=False)]
    d = ((flat[:, None, :].astype(np.int32) - palette[None].astype(np.int32)) ** 2).sum(axis=2)
    return palette, d.argmin(axis=1).astype(np.uint8).reshape(pixels.shape[:2])


def _with_alpha(pixels: np.ndarray) -> np.ndarray:
    """RGBA: a transparent band, an opaque band and partial alpha elsewhere."""
    height, width = pixels.shape[:2]
    alpha = (np.add.outer(np.arange(height), np.arange(width)) * 7 % 256).astype(np.uint8)
    alpha[: height // 4] = 0
    alpha[height // 4: height // 2] = 255
    return np.dstack([pixels, alpha])


def _noisy(pixels: np.ndarray, by: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(-by, by + 1, pixels.shape)
    return np.clip(pixels.astype(int) + noise, 0, 255).astype(np.uint8)


@pytest.fixture(params=[1, 3, 4], ids=["grey", "rgb", "rgba"])
def channels(request) -> int:
    return request.param


def _photo(pixels: np.ndarray, channels: int) -> np.ndarray:
    return {1: pixels[:, :, 1:2], 3: pixels, 4: _with_alpha(pixels)}[channels].copy()


# --- measure against scikit-image


def test_measure_matches_scikit_image_on_a_photo(crop_pixels, channels):
    original = _photo(crop_pixels, channels)
    palette, indices = _quantize(original, 12)
    quality = _check(original, palette, indices)
    assert 10 < quality.psnr < 50 and 0 < quality.ssim < 1 and quality.delta_e > 0


@pytest.mark.slow
def test_measure_matches_scikit_image_on_the_sample(sample_pixels, channels):
    original = _photo(sample_pixels, channels)
    palette, indices = _quantize(original, 16, seed=1)
    _check(original, palette, indices)


def test_measure_arrays_of_a_lossy_copy(crop_pixels, channels):
    # a decoded JPEG is not indexed: every pixel may differ, by a little
    original = _photo(crop_pixels, channels)
    lossy = _noisy(original, 3)
    reference = _skimage(metrics.visible(original), metrics.visible(lossy))
    _assert_matches(metrics.measure_arrays(original, lossy), reference)


@pytest.mark.parametrize("height", range(1, 11))
@pytest.mark.parametrize("width", [1, 2, 3, 4, 5, 6, 9])
def test_tiny_images(height, width, channels):
    rng = np.random.default_rng(height * 100 + width)
    palette = rng.integers(0, 256, (5, channels), dtype=np.uint8)
    indices = rng.integers(0, 5, (height, width), dtype=np.uint8)
    original = _noisy(palette[indices], 20, seed=width)
    _check(original, palette, indices)


@pytest.mark.parametrize("tile_values", [1, 5, 97, 1000])
def test_tiles_cut_at_every_row(crop_pixels, channels, tile_values, monkeypatch):
    original = _photo(crop_pixels, channels)[:40]
    palette, indices = _quantize(original, 6, seed=2)
    whole = metrics.measure(original, palette, indices)
    monkeypatch.setattr(metrics, "_TILE_VALUES", tile_values)  # 1: one row per tile
    tiled = _check(original, palette, indices)
    assert tiled.psnr == whole.psnr
    assert tiled.ssim == pytest.approx(whole.ssim, rel=0, abs=1e-12)
    assert tiled.delta_e == pytest.approx(whole.delta_e, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 14),
    width=st.integers(1, 14),
    channels=st.sampled_from([1, 3, 4]),
    k=st.integers(1, 6),
    changed=st.floats(0, 1),
    tile_values=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_image_and_tiling(height, width, channels, k, changed, tile_values, seed):
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (k, channels), dtype=np.uint8)
    if channels == 4:
        palette[:, 3] = rng.choice([0, 1, 128, 254, 255], k)
    indices = rng.integers(0, k, (height, width), dtype=np.uint8)
    original = palette[indices].copy()
    mask = rng.random((height, width)) < changed  # the rest stays exact: tiles may be identical
    original[mask] = rng.integers(0, 256, (int(mask.sum()), channels), dtype=np.uint8)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(metrics, "_TILE_VALUES", tile_values)
        _check(original, palette, indices)


def test_half_identical_image(crop_pixels, monkeypatch):
    # tiles of the exact top half take the shortcut; those whose halo reaches the bottom may not
    original = crop_pixels.copy()
    palette, indices = _quantize(original, 8)
    original[:32] = palette[indices[:32]]
    monkeypatch.setattr(metrics, "_TILE_VALUES", 96 * 3 * 2)
    _check(original, palette, indices)


# --- the lossless shortcut


def test_exact_copy(crop_pixels, channels, monkeypatch):
    original = _photo(crop_pixels, channels)
    palette, indices = _quantize(original, 8)
    original = palette[indices]

    def forbidden(*args, **kwargs):
        raise AssertionError("an exact copy needs no metric arithmetic")

    monkeypatch.setattr(metrics, "_ssim_sum", forbidden)
    monkeypatch.setattr(metrics, "_sse", forbidden)
    monkeypatch.setattr(metrics._DeltaE, "add", forbidden)
    exact = Quality(psnr=math.inf, ssim=1.0, delta_e=0.0)
    assert metrics.measure(original, palette, indices) == exact
    assert metrics.measure_arrays(original, original.copy()) == exact
    assert metrics.measure(original[:2, :2], palette, indices[:2, :2]) == exact  # no SSIM window


def test_lossless_flag_reads_no_pixels(crop_pixels, monkeypatch):
    palette, indices = _quantize(crop_pixels, 8)

    def forbidden(*args, **kwargs):
        raise AssertionError("lossless=True must not read the pixels")

    monkeypatch.setattr(metrics, "_tally", forbidden)
    exact = Quality(psnr=math.inf, ssim=1.0, delta_e=0.0)
    assert metrics.measure(crop_pixels, palette, indices, lossless=True) == exact
    assert metrics.measure_arrays(crop_pixels, crop_pixels, lossless=True) == exact
    assert metrics.measure(crop_pixels, palette, indices, lossless=True, ssim=False) == Quality(
        psnr=math.inf, delta_e=0.0
    )


def test_only_the_metrics_asked_for(crop_pixels):
    palette, indices = _quantize(crop_pixels, 8)
    full = metrics.measure(crop_pixels, palette, indices)

    def only(**asked):
        return metrics.measure(crop_pixels, palette, indices, **{"psnr": False, "ssim": False,
                                                                 "delta_e": False, **asked})

    assert only(psnr=True) == Quality(psnr=full.psnr)
    assert only(ssim=True) == Quality(ssim=full.ssim)
    assert only(delta_e=True) == Quality(delta_e=pytest.approx(full.delta_e, rel=1e-12))
    assert only() == Quality()


# --- memory and imports


@pytest.mark.slow
def test_memory_stays_bounded():
    # 2000×2000 RGB: one float64 copy of the image is 92 MB; scikit-image's SSIM held ~15 of them
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (64, 3), dtype=np.uint8)
    indices = rng.integers(0, 64, (2000, 2000), dtype=np.uint8)
    original = _noisy(palette[indices], 1)
    quantized = palette[indices]
    metrics.measure(original[:8], palette, indices[:8])  # imports outside the trace
    for run, bound in [
        (lambda: metrics.measure(original, palette, indices), 48),  # measured 31 MB
        (lambda: metrics.measure_arrays(original, quantized), 64),  # 8-byte ΔE keys: 46 MB
        (lambda: metrics.ssim(original, quantized), 24),  # 15 MB
    ]:
        tracemalloc.start()
        try:
            run()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < bound * 2**20


def test_import_pulls_in_neither_scikit_image_nor_scipy():
    code = "import sys, kmquant.metrics; print(sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "skimage" not in loaded and "scipy" not in loaded


# --- bad inputs


def test_bad_indexed_inputs():
    original = np.zeros((4, 5, 3), np.uint8)
    palette = np.zeros((2, 3), np.uint8)
    indices = np.zeros((4, 5), np.uint8)
    cases = [
        ((original, palette[:, :2], indices), "palette must be"),
        ((original, np.zeros((0, 3), np.uint8), indices), "1 to 256"),
        ((original, np.zeros((257, 3), np.uint8), indices), "1 to 256"),
        ((original, palette.astype(np.int16), indices), "uint8"),
        ((original, palette, indices[:3]), "indices must be"),
        ((original, palette, indices.astype(np.intp)), "indices must be uint8"),
        ((original, palette, indices + 2), "out of range"),
        ((original.astype(np.float64), palette, indices), "original must be uint8"),
        ((original[:, :, :2], palette[:, :2], indices), "C = 1, 3 or 4"),
        ((original[:0], palette, indices[:0]), "no pixels"),
    ]
    for args, message in cases:
        with pytest.raises(ValueError, match=message):
            metrics.measure(*args)
    with pytest.raises(ValueError, match="shape"):
        metrics.measure_arrays(original, original[:3])
    with pytest.raises(ValueError, match="quantized must be uint8"):
        metrics.measure_arrays(original, original.astype(np.int32))


# --- the functions on two whole images


def test_psnr_and_mse_match_scikit_image(crop_pixels):
    noisy = _noisy(crop_pixels, 9)
    assert metrics.mse(crop_pixels, noisy) == pytest.approx(mean_squared_error(crop_pixels, noisy), rel=1e-13)
    assert metrics.psnr(crop_pixels, noisy) == pytest.approx(
        peak_signal_noise_ratio(crop_pixels, noisy, data_range=255), rel=0, abs=1e-9
    )


def test_psnr_matches_its_definition(crop_pixels):
    noisy = np.clip(crop_pixels.astype(int) + 3, 0, 255).astype(np.uint8)
    mse = np.mean((crop_pixels.astype(float) - noisy) ** 2)
    assert metrics.mse(crop_pixels, noisy) == pytest.approx(mse)
    assert metrics.psnr(crop_pixels, noisy) == pytest.approx(10 * math.log10(255**2 / mse))


def test_ssim_matches_scikit_image(crop_pixels, channels):
    original = _photo(crop_pixels, channels)
    noisy = _noisy(original, 12)
    expected = structural_similarity(original, noisy, win_size=7, data_range=255, channel_axis=2)
    assert metrics.ssim(original, noisy) == pytest.approx(expected, rel=0, abs=1e-9)


def test_identical_images_are_lossless(crop_pixels):
    assert metrics.psnr(crop_pixels, crop_pixels) == math.inf
    assert metrics.ssim(crop_pixels, crop_pixels) == 1.0


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


def test_visible_rounds_as_the_float_formula():
    # every (colour, alpha): round-half-even of colour × (alpha / 255) in float64
    colour, alpha = np.meshgrid(np.arange(256), np.arange(256))
    pixels = np.stack([colour, 255 - colour, colour, alpha], axis=-1).astype(np.uint8)
    scale = pixels[:, :, 3:].astype(np.float64) / 255.0
    expected = np.rint(pixels[:, :, :3] * scale).astype(np.uint8)
    shown = metrics.visible(pixels)
    np.testing.assert_array_equal(shown[:, :, :3], expected)
    np.testing.assert_array_equal(shown[:, :, 3], pixels[:, :, 3])


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


def test_percentile_counts_identical_tiles(crop_pixels, monkeypatch):
    # exact rows skip the pooling but still count as ΔE 0 in the histogram
    blocky = crop_pixels.copy()
    blocky[32:] = crop_pixels[32:] // 48 * 48
    per_pixel = deltaE_ciede2000(rgb2lab(crop_pixels), rgb2lab(blocky))
    monkeypatch.setattr(metrics, "_TILE_VALUES", 96 * 3)
    for q in (30, 50, 75):
        expected = np.percentile(per_pixel, q, method="inverted_cdf")
        assert metrics.delta_e(crop_pixels, blocky, percentile=q) == pytest.approx(expected, abs=1e-3)


def test_pools_and_batches_give_the_same_answer(crop_pixels, monkeypatch):
    blocky = (crop_pixels // 48 * 48).astype(np.uint8)
    palette, indices = _quantize(crop_pixels, 8)

    def all_of_them():
        return [metrics.delta_e(crop_pixels, blocky, percentile=q) for q in (None, 90)] + [
            metrics.measure(crop_pixels, palette, indices, psnr=False, ssim=False).delta_e
        ]

    whole = all_of_them()
    monkeypatch.setattr(metrics, "_TILE_VALUES", 96 * 3)  # one row per tile
    monkeypatch.setattr(metrics, "_DELTA_E_CHUNK", 100)  # one row (96 pixels) per pool
    monkeypatch.setattr(metrics, "_SEGMENT", 37)  # runs cut at segment ends
    monkeypatch.setattr(metrics, "_CIEDE_BATCH", 16)
    assert all_of_them() == pytest.approx(whole, rel=1e-12)


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


def test_large_images_are_sampled_for_ssim_and_delta_e_but_psnr_stays_exact(sample_pixels):
    """Above ``sample_above`` pixels SSIM and ΔE read a seeded share of the tiles of rows (stated
    in ``Quality.sample``); PSNR is exact over every pixel; the estimates stay close."""
    original = np.ascontiguousarray(np.tile(sample_pixels, (4, 1, 1))[:, :256])
    palette, indices = _quantize(original, 16)
    full = metrics.measure(original, palette, indices, sample_above=None)
    sampled = metrics.measure(original, palette, indices, sample_above=original.shape[0] * 40)
    assert full.sample is None
    assert sampled.sample is not None and 0 < sampled.sample < 0.5
    assert sampled.psnr == full.psnr
    assert abs(sampled.ssim - full.ssim) < 0.03
    assert abs(sampled.delta_e - full.delta_e) < 0.15 * full.delta_e
    again = metrics.measure(original, palette, indices, sample_above=original.shape[0] * 40)
    assert again == sampled  # seeded: the same tiles every time
    small = metrics.measure(original[:64], palette, indices[:64])  # under the default threshold
    assert small.sample is None
