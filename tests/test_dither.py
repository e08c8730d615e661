"""Dithering: exact nearest colours, Floyd–Steinberg by hand, the error clamp, Bayer periodicity."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from scipy import ndimage

import kmquant
from kmquant import InvalidOptionError
from kmquant.dither import (
    DITHER_METHODS,
    bayer_matrix,
    dither,
    floyd_steinberg,
    nearest,
    ordered,
    ordered_spread,
)

BLACK_WHITE = np.array([[0, 0, 0], [255, 255, 255]], dtype=np.uint8)


def brute_nearest(values: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Index of the nearest palette colour of every (…, C) value; argmin keeps the lower index."""
    flat = values.reshape(-1, 1, values.shape[-1]).astype(np.float64)
    pal = palette[None].astype(np.float64)
    out = np.empty(flat.shape[0], dtype=np.intp)
    for start in range(0, flat.shape[0], 8192):  # chunks keep the (n, K, C) array small
        d = ((flat[start:start + 8192] - pal) ** 2).sum(axis=2)
        out[start:start + 8192] = d.argmin(axis=1)
    return out.reshape(values.shape[:-1])


def grey(value: int, shape=(64, 64)) -> np.ndarray:
    return np.full((*shape, 3), value, dtype=np.uint8)


@pytest.fixture(scope="module")
def crop_palette(crop_pixels) -> np.ndarray:
    return kmquant.quantize(crop_pixels, 16).palette


# --------------------------------------------------------------------------------------------
# Every method


@pytest.mark.parametrize("method", DITHER_METHODS)
def test_indices_have_the_image_shape_and_point_into_the_palette(crop_pixels, crop_palette, method):
    indices = dither(crop_pixels, crop_palette, method)
    assert indices.shape == crop_pixels.shape[:2] and indices.dtype == np.uint8
    assert indices.max() < crop_palette.shape[0]


@pytest.mark.parametrize("method", DITHER_METHODS)
def test_same_input_same_output_whatever_the_thread_count(crop_pixels, crop_palette, method):
    first = dither(crop_pixels, crop_palette, method)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = dither(crop_pixels, crop_palette, method)
    finally:
        numba.set_num_threads(threads)
    assert np.array_equal(first, dither(crop_pixels, crop_palette, method))
    assert np.array_equal(first, single)


@pytest.mark.parametrize("method", DITHER_METHODS)
def test_every_method_runs_on_grey_images(method):
    ramp = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (8, 1))[:, :, None]
    palette = np.array([[0], [85], [170], [255]], dtype=np.uint8)
    indices = dither(ramp, palette, method)
    assert indices.shape == (8, 64) and indices.max() <= 3


@pytest.mark.slow
def test_full_size_photo_at_256_colours(sample_pixels):
    """Speed sanity (not timed): the whole 768×512 sample with K = 256, every method."""
    palette = kmquant.quantize(sample_pixels, 256).palette
    plain = nearest(sample_pixels, palette)
    assert np.array_equal(plain, brute_nearest(sample_pixels, palette))
    for method in ("fs", "ordered"):
        indices = dither(sample_pixels, palette, method)
        assert indices.shape == (512, 768)
        assert 0.1 < np.mean(indices != plain) < 0.9  # dithering moved many pixels (~37 %)


# --------------------------------------------------------------------------------------------
# none


def test_none_is_the_brute_force_nearest_colour(crop_pixels, crop_palette):
    random_palette = np.random.default_rng(1).integers(0, 256, (40, 3)).astype(np.uint8)
    for palette in (crop_palette, random_palette):
        assert np.array_equal(dither(crop_pixels, palette, "none"),
                              brute_nearest(crop_pixels, palette))


def test_none_ties_go_to_the_lower_index():
    pixels = np.array([[[10, 10, 10], [10, 10, 10]]], dtype=np.uint8)
    palette = np.array([[12, 10, 10], [8, 10, 10], [10, 12, 10]], dtype=np.uint8)
    assert nearest(pixels, palette).tolist() == [[0, 0]]


