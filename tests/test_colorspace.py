import numpy as np
import pytest

from kmquant.colorspace import (
    ALPHA_WEIGHT,
    SPACE_NAMES,
    SPACES,
    from_working,
    linear_to_srgb,
    srgb_to_linear,
    to_working,
)
from kmquant.engines import get_engine
from kmquant.errors import InvalidOptionError
from kmquant.options import Options
from kmquant.pipeline import prepare, quantize_prepared

GREYS = np.arange(256, dtype=np.uint8)[:, None]


@pytest.fixture(scope="module")
def rgb_sample() -> np.ndarray:
    """200 000 random colours plus the 4913-colour grid of multiples of 15 (corners included)."""
    random = np.random.default_rng(7).integers(0, 256, (200_000, 3), dtype=np.uint8)
    levels = np.arange(0, 256, 15, dtype=np.uint8)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    return np.concatenate([random, grid])


def test_registry_and_names():
    assert SPACE_NAMES == ("rgb", "linear", "oklab", "lab")
    assert tuple(SPACES) == SPACE_NAMES


def test_unknown_space_is_refused():
    with pytest.raises(InvalidOptionError, match="rgb, linear, oklab, lab"):
        to_working(GREYS, "hsv")
    with pytest.raises(InvalidOptionError, match="space"):
        from_working(np.zeros((1, 3)), "xyz")


def test_bad_channel_count_is_refused():
    with pytest.raises(ValueError, match="channels"):
        to_working(np.zeros((2, 5), np.uint8), "rgb")


@pytest.mark.parametrize("space", SPACE_NAMES)
def test_all_greys_round_trip_exactly(space):
    values = to_working(GREYS, space)
    assert values.shape == (256, 1) and values.dtype == np.float64
    np.testing.assert_array_equal(from_working(values, space), GREYS)


@pytest.mark.parametrize("space", SPACE_NAMES)
def test_rgb_colours_round_trip_exactly(space, rgb_sample):
    # Exact, not within one level: float64 keeps every space's error far below half a level.
    # (Checked once on all 2**24 colours too; too slow for every run in lab.)
    values = to_working(rgb_sample, space)
    assert values.shape == rgb_sample.shape and values.flags.c_contiguous
    np.testing.assert_array_equal(from_working(values, space), rgb_sample)


@pytest.mark.parametrize("space", SPACE_NAMES)
def test_alpha_is_the_last_channel_weighted_in_every_space(space, rgb_sample):
    rng = np.random.default_rng(1)
    rgba = np.column_stack([rgb_sample[:5000], rng.integers(0, 256, 5000, dtype=np.uint8)])
    values = to_working(rgba, space)
    np.testing.assert_array_equal(values[:, 3], rgba[:, 3] * ALPHA_WEIGHT)
    np.testing.assert_array_equal(values[:, :3], to_working(rgba[:, :3], space))
    np.testing.assert_array_equal(from_working(values, space), rgba)


@pytest.mark.parametrize("space", SPACE_NAMES)
def test_grey_with_alpha(space):
    la = np.column_stack([GREYS[:, 0], GREYS[::-1, 0]])
    values = to_working(la, space)
    np.testing.assert_array_equal(values[:, 1], la[:, 1] * ALPHA_WEIGHT)
    np.testing.assert_array_equal(from_working(values, space), la)


@pytest.mark.parametrize("space", SPACE_NAMES)
def test_grey_is_the_first_axis_of_the_rgb_grey_and_increases(space):
    grey = to_working(GREYS, space)[:, 0]
    as_rgb = to_working(np.repeat(GREYS, 3, axis=1), space)
    np.testing.assert_array_equal(grey, as_rgb[:, 0])
    assert np.all(np.diff(grey) > 0)
    assert grey[0] == pytest.approx(0.0, abs=1e-9)
    assert grey[255] == pytest.approx(255.0, abs=1e-3)
    if space in ("oklab", "lab"):  # greys have no chroma
        np.testing.assert_allclose(as_rgb[:, 1:], 0.0, atol=0.02)


def test_linear_reference_values():
    # IEC 61966-2-1: ((128/255 + 0.055) / 1.055) ** 2.4 = 0.21586
    assert to_working(np.array([[128, 0, 255]], np.uint8), "linear")[0] == pytest.approx(
        [0.21586 * 255, 0.0, 255.0], abs=1e-3
    )
    assert srgb_to_linear(np.array(0.04045)) == pytest.approx(0.04045 / 12.92)
    assert linear_to_srgb(np.array([-1.0, 2.0])) == pytest.approx([0.0, 1.0])


