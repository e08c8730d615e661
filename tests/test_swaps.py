from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kmquant
from kmquant._core import _random_swap
from kmquant.engines import get_engine
from kmquant.histogram import color_histogram
from kmquant.pipeline import prepare
from kmquant.refine import refine
from kmquant.seeding import seed_centers
from kmquant.swaps import random_swap, swap_search


@pytest.fixture(scope="module")
def converged(sample_pixels):
    h = color_histogram(sample_pixels)
    X, w = h.colors.astype(np.float64), h.counts.astype(np.float64)
    session = get_engine("native").bind(X, w)
    return X, w, refine(session, seed_centers("k-means++", X, w, 16, 0)), session


def test_swaps_never_raise_the_error_and_find_a_better_optimum(converged):
    X, w, fitted, session = converged
    better, accepted = swap_search(session, fitted, rounds=10)
    assert better.inertia <= fitted.inertia
    assert accepted >= 1 and better.inertia < fitted.inertia * 0.999
    labels, sq = get_engine("numpy").bind(X, w).assign(better.centers)  # labels consistent with centres
    assert np.array_equal(labels, better.labels)
    assert better.inertia == pytest.approx(w @ sq)


def test_a_swap_that_cannot_help_is_undone():
    # two tight pairs of points: k-means with K=2 already has the optimum
    X = np.array([[0.0], [1.0], [100.0], [101.0]])
    w = np.ones(4)
    session = get_engine("numpy").bind(X, w)
    fitted = refine(session, np.array([[0.0], [100.0]]))
    same, accepted = swap_search(session, fitted, rounds=5)
    assert accepted == 0 and same is fitted


def test_quantize_with_swaps(crop_pixels):
    plain = kmquant.quantize(crop_pixels, 12)
    swapped = kmquant.quantize(crop_pixels, 12, swaps=10)
    assert swapped.inertia <= plain.inertia
    assert any("swaps kept" in note for note in swapped.notes)
    with pytest.raises(kmquant.InvalidOptionError, match="swaps"):
        kmquant.quantize(crop_pixels, 12, swaps=-1)


# --------------------------------------------------------------------------------------------
# random_swap: the long random-swap search (the search benchmark's ceiling), compiled


def _reference_random_swap(X, w, centers, uniforms, picks):
    """The numba kernel the compiled one replaces (bench/bench_search.py before the port), in
    plain Python: the same float64 operations in the same order, with the draws given. Returns
    the centres (K, C) and the error it tracks."""
    n, channels = X.shape
    C = [list(map(float, row)) for row in centers]
    X, w = [list(map(float, row)) for row in X], [float(v) for v in w]
    k = len(C)

    def sq(x, c):
        d = 0.0
        for a, b in zip(x, c):
            d += (a - b) * (a - b)
        return d

    def nearest(x):
        best, best_d = -1, float("inf")
        for j in range(k):
            d = sq(x, C[j])
            if d < best_d:
                best, best_d = j, d
        return best, best_d

    labels, dist = [0] * n, [0.0] * n
    sums, mass = [[0.0] * channels for _ in range(k)], [0.0] * k
    error = 0.0
    for i in range(n):
        labels[i], dist[i] = nearest(X[i])
        mass[labels[i]] += w[i]
        for c in range(channels):
            sums[labels[i]][c] += w[i] * X[i][c]
        error += w[i] * dist[i]
    for u, j in zip(uniforms, picks):
        saved = ([r[:] for r in C], labels[:], dist[:], [r[:] for r in sums], mass[:])
        total, cumulative = 0.0, []
        for i in range(n):
            total += w[i] * dist[i]
            cumulative.append(total)
        row = min(int(np.searchsorted(cumulative, float(u) * total)), n - 1)
        C[j] = X[row][:]
        moved = [int(j)]
        for _ in range(2):  # the local Lloyd iterations
            changed = set()
            for i in range(n):
                own = labels[i]
                if own in moved:
                    best, best_d = nearest(X[i])
                else:
                    best, best_d = own, dist[i]
                    for m in moved:
                        d = sq(X[i], C[m])
                        if d < best_d:
                            best, best_d = m, d
                dist[i] = best_d
                if best != own:
                    mass[own] -= w[i]
                    mass[best] += w[i]
                    for c in range(channels):
                        sums[own][c] -= w[i] * X[i][c]
                        sums[best][c] += w[i] * X[i][c]
                    labels[i] = best
                    changed.update((own, best))
            moved = sorted(changed)
            for m in moved:
                if mass[m] > 0:
                    C[m] = [sums[m][c] / mass[m] for c in range(channels)]
            if not moved:
                break
        trial = 0.0
        for i in range(n):
            dist[i] = sq(X[i], C[labels[i]])
            trial += w[i] * dist[i]
        if trial < error:
            error = trial
        else:
            C, labels, dist, sums, mass = saved
    return np.array(C), error


