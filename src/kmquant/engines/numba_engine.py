"""The fast CPU engine: the reference Lloyd step compiled with numba, with Yinyang bounds.

Lloyd's step is exact, but most of its work is wasted once the centres settle: few colours change
cluster. Yinyang k-means (Ding et al., ICML 2015) skips it and still returns the exact nearest
centre. The centres are split into groups of about ten; each colour keeps one lower bound per
group on its distance to that group's centres (other than its own). Each step, a bound shrinks by
the largest move of a centre in its group; a group whose bound exceeds the colour's exact distance
to its own centre cannot hold a closer one and is not searched, and when its own centre is nearer
than half the gap to the next centre, nothing is searched at all. The bounds carry over between
calls on the same ``X`` object, so any ``centers`` may be passed: re-seeded ones, or the rounded
final palette, whose remap then costs little.

Rows are cut into a fixed number of contiguous blocks (independent of the thread count), each with
its own partial sums; the partials are added in block order, so results are identical on every run
and every machine whatever the number of cores. Threads take the blocks in bit-reversed order, so
each thread's share is spread over the whole (sorted) colour range and the work stays even. The
blocks run on all cores when a step holds at least :data:`PARALLEL_WORK` distance computations
(rows × K); below that, one thread is faster (measured on 2 cores: for a few milliseconds of work,
OpenMP threads that spin between steps slow the main thread more than they help).

A global bound per colour (the smallest of its group bounds, shrunk by the largest move of any
centre) skips the per-group checks for most colours. Memory: one float64 bound per colour and
group, at most :data:`MAX_GROUPS` groups.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange
from numpy.typing import NDArray

__all__ = ["NumbaEngine", "PARALLEL_WORK", "MAX_GROUPS"]

_N_BLOCKS = 64
#: Rows × K from which the kernels run in parallel.
PARALLEL_WORK = 1 << 23
#: Upper bound on the number of centre groups (bounds stored per colour).
MAX_GROUPS = 32
_SLACK = 1e-9  # bounds are shrunk by this relative amount against rounding
_BIT_REVERSED = np.array([int(f"{q:06b}"[::-1], 2) for q in range(_N_BLOCKS)], dtype=np.int64)


@numba.njit(cache=True, nogil=True, inline="always")
def _distances(X, i, centers_t, dist, lo, hi):  # pragma: no cover - compiled
    """Squared distances of row i of X to centres lo…hi-1 of ``centers_t`` (C, K), into dist."""
    if X.shape[1] == 3:  # RGB: one fused pass (same sums, in the same order)
        x0, x1, x2 = X[i, 0], X[i, 1], X[i, 2]
        for p in range(lo, hi):
            t0 = x0 - centers_t[0, p]
            t1 = x1 - centers_t[1, p]
            t2 = x2 - centers_t[2, p]
            dist[p] = t0 * t0 + t1 * t1 + t2 * t2
        return
    for p in range(lo, hi):
        dist[p] = 0.0
    for c in range(X.shape[1]):
        xc = X[i, c]
        for p in range(lo, hi):  # contiguous over p: vectorises
            t = xc - centers_t[c, p]
            dist[p] += t * t


@numba.njit(cache=True, nogil=True)
def _half_gaps(centers):  # pragma: no cover - compiled
    """Half the distance from each centre (K, C) to its nearest other centre, shrunk by the slack;
    (K,), inf when K = 1. A colour nearer its centre than this has no closer centre."""
    k, n_channels = centers.shape
    nearest = np.full(k, np.inf)
    for a in range(k):
        for b in range(a + 1, k):
            d = 0.0
            for c in range(n_channels):
                t = centers[a, c] - centers[b, c]
                d += t * t
            nearest[a] = min(nearest[a], d)
            nearest[b] = min(nearest[b], d)
    return 0.5 * np.sqrt(nearest) * (1.0 - _SLACK)


@numba.njit(cache=True, nogil=True, inline="always")
def _search_group(X, i, grouped_t, members, dist, lo, hi):  # pragma: no cover - compiled
    """Exact search of the centres lo…hi-1 of the grouped order for row i: (smallest squared
    distance, its centre, second smallest); ties go to the lower centre index.

    Three short passes without data-dependent branches (the minimum, its first position, the
    minimum of the rest) instead of one pass whose comparisons the processor cannot predict.
    Within a group the centres are in increasing index order, so the first position holding the
    minimum is the lowest index.
    """
    _distances(X, i, grouped_t, dist, lo, hi)
    m1 = np.inf
    for p in range(lo, hi):
        m1 = min(m1, dist[p])
    first = hi - 1
    for p in range(hi - 1, lo - 1, -1):
        first = p if dist[p] == m1 else first
    m2 = np.inf
    for p in range(lo, hi):
        m2 = min(m2, dist[p] if p != first else np.inf)
    return m1, members[first], m2


@numba.njit(cache=True, nogil=True, inline="always")
def _search_fresh(X, i, grouped_t, members, starts, dist, g_min1, g_arg1, g_min2, searched,
                  g_mean_t, g_radius, lower, drift):  # pragma: no cover - compiled
    """Nearest centre of row i with no bounds yet, and fresh group bounds in lower[i].

    Each group of centres lies in a ball (centre ``g_mean_t[:, g]``, radius ``g_radius[g]``), so
    no centre of group g is nearer than ``|x - g_mean[g]| - g_radius[g]``. The group with the
    nearest ball centre is searched first; another group is searched only if its ball could hold a
    centre at most as far as the best so far; the others keep that distance as their bound.
    The per-group loops have no branches, so they vectorise (square roots included).
    Returns (nearest centre, its squared distance).
    """
    n_groups = starts.shape[0] - 1
    _distances(X, i, g_mean_t, g_min2, 0, n_groups)  # squared distances to the ball centres
    first, nearest = 0, np.inf
    for g in range(n_groups):
        if g_min2[g] < nearest:
            first, nearest = g, g_min2[g]
    for g in range(n_groups):  # conservative: rounding in either term only lowers the bound
        g_min1[g] = np.sqrt(g_min2[g]) * (1.0 - _SLACK) - g_radius[g] * (1.0 + _SLACK)
        searched[g] = False
    best, d_best, reach = -1, np.inf, np.inf
    for q in range(n_groups + 1):
        g = first if q == 0 else q - 1
        if q > 0 and (g == first or g_min1[g] > reach):
            continue
        m1, a1, m2 = _search_group(X, i, grouped_t, members, dist, starts[g], starts[g + 1])
        searched[g] = True
        g_min1[g], g_arg1[g], g_min2[g] = m1, a1, m2
        if m1 < d_best or (m1 == d_best and a1 < best):
            d_best, best = m1, a1
            reach = np.sqrt(d_best)
    for g in range(n_groups):
        if searched[g]:
            other = g_min2[g] if g_arg1[g] == best else g_min1[g]
            lower[i, g] = np.sqrt(other) * (1.0 - _SLACK) + drift[g]
        else:
            lower[i, g] = max(g_min1[g], 0.0) + drift[g]
    return best, d_best


@numba.njit(cache=True, nogil=True, inline="always")
def _smallest_bound(lower, drift, i):  # pragma: no cover - compiled
    """The smallest group bound of row i: min over g of lower[i, g] - drift[g]."""
    smallest = np.inf
    for g in range(drift.shape[0]):
        smallest = min(smallest, lower[i, g] - drift[g])
    return smallest


@numba.njit(cache=True, nogil=True)
def _step_block(X, w, centers, grouped_t, members, starts, group_of, labels, lower, drift,
                bound, drift_all, half_gap, fresh, g_mean_t, g_radius, sums, mass, inertia,
                sq_dist, b, n_blocks):  # pragma: no cover - compiled
    """Rows of block b of one bounded Lloyd step, into block b's partial sums.

    ``lower[i, g] - drift[g]`` bounds the distance of row i to the centres of group g other than
    its own; ``bound[i] - drift_all`` bounds the smallest of those over all groups.
    """
    n_channels = X.shape[1]
    n_groups = starts.shape[0] - 1
    dist = np.empty(grouped_t.shape[1])
    g_min1 = np.empty(n_groups)
    g_arg1 = np.empty(n_groups, dtype=np.int64)
    g_min2 = np.empty(n_groups)
    searched = np.zeros(n_groups, dtype=np.bool_)
    sums[b] = 0.0
    mass[b] = 0.0
    acc = 0.0
    size = (X.shape[0] + n_blocks - 1) // n_blocks
    for i in range(b * size, min(X.shape[0], (b + 1) * size)):
        own = labels[i]
        best = own
        d_best = np.inf
        upper = np.inf
        if not fresh:
            d_best = 0.0
            for c in range(n_channels):
                t = X[i, c] - centers[own, c]
                d_best += t * t
            upper = np.sqrt(d_best)
        if fresh:
            best, d_best = _search_fresh(X, i, grouped_t, members, starts, dist, g_min1, g_arg1,
                                         g_min2, searched, g_mean_t, g_radius, lower, drift)
            bound[i] = _smallest_bound(lower, drift, i) + drift_all
            labels[i] = best
        elif upper >= half_gap[own] and upper >= bound[i] - drift_all:
            n_searched = 0
            for g in range(n_groups):
                searched[g] = lower[i, g] - drift[g] <= upper
                if not searched[g]:
                    continue
                n_searched += 1
                m1, a1, m2 = _search_group(X, i, grouped_t, members, dist, starts[g],
                                           starts[g + 1])
                g_min1[g], g_arg1[g], g_min2[g] = m1, a1, m2
                if m1 < d_best or (m1 == d_best and a1 < best):
                    d_best, best = m1, a1
            if n_searched:
                for g in range(n_groups):
                    if searched[g]:
                        other = g_min2[g] if g_arg1[g] == best else g_min1[g]
                        lower[i, g] = np.sqrt(other) * (1.0 - _SLACK) + drift[g]
                g = group_of[own]
                if best != own and not searched[g]:  # the old centre: now an "other"
                    lower[i, g] = min(lower[i, g], upper * (1.0 - _SLACK) + drift[g])
                labels[i] = best
            # even when no group needed a search, the group bounds give a tighter global bound
            # than the one that just failed: without it the row is checked group by group again
            # at every step
            bound[i] = _smallest_bound(lower, drift, i) + drift_all
        sq_dist[i] = d_best
        wi = w[i]
        acc += wi * d_best
        mass[b, best] += wi
        for c in range(n_channels):
            sums[b, best, c] += wi * X[i, c]
    inertia[b] = acc


@numba.njit(cache=True, nogil=True)
def _step_serial(X, w, centers, grouped_t, members, starts, group_of, labels, lower, drift,
                 bound, drift_all, half_gap, fresh, g_mean_t, g_radius, sums, mass, inertia,
                 sq_dist, n_blocks):  # pragma: no cover - compiled
    for b in range(n_blocks):
        _step_block(X, w, centers, grouped_t, members, starts, group_of, labels, lower, drift,
                    bound, drift_all, half_gap, fresh, g_mean_t, g_radius, sums, mass, inertia,
                    sq_dist, b, n_blocks)


@numba.njit(parallel=True, cache=True, nogil=True)
def _step_parallel(X, w, centers, grouped_t, members, starts, group_of, labels, lower, drift,
                   bound, drift_all, half_gap, fresh, g_mean_t, g_radius, sums, mass, inertia,
                   sq_dist, n_blocks):  # pragma: no cover - compiled
    for q in prange(n_blocks):
        _step_block(X, w, centers, grouped_t, members, starts, group_of, labels, lower, drift,
                    bound, drift_all, half_gap, fresh, g_mean_t, g_radius, sums, mass, inertia,
                    sq_dist, _BIT_REVERSED[q], n_blocks)


def group_centers(centers: NDArray[np.float64], n_groups: int) -> NDArray[np.intp]:
    """Split centres into nearby groups: five Lloyd steps on the centres themselves.

    Parameters
    ----------
    centers : (K, C) float64 ndarray
    n_groups : int
        At most K.

    Returns
    -------
    (K,) intp ndarray
        Group of each centre, numbered 0… without gaps.
    """
    group = _group_lloyd(np.ascontiguousarray(centers, dtype=np.float64), n_groups)
    return np.unique(group, return_inverse=True)[1].reshape(-1)


@numba.njit(cache=True, nogil=True)
def _group_lloyd(centers, n_groups):  # pragma: no cover - compiled
    """Five Lloyd steps on the centres (K, C) from the first ``n_groups`` of them (k-means++
    order: spread out); a group left empty keeps its mean. Returns each centre's group (K,)."""
    k, n_channels = centers.shape
    means = centers[:n_groups].copy()
    group = np.zeros(k, dtype=np.int64)
    for _ in range(5):
        for a in range(k):
            best, best_d = 0, np.inf
            for g in range(n_groups):
                d = 0.0
                for c in range(n_channels):
                    t = centers[a, c] - means[g, c]
                    d += t * t
                if d < best_d:
                    best, best_d = g, d
            group[a] = best
        _group_means(centers, group, means)
    return group