def test_oklab_reference_values():
    # White: L = 1, a = b = 0 (Ottosson 2020). Red: (0.62796, 0.22486, 0.12585), the published
    # Oklab value of sRGB #ff0000 (e.g. CSS Color Module Level 4).
    values = to_working(np.array([[255, 255, 255], [255, 0, 0]], np.uint8), "oklab") / 255
    assert values[0] == pytest.approx([1.0, 0.0, 0.0], abs=1e-4)
    assert values[1] == pytest.approx([0.62796, 0.22486, 0.12585], abs=1e-5)


def test_oklab_inverse_matches_ottossons_published_matrices():
    # oklab_to_linear_srgb() from https://bottosson.github.io/posts/oklab/
    m2_inv = np.array([[1.0, 0.3963377774, 0.2158037573],
                       [1.0, -0.1055613458, -0.0638541728],
                       [1.0, -0.0894841775, -1.2914855480]])
    m1_inv = np.array([[4.0767416621, -3.3077115913, 0.2309699292],
                       [-1.2684380046, 2.6097574011, -0.3413193965],
                       [-0.0041960863, -0.7034186147, 1.7076147010]])
    lab = np.array([[0.6, 0.1, -0.05], [0.3, -0.02, 0.04], [0.9, 0.0, 0.0]])
    srgb = linear_to_srgb(((lab @ m2_inv.T) ** 3) @ m1_inv.T) * 255
    np.testing.assert_array_equal(from_working(lab * 255, "oklab"), np.rint(srgb))


def test_lab_reference_values():
    # CIELAB (D65) of sRGB red and white, as tabulated by Lindbloom / EasyRGB.
    values = to_working(np.array([[255, 0, 0], [255, 255, 255]], np.uint8), "lab") / 2.55
    assert values[0] == pytest.approx([53.24, 80.09, 67.20], abs=0.01)
    assert values[1] == pytest.approx([100.0, 0.0, 0.0], abs=0.01)


@pytest.mark.parametrize("space", SPACE_NAMES)
def test_out_of_gamut_values_are_clipped_without_warnings(space):
    # Clipped per channel in linear light: not the nearest colour of the gamut, but k-means centres
    # (means of in-gamut colours) are at most a little outside it.
    far = np.array([[-500.0, 0.0, 0.0], [900.0, 400.0, -400.0], [128.0, -900.0, 900.0],
                    [128.0, 30.0, 900.0], [600.0, 0.0, 0.0]])
    colors = from_working(far, space)  # a warning would fail the test (filterwarnings = error)
    assert colors.dtype == np.uint8 and colors.shape == (5, 3)
    np.testing.assert_array_equal(colors[0], [0, 0, 0])
    np.testing.assert_array_equal(colors[4], [255, 0, 0] if space in ("rgb", "linear") else 255)
    grey = from_working(np.array([[-20.0], [128.0], [400.0]]), space)
    np.testing.assert_array_equal(grey[[0, 2], 0], [0, 255])
    anything = np.random.default_rng(3).normal(0.0, 400.0, (20_000, 3))
    anything[:100, 2] = 200 / 116 * (anything[:100, 0] + 16 * 2.55)  # lab: Z = 0 exactly
    assert from_working(anything, space).shape == (20_000, 3)


def test_rgb_rounds_to_nearest():
    np.testing.assert_array_equal(
        from_working(np.array([[127.6, 0.4, 254.5001]]), "rgb"), [[128, 0, 255]]
    )


@pytest.mark.parametrize("space", SPACE_NAMES)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_pipeline_pieces_run_in_every_space(space, channels, crop_pixels):
    if channels == 1:
        pixels = crop_pixels[:, :, :1].copy()
    elif channels == 4:
        alpha = np.where(np.arange(crop_pixels.shape[1]) < 20, 0, 200).astype(np.uint8)
        pixels = np.dstack([crop_pixels, np.broadcast_to(alpha, crop_pixels.shape[:2])])
    else:
        pixels = crop_pixels
    prepared = prepare(pixels, space)
    result, centers = quantize_prepared(prepared, Options(n_colors=8), get_engine("numpy"))
    assert centers is not None
    assert result.palette.shape[1] == channels and result.colors_used <= 8
    assert result.to_array().shape == pixels.shape
