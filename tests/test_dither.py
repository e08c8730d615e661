"""Dithering: exact nearest colours, Floyd–Steinberg by hand, the error clamp, Bayer periodicity.

The compiled kernels (``kmquant._core._dither``) are checked three ways: against a brute-force
NumPy nearest colour and slow loop-by-loop references of Floyd–Steinberg and ordered dithering
(hypothesis), against digests of the former numba implementation's outputs on the shipped sample,
and for the ValueError they raise on arrays that do not fit together.
"""

from __future__ import annotations

import hashlib
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from kmquant import InvalidOptionError
from kmquant._core import _dither
from kmquant.dither import (
    DEFAULT_CLAMP,
    DITHER_METHODS,
    MATRIX_SIZES,
    RATE_CEIL,
    RATE_FLOOR,
    adaptive,
    bayer_matrix,
    dither,
    dither_map,
    floyd_steinberg,
    local_activity,
    mean_nearest_distance,
    nearest,
    ordered,
    ordered_spread,
    rate_aware,
    rate_weights,
    refit_palette,
)
from kmquant.encode import encode_png, order_palette

BLACK_WHITE = np.array([[0, 0, 0], [255, 255, 255]], dtype=np.uint8)


def brute_nearest(values: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Index of the nearest palette colour of every (…, C) value; argmin keeps the lower index.

    Integer values: ‖p‖² − 2 v·p by a matrix product, exact (integers far below 2⁵³) whatever
    the summation order; float values: the squared differences summed.
    """
    flat = values.reshape(-1, values.shape[-1]).astype(np.float64)
    pal = palette.astype(np.float64)
    out = np.empty(flat.shape[0], dtype=np.intp)
    for start in range(0, flat.shape[0], 8192):  # chunks keep the (n, K, C) array small
        chunk = flat[start:start + 8192]
        if np.issubdtype(values.dtype, np.integer):
            d = (pal * pal).sum(axis=1) - 2.0 * (chunk @ pal.T)
        else:
            d = ((chunk[:, None, :] - pal[None]) ** 2).sum(axis=2)
        out[start:start + 8192] = d.argmin(axis=1)
    return out.reshape(values.shape[:-1])


def grey(value: int, shape=(64, 64)) -> np.ndarray:
    return np.full((*shape, 3), value, dtype=np.uint8)


def distinct_colours(pixels: np.ndarray) -> np.ndarray:
    """The distinct (n, C) colours of an image, in the order of ``np.unique(axis=0)`` (faster)."""
    n_channels = pixels.shape[2]
    shifts = np.arange(8 * (n_channels - 1), -1, -8, dtype=np.uint32)  # first channel highest
    codes = np.unique((pixels.reshape(-1, n_channels).astype(np.uint32) << shifts).sum(axis=1))
    return ((codes[:, None] >> shifts) & 255).astype(np.uint8)


def spread_palette(pixels: np.ndarray, k: int, colours: np.ndarray | None = None) -> np.ndarray:
    """K of the image's distinct colours (``colours`` when given), picked by a fixed stride,
    repeating once K exceeds them; for RGBA the last entry is the transparent (0, 0, 0, 0)."""
    colours = distinct_colours(pixels) if colours is None else colours
    palette = colours[np.arange(k) * 7919 % colours.shape[0]]
    if pixels.shape[2] == 4:
        palette[-1] = 0
    return palette


@pytest.fixture(scope="module")
def crop_palette(crop_pixels) -> np.ndarray:
    return spread_palette(crop_pixels, 16)


# --------------------------------------------------------------------------------------------
# References: the same algorithms, one pixel at a time, in the same float64 operations


def reference_nearest_of(v: np.ndarray, pal: np.ndarray) -> int:
    """Nearest entry of the float64 colour ``v`` (C,) by a full search: the squared distance
    summed channel by channel in order (as the kernel does), ties to the lower index."""
    d = np.zeros(pal.shape[0])
    for c in range(pal.shape[1]):
        t = v[c] - pal[:, c]
        d = d + t * t
    return int(np.argmin(d))


def reference_transparent(px: np.ndarray, palette: np.ndarray) -> int | None:
    """The entry of a fully transparent RGBA pixel: the nearest alpha-0 entry, None without one
    (or when the pixel is not transparent)."""
    if palette.shape[1] != 4 or px[3] != 0:
        return None
    clear = np.flatnonzero(palette[:, 3] == 0)
    if clear.size == 0:
        return None
    return int(clear[reference_nearest_of(px.astype(np.float64), palette[clear].astype(float))])


def reference_map(pixels: np.ndarray, palette: np.ndarray, offset=None) -> np.ndarray:
    """Nearest entry of every pixel, colour channels plus ``offset(y, x)`` when given (ordered);
    transparent pixels unshifted."""
    height, width, n_channels = pixels.shape
    n_color = 3 if n_channels == 4 else n_channels
    pal = palette.astype(np.float64)
    out = np.empty((height, width), dtype=np.uint8)
    for y in range(height):
        for x in range(width):
            px = pixels[y, x]
            clear = reference_transparent(px, palette)
            if clear is not None:
                out[y, x] = clear
                continue
            v = px.astype(np.float64)
            if offset is not None and not (n_channels == 4 and px[3] == 0):
                v[:n_color] = v[:n_color] + offset(y, x)
            out[y, x] = reference_nearest_of(v, pal)
    return out


def reference_ordered(pixels, palette, strength=1.0, matrix_size=8) -> np.ndarray:
    """Ordered dithering as documented: channel + bayer[y mod n, x mod n] × (strength × spread)."""
    matrix = bayer_matrix(matrix_size)
    scale = float(strength) * ordered_spread(palette)
    return reference_map(pixels, palette, lambda y, x: matrix[y % matrix_size, x % matrix_size] * scale)


def reference_fs(pixels, palette, strength=1.0, clamp=DEFAULT_CLAMP) -> np.ndarray:
    """Serpentine Floyd–Steinberg with the vector error clamp, written out loop by loop."""
    height, width, n_channels = pixels.shape
    n_color = 3 if n_channels == 4 else n_channels
    margin = -1.0 if clamp is None else float(clamp)
    pal = palette.astype(np.float64)
    cur = np.zeros((width + 2, n_channels))  # error arriving at column x sits at x + 1
    nxt = np.zeros((width + 2, n_channels))
    out = np.empty((height, width), dtype=np.uint8)
    for y in range(height):
        step = 1 if y % 2 == 0 else -1
        columns = range(width) if step == 1 else range(width - 1, -1, -1)
        for x in columns:
            px, i = pixels[y, x], x + 1
            if n_channels == 4 and px[3] == 0:
                clear = reference_transparent(px, palette)
                out[y, x] = reference_nearest_of(px.astype(float), pal) if clear is None else clear
                continue
            s = [strength * float(cur[i, c]) for c in range(n_channels)]
            ratio = 1.0
            if margin >= 0.0:
                for c in range(n_color):
                    p = float(px[c])
                    if p + s[c] > 255.0 + margin:
                        ratio = min(ratio, (255.0 + margin - p) / s[c])
                    elif p + s[c] < -margin:
                        ratio = min(ratio, (-margin - p) / s[c])
            v = np.array([float(px[c]) + ratio * s[c] for c in range(n_color)])
            if n_channels == 4:  # alpha: clipped, not clamped
                v = np.append(v, min(255.0, max(0.0, float(px[3]) + s[3])))
            j = reference_nearest_of(v, pal)
            out[y, x] = j
            e = v - pal[j]
            cur[i + step] += e * (7.0 / 16.0)
            nxt[i - step] += e * (3.0 / 16.0)
            nxt[i] += e * (5.0 / 16.0)
            nxt[i + step] += e * (1.0 / 16.0)
        cur, nxt = nxt, np.zeros_like(cur)
    return out


# --------------------------------------------------------------------------------------------
# Random images and palettes


@st.composite
def images_and_palettes(draw, max_side: int = 16):
    """A (H, W, C) image and a (K, C) palette, C in 1, 3, 4 and 1 ≤ K ≤ 256.

    Values come from a grid of 2, 5 or 256 levels (few levels: flat areas, exact hits and
    equidistant entries); the palette draws its rows from fewer distinct colours than K
    (duplicates). RGBA pixels and entries are often fully transparent or opaque.
    """
    n_channels = draw(st.sampled_from([1, 3, 4]))
    height = draw(st.integers(1, max_side))
    width = draw(st.integers(1, max_side))
    k = draw(st.integers(1, 256))
    distinct = draw(st.integers(1, k))
    levels = draw(st.sampled_from([2, 5, 256]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    grid = np.linspace(0, 255, levels).round().astype(np.uint8)
    pixels = grid[rng.integers(0, levels, (height, width, n_channels))]
    base = rng.integers(0, 256, (distinct, n_channels)).astype(np.uint8)
    if draw(st.booleans()):
        base = grid[rng.integers(0, levels, (distinct, n_channels))]
    palette = base[rng.integers(0, distinct, k)]
    if n_channels == 4:
        pixels[:, :, 3] = rng.choice([0, 255, rng.integers(1, 255)], (height, width))
        palette[:, 3] = rng.choice([0, 255, rng.integers(1, 255)], k, p=[0.1, 0.6, 0.3])
    return pixels, palette


strengths = st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(0.0, 1.0))
clamps = st.one_of(st.none(), st.sampled_from([0.0, DEFAULT_CLAMP]), st.floats(0.0, 300.0))


def reference_plain(pixels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Brute-force nearest colour with the transparent rule, vectorised."""
    plain = brute_nearest(pixels, palette)
    if pixels.shape[2] == 4:
        clear = np.flatnonzero(palette[:, 3] == 0)
        hidden = pixels[:, :, 3] == 0
        if clear.size and hidden.any():
            plain[hidden] = clear[brute_nearest(pixels[hidden], palette[clear])]
    return plain


@settings(max_examples=100, deadline=None)
@given(images_and_palettes(max_side=24))
def test_nearest_is_the_brute_force_nearest_colour(case):
    pixels, palette = case
    assert np.array_equal(nearest(pixels, palette), reference_plain(pixels, palette))


@settings(max_examples=60, deadline=None)
@given(images_and_palettes(), strengths, clamps)
def test_floyd_steinberg_is_the_reference_loop(case, strength, clamp):
    pixels, palette = case
    assert np.array_equal(floyd_steinberg(pixels, palette, strength=strength, clamp=clamp),
                          reference_fs(pixels, palette, strength, clamp))


@settings(max_examples=60, deadline=None)
@given(images_and_palettes(), strengths, st.sampled_from(MATRIX_SIZES))
def test_ordered_is_the_reference_loop(case, strength, size):
    pixels, palette = case
    assert np.array_equal(ordered(pixels, palette, strength=strength, matrix_size=size),
                          reference_ordered(pixels, palette, strength, size))


@settings(max_examples=60, deadline=None)
@given(images_and_palettes(max_side=24), clamps, st.sampled_from(MATRIX_SIZES))
def test_zero_strength_is_the_nearest_colour(case, clamp, size):
    pixels, palette = case
    plain = nearest(pixels, palette)
    assert np.array_equal(floyd_steinberg(pixels, palette, strength=0.0, clamp=clamp), plain)
    assert np.array_equal(ordered(pixels, palette, strength=0.0, matrix_size=size), plain)


@settings(max_examples=30, deadline=None)
@given(images_and_palettes(max_side=24), st.sampled_from(DITHER_METHODS))
def test_same_input_same_output(case, method):
    pixels, palette = case
    first = dither(pixels, palette, method)
    assert np.array_equal(first, dither(pixels.copy(), palette.copy(), method))


# --------------------------------------------------------------------------------------------
# Every method


@pytest.mark.parametrize("method", DITHER_METHODS)
def test_indices_have_the_image_shape_and_point_into_the_palette(crop_pixels, crop_palette, method):
    indices = dither(crop_pixels, crop_palette, method)
    assert indices.shape == crop_pixels.shape[:2] and indices.dtype == np.uint8
    assert indices.max() < crop_palette.shape[0]


@pytest.mark.parametrize("method", DITHER_METHODS)
def test_same_output_from_concurrent_threads(crop_pixels, crop_palette, method):
    """The kernels release the GIL and share nothing: four at once give the one-at-a-time answer."""
    first = dither(crop_pixels, crop_palette, method)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: dither(crop_pixels, crop_palette, method), range(8)))
    assert all(np.array_equal(first, r) for r in results)