@numba.njit(cache=True, nogil=True)
def _group_means(centers, group, means):  # pragma: no cover - compiled
    """Mean of each group's centres into means (G, C); an empty group keeps its row."""
    k, n_channels = centers.shape
    sums = np.zeros(means.shape)
    count = np.zeros(means.shape[0])
    for a in range(k):
        count[group[a]] += 1.0
        for c in range(n_channels):
            sums[group[a], c] += centers[a, c]
    for g in range(means.shape[0]):
        if count[g] > 0:
            for c in range(n_channels):
                means[g, c] = sums[g, c] / count[g]


@numba.njit(cache=True, nogil=True)
def _group_balls(centers, group_of, n_groups):  # pragma: no cover - compiled
    """Mean (G, C) of each group's centres and the largest distance (G,) of one to it."""
    k, n_channels = centers.shape
    means = np.zeros((n_groups, n_channels))
    _group_means(centers, group_of, means)
    radius = np.zeros(n_groups)
    for a in range(k):
        d = 0.0
        for c in range(n_channels):
            t = centers[a, c] - means[group_of[a], c]
            d += t * t
        radius[group_of[a]] = max(radius[group_of[a]], np.sqrt(d))
    return means, radius


class NumbaEngine:
    """Lloyd iterations compiled with numba; see :mod:`kmquant.engines` for the contract."""

    name = "numba"

    def __init__(self) -> None:
        self._X: NDArray[np.float64] | None = None  # the data the bounds below belong to
        self._centers: NDArray[np.float64] | None = None  # centres the bounds were made for

    def assign(
        self, X: NDArray[np.float64], centers: NDArray[np.float64]
    ) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
        """Nearest centre of every row; shapes as in :meth:`NumpyEngine.assign`.

        On the ``X`` of the previous calls the bounds make this cheap.
        """
        labels, _, _, sq_dist = self._run(X, np.ones(X.shape[0]), centers)
        return labels, sq_dist

    def step(
        self, X: NDArray[np.float64], w: NDArray[np.float64], centers: NDArray[np.float64]
    ) -> tuple[NDArray[np.intp], NDArray[np.float64], float]:
        """One Lloyd iteration; shapes as in :meth:`NumpyEngine.step`.

        Consecutive calls with the same ``X`` object reuse the bounds; the result is the same as
        without them.
        """
        labels, new_centers, inertia, _ = self._run(X, w, centers)
        return labels, new_centers, inertia

    def _run(self, X, w, centers):
        n = X.shape[0]
        k, n_channels = centers.shape
        centers = np.ascontiguousarray(centers, dtype=np.float64)
        fresh = not (self._X is X and self._centers is not None
                     and self._centers.shape == centers.shape)
        if fresh:
            self._start(X, centers)
        else:  # every bound of group g shrinks by the largest move of a centre in g
            moved = np.sqrt(((centers - self._centers) ** 2).sum(axis=1))
            group_moves = np.zeros(self._drift.shape[0])
            np.maximum.at(group_moves, self._group_of, moved)
            self._drift += group_moves
            self._drift_all += float(group_moves.max())
        half_gap = _half_gaps(centers)
        sums = np.empty((_N_BLOCKS, k, n_channels))
        mass = np.empty((_N_BLOCKS, k))
        inertia = np.empty(_N_BLOCKS)
        sq_dist = np.empty(n)
        kernel = _step_parallel if n * k >= PARALLEL_WORK else _step_serial
        kernel(
            np.ascontiguousarray(X), np.ascontiguousarray(w, dtype=np.float64), centers,
            np.ascontiguousarray(centers[self._members].T), self._members, self._starts,
            self._group_of, self._labels, self._lower, self._drift, self._bound, self._drift_all,
            half_gap, fresh, self._g_mean_t, self._g_radius,
            sums, mass, inertia, sq_dist, _N_BLOCKS,
        )
        self._centers = centers.copy()
        total_mass = mass.sum(axis=0)
        new_centers = centers.copy()
        filled = total_mass > 0
        new_centers[filled] = sums.sum(axis=0)[filled] / total_mass[filled, None]
        return self._labels.copy(), new_centers, float(inertia.sum()), sq_dist

    def _start(self, X: NDArray[np.float64], centers: NDArray[np.float64]) -> None:
        """New bounds for ``X``: group the centres; the first step then searches everything."""
        k = centers.shape[0]
        self._X = X
        self._group_of = group_centers(centers, min(MAX_GROUPS, max(1, round(k / 10))))
        n_groups = int(self._group_of.max()) + 1
        self._members = np.argsort(self._group_of, kind="stable")
        self._starts = np.searchsorted(self._group_of[self._members], np.arange(n_groups + 1))
        self._labels = np.zeros(X.shape[0], dtype=np.intp)
        self._lower = np.zeros((X.shape[0], n_groups), dtype=np.float64)
        self._drift = np.zeros(n_groups, dtype=np.float64)
        self._bound = np.zeros(X.shape[0], dtype=np.float64)
        self._drift_all = 0.0
        # each group's ball: the mean of its centres and the farthest centre's distance to it
        g_mean, self._g_radius = _group_balls(centers, self._group_of, n_groups)
        self._g_mean_t = np.ascontiguousarray(g_mean.T)