def test_zero_strength_is_no_dithering(crop_pixels, crop_palette):
    plain = nearest(crop_pixels, crop_palette)
    assert np.array_equal(floyd_steinberg(crop_pixels, crop_palette, strength=0.0), plain)
    assert np.array_equal(ordered(crop_pixels, crop_palette, strength=0.0), plain)


# --------------------------------------------------------------------------------------------
# Floyd–Steinberg


def test_floyd_steinberg_one_row_by_hand():
    # 100 → 0, error +100; next: 100 + 7/16·100 = 143.75 → 255, error −111.25;
    # last: 100 − 7/16·111.25 = 51.33 → 0.
    pixels = np.full((1, 3, 1), 100, dtype=np.uint8)
    palette = np.array([[0], [255]], dtype=np.uint8)
    assert floyd_steinberg(pixels, palette).tolist() == [[0, 1, 0]]


def test_floyd_steinberg_second_row_runs_right_to_left():
    # Row 0, left to right: (0,0) 100 → 0, error +100 (5/16 down, 1/16 down-right);
    # (0,1) 143.75 → 255, error −111.25 (3/16 down-left, 5/16 down).
    # Row 1, right to left: (1,1) gets 6.25 − 34.77 → 71.48 → 0, error +71.48, 7/16 to the left;
    # (1,0) gets 31.25 − 20.86 + 31.27 → 141.67 → 255.
    # Left to right instead, (1,0) would get 110.39 → 0 and (1,1) 119.78 → 0: [[0, 1], [0, 0]].
    pixels = np.full((2, 2, 1), 100, dtype=np.uint8)
    palette = np.array([[0], [255]], dtype=np.uint8)
    assert floyd_steinberg(pixels, palette).tolist() == [[0, 1], [1, 0]]
    assert floyd_steinberg(pixels, palette, clamp=None).tolist() == [[0, 1], [1, 0]]


def test_strength_scales_the_diffused_error():
    # Half the error: the second pixel gets 100 + ½·7/16·100 = 121.9 → 0 (error +121.9);
    # the third 100 + ½·7/16·121.9 = 126.7 → 0. At full strength the second one was white.
    pixels = np.full((1, 3, 1), 100, dtype=np.uint8)
    palette = np.array([[0], [255]], dtype=np.uint8)
    assert floyd_steinberg(pixels, palette, strength=0.5).tolist() == [[0, 0, 0]]


def test_flat_mid_grey_becomes_half_white_with_the_grey_level_kept_locally():
    image = grey(128)
    fs = floyd_steinberg(image, BLACK_WHITE)
    assert abs(fs.mean() - 0.5) < 0.02
    shown = BLACK_WHITE[fs][:, :, 0].astype(np.float64)
    blocks = shown.reshape(8, 8, 8, 8).mean(axis=(1, 3))  # 8×8 blocks of 8×8 pixels
    assert np.all(np.abs(blocks - 128) < 8)
    plain = nearest(image, BLACK_WHITE)
    assert np.unique(plain).size == 1


@pytest.mark.parametrize("level", [10, 64, 200, 245])
def test_flat_greys_keep_their_mean_with_two_colours(level):
    shown = BLACK_WHITE[floyd_steinberg(grey(level), BLACK_WHITE)][:, :, 0]
    assert abs(shown.mean() - level) < 2.5


def test_dithered_gradient_is_closer_to_the_original_once_blurred():
    ramp = np.tile(np.arange(256, dtype=np.uint8), (64, 1))[:, :, None].repeat(3, axis=2)
    palette = np.linspace(0, 255, 6).round().astype(np.uint8)[:, None].repeat(3, axis=1)

    def blurred_error(indices):
        blur = [ndimage.gaussian_filter(a.astype(np.float64), sigma=(2, 2, 0))
                for a in (ramp, palette[indices])]
        inner = (slice(6, -6), slice(6, -6))  # away from the borders
        return float(np.sqrt(((blur[0] - blur[1])[inner] ** 2).mean()))

    plain = blurred_error(nearest(ramp, palette))  # bands 51 levels apart: about 13
    assert blurred_error(floyd_steinberg(ramp, palette)) < 0.1 * plain
    assert blurred_error(ordered(ramp, palette)) < 0.1 * plain


