"""The colour histogram and its per-pixel look-up, against a NumPy reference (``np.unique``).

Property tests (hypothesis) draw images of 1×1 to 64×64 pixels with C = 1..4, from palettes of a
few colours (long runs, many duplicates) to thousands (the table grows several times), read where
they lie or through views; the compiled core is also called directly with wrong arguments, which
must raise ValueError, never crash.
"""

from __future__ import annotations

import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmquant._core import _histogram
from kmquant.histogram import color_histogram


def reference(pixels: np.ndarray, clear_transparent: bool = False):
    """np.unique's (colors, counts, inverse (H, W)) of ``pixels`` (H, W, C), on the colours
    packed big-endian into integers (the same order as ``np.unique(axis=0)``, much faster)."""
    if clear_transparent and pixels.shape[2] == 4:
        pixels = np.where(pixels[:, :, 3:] == 0, np.uint8(0), pixels)
    channels = pixels.shape[2]
    keys = np.zeros(pixels.shape[:2], dtype=np.int64)
    for c in range(channels):
        keys = (keys << 8) | pixels[:, :, c]
    unique, inverse, counts = np.unique(keys.ravel(), return_inverse=True, return_counts=True)
    colors = np.stack([(unique >> (8 * (channels - 1 - c))) & 0xFF for c in range(channels)], axis=1)
    return colors.astype(np.uint8).reshape(-1, channels), counts, inverse.reshape(pixels.shape[:2])


def test_reference_is_numpy_unique_of_the_rows(crop_pixels):
    rgba = np.concatenate([crop_pixels, crop_pixels[:, :, :1] // 64], axis=2)
    for pixels in (crop_pixels, rgba, crop_pixels[:, :, 1:2]):
        colors, inverse, counts = np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0,
                                            return_inverse=True, return_counts=True)
        got = reference(pixels)
        assert np.array_equal(got[0], colors) and np.array_equal(got[1], counts)
        assert np.array_equal(got[2].ravel(), inverse.ravel())


def check(pixels: np.ndarray, clear_transparent: bool = False, seed: int = 0, **kwargs) -> None:
    """color_histogram and lookup agree with the reference on ``pixels``."""
    h = color_histogram(pixels, clear_transparent=clear_transparent, **kwargs)
    colors, counts, inverse = reference(pixels, clear_transparent)
    assert h.colors.dtype == np.uint8 and h.counts.dtype == np.int64
    assert np.array_equal(h.colors, colors) and np.array_equal(h.counts, counts)
    values = np.random.default_rng(seed).integers(0, 256, h.n_colors, dtype=np.uint8)
    out = h.lookup(pixels, values, **kwargs)
    assert out.shape == pixels.shape[:2] and out.dtype == np.uint8
    assert np.array_equal(out, values[inverse])


def test_counts_and_lookup_rebuild_the_image(crop_pixels):
    h = color_histogram(crop_pixels)
    assert h.counts.sum() == crop_pixels.shape[0] * crop_pixels.shape[1]
    assert (h.counts > 0).all() and len(np.unique(h.colors, axis=0)) == h.n_colors
    check(crop_pixels)


def test_lookup_of_row_numbers_rebuilds_a_few_colour_image():
    palette = np.random.default_rng(1).integers(0, 256, (200, 3), dtype=np.uint8)
    pixels = palette[np.random.default_rng(2).integers(0, 200, (50, 70))]
    h = color_histogram(pixels)
    assert h.n_colors <= 256
    rows = h.lookup(pixels, np.arange(h.n_colors, dtype=np.uint8))
    assert np.array_equal(h.colors[rows], pixels)


def test_hand_counted_rgba_and_grey():
    rgba = np.array([[[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 5]]], dtype=np.uint8)
    h = color_histogram(rgba)
    assert h.colors.tolist() == [[1, 2, 3, 4], [1, 2, 3, 5]]
    assert h.counts.tolist() == [2, 1]
    assert h.lookup(rgba, np.array([0, 1], dtype=np.uint8)).tolist() == [[0, 0, 1]]
    grey = np.array([[[7], [0]], [[7], [7]]], dtype=np.uint8)
    h = color_histogram(grey)
    assert h.colors.tolist() == [[0], [7]] and h.counts.tolist() == [1, 3]
    assert h.lookup(grey, np.array([9, 4], dtype=np.uint8)).tolist() == [[4, 9], [4, 4]]


def test_photo_has_far_fewer_colours_than_pixels(sample_pixels):
    h = color_histogram(sample_pixels)
    assert 10_000 < h.n_colors < sample_pixels.shape[0] * sample_pixels.shape[1] / 2
    check(sample_pixels)


def test_extreme_keys_zero_and_all_ones():
    """Key 0 (black, transparent black) and 0xFFFFFFFF are colours like any other, not markers."""
    pixels = np.array([[[0, 0, 0, 0], [255, 255, 255, 255], [0, 0, 0, 0]],
                       [[0, 0, 0, 1], [255, 255, 255, 255], [255, 255, 255, 255]]], dtype=np.uint8)
    h = color_histogram(pixels)
    assert h.colors.tolist() == [[0, 0, 0, 0], [0, 0, 0, 1], [255, 255, 255, 255]]
    assert h.counts.tolist() == [2, 1, 3]
    check(pixels)
    check(pixels[:, :, :3])


def test_one_pixel_and_no_pixel():
    one = np.array([[[3, 1, 4]]], dtype=np.uint8)
    h = color_histogram(one)
    assert h.colors.tolist() == [[3, 1, 4]] and h.counts.tolist() == [1]
    assert h.lookup(one, np.array([42], dtype=np.uint8)).tolist() == [[42]]
    for shape in [(0, 5, 3), (4, 0, 2)]:
        empty = np.zeros(shape, dtype=np.uint8)
        h = color_histogram(empty)
        assert h.colors.shape == (0, shape[2]) and h.counts.shape == (0,)
        assert h.lookup(empty, np.zeros(0, dtype=np.uint8)).shape == shape[:2]


def test_clear_transparent_counts_every_alpha_zero_pixel_as_transparent_black():
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 4, (40, 30, 4)).astype(np.uint8) * 80  # alpha 0 on about 1/4
    h = color_histogram(pixels, clear_transparent=True)
    assert h.clear_transparent
    assert h.colors[0].tolist() == [0, 0, 0, 0]
    assert h.counts[0] == (pixels[:, :, 3] == 0).sum()
    assert not (h.colors[1:, 3] == 0).any()
    check(pixels, clear_transparent=True)
    # without the flag every (r, g, b, 0) is a colour of its own; with C < 4 the flag does nothing
    assert color_histogram(pixels).n_colors > h.n_colors
    assert not color_histogram(pixels[:, :, :3], clear_transparent=True).clear_transparent
    check(pixels[:, :, :3], clear_transparent=True)


