"""Seeding: greedy weighted k-means++ (the compiled kernel against NumPy references), pooling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmquant._core import _seeding
from kmquant.histogram import color_histogram
from kmquant.seeding import (
    CELLS_PER_CENTER,
    COARSEN_ABOVE,
    _kmeans_plusplus,
    coarsen,
    extend_centers,
    kmeans_plusplus,
    seed_centers,
    seeding_colours,
)


@pytest.fixture(scope="module")
def weighted(sample_pixels):
    h = color_histogram(sample_pixels)
    return h.colors.astype(np.float64), h.counts.astype(np.float64)


@pytest.fixture(scope="module")
def crop_weighted(crop_pixels):
    h = color_histogram(crop_pixels)
    return h.colors.astype(np.float64), h.counts.astype(np.float64)


# --------------------------------------------------------------------------------------------
# NumPy references


def _plain_greedy_plusplus(X, w, n_new, trials, uniforms):
    """The textbook greedy k-means++ over every colour, for comparison (NumPy, slow)."""
    cumulative = np.cumsum(w)
    rows = [min(int(np.searchsorted(cumulative, uniforms[0] * cumulative[-1], side="right")),
                len(X) - 1)]
    closest = ((X - X[rows[0]]) ** 2).sum(axis=1)
    for done in range(1, n_new):
        cumulative = np.cumsum(w * closest)
        best = None
        for t in range(trials):
            row = min(int(np.searchsorted(cumulative, uniforms[1 + (done - 1) * trials + t]
                                          * cumulative[-1], side="right")), len(X) - 1)
            candidate = np.minimum(closest, ((X - X[row]) ** 2).sum(axis=1))
            if best is None or w @ candidate < best[0]:
                best = (w @ candidate, row, candidate)
        rows.append(best[1])
        closest = best[2]
    return np.array(rows)


def _squared(A, x):
    """Squared distances of the rows of A (m, C) to x (C,), summed channel by channel."""
    t = A - x
    d = t[:, 0] * t[:, 0]
    for c in range(1, A.shape[1]):
        d = d + t[:, c] * t[:, c]
    return d


def _listwise_greedy_plusplus(X, w, centers, n_new, trials, uniforms):
    """Greedy k-means++ as the kernel walks it, in plain NumPy and to the last bit (slow).

    Each centre owns the list of the colours nearest to it: at first in row order; a new centre
    takes its colours from every list, in list order, and holds them in the reverse order. A draw
    by potential runs over the lists in centre order, a list's potential (kept by the same sums as
    the kernel's) at a time, then over its colours. No distance bounds, no skipped lists.
    """
    n = X.shape[0]
    chosen = [np.asarray(c, dtype=np.float64) for c in centers]
    rows = []
    if not chosen:
        cumulative = np.cumsum(w)
        rows.append(min(int(np.searchsorted(cumulative, uniforms[0] * cumulative[-1],
                                            side="right")), n - 1))
        chosen.append(X[rows[0]])
    D = np.stack([_squared(X, c) for c in chosen])
    closest, label = D.min(axis=0), D.argmin(axis=0)
    lists = [np.flatnonzero(label == j) for j in range(len(chosen))]
    potential = [0.0] * len(chosen)
    for i in range(n - 1, -1, -1):
        potential[label[i]] += w[i] * closest[i]

    def draw(value):
        fallback = -1
        for j, members in enumerate(lists):
            if potential[j] <= 0.0:
                continue
            if value >= potential[j]:
                value -= potential[j]
                continue
            share = w[members] * closest[members]
            members, share = members[share > 0.0], share[share > 0.0]
            if members.size:
                left = np.subtract.accumulate(np.concatenate([[value], share]))
                passed = np.flatnonzero(left[:-1] < share)
                if passed.size:
                    return int(members[passed[0]])
                fallback, value = int(members[-1]), left[-1]
        if fallback < 0:
            for members in reversed(lists):
                share = w[members] * closest[members]
                if (share > 0.0).any():
                    return int(members[np.argmax(share > 0.0)])
        return fallback

    def take(row, apply):
        order = np.concatenate(lists)
        d = _squared(X[order], X[row])
        taken = d < closest[order]
        gain = np.cumsum(w[order][taken] * (closest[order][taken] - d[taken]))
        if apply:
            moved = order[taken]
            new_potential = 0.0
            for i, di in zip(moved, d[taken]):
                potential[label[i]] -= w[i] * closest[i]
                new_potential += w[i] * di
            for j in range(len(lists)):
                lists[j] = lists[j][~np.isin(lists[j], moved)]
                if not lists[j].size:
                    potential[j] = 0.0
            closest[moved], label[moved] = d[taken], len(lists)
            lists.append(moved[::-1])
            potential.append(new_potential)
        return gain[-1] if gain.size else 0.0

    shift = 1 if len(centers) else 0
    while len(rows) < n_new:
        total = 0.0
        for p in potential:
            total += p
        if total <= 0.0:
            break
        best_gain, best_row = -1.0, -1
        for t in range(trials):
            row = draw(uniforms[1 + (len(rows) - 1 + shift) * trials + t] * total)
            if row < 0:
                break
            gain = take(row, False)
            if gain > best_gain:
                best_gain, best_row = gain, row
        if best_row < 0:
            break
        rows.append(best_row)
        take(best_row, True)
        chosen.append(X[best_row])
    return np.array(rows, dtype=np.int64)


def _coarsen_reference(X, w, cells):
    """The pooling as first written, whole-array NumPy."""
    lo, hi = X.min(axis=0), X.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    grid = np.minimum((X - lo) / span * cells, cells - 1).astype(np.int64)
    key = np.zeros(X.shape[0], dtype=np.int64)
    for c in range(X.shape[1]):
        key = key * cells + grid[:, c]
    W = np.bincount(key, weights=w)
    filled = np.flatnonzero(W)
    Y = np.stack([np.bincount(key, weights=w * X[:, c])[filled] for c in range(X.shape[1])], axis=1)
    return Y / W[filled, None], W[filled]


def _potential(X, w, centers):
    return float(w @ ((X[:, None, :] - centers[None]) ** 2).sum(axis=2).min(axis=1))


# --------------------------------------------------------------------------------------------
# k-means++


def test_kmeans_plusplus_picks_distinct_input_rows(weighted):
    X, w = weighted
    centers = kmeans_plusplus(X[:5000], w[:5000], 32, np.random.default_rng(3))
    assert centers.shape == (32, 3)
    assert len(np.unique(centers, axis=0)) == 32
    rows = {tuple(r) for r in X[:5000]}
    assert all(tuple(c) in rows for c in centers)


def test_zero_distance_points_are_never_chosen_twice():
    X = np.array([[0.0], [10.0], [20.0]])
    w = np.array([1000.0, 1.0, 1.0])
    centers = kmeans_plusplus(X, w, 3, np.random.default_rng(0))
    assert sorted(centers[:, 0].tolist()) == [0.0, 10.0, 20.0]


def test_more_centres_than_colours_gives_every_colour_once():
    X = np.array([[0.0, 0.0], [5.0, 1.0], [0.0, 0.0], [5.0, 1.0], [9.0, 9.0]])
    w = np.array([1.0, 2.0, 3.0, 0.5, 7.0])
    centers = kmeans_plusplus(X, w, 8, np.random.default_rng(0))
    assert sorted(map(tuple, centers)) == [(0.0, 0.0), (5.0, 1.0), (9.0, 9.0)]


def test_same_seed_same_centres_and_other_seed_differs(weighted):
    X, w = weighted
    a = seed_centers("k-means++", X, w, 16, seed=1)
    b = seed_centers("k-means++", X, w, 16, seed=1)
    c = seed_centers("k-means++", X, w, 16, seed=2)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_seeding_spreads_over_the_colours(weighted):
    """k-means++ beats a uniform random draw of colours on the k-means potential."""
    X, w = weighted

    def potential(centers):
        d = ((X[:, None, :] - centers[None]) ** 2).sum(axis=2).min(axis=1)
        return w @ d

    seeded = seed_centers("k-means++", X, w, 16, seed=0)
    random = X[np.random.default_rng(0).choice(len(X), 16, replace=False)]
    assert potential(seeded) < potential(random)


def test_fast_plusplus_seeds_as_well_as_the_plain_algorithm(crop_weighted):
    X, w = crop_weighted
    trials, n_new = 4, 40
    ratios = []
    for seed in range(6):
        uniforms = np.random.default_rng(seed).random(1 + n_new * trials)
        rows = _kmeans_plusplus(X, w, np.empty((0, 3)), n_new, trials, uniforms)
        assert len(set(rows.tolist())) == n_new
        plain = _plain_greedy_plusplus(X, w, n_new, trials, uniforms)
        ratios.append(_potential(X, w, X[rows]) / _potential(X, w, X[plain]))
    assert 0.9 < np.mean(ratios) < 1.1  # the same algorithm; only the order of the draws differs


@pytest.mark.parametrize("n_given", [0, 5])
def test_kernel_draws_exactly_as_the_listwise_reference_on_a_photo(crop_weighted, n_given):
    """The lists, their potentials and the distance bounds change nothing: the same rows, drawn
    from the same uniforms, as the plain list-by-list walk (also with given, off-colour centres)."""
    X, w = crop_weighted
    trials, n_new = 4, 40
    centers = X[:: max(1, len(X) // n_given)][:n_given] + 0.5 if n_given else np.empty((0, 3))
    for seed in range(3):
        uniforms = np.random.default_rng(seed).random(1 + n_new * trials)
        rows = _kmeans_plusplus(X, w, centers, n_new, trials, uniforms)
        expected = _listwise_greedy_plusplus(X, w, centers, n_new, trials, uniforms)
        assert rows.dtype == np.int64 and np.array_equal(rows, expected)


def test_public_functions_take_their_draws_from_the_generator_in_order(crop_weighted):
    X, w = crop_weighted
    K = 24
    trials = 2 + int(np.log(K))
    uniforms = np.random.default_rng(11).random(1 + K * trials)
    rows = _listwise_greedy_plusplus(X, w, np.empty((0, 3)), K, trials, uniforms)
    assert np.array_equal(kmeans_plusplus(X, w, K, np.random.default_rng(11)), X[rows])
    start = X[rows[:10]]
    uniforms = np.random.default_rng(5).random(1 + (K - 10) * trials)
    more = _listwise_greedy_plusplus(X, w, start, K - 10, trials, uniforms)
    extended = extend_centers(X, w, start, K, seed=5)
    assert np.array_equal(extended, np.concatenate([start, X[more]]))
    assert np.array_equal(extend_centers(X, w, start, 6, seed=5), start[:6])


# --------------------------------------------------------------------------------------------
# Properties, against the list-by-list reference


@st.composite
def seeding_problems(draw):
    """Integer colours with duplicates (few levels: often fewer distinct colours than K), weights,
    optional given centres, K up to 3 beyond the number of distinct colours."""
    n = draw(st.integers(1, 500))
    C = draw(st.integers(1, 4))
    levels = draw(st.sampled_from([1, 2, 4, 16, 256]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    X = rng.integers(0, levels, (n, C)).astype(np.float64)
    if draw(st.booleans()):
        w = rng.integers(1, 1000, n).astype(np.float64)
    else:
        w = rng.uniform(0.01, 50.0, n)
    given = rng.integers(0, levels, (draw(st.integers(0, 3)), C)).astype(np.float64)
    distinct = len(np.unique(X, axis=0))
    n_new = draw(st.integers(0 if len(given) else 1, min(distinct + 3, 80)))
    trials = draw(st.integers(1, 6))
    return X, w, given, n_new, trials, rng.random(1 + n_new * trials)


@settings(max_examples=60, deadline=None)
@given(seeding_problems())
def test_kernel_agrees_with_the_listwise_reference(problem):
    X, w, given, n_new, trials, uniforms = problem
    rows = _kmeans_plusplus(X, w, given, n_new, trials, uniforms)
    assert np.array_equal(rows, _listwise_greedy_plusplus(X, w, given, n_new, trials, uniforms))
    assert np.array_equal(rows, _kmeans_plusplus(X, w, given, n_new, trials, uniforms))


@settings(max_examples=60, deadline=None)
@given(seeding_problems())
def test_rows_are_distinct_new_colours_and_as_many_as_there_are(problem):
    X, w, given, n_new, trials, uniforms = problem
    w = np.rint(w) + 1.0  # whole weights: the potentials are exact, no rounding residue
    rows = _kmeans_plusplus(X, w, given, n_new, trials, uniforms)
    colours = {tuple(x) for x in X} - {tuple(c) for c in given}
    picked = [tuple(x) for x in X[rows]]
    assert len(set(rows.tolist())) == len(rows) and ((0 <= rows) & (rows < len(X))).all()
    assert len(set(picked)) == len(picked) and set(picked) <= colours
    assert len(rows) == min(n_new, len(colours))  # fewer only when every colour is a centre


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.integers(1, 4), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_public_kmeans_plusplus_is_deterministic_and_picks_input_rows(n, C, K, seed):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 8, (n, C)).astype(np.float64)
    w = rng.integers(1, 100, n).astype(np.float64)
    a = kmeans_plusplus(X, w, K, np.random.default_rng(seed))
    assert np.array_equal(a, kmeans_plusplus(X, w, K, np.random.default_rng(seed)))
    assert a.shape == (min(K, len(np.unique(X, axis=0))), C)
    assert {tuple(c) for c in a} <= {tuple(x) for x in X}


# --------------------------------------------------------------------------------------------
# The compiled entry point checks its arguments


def _arguments(n=6, C=3, K0=0, n_new=3, trials=2):
    rng = np.random.default_rng(0)
    return dict(X=rng.uniform(0, 9, (n, C)), w=np.ones(n), centers=np.zeros((K0, C)),
                n_new=n_new, trials=trials, uniforms=rng.random(1 + n_new * trials),
                rows=np.empty(n_new, dtype=np.int64))


def _call(**changes):
    arguments = _arguments()
    arguments.update(changes)
    return _seeding.greedy_plusplus(arguments["X"], arguments["w"], arguments["centers"],
                                    arguments["n_new"], arguments["trials"],
                                    arguments["uniforms"], arguments["rows"])


def test_entry_point_runs_with_good_arguments():
    rows = np.full(3, -7, dtype=np.int64)
    assert _call(rows=rows) == 3
    assert len(set(rows.tolist())) == 3 and rows.min() >= 0 and rows.max() < 6


@pytest.mark.parametrize("changes", [
    dict(X=np.zeros(6)),  # 1-D colours
    dict(X=np.zeros((6, 3, 1))),
    dict(w=np.ones(5)),  # a weight short
    dict(w=np.ones((6, 1))),
    dict(centers=np.zeros((2, 4))),  # other channels than the colours
    dict(centers=np.zeros(3)),
    dict(n_new=-1),
    dict(trials=0),
    dict(uniforms=np.zeros(6)),  # 1 + 3 × 2 needed
    dict(uniforms=np.zeros(0), n_new=0),
    dict(rows=np.empty(2, dtype=np.int64)),
    dict(X=np.zeros((6, 3), dtype=np.float32)),  # wrong dtypes
    dict(w=np.ones(6, dtype=np.int64)),
    dict(rows=np.empty(3, dtype=np.int32)),
    dict(X=np.zeros((6, 6))[:, ::2]),  # not contiguous
    dict(X=np.asfortranarray(np.zeros((6, 3)))),
    dict(w=np.ones(12)[::2]),
    dict(X=np.full((6, 3), np.nan)),  # not finite, negative weights
    dict(w=np.array([1.0, np.inf, 1, 1, 1, 1])),
    dict(w=np.array([1.0, -1.0, 1, 1, 1, 1])),
    dict(centers=np.array([[0.0, np.nan, 0.0]])),
    dict(rows=np.empty(3, dtype=np.int64)[::-1]),
])
def test_entry_point_rejects_bad_arguments_with_value_error(changes):
    with pytest.raises(ValueError):
        _call(**changes)


@pytest.mark.parametrize("name", ["X", "w", "centers", "uniforms", "rows"])
def test_entry_point_rejects_none(name):
    with pytest.raises(TypeError):
        _call(**{name: None})


def test_entry_point_read_only_rows_are_refused():
    rows = np.empty(3, dtype=np.int64)
    rows.flags.writeable = False
    with pytest.raises(ValueError):
        _call(rows=rows)


def test_nothing_to_choose_chooses_nothing():
    assert _call(n_new=0, uniforms=np.zeros(1), rows=np.empty(0, dtype=np.int64)) == 0
    assert _call(X=np.zeros((0, 3)), w=np.zeros(0)) == 0
    assert _call(X=np.zeros((0, 3)), w=np.zeros(0), centers=np.ones((2, 3))) == 0
    assert len(_kmeans_plusplus(np.zeros((4, 2)), np.ones(4), np.zeros((1, 2)), 3, 2,
                                np.zeros(7))) == 0  # every colour is the given centre
    assert kmeans_plusplus(np.ones((3, 2)), np.ones(3), 0, np.random.default_rng(0)).shape == (0, 2)


def test_zero_weights_draw_by_position_and_are_never_chosen_by_potential():
    X = np.arange(8.0)[:, None]
    w = np.zeros(8)
    rows = np.empty(1, np.int64)
    assert _call(X=X, w=w, centers=np.zeros((0, 1)), n_new=1, uniforms=np.zeros(3), rows=rows) == 1
    assert rows[0] == 7  # NumPy's searchsorted of 0 in all-zero sums, clipped to the last row
    w[[2, 5]] = 1.0
    rows = _kmeans_plusplus(X, w, np.empty((0, 1)), 5, 3, np.random.default_rng(0).random(16))
    assert sorted(rows.tolist()) == [2, 5]


# --------------------------------------------------------------------------------------------
# Pooling


def test_coarsen_keeps_weight_and_mean(weighted):
    X, w = weighted
    assert X.shape[0] > COARSEN_ABOVE
    Y, W = coarsen(X, w)
    assert Y.shape[0] < X.shape[0] / 4
    assert W.sum() == pytest.approx(w.sum())
    np.testing.assert_allclose(W @ Y / W.sum(), w @ X / w.sum())  # same centre of mass


@pytest.mark.parametrize("cells", [32, 64])
def test_coarsen_matches_the_whole_array_reference_exactly(weighted, cells):
    X, w = weighted
    for got, expected in zip(coarsen(X, w, cells), _coarsen_reference(X, w, cells)):
        assert np.array_equal(got, expected)
    rng = np.random.default_rng(cells)
    for C in (1, 2, 4):
        X = rng.normal(0, 40, (3000, C))
        X[:, -1] = 7.0 if C == 2 else X[:, -1]  # a flat channel: span 1
        w = rng.uniform(0.5, 9, 3000)
        for got, expected in zip(coarsen(X, w, cells), _coarsen_reference(X, w, cells)):
            assert np.array_equal(got, expected)


def test_too_few_pooled_cells_for_k_seed_from_a_finer_grid(weighted):
    X, w = weighted
    coarse, _ = coarsen(X, w, 32)
    k_small = coarse.shape[0] // CELLS_PER_CENTER  # enough cells: the 32³ pooling is used
    Y, W = seeding_colours(X, w, k_small)
    assert Y.shape[0] == coarse.shape[0] and W.sum() == pytest.approx(w.sum())
    k_large = k_small + 1  # too few: a finer grid, or every colour
    Y, W = seeding_colours(X, w, k_large)
    assert Y.shape[0] > coarse.shape[0] and W.sum() == pytest.approx(w.sum())