def test_dithered_photo_is_closer_to_the_original_once_blurred(crop_pixels, crop_palette):
    blur = lambda a: ndimage.gaussian_filter(a.astype(np.float64), sigma=(2, 2, 0))
    errors = {
        method: np.abs(blur(crop_pixels) - blur(crop_palette[dither(crop_pixels, crop_palette,
                                                                    method)])).mean()
        for method in DITHER_METHODS
    }
    assert errors["fs"] < errors["none"]


# A dark navy with no dark blue in the palette: its nearest colour is entry 0, dark grey; the
# blue surplus (+20 per pixel) cannot be paid back. Unclamped, it piles up until the bright
# blue entry 1 wins: speckles.
NAVY_PALETTE = np.array([[30, 30, 40], [0, 0, 160], [128, 128, 128], [255, 255, 255]],
                        dtype=np.uint8)


def navy(shape=(64, 64)) -> np.ndarray:
    image = np.zeros((*shape, 3), dtype=np.uint8)
    image[:, :, 2] = 60
    return image


def test_clamp_stops_speckles_in_a_saturated_dark_area():
    image = navy()
    assert np.all(nearest(image, NAVY_PALETTE) == 0)
    unclamped = floyd_steinberg(image, NAVY_PALETTE, clamp=None)
    assert np.mean(unclamped != 0) > 0.2  # a quarter of the pixels are bright blue speckles
    assert np.all(floyd_steinberg(image, NAVY_PALETTE) == 0)


def test_clamp_stops_the_error_of_a_saturated_area_bleeding_into_the_next():
    image = navy()
    image[:, 32:] = 128  # exactly palette entry 2
    unclamped = floyd_steinberg(image, NAVY_PALETTE, clamp=None)
    assert np.mean(unclamped[:, 32:] != 2) > 0.01
    clamped = floyd_steinberg(image, NAVY_PALETTE)
    assert np.all(clamped[:, 32:] == 2) and np.all(clamped[:, :32] == 0)


# --------------------------------------------------------------------------------------------
# Ordered


def test_bayer_matrix_is_a_centred_permutation():
    for n in (2, 4, 8, 16):
        m = bayer_matrix(n)
        ranks = np.sort(((m + 0.5) * n * n - 0.5).round().ravel())
        assert np.array_equal(ranks, np.arange(n * n)) and m.mean() == 0.0
    assert bayer_matrix(2).tolist() == [[-0.375, 0.125], [0.375, -0.125]]


def test_spread_is_the_median_per_channel_step_to_the_nearest_entry():
    assert ordered_spread(BLACK_WHITE) == 255.0
    greys = np.array([[0, 0, 0], [20, 20, 20], [40, 40, 40], [100, 100, 100]], dtype=np.uint8)
    assert ordered_spread(greys) == 20.0  # steps 20, 20, 20, 60
    assert ordered_spread(greys[:1]) == 0.0


@pytest.mark.parametrize("size", [2, 4, 8, 16])
def test_ordered_pattern_of_a_flat_image_repeats_with_the_matrix(size):
    indices = ordered(grey(100, (40, 40)), BLACK_WHITE, matrix_size=size)
    assert np.array_equal(indices[size:], indices[:-size])
    assert np.array_equal(indices[:, size:], indices[:, :-size])
    if size > 2:
        assert not np.array_equal(indices[1:], indices[:-1])  # not period 1 either
    # the share of white in one tile is the grey level to within one threshold step
    assert abs(indices[:size, :size].mean() - 100 / 255) <= 1 / size**2


def test_ordered_is_the_exact_nearest_colour_of_the_offset_pixels(crop_pixels, crop_palette):
    offset = np.tile(bayer_matrix(8), (8, 12)) * ordered_spread(crop_palette) * 0.7
    values = crop_pixels.astype(np.float64) + offset[:, :, None]
    assert np.array_equal(ordered(crop_pixels, crop_palette, strength=0.7),
                          brute_nearest(values, crop_palette))