def _nearest_error(X, w, centers):
    return float(w @ get_engine("numpy").bind(X, w).assign(centers)[1])


@st.composite
def _swap_problems(draw):
    """Small colour sets with duplicates, zero weights, coincident centres and K > n."""
    n = draw(st.integers(1, 24))
    channels = draw(st.integers(1, 4))
    k = draw(st.integers(1, 7))
    trials = draw(st.integers(0, 12))
    grid = draw(st.sampled_from([1.0, 0.5, 37.0]))  # coarse grids make many exact ties
    values = st.integers(0, 3)
    X = np.array(draw(st.lists(st.lists(values, min_size=channels, max_size=channels),
                               min_size=n, max_size=n)), dtype=np.float64) * grid
    w = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), dtype=np.float64)
    offset = draw(st.sampled_from([0.0, 0.25]))
    centers = np.array(draw(st.lists(st.lists(values, min_size=channels, max_size=channels),
                                     min_size=k, max_size=k)), dtype=np.float64) * grid + offset
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    return X, w, centers, rng.random(trials), rng.integers(k, size=trials, dtype=np.int64)


@settings(max_examples=100, deadline=None)
@given(_swap_problems())
def test_random_swap_kernel_matches_the_reference_bit_for_bit(problem):
    X, w, centers, uniforms, picks = problem
    expected, tracked = _reference_random_swap(X, w, centers, uniforms, picks)
    got = centers.copy()
    error = _random_swap.random_swap(X, w, got, uniforms, picks)
    assert np.array_equal(got, expected)
    # the kernel returns the error of nearest assignment: at most the one the search tracked
    assert error == pytest.approx(_nearest_error(X, w, got), rel=1e-12, abs=1e-12)
    assert error <= tracked * (1 + 1e-12) + 1e-12


def test_random_swap_never_raises_the_error_and_reports_the_true_one(crop_pixels):
    prepared = prepare(crop_pixels)
    X, w = prepared.X, prepared.counts
    start = refine(get_engine("numpy").bind(X, w), seed_centers("k-means++", X, w, 12, 0), tol=0.0)
    before = start.centers.copy()
    centers, error = random_swap(X, w, start.centers, trials=300, seed=0)
    assert np.array_equal(start.centers, before)  # the caller's centres are not touched
    assert centers.shape == (12, 3) and centers is not start.centers
    start_error = _nearest_error(X, w, start.centers)
    assert error <= start_error * (1 + 1e-12)
    assert error < start_error * 0.999  # 300 swaps from a Lloyd optimum find a better one here
    assert error == pytest.approx(_nearest_error(X, w, centers), rel=1e-12)


