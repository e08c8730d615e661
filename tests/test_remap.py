import numpy as np

from kmquant.engines import get_engine
from kmquant.histogram import color_histogram
from kmquant.remap import remap


def test_every_pixel_gets_its_exact_nearest_palette_colour(crop_pixels):
    rng = np.random.default_rng(1)
    palette = rng.integers(0, 256, (40, 3)).astype(np.uint8)
    for name in ("numpy", "numba"):
        indices = remap(color_histogram(crop_pixels), palette, crop_pixels.shape[:2], get_engine(name))
        assert indices.dtype == np.uint8 and indices.shape == crop_pixels.shape[:2]
        px = crop_pixels.reshape(-1, 1, 3).astype(np.int64)
        d = ((px - palette[None].astype(np.int64)) ** 2).sum(axis=2)
        assert np.array_equal(indices.ravel(), d.argmin(axis=1))


def test_ties_go_to_the_lower_index():
    pixels = np.array([[[10, 10, 10]]], dtype=np.uint8)
    palette = np.array([[12, 10, 10], [8, 10, 10]], dtype=np.uint8)
    indices = remap(color_histogram(pixels), palette, (1, 1), get_engine("numba"))
    assert indices[0, 0] == 0
