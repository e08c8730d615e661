import numpy as np
import pytest

from kmquant.engines import get_engine
from kmquant.errors import AbortedError
from kmquant.histogram import color_histogram
from kmquant.refine import refine
from kmquant.seeding import seed_centers


@pytest.fixture(scope="module")
def case(crop_pixels):
    h = color_histogram(crop_pixels)
    X, w = h.colors.astype(np.float64), h.counts.astype(np.float64)
    return get_engine("numpy").bind(X, w), seed_centers("k-means++", X, w, 12, seed=0)


def test_inertia_never_rises_and_labels_match_centres(case):
    session, start = case
    previous = np.inf
    for iterations in (1, 2, 4, 8):
        result = refine(session, start, max_iter=iterations, tol=0.0)
        assert result.inertia <= previous + 1e-6
        previous = result.inertia
    labels, _ = session.assign(result.centers)
    assert np.array_equal(labels, result.labels)


def test_max_iter_caps_and_reports_not_converged(case):
    session, start = case
    result = refine(session, start, max_iter=1, tol=0.0)
    assert result.n_iter == 1 and not result.converged


def test_looser_tolerance_stops_sooner(case):
    session, start = case
    tight = refine(session, start, tol=0.0)
    loose = refine(session, start, tol=1e-2)
    assert tight.converged and loose.n_iter < tight.n_iter
    assert loose.inertia >= tight.inertia - 1e-6


def test_progress_is_reported_and_false_aborts(case):
    session, start = case
    seen = []
    refine(session, start, progress=lambda *a: seen.append(a))
    assert seen[0] == ("refine", 1, 300) and [s[1] for s in seen] == list(range(1, len(seen) + 1))
    with pytest.raises(AbortedError):
        refine(session, start, progress=lambda *a: False)
