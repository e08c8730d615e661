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


def test_table_and_hash_methods_agree_with_numpy():
    from kmquant.histogram import _unique_by_hash, _unique_by_table

    keys = np.random.default_rng(0).integers(0, 1 << 24, 200_000).astype(np.uint32)
    keys[::3] = keys[0]  # many repeats
    keys[1000:1100] = keys[999]  # a run
    expected = np.unique(keys, return_inverse=True, return_counts=True)
    expected = (expected[0], expected[2], expected[1])
    for method in (_unique_by_table(keys, 24), _unique_by_hash(keys)):
        for got, want in zip(method, expected):
            assert np.array_equal(got, want)


def test_hash_counts_full_32_bit_keys_including_zero_and_the_top():
    from kmquant.histogram import _unique_by_hash

    keys = np.array([0, 0xFFFFFFFF, 0, 7, 0xFFFFFFFF, 0xFFFFFFFF], dtype=np.uint32)
    unique, counts, inverse = _unique_by_hash(keys)
    assert unique.tolist() == [0, 7, 0xFFFFFFFF]
    assert counts.tolist() == [2, 1, 3]
    assert inverse.tolist() == [0, 2, 0, 1, 2, 2]
