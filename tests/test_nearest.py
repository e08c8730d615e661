import numpy as np

from kmquant.colorspace import to_working
from kmquant.engines import get_engine
from kmquant.histogram import color_histogram
from kmquant.nearest import remap


def test_every_pixel_gets_its_exact_nearest_palette_colour(crop_pixels):
    rng = np.random.default_rng(1)
    palette = rng.integers(0, 256, (40, 3)).astype(np.uint8)
    histogram = color_histogram(crop_pixels)
    colors = to_working(histogram.colors, "rgb")
    px = crop_pixels.reshape(-1, 1, 3).astype(np.int64)
    expected = (((px - palette[None].astype(np.int64)) ** 2).sum(axis=2)).argmin(axis=1)
    for name in ("numpy", "native"):
        session = get_engine(name).bind(colors, np.ones(len(colors)))
        indices = remap(histogram, crop_pixels, palette, session=session)
        assert indices.dtype == np.uint8 and indices.shape == crop_pixels.shape[:2]
        assert np.array_equal(indices.ravel(), expected)
    assert np.array_equal(remap(histogram, crop_pixels, palette).ravel(), expected)  # default


def test_ties_go_to_the_lower_index():
    pixels = np.array([[[10, 10, 10]]], dtype=np.uint8)
    palette = np.array([[12, 10, 10], [8, 10, 10]], dtype=np.uint8)
    indices = remap(color_histogram(pixels), pixels, palette)
    assert indices[0, 0] == 0