@pytest.mark.parametrize("method", DITHER_METHODS)
def test_every_method_runs_on_grey_images(method):
    ramp = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (8, 1))[:, :, None]
    palette = np.array([[0], [85], [170], [255]], dtype=np.uint8)
    indices = dither(ramp, palette, method)
    assert indices.shape == (8, 64) and indices.max() <= 3


@pytest.mark.parametrize("method", DITHER_METHODS)
@pytest.mark.parametrize("shape", [(0, 5, 3), (4, 0, 4), (0, 0, 1)])
def test_empty_images_give_empty_indices(method, shape):
    palette = np.zeros((2, shape[2]), dtype=np.uint8)
    indices = dither(np.zeros(shape, dtype=np.uint8), palette, method)
    assert indices.shape == shape[:2] and indices.dtype == np.uint8


def test_non_contiguous_pixels_are_accepted(crop_pixels, crop_palette):
    flipped = crop_pixels[::-1, ::2]
    for method in DITHER_METHODS:
        assert np.array_equal(dither(flipped, crop_palette, method),
                              dither(flipped.copy(), crop_palette, method))


def test_read_only_inputs_are_accepted(crop_pixels, crop_palette):
    pixels, palette = _read_only(crop_pixels.copy()), _read_only(crop_palette.copy())
    for method in DITHER_METHODS:
        assert np.array_equal(dither(pixels, palette, method),
                              dither(crop_pixels, crop_palette, method))


