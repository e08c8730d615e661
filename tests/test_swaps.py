import numpy as np
import pytest

import kmquant
from kmquant.engines import get_engine
from kmquant.histogram import color_histogram
from kmquant.refine import refine
from kmquant.seeding import seed_centers
from kmquant.swaps import swap_search


@pytest.fixture(scope="module")
def converged(sample_pixels):
    h = color_histogram(sample_pixels)
    X, w = h.colors.astype(np.float64), h.counts.astype(np.float64)
    engine = get_engine("numba")
    return X, w, refine(X, w, seed_centers("k-means++", X, w, 16, 0), engine), engine


def test_swaps_never_raise_the_error_and_find_a_better_optimum(converged):
    X, w, fitted, engine = converged
    better, accepted = swap_search(X, w, fitted, engine, rounds=10)
    assert better.inertia <= fitted.inertia
    assert accepted >= 1 and better.inertia < fitted.inertia * 0.999
    labels, sq = get_engine("numpy").assign(X, better.centers)  # labels consistent with centres
    assert np.array_equal(labels, better.labels)
    assert better.inertia == pytest.approx(w @ sq)


def test_a_swap_that_cannot_help_is_undone():
    # two tight pairs of points: k-means with K=2 already has the optimum
    X = np.array([[0.0], [1.0], [100.0], [101.0]])
    w = np.ones(4)
    engine = get_engine("numpy")
    fitted = refine(X, w, np.array([[0.0], [100.0]]), engine)
    same, accepted = swap_search(X, w, fitted, engine, rounds=5)
    assert accepted == 0 and same is fitted


def test_quantize_with_swaps(crop_pixels):
    plain = kmquant.quantize(crop_pixels, 12)
    swapped = kmquant.quantize(crop_pixels, 12, swaps=10)
    assert swapped.inertia <= plain.inertia
    assert any("swaps kept" in note for note in swapped.notes)
    with pytest.raises(kmquant.InvalidOptionError, match="swaps"):
        kmquant.quantize(crop_pixels, 12, swaps=-1)