def test_views_are_read_where_they_lie():
    rng = np.random.default_rng(4)
    big = rng.integers(0, 3, (30, 40, 4)).astype(np.uint8) * 100
    for view in [big[3:20, 5:33], big[::-1, ::2], big[:, :, :3], big[:, :, 2:3], big[5:6, ::-3, :2]]:
        check(view)
    rgb = np.ascontiguousarray(big[:, :, 1:])
    for view in [rgb, rgb[::-1, ::-1], rgb[:, 1:-1], rgb[:, ::-1], rgb[7:8]]:
        check(view)  # C = 3: a pixel's key is read with one 4-byte load except at a row's end
    readonly = big.copy()
    readonly.setflags(write=False)
    check(readonly)
    check(np.broadcast_to(np.array([4, 5, 6], np.uint8), (3, 7, 3)))  # every pixel the same bytes
    check(big[:, :, ::-1])  # channels not adjacent: copied, same answer


def test_many_colours_grow_the_table_and_threads_give_the_same_result():
    """~200 000 colours (the table grows from 4096 slots to 2²⁰), 2¹⁹ pixels: two bands."""
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (1024, 512, 3), dtype=np.uint8)
    pixels[:, :, 0] &= 0x0F  # 2²⁰ possible colours
    pixels[100:300] = pixels[100:101]  # and some runs
    for n_threads in (1, 2, 3):
        check(pixels, n_threads=n_threads)
    rgba = np.concatenate([pixels, pixels[:, :, :1]], axis=2)
    check(rgba, clear_transparent=True, n_threads=2)


def test_noise_fills_a_dense_table():
    """RGB noise, 3 M pixels of 2.8 M colours, in two bands: from 2²² slots on a table may be 3/4
    full, so these fit 2²² slots (more than half full)."""
    pixels = np.random.default_rng(6).integers(0, 256, (2048, 1536, 3), dtype=np.uint8)
    h = color_histogram(pixels, n_threads=2)
    assert h.n_colors > 1 << 21 and h._table.nbytes == 8 << 22
    check(pixels, n_threads=2)


