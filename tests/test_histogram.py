import numpy as np

from kmquant.histogram import color_histogram


def test_counts_and_inverse_rebuild_the_image(crop_pixels):
    h = color_histogram(crop_pixels)
    assert h.counts.sum() == crop_pixels.shape[0] * crop_pixels.shape[1]
    assert np.array_equal(h.colors[h.inverse].reshape(crop_pixels.shape), crop_pixels)
    assert len(np.unique(h.colors, axis=0)) == h.n_colors  # distinct
    assert (h.counts > 0).all()


def test_hand_counted_rgba_and_grey():
    rgba = np.array([[[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 5]]], dtype=np.uint8)
    h = color_histogram(rgba)
    assert h.colors.tolist() == [[1, 2, 3, 4], [1, 2, 3, 5]]
    assert h.counts.tolist() == [2, 1]
    assert h.inverse.tolist() == [0, 0, 1]
    grey = np.array([[[7], [0]], [[7], [7]]], dtype=np.uint8)
    h = color_histogram(grey)
    assert h.colors.tolist() == [[0], [7]] and h.counts.tolist() == [1, 3]


def test_photo_has_far_fewer_colours_than_pixels(sample_pixels):
    h = color_histogram(sample_pixels)
    assert 10_000 < h.n_colors < sample_pixels.shape[0] * sample_pixels.shape[1] / 2


def test_table_and_sort_methods_agree():
    from kmquant.histogram import _unique_by_table, _unique_with_inverse

    keys = np.random.default_rng(0).integers(0, 1 << 24, 200_000).astype(np.uint32)
    keys[::3] = keys[0]  # many repeats
    for a, b in zip(_unique_by_table(keys, 24), _unique_with_inverse(keys)):
        assert np.array_equal(a, b)
