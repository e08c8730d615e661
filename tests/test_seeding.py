import numpy as np
import pytest

from kmquant.histogram import color_histogram
from kmquant.seeding import COARSEN_ABOVE, coarsen, kmeans_plusplus, seed_centers


@pytest.fixture(scope="module")
def weighted(sample_pixels):
    h = color_histogram(sample_pixels)
    return h.colors.astype(np.float64), h.counts.astype(np.float64)


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


def test_same_seed_same_centres_and_other_seed_differs(weighted):
    X, w = weighted
    a = seed_centers("k-means++", X, w, 16, seed=1)
    b = seed_centers("k-means++", X, w, 16, seed=1)
    c = seed_centers("k-means++", X, w, 16, seed=2)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_coarsen_keeps_weight_and_mean(weighted):
    X, w = weighted
    assert X.shape[0] > COARSEN_ABOVE
    Y, W = coarsen(X, w)
    assert Y.shape[0] < X.shape[0] / 4
    assert W.sum() == pytest.approx(w.sum())
    np.testing.assert_allclose(W @ Y / W.sum(), w @ X / w.sum())  # same centre of mass


def test_seeding_spreads_over_the_colours(weighted):
    """k-means++ beats a uniform random draw of colours on the k-means potential."""
    X, w = weighted

    def potential(centers):
        d = ((X[:, None, :] - centers[None]) ** 2).sum(axis=2).min(axis=1)
        return w @ d

    seeded = seed_centers("k-means++", X, w, 16, seed=0)
    random = X[np.random.default_rng(0).choice(len(X), 16, replace=False)]
    assert potential(seeded) < potential(random)


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


def _potential(X, w, centers):
    return float(w @ ((X[:, None, :] - centers[None]) ** 2).sum(axis=2).min(axis=1))


def test_fast_plusplus_seeds_as_well_as_the_plain_algorithm(crop_pixels):
    from kmquant.seeding import _kmeans_plusplus

    h = color_histogram(crop_pixels)
    X, w = h.colors.astype(np.float64), h.counts.astype(np.float64)
    trials, n_new = 4, 40
    ratios = []
    for seed in range(6):
        uniforms = np.random.default_rng(seed).random(1 + n_new * trials)
        rows = _kmeans_plusplus(X, w, np.empty((0, 3)), n_new, trials, uniforms)
        assert len(set(rows.tolist())) == n_new
        plain = _plain_greedy_plusplus(X, w, n_new, trials, uniforms)
        ratios.append(_potential(X, w, X[rows]) / _potential(X, w, X[plain]))
    assert 0.9 < np.mean(ratios) < 1.1  # the same algorithm; only the order of the draws differs


def test_taking_colours_keeps_the_lists_potentials_and_bounds_exact():
    from kmquant.seeding import _push, _take

    rng = np.random.default_rng(0)
    X = rng.uniform(0, 255, (300, 3))
    w = rng.integers(1, 5, 300).astype(np.float64)
    k_max = 6
    chosen = np.zeros((k_max, 3))
    chosen[:2] = X[[0, 1]]
    d = ((X[:, None, :] - chosen[None, :2]) ** 2).sum(axis=2)
    label, closest = d.argmin(axis=1), d.min(axis=1)
    head = np.full(k_max, -1)
    after, before = np.full(300, -1), np.full(300, -1)
    potential, reach2 = np.zeros(k_max), np.zeros(k_max)
    for i in range(299, -1, -1):
        _push(i, label[i], head, after, before)
        potential[label[i]] += w[i] * closest[i]
        reach2[label[i]] = max(reach2[label[i]], closest[i])
    before_total = potential.sum()
    gain = _take(X, w, closest, label, head, after, before, potential, reach2, chosen,
                 np.empty(k_max), 2, 7, False)
    assert potential.sum() == before_total  # only a look
    chosen[2] = X[7]
    taken = _take(X, w, closest, label, head, after, before, potential, reach2, chosen,
                  np.empty(k_max), 2, 7, True)
    assert taken == pytest.approx(gain)
    d = ((X[:, None, :] - chosen[None, :3]) ** 2).sum(axis=2)
    np.testing.assert_allclose(closest, d.min(axis=1))
    for j in range(3):  # each list holds exactly the colours labelled j, and its sums
        members, i = [], head[j]
        while i >= 0:
            members.append(i)
            i = after[i]
        assert sorted(members) == np.flatnonzero(label == j).tolist()
        assert potential[j] == pytest.approx(w[members] @ closest[members])
        assert reach2[j] >= closest[members].max() - 1e-9
    assert before_total - potential[:3].sum() == pytest.approx(taken)


def test_too_few_pooled_cells_for_k_seed_from_a_finer_grid(weighted):
    from kmquant.seeding import CELLS_PER_CENTER, seeding_colours

    X, w = weighted
    coarse, _ = coarsen(X, w, 32)
    k_small = coarse.shape[0] // CELLS_PER_CENTER  # enough cells: the 32³ pooling is used
    Y, W = seeding_colours(X, w, k_small)
    assert Y.shape[0] == coarse.shape[0] and W.sum() == pytest.approx(w.sum())
    k_large = k_small + 1  # too few: a finer grid, or every colour
    Y, W = seeding_colours(X, w, k_large)
    assert Y.shape[0] > coarse.shape[0] and W.sum() == pytest.approx(w.sum())