@pytest.mark.slow
def test_full_size_photo_at_256_colours(sample_pixels):
    """Speed sanity (not timed): the whole 768×512 sample with K = 256, every method."""
    palette = spread_palette(sample_pixels, 256)
    plain = nearest(sample_pixels, palette)
    assert np.array_equal(plain, brute_nearest(sample_pixels, palette))
    for method in ("fs", "ordered"):
        indices = dither(sample_pixels, palette, method)
        assert indices.shape == (512, 768)
        assert 0.1 < np.mean(indices != plain) < 0.9  # dithering moved many pixels


# SHA-256 (first 16 hex digits) of the indices the numba implementation (git d68b883) gave on
# the shipped sample, for ``sample_variants`` and ``spread_palette``: the compiled kernels must
# reproduce them bit for bit.
NUMBA_DIGESTS = {
    ("rgb", 2, "none"): "59e767058257d45e",
    ("rgb", 2, "fs"): "f0b3c717aa251e69",
    ("rgb", 2, "ordered"): "1d4d75d3e7c432c0",
    ("rgb", 16, "none"): "c45514c20fdc58f6",
    ("rgb", 16, "fs"): "9f47a0701e977d8f",
    ("rgb", 16, "ordered"): "70fe9f01bbfb219c",
    ("rgb", 64, "none"): "424793f16422209e",
    ("rgb", 64, "fs"): "051b0543b1ac1990",
    ("rgb", 64, "ordered"): "2da8684e4111ad2d",
    ("rgb", 256, "none"): "ea98c16222435430",
    ("rgb", 256, "fs"): "f09af17308549761",
    ("rgb", 256, "ordered"): "51a9aff9c06fb0e4",
    ("grey", 2, "none"): "dca84b963f3ef435",
    ("grey", 2, "fs"): "ab8798a7b56fdb86",
    ("grey", 2, "ordered"): "5e68df74ecccea48",
    ("grey", 16, "none"): "6f07574d1b0796b2",
    ("grey", 16, "fs"): "982cc9e13cb431c8",
    ("grey", 16, "ordered"): "637a5d6d37236672",
    ("grey", 64, "none"): "6d19d5c41ed43b9d",
    ("grey", 64, "fs"): "e07039f0d9f1d488",
    ("grey", 64, "ordered"): "dd813c05ce7ef060",
    ("grey", 256, "none"): "a9001a41bdbf05e5",
    ("grey", 256, "fs"): "a9001a41bdbf05e5",
    ("grey", 256, "ordered"): "a9001a41bdbf05e5",
    ("rgba", 2, "none"): "a6619f482fee91a3",
    ("rgba", 2, "fs"): "a6619f482fee91a3",
    ("rgba", 2, "ordered"): "a6619f482fee91a3",
    ("rgba", 16, "none"): "82a6f7792932cc52",
    ("rgba", 16, "fs"): "99c95ce116614fd1",
    ("rgba", 16, "ordered"): "1a77b892f3ea5d5b",
    ("rgba", 64, "none"): "1a750e8db12220e8",
    ("rgba", 64, "fs"): "49a8756da50029a8",
    ("rgba", 64, "ordered"): "110b407884d8b782",
    ("rgba", 256, "none"): "093733c22f11e40b",
    ("rgba", 256, "fs"): "27c3143a4c481be6",
    ("rgba", 256, "ordered"): "8a3120833b4c7b0a",
}