# --------------------------------------------------------------------------------------------
# Transparency


@pytest.fixture(scope="module")
def rgba(crop_pixels) -> np.ndarray:
    """The crop with a fully transparent band (random colours beneath) and a translucent one."""
    alpha = np.full(crop_pixels.shape[:2], 255, dtype=np.uint8)
    alpha[:, 30:50] = 0
    alpha[:, 50:60] = 128
    image = np.dstack([crop_pixels, alpha])
    image[:, 30:50, :3] = np.random.default_rng(2).integers(0, 256, (64, 20, 3))
    return image


@pytest.mark.parametrize("method", DITHER_METHODS)
def test_transparent_pixels_map_to_the_transparent_entry(rgba, method):
    palette = kmquant.quantize(rgba, 16).palette
    clear = np.flatnonzero(palette[:, 3] == 0)
    assert clear.size == 1
    indices = dither(rgba, palette, method)
    assert np.all(indices[:, 30:50] == clear[0])
    assert np.all(palette[indices[:, :30], 3] > 0)


@pytest.mark.parametrize("method", DITHER_METHODS)
def test_colour_under_transparent_pixels_changes_nothing(rgba, method):
    """Transparent pixels take no error and pass none on: their hidden colour has no effect."""
    palette = kmquant.quantize(rgba, 16).palette
    hidden = rgba.copy()
    hidden[:, 30:50, :3] = 0
    assert np.array_equal(dither(rgba, palette, method), dither(hidden, palette, method))


def test_transparent_pixels_without_a_transparent_entry_get_their_nearest_colour(rgba):
    palette = np.array([[0, 0, 0, 255], [255, 255, 255, 255], [128, 128, 128, 128]],
                       dtype=np.uint8)
    plain = brute_nearest(rgba, palette)
    assert np.array_equal(nearest(rgba, palette), plain)
    for method in ("fs", "ordered"):
        assert np.array_equal(dither(rgba, palette, method)[:, 30:50], plain[:, 30:50])


def test_ordered_leaves_alpha_alone():
    # Opaque white and a half-transparent white entry: without an alpha offset an opaque pixel
    # never picks the translucent entry.
    pixels = np.full((16, 16, 4), 255, dtype=np.uint8)
    palette = np.array([[255, 255, 255, 255], [255, 255, 255, 128]], dtype=np.uint8)
    assert np.all(ordered(pixels, palette) == 0)


# --------------------------------------------------------------------------------------------
# Options


def test_unknown_method_names_the_allowed_ones(crop_pixels, crop_palette):
    with pytest.raises(InvalidOptionError, match="none, fs, ordered"):
        dither(crop_pixels, crop_palette, "atkinson")


@pytest.mark.parametrize("strength", [-0.1, 1.5, float("nan"), "1", True])
def test_strength_outside_zero_to_one_is_refused(crop_pixels, crop_palette, strength):
    for method in DITHER_METHODS:
        with pytest.raises(InvalidOptionError, match="strength"):
            dither(crop_pixels, crop_palette, method, strength=strength)


def test_bad_clamp_and_matrix_size_are_refused(crop_pixels, crop_palette):
    with pytest.raises(InvalidOptionError, match="clamp"):
        floyd_steinberg(crop_pixels, crop_palette, clamp=-1)
    with pytest.raises(InvalidOptionError, match="matrix_size"):
        ordered(crop_pixels, crop_palette, matrix_size=3)
    with pytest.raises(InvalidOptionError, match="matrix_size"):
        ordered(crop_pixels, crop_palette, matrix_size=8.0)


def test_arrays_of_the_wrong_kind_are_refused(crop_pixels, crop_palette):
    with pytest.raises(ValueError, match="pixels"):
        nearest(crop_pixels.astype(np.float32), crop_palette)
    with pytest.raises(ValueError, match="palette"):
        nearest(crop_pixels, crop_palette[:, :2])
    with pytest.raises(ValueError, match="1 to 256"):
        nearest(crop_pixels, np.zeros((300, 3), dtype=np.uint8))