def test_random_swap_is_deterministic_for_a_seed_and_draws_as_documented(crop_pixels):
    prepared = prepare(crop_pixels)
    X, w = prepared.X[:800], prepared.counts[:800]  # real colours, few enough for the reference
    start = X[:: X.shape[0] // 8][:8]
    first = random_swap(X, w, start, trials=40, seed=7)
    again = random_swap(X, w, start, trials=40, seed=7)
    assert np.array_equal(first[0], again[0]) and first[1] == again[1]
    rng = np.random.default_rng(7)  # trials uniforms, then trials centre indices
    uniforms, picks = rng.random(40), rng.integers(8, size=40, dtype=np.int64)
    expected, _ = _reference_random_swap(X, w, start, uniforms, picks)
    assert np.array_equal(first[0], expected)
    centers, error = random_swap(X, w, start, trials=0, seed=0)  # no trials: the start itself
    assert np.array_equal(centers, start)
    assert error == pytest.approx(_nearest_error(X, w, start), rel=1e-12)


def _kernel_args(**change):
    args = dict(X=np.zeros((5, 3)), w=np.ones(5), centers=np.zeros((2, 3)),
                uniforms=np.full(4, 0.5), picks=np.zeros(4, dtype=np.int64))
    args.update(change)
    return args


@pytest.mark.parametrize("change", [
    dict(w=np.ones(4)),  # one weight short
    dict(centers=np.zeros((2, 4))),  # channels differ
    dict(centers=np.zeros((0, 3))),  # no centres
    dict(X=np.zeros((0, 3)), w=np.ones(0)),  # no colours
    dict(X=np.zeros((5, 0)), centers=np.zeros((2, 0))),  # no channels
    dict(picks=np.zeros(3, dtype=np.int64)),  # a pick short
    dict(picks=np.array([0, 1, 2, 0], dtype=np.int64)),  # a pick past K
    dict(picks=np.array([0, -1, 0, 0], dtype=np.int64)),
    dict(uniforms=np.array([0.5, 1.0, 0.5, 0.5])),  # a uniform outside [0, 1)
    dict(w=np.array([1.0, -1.0, 1.0, 1.0, 1.0])),  # a negative weight
    dict(X=np.full((5, 3), np.nan)),
    dict(centers=np.array([[0.0, 0.0, np.inf], [0.0, 0.0, 0.0]])),
    dict(X=np.zeros(15)),  # wrong number of dimensions
    dict(X=np.zeros((5, 6))[:, ::2]),  # not contiguous
    dict(w=np.ones(5, dtype=np.float32)),  # wrong dtype
])
def test_random_swap_kernel_rejects_wrong_arrays(change):
    args = _kernel_args(**change)
    with pytest.raises(ValueError):
        _random_swap.random_swap(args["X"], args["w"], args["centers"], args["uniforms"], args["picks"])


def test_random_swap_kernel_accepts_the_edges():
    args = _kernel_args()
    assert _random_swap.random_swap(*args.values()) == 0.0  # every colour on a centre
    one = _kernel_args(X=np.array([[1.0, 2.0, 3.0]]), w=np.ones(1))
    assert _random_swap.random_swap(*one.values()) == 0.0  # one colour: it becomes a centre


def test_random_swap_rejects_wrong_shapes_and_trials():
    X, w = np.zeros((5, 3)), np.ones(5)
    with pytest.raises(ValueError):
        random_swap(X, w, np.zeros(3), trials=1, seed=0)
    with pytest.raises(ValueError):
        random_swap(X, w, np.zeros((2, 3)), trials=-1, seed=0)
    with pytest.raises(ValueError):
        random_swap(X, np.ones(4), np.zeros((2, 3)), trials=1, seed=0)


# --------------------------------------------------------------------------------------------
# more search never gives a worse picture


def _written_sse(pixels, result):
    """Squared error of the picture as written (the indexed PNG's pixels), summed."""
    return int(((pixels.astype(np.int64) - result.to_array()) ** 2).sum())


@pytest.mark.parametrize("name, k", [
    ("kodim03_crop.png", 32),  # 10 swaps were worse than 5 before swaps were judged as written
    ("kodim05_crop.png", 8),  # 20 worse than 10
    ("kodim05_crop.png", 64),
])
def test_more_swaps_never_give_a_worse_picture(name, k):
    pixels = kmquant.load_image(Path(__file__).parent / "data" / name).pixels
    # the swaps are judged on the palette's nearest-entry error, so that is what is compared
    errors = [_written_sse(pixels, kmquant.quantize(pixels, k, swaps=n, rdo=0))
              for n in range(0, 31, 2)]
    assert all(later <= earlier for earlier, later in zip(errors, errors[1:])), errors
    assert errors[-1] < errors[0]  # and the search does find something here


def test_swap_search_result_is_a_prefix_minimum(crop_pixels):
    """The first N rounds of a longer search are the N-round search: with a score, the result of
    more rounds never scores higher, and without settle or score it is the old greedy search."""
    prepared = prepare(crop_pixels)
    session = get_engine("native").bind(prepared.X, prepared.counts)
    fitted = refine(session, seed_centers("k-means++", prepared.X, prepared.counts, 16, 0))
    calls = []

    def settle(trial):
        calls.append(trial.inertia)
        return refine(session, trial.centers)

    def score(result):  # a score that is not the inertia: the search must compare by it
        return float(np.round(result.centers).sum() % 997) + result.inertia * 1e-9

    scores = []
    for rounds in (0, 3, 6, 12, 24):
        best, kept = swap_search(session, fitted, rounds=rounds, settle=settle, score=score)
        scores.append(score(best))
        if rounds == 0:
            assert best is fitted and kept == 0 and not calls
    assert calls  # swaps were kept and settled
    assert all(b <= a for a, b in zip(scores, scores[1:])), scores