def sample_variants(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """The sample as RGB, grey (channel mean) and RGBA (a transparent and a translucent band)."""
    grey_image = (rgb.astype(np.uint16).sum(axis=2) // 3).astype(np.uint8)[:, :, None]
    alpha = np.full(rgb.shape[:2], 255, dtype=np.uint8)
    alpha[:, 200:300] = 0
    alpha[300:340] = 128
    return {"rgb": rgb, "grey": grey_image, "rgba": np.dstack([rgb, alpha])}


@pytest.mark.slow
def test_outputs_are_those_of_the_numba_implementation(sample_pixels):
    variants = sample_variants(sample_pixels)
    colours = {name: distinct_colours(pixels) for name, pixels in variants.items()}
    found = {}
    for variant, k, method in NUMBA_DIGESTS:
        pixels = variants[variant]
        indices = dither(pixels, spread_palette(pixels, k, colours[variant]), method)
        found[variant, k, method] = hashlib.sha256(indices.tobytes()).hexdigest()[:16]
    assert found == NUMBA_DIGESTS


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
    offset = np.tile(bayer_matrix(8), (8, 12)) * (0.7 * ordered_spread(crop_palette))
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


@pytest.fixture(scope="module")
def rgba_palette(rgba) -> np.ndarray:
    """15 visible colours of the image and one transparent entry, (0, 0, 0, 0), in the middle."""
    visible = rgba[:, np.r_[0:30, 50:96]]
    palette = spread_palette(visible, 16)
    palette[[7, -1]] = palette[[-1, 7]]
    return palette


@pytest.mark.parametrize("method", DITHER_METHODS)
def test_transparent_pixels_map_to_the_transparent_entry(rgba, rgba_palette, method):
    clear = np.flatnonzero(rgba_palette[:, 3] == 0)
    assert clear.tolist() == [7]
    indices = dither(rgba, rgba_palette, method)
    assert np.all(indices[:, 30:50] == 7)
    assert np.all(rgba_palette[indices[:, :30], 3] > 0)


def test_nearest_transparent_entry_wins_among_several():
    pixels = np.array([[[200, 10, 10, 0], [10, 10, 10, 0], [250, 250, 250, 255]]], dtype=np.uint8)
    palette = np.array([[0, 0, 0, 0], [255, 255, 255, 255], [255, 0, 0, 0], [0, 0, 0, 0]],
                       dtype=np.uint8)
    for method in DITHER_METHODS:
        assert dither(pixels, palette, method).tolist() == [[2, 0, 1]]


@pytest.mark.parametrize("method", DITHER_METHODS)
def test_colour_under_transparent_pixels_changes_nothing(rgba, rgba_palette, method):
    """Transparent pixels take no error and pass none on: their hidden colour has no effect."""
    hidden = rgba.copy()
    hidden[:, 30:50, :3] = 0
    assert np.array_equal(dither(rgba, rgba_palette, method),
                          dither(hidden, rgba_palette, method))


def test_transparent_pixels_without_a_transparent_entry_get_their_nearest_colour(rgba):
    palette = np.array([[0, 0, 0, 255], [255, 255, 255, 255], [128, 128, 128, 128]],
                       dtype=np.uint8)
    plain = brute_nearest(rgba, palette)
    assert np.array_equal(nearest(rgba, palette), plain)
    for method in ("fs", "ordered"):
        assert np.array_equal(dither(rgba, palette, method)[:, 30:50], plain[:, 30:50])


def test_ordered_leaves_alpha_alone():
    # Opaque white and a slightly translucent white entry: without an alpha offset an opaque
    # white pixel never picks the translucent entry. The grey and black entries make the spread
    # 63.5 (the median of 0, 0, 127, 128), so an offset alpha would reach 228 on many pixels.
    pixels = np.full((16, 16, 4), 255, dtype=np.uint8)
    palette = np.array([[255, 255, 255, 255], [255, 255, 255, 228], [0, 0, 0, 255],
                        [128, 128, 128, 255]], dtype=np.uint8)
    assert ordered_spread(palette) == 63.5
    assert np.all(ordered(pixels, palette) == 0)


# --------------------------------------------------------------------------------------------
# Options


def test_unknown_method_names_the_allowed_ones(crop_pixels, crop_palette):
    with pytest.raises(InvalidOptionError, match="none, on, fs, ordered"):
        dither(crop_pixels, crop_palette, "atkinson")


@pytest.mark.parametrize("strength", [-0.1, 1.5, float("nan"), "1", True])
def test_strength_outside_zero_to_one_is_refused(crop_pixels, crop_palette, strength):
    for method in DITHER_METHODS:
        with pytest.raises(InvalidOptionError, match="strength"):
            dither(crop_pixels, crop_palette, method, strength=strength)


def test_bad_clamp_and_matrix_size_are_refused(crop_pixels, crop_palette):
    with pytest.raises(InvalidOptionError, match="clamp"):
        floyd_steinberg(crop_pixels, crop_palette, clamp=-1)
    with pytest.raises(InvalidOptionError, match="clamp"):
        floyd_steinberg(crop_pixels, crop_palette, clamp=math.inf)
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


# --------------------------------------------------------------------------------------------
# The compiled entry points refuse arrays that do not fit together


def kernel_arguments(height=3, width=4, n_channels=3, k=5) -> dict[str, np.ndarray]:
    """Valid arguments for the ``kmquant._core._dither`` functions."""
    rng = np.random.default_rng(0)
    pal = rng.integers(0, 256, (k, n_channels)).astype(np.float64)
    dist = np.sqrt(((pal[:, None] - pal[None]) ** 2).sum(axis=2))
    order = np.argsort(dist, axis=1, kind="stable").astype(np.int64)
    return {
        "pixels": rng.integers(0, 256, (height, width, n_channels)).astype(np.uint8),
        "palette": pal, "order": order, "gap": np.take_along_axis(dist, order, axis=1),
        "clear": np.zeros(0, dtype=np.int64), "matrix": bayer_matrix(4), "scale": 10.0,
        "strength": 1.0, "margin": 8.0, "out": np.zeros((height, width), dtype=np.uint8),
    }


KERNELS = {
    "nearest": ("pixels", "palette", "order", "gap", "clear", "out"),
    "ordered": ("pixels", "palette", "order", "gap", "clear", "matrix", "scale", "out"),
    "fs": ("pixels", "palette", "order", "gap", "clear", "strength", "margin", "out"),
}


def call_kernel(name: str, **changes) -> np.ndarray:
    args = kernel_arguments() | changes
    function = {"nearest": _dither.nearest_indices, "ordered": _dither.ordered_indices,
                "fs": _dither.fs_indices}[name]
    function(*(args[key] for key in KERNELS[name]))
    return args["out"]


@pytest.mark.parametrize("name", KERNELS)
def test_kernels_run_on_valid_arguments(name):
    args = kernel_arguments()
    out = call_kernel(name)
    assert out.max() < args["palette"].shape[0]
    if name == "nearest":
        assert np.array_equal(out, brute_nearest(args["pixels"], args["palette"]))


def _bad_arguments():
    ok = kernel_arguments()
    k6 = kernel_arguments(k=6)
    order_high, order_low = ok["order"].copy(), ok["order"].copy()
    order_high[2, 3] = 5
    order_low[4, 0] = -1
    return {
        "pixels 2 channels": {"pixels": np.zeros((3, 4, 2), np.uint8),
                              "palette": np.zeros((5, 2))},
        "pixels 5 channels": {"pixels": np.zeros((3, 4, 5), np.uint8),
                              "palette": np.zeros((5, 5))},
        "pixels 2-d": {"pixels": np.zeros((3, 4), np.uint8)},
        "pixels float": {"pixels": ok["pixels"].astype(np.float64)},
        "pixels not contiguous": {"pixels": np.zeros((3, 8, 3), np.uint8)[:, ::2]},
        "palette channels": {"palette": ok["palette"][:, :1].copy()},
        "palette uint8": {"palette": ok["palette"].astype(np.uint8)},
        "palette empty": {"palette": np.zeros((0, 3)), "order": np.zeros((0, 0), np.int64),
                          "gap": np.zeros((0, 0))},
        "palette 257": {"palette": np.zeros((257, 3)), "order": np.zeros((257, 257), np.int64),
                        "gap": np.zeros((257, 257))},
        "order rows": {"order": k6["order"]},
        "order columns": {"order": ok["order"][:, :4].copy()},
        "order int32": {"order": ok["order"].astype(np.int32)},
        "order entry too high": {"order": order_high},
        "order entry negative": {"order": order_low},
        "gap shape": {"gap": k6["gap"]},
        "clear too high": {"clear": np.array([1, 5], np.int64)},
        "clear negative": {"clear": np.array([-1], np.int64)},
        "clear 2-d": {"clear": np.zeros((1, 1), np.int64)},
        "out shape": {"out": np.zeros((4, 3), np.uint8)},
        "out read-only": {"out": _read_only(np.zeros((3, 4), np.uint8))},
        "out int64": {"out": np.zeros((3, 4), np.int64)},
        "pixels None": {"pixels": None},
        "out None": {"out": None},
    }


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


BAD = _bad_arguments()


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("case", BAD)
def test_kernels_refuse_arrays_that_do_not_fit(name, case):
    with pytest.raises((ValueError, TypeError)):
        call_kernel(name, **BAD[case])


@pytest.mark.parametrize("case", BAD)
def test_kernels_refuse_wrong_shapes_with_value_error(case):
    """Shapes and values: ValueError (only a None where an array belongs is a TypeError)."""
    if "None" in case:
        with pytest.raises(TypeError):
            call_kernel("nearest", **BAD[case])
    else:
        with pytest.raises(ValueError):
            call_kernel("nearest", **BAD[case])


@pytest.mark.parametrize("matrix", [np.zeros((0, 0)), np.zeros((4, 2)), np.zeros((2, 4)),
                                    np.zeros(4), np.zeros((4, 4), np.float32)])
def test_ordered_kernel_refuses_a_matrix_that_is_not_square(matrix):
    with pytest.raises(ValueError):
        call_kernel("ordered", matrix=matrix)


def test_ordered_kernel_takes_any_square_matrix():
    args = kernel_arguments(height=5, width=7)
    out = call_kernel("ordered", pixels=args["pixels"], out=args["out"],
                      matrix=np.array([[3.0]]), scale=-2.0)
    assert np.array_equal(out, brute_nearest(args["pixels"] - 6.0, args["palette"]))


def test_kernels_leave_out_unchanged_when_they_refuse():
    out = np.full((3, 4), 99, dtype=np.uint8)
    with pytest.raises(ValueError):
        call_kernel("fs", out=out, clear=np.array([7], np.int64))
    assert np.all(out == 99)


# --------------------------------------------------------------------------------------------
# Adaptive dithering (``on``) and rate-aware entries


def _ramp_and_texture() -> tuple[np.ndarray, np.ndarray]:
    """Left half a slow horizontal grey ramp (bands), right half random texture; 6 greys."""
    rng = np.random.default_rng(3)
    image = np.zeros((64, 256, 3), dtype=np.uint8)
    image[:, :128] = np.linspace(40, 200, 128).round().astype(np.uint8)[None, :, None]
    image[:, 128:] = rng.integers(0, 256, (64, 128, 1), dtype=np.uint8)
    palette = np.linspace(0, 255, 6).round().astype(np.uint8)[:, None].repeat(3, axis=1)
    return image, palette


def test_dither_map_is_high_on_bands_and_zero_on_texture_and_transparency():
    image, palette = _ramp_and_texture()
    levels = dither_map(image, nearest(image, palette))
    assert levels.shape == image.shape[:2] and levels.dtype == np.float32
    assert 0.0 <= levels.min() and levels.max() <= 1.0
    assert levels[4:-4, 8:100].mean() > 0.6  # the ramp: wide bands of one entry
    assert levels[4:-4, 140:-4].max() == 0.0  # the texture: no dithering at all
    rgba = np.concatenate([image, np.full((64, 256, 1), 255, dtype=np.uint8)], axis=2)
    rgba[:, :20, 3] = 0
    rgba_palette = np.concatenate([palette, np.full((6, 1), 255, dtype=np.uint8)], axis=1)
    assert dither_map(rgba, nearest(rgba, rgba_palette))[:, :20].max() == 0.0


def test_adaptive_dithers_the_bands_and_leaves_the_texture_alone():
    image, palette = _ramp_and_texture()
    plain, dithered = nearest(image, palette), adaptive(image, palette)
    blur = lambda a: ndimage.gaussian_filter(a.astype(np.float64), sigma=(2, 2, 0))
    inner = (slice(6, -6), slice(12, 116))
    err = lambda idx: np.abs(blur(image) - blur(palette[idx]))[inner].mean()
    assert err(dithered) < 0.5 * err(plain)  # the bands are gone once blurred
    texture = (slice(2, -2), slice(132, -2))
    assert (dithered[texture] == plain[texture]).mean() > 0.99  # texture keeps its nearest colours
    fs = floyd_steinberg(image, palette)
    assert (fs[texture] != plain[texture]).mean() > 0.1  # where plain error diffusion adds noise


def test_adaptive_with_zero_strength_is_the_nearest_colour(crop_pixels, crop_palette):
    np.testing.assert_array_equal(adaptive(crop_pixels, crop_palette, strength=0.0),
                                  nearest(crop_pixels, crop_palette))


def test_adaptive_costs_fewer_bytes_and_less_psnr_than_floyd_steinberg(crop_pixels, crop_palette):
    def png_and_sse(indices):
        pal, idx = order_palette(crop_palette, indices)
        diff = crop_pixels.astype(np.int64) - crop_palette[indices]
        return len(encode_png(pal, idx)), int((diff * diff).sum())

    fs, on = (png_and_sse(f(crop_pixels, crop_palette)) for f in (floyd_steinberg, adaptive))
    assert on[0] < fs[0] and on[1] < fs[1]


def test_rate_aware_with_zero_strength_is_the_nearest_colour(crop_pixels, crop_palette):
    np.testing.assert_array_equal(rate_aware(crop_pixels, crop_palette, rdo=0.0),
                                  nearest(crop_pixels, crop_palette))


@pytest.mark.parametrize("rdo", [0.5, 2.0, 8.0])
def test_rate_aware_never_pays_more_than_its_price_in_error(crop_pixels, crop_palette, rdo):
    near = nearest(crop_pixels, crop_palette)
    chosen = rate_aware(crop_pixels, crop_palette, rdo=rdo)
    d2 = lambda idx: ((crop_pixels.astype(np.float64) - crop_palette[idx]) ** 2).sum(axis=2)
    price = rdo * mean_nearest_distance(crop_pixels, crop_palette, near)
    extra = d2(chosen) - d2(near)
    assert extra.min() >= -1e-9  # never closer than the nearest
    # the Lagrangian bound: a literal costs `price` times the pixel's rate weight
    assert (extra <= price * rate_weights(crop_pixels) + 1e-4).all()
    assert (chosen != near).any()


def test_rate_aware_files_are_smaller_the_stronger_it_is(crop_pixels, crop_palette):
    sizes = []
    for rdo in (0.0, 1.0, 4.0):
        pal, idx = order_palette(crop_palette, rate_aware(crop_pixels, crop_palette, rdo=rdo))
        sizes.append(len(encode_png(pal, idx)))
    assert sizes[0] > sizes[1] > sizes[2]


def test_rate_aware_takes_the_run_when_two_entries_are_equally_close():
    # Grey 100 is 28 from 72 and from 128: the nearest (ties to the lower index) is 72 on its
    # own, but after a run of 128s the run wins.
    palette = np.array([[72] * 3, [128] * 3], dtype=np.uint8)
    image = np.full((1, 8, 3), 128, dtype=np.uint8)
    image[0, 4:] = 100
    assert nearest(image, palette)[0, 4:].tolist() == [0] * 4
    assert rate_aware(image, palette, rdo=1.0)[0].tolist() == [1] * 8


def test_rate_aware_and_adaptive_map_transparent_pixels_to_the_transparent_entry():
    rgba = np.zeros((16, 16, 4), dtype=np.uint8)
    rgba[:, :, :3] = np.arange(16, dtype=np.uint8)[None, :, None] * 16
    rgba[:, :, 3] = 255
    rgba[4:8, 4:8, 3] = 0
    palette = np.array([[0, 0, 0, 0], [0, 0, 0, 255], [128, 128, 128, 255],
                        [250, 250, 250, 255]], dtype=np.uint8)
    for indices in (rate_aware(rgba, palette, rdo=4.0), adaptive(rgba, palette, rdo=4.0)):
        assert (indices[4:8, 4:8] == 0).all()
        assert (indices[rgba[:, :, 3] == 255] != 0).all()


def test_refit_moves_each_used_entry_to_its_mean_and_keeps_the_rest():
    pixels = np.array([[[10, 20, 30, 255], [14, 20, 30, 255], [200, 0, 0, 0]]], dtype=np.uint8)
    palette = np.array([[0, 0, 0, 255], [9, 9, 9, 0], [99, 99, 99, 255]], dtype=np.uint8)
    indices = np.array([[0, 0, 1]], dtype=np.uint8)
    refit = refit_palette(pixels, indices, palette)
    assert refit.tolist() == [[12, 20, 30, 255], [9, 9, 9, 0], [99, 99, 99, 255]]


def test_refit_lowers_the_error_of_rate_aware_indices(crop_pixels, crop_palette):
    indices = rate_aware(crop_pixels, crop_palette, rdo=3.0)
    sse = lambda pal: float(((crop_pixels.astype(np.float64) - pal[indices]) ** 2).sum())
    assert sse(refit_palette(crop_pixels, indices, crop_palette)) < sse(crop_palette)


@pytest.mark.parametrize("rdo", [-1.0, float("nan"), "2"])
def test_bad_rdo_is_refused(crop_pixels, crop_palette, rdo):
    with pytest.raises(InvalidOptionError, match="rdo must be a number >= 0"):
        rate_aware(crop_pixels, crop_palette, rdo=rdo)


def test_adaptive_kernel_refuses_a_map_of_the_wrong_shape(crop_pixels, crop_palette):
    pal = crop_palette.astype(np.float64)
    with pytest.raises(ValueError, match="levels must be"):
        _dither.adaptive_indices(
            crop_pixels, pal, np.zeros((len(pal), len(pal)), dtype=np.int64),
            np.zeros((len(pal), len(pal))), np.zeros(0, dtype=np.int64),
            np.zeros((3, 3), dtype=np.float32), np.zeros((0, 0), dtype=np.int16), 0.05, 1.5, 32.0,
            np.zeros((0, 0), dtype=np.uint8), 8.0, 0.0, 0.0, 0.0,
            np.empty(crop_pixels.shape[:2], dtype=np.uint8))
    with pytest.raises(ValueError, match="activity must be"):
        _dither.adaptive_indices(
            crop_pixels, pal, np.zeros((len(pal), len(pal)), dtype=np.int64),
            np.zeros((len(pal), len(pal))), np.zeros(0, dtype=np.int64),
            np.zeros((0, 0), dtype=np.float32), np.zeros((2, 2), dtype=np.int16), 0.05, 1.5,
            32.0, np.zeros((0, 0), dtype=np.uint8), 8.0, 0.0, 1.0, 1.0,
            np.empty(crop_pixels.shape[:2], dtype=np.uint8))


def test_rate_weights_are_low_on_smooth_areas_and_high_on_texture():
    image, _ = _ramp_and_texture()
    weights = rate_weights(image)
    assert weights.shape == image.shape[:2] and weights.dtype == np.float32
    assert weights[4:-4, 4:120].max() < RATE_FLOOR + 0.1  # the slow ramp (steps of 1 level)
    assert np.median(weights[4:-4, 136:-4]) == pytest.approx(RATE_CEIL)  # the noise
    activity = local_activity(image)
    assert activity[4:-4, 4:120].max() <= 2 and activity[4:-4, 136:-4].min() > 32


def test_rate_aware_spares_smooth_areas_and_works_on_texture():
    image, palette = _ramp_and_texture()
    near, chosen = nearest(image, palette), rate_aware(image, palette, rdo=4.0)
    changed = chosen != near
    assert changed[:, :120].mean() < 0.01 < 0.05 < changed[:, 136:].mean()


def _activity_reference(pixels: np.ndarray) -> np.ndarray:
    """Second differences by NumPy slices, then a 3 × 3 maximum (border repeated)."""
    colour = (pixels[:, :, :3] if pixels.shape[2] == 4 else pixels).astype(np.int64)
    raw = np.zeros(pixels.shape[:2], dtype=np.int64)
    if pixels.shape[1] >= 3:
        h = np.abs(2 * colour[:, 1:-1] - colour[:, :-2] - colour[:, 2:]).max(axis=2)
        raw[:, 1:-1] = np.maximum(raw[:, 1:-1], h)
    if pixels.shape[0] >= 3:
        v = np.abs(2 * colour[1:-1] - colour[:-2] - colour[2:]).max(axis=2)
        raw[1:-1] = np.maximum(raw[1:-1], v)
    return ndimage.maximum_filter(raw, size=3, mode="nearest")


@pytest.mark.parametrize("shape", [(64, 96, 3), (17, 5, 4), (9, 11, 1), (1, 7, 3), (2, 2, 3)])
def test_local_activity_is_the_reference(shape):
    pixels = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    np.testing.assert_array_equal(local_activity(pixels), _activity_reference(pixels))


def test_local_activity_of_the_crop_is_the_reference(crop_pixels):
    np.testing.assert_array_equal(local_activity(crop_pixels), _activity_reference(crop_pixels))


def test_mean_nearest_distance_is_the_mean_squared_distance(crop_pixels, crop_palette):
    indices = nearest(crop_pixels, crop_palette)
    diff = crop_pixels.astype(np.float64) - crop_palette[indices]
    assert mean_nearest_distance(crop_pixels, crop_palette, indices) == pytest.approx(
        (diff**2).sum(axis=2).mean(), rel=1e-12)
    with pytest.raises(ValueError, match="outside the palette"):
        mean_nearest_distance(crop_pixels, crop_palette[:2], indices)


def test_given_nearest_entries_are_checked_and_skip_the_search(crop_pixels, crop_palette):
    pal = crop_palette.astype(np.float64)
    k = len(pal)
    tables = (np.argsort(np.zeros((k, k)), axis=1).astype(np.int64), np.zeros((k, k)))
    near = nearest(crop_pixels, crop_palette)

    def run(levels, known):
        out = np.empty(crop_pixels.shape[:2], dtype=np.uint8)
        _dither.adaptive_indices(crop_pixels, pal, *tables, np.zeros(0, dtype=np.int64), levels,
                                 np.zeros((0, 0), dtype=np.int16), 0.05, 1.5, 32.0, known, 8.0,
                                 0.0, 0.0, 0.0, out)
        return out

    no_map = np.zeros((0, 0), dtype=np.float32)
    np.testing.assert_array_equal(run(no_map, near), near)  # taken as given, no search
    shifted = ((near.astype(int) + 1) % k).astype(np.uint8)
    np.testing.assert_array_equal(run(no_map, shifted), shifted)
    with pytest.raises(ValueError, match="not an entry of the palette"):
        run(no_map, np.full_like(near, k))
    with pytest.raises(ValueError, match="nearest must be"):
        run(np.ones(near.shape, dtype=np.float32), near)