def test_counting_makes_nothing_per_pixel():
    """A flat 2000 × 2000 image: the count allocates only the first table (32 KB)."""
    pixels = np.zeros((2000, 2000, 3), dtype=np.uint8)
    tracemalloc.start()
    try:
        h = color_histogram(pixels, n_threads=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert h.counts.tolist() == [4_000_000]
    assert h._table.nbytes == 4096 * 8
    assert peak < 256 * 1024


@st.composite
def images(draw):
    """(pixels (H, W, C) uint8, maybe a view, C in 1..4, from 1 to 4000 distinct colours)."""
    height, width = draw(st.integers(1, 64)), draw(st.integers(1, 64))
    channels = draw(st.integers(1, 4))
    few = draw(st.booleans())
    n_palette = draw(st.integers(1, 6) if few else st.integers(7, 4000))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (n_palette, channels + 1), dtype=np.uint8)
    if draw(st.booleans()):
        palette[:, 3 % (channels + 1)] = rng.choice([0, 255], n_palette).astype(np.uint8)
    picks = rng.integers(0, n_palette, (height + 3, width + 2))
    if few:  # runs of one colour along the rows
        picks = np.repeat(picks[:, : width // 4 + 1], 4, axis=1)[:, : width + 2]
    big = palette[picks]
    view = draw(st.sampled_from(["whole", "window", "reversed", "leading"]))
    if view == "window":
        return big[1 : height + 1, 2 : width + 2, :channels]
    if view == "reversed":
        return big[height - 1 :: -1, ::-1, :channels]
    if view == "leading":
        return big[:height, :width, :channels]
    return np.ascontiguousarray(big[:height, :width, :channels])


@settings(max_examples=80, deadline=None)
@given(pixels=images(), clear_transparent=st.booleans(), seed=st.integers(0, 1000))
def test_matches_numpy_unique(pixels, clear_transparent, seed):
    check(pixels, clear_transparent=clear_transparent, seed=seed)


@settings(max_examples=40, deadline=None)
@given(pixels=images())
def test_lookup_of_part_of_the_image(pixels):
    """Any pixels whose colours were counted can be looked up, e.g. a crop."""
    h = color_histogram(pixels)
    part = pixels[: (pixels.shape[0] + 1) // 2, 1:]
    values = (np.arange(h.n_colors) % 256).astype(np.uint8)
    _, _, inverse = reference(pixels)
    assert np.array_equal(h.lookup(part, values), values[inverse[: part.shape[0], 1:]])


def test_lookups_from_several_threads_at_once(sample_pixels):
    h = color_histogram(sample_pixels)
    _, _, inverse = reference(sample_pixels)
    rng = np.random.default_rng(7)
    tables = [rng.integers(0, 256, h.n_colors, dtype=np.uint8) for _ in range(8)]
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda values: h.lookup(sample_pixels, values), tables))
    for values, out in zip(tables, outs):
        assert np.array_equal(out, values[inverse])


def test_wrong_arguments_raise_value_error():
    pixels = np.zeros((4, 5, 3), dtype=np.uint8)
    bad = [pixels.astype(np.float32), pixels[:, :, 0], pixels[None], np.zeros((4, 5, 5), np.uint8),
           np.zeros((4, 5, 0), np.uint8)]
    for wrong in bad:
        with pytest.raises(ValueError):
            color_histogram(wrong)
    with pytest.raises(ValueError):
        color_histogram(pixels, n_threads=0)
    h = color_histogram(pixels)
    for values in [np.zeros(2, np.uint8), np.zeros(1, np.int64), np.zeros((1, 1), np.uint8)]:
        with pytest.raises(ValueError):
            h.lookup(pixels, values)
    ok = np.zeros(1, np.uint8)
    for wrong in bad + [pixels[:, :, :2]]:
        with pytest.raises(ValueError):
            h.lookup(wrong, ok)
    with pytest.raises(ValueError, match="not in the table"):
        h.lookup(pixels + 1, ok)


def test_compiled_core_checks_its_arguments():
    pixels = np.zeros((4, 5, 3), dtype=np.uint8)
    pixels[0, 0] = 9
    table = _histogram.ColorTable()
    colors, counts, values = np.empty((2, 3), np.uint8), np.empty(2, np.int64), np.zeros(2, np.uint8)
    out = np.empty((4, 5), np.uint8)
    with pytest.raises(ValueError):  # finish or lookup before count
        table.finish(colors, counts)
    with pytest.raises(ValueError):
        table.lookup(pixels, values, out)
    for wrong in [pixels.astype(np.int16), pixels[:, :, 0], np.zeros((4, 5, 6), np.uint8),
                  pixels[:, :, ::2]]:
        with pytest.raises(ValueError):
            _histogram.ColorTable().count(wrong)
    with pytest.raises(ValueError):
        _histogram.ColorTable().count(pixels, False, 0)
    table.count(pixels)
    with pytest.raises(ValueError):  # once only
        table.count(pixels)
    with pytest.raises(ValueError):  # lookup before finish
        table.lookup(pixels, values, out)
    for c, n in [(np.empty((3, 3), np.uint8), counts), (np.empty((2, 4), np.uint8), counts),
                 (colors, np.empty(3, np.int64)), (colors.astype(np.int32), counts),
                 (colors, counts.astype(np.int32)), (np.empty((3, 2), np.uint8)[:2], counts)]:
        with pytest.raises(ValueError):
            table.finish(c, n)
    table.finish(colors, counts)
    assert colors.tolist() == [[0, 0, 0], [9, 9, 9]] and counts.tolist() == [19, 1]
    with pytest.raises(ValueError):  # finish once only
        table.finish(colors, counts)
    for args in [(pixels, np.zeros(3, np.uint8), out), (pixels, values.astype(np.int8), out),
                 (pixels, values, np.empty((5, 4), np.uint8)), (pixels, values, out.T),
                 (pixels[:, :, :2], values, out), (pixels + 1, values, out),
                 (pixels, values, out, 0)]:
        with pytest.raises(ValueError):
            table.lookup(*args)
    table.lookup(pixels, np.array([4, 7], np.uint8), out)
    assert out[0, 0] == 7 and (out.ravel()[1:] == 4).all()
