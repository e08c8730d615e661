"""The fast CPU engine: the reference Lloyd step compiled with numba, with Hamerly's bounds.

Lloyd's step is exact, but most of its work is wasted once the centres settle: few colours change
cluster. Hamerly's algorithm (2010) keeps, per colour, an upper bound on the distance to its own
centre and a lower bound on the distance to any other; when the upper bound is below both the lower
bound and half the distance from its centre to the nearest other centre, no other centre can be
closer and the K-way search is skipped. The bounds carry over between calls on the same ``X``
object and shrink by how far each centre moved, so any ``centers`` may be passed (re-seeded ones,
or the rounded final palette): the answer is always the exact nearest centre, as in the reference.

Rows are dealt into a fixed number of blocks (row i to block i mod B, independent of the thread
count, so every block holds a spread of colours and threads get even work), each with its own
partial sums; the partials are added in block order, so results are identical on every run and
every machine whatever the number of cores. The blocks run on all cores when a step holds at least
:data:`PARALLEL_WORK` distance computations (rows × K); below that, one thread is faster
(measured on 2 cores: for a few milliseconds of work, OpenMP threads that spin between steps slow
the main thread more than they help).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange
from numpy.typing import NDArray

__all__ = ["NumbaEngine"]

_N_BLOCKS = 64
#: Rows × K from which the kernels run in parallel.
PARALLEL_WORK = 1 << 21
_SLACK = 1e-9  # bounds are shrunk by this relative amount against rounding


@numba.njit(cache=True, nogil=True)
def _scan(x, centers_t, dist):  # pragma: no cover - compiled
    """Nearest centre of ``x``: (index, squared distance, second-nearest squared distance)."""
    n_channels, k = centers_t.shape
    for j in range(k):
        dist[j] = 0.0
    for c in range(n_channels):
        xc = x[c]
        for j in range(k):  # contiguous over j: vectorises
            d = xc - centers_t[c, j]
            dist[j] += d * d
    best = 0
    d1 = dist[0]
    d2 = np.inf
    for j in range(1, k):
        dj = dist[j]
        if dj < d1:
            d2 = d1
            d1 = dj
            best = j
        elif dj < d2:
            d2 = dj
    return best, d1, d2


@numba.njit(cache=True, nogil=True)
def _assign_block(X, centers_t, labels, sq_dist, b, n_blocks):  # pragma: no cover - compiled
    dist = np.empty(centers_t.shape[1])
    for i in range(b, X.shape[0], n_blocks):
        best, d1, _ = _scan(X[i], centers_t, dist)
        labels[i] = best
        sq_dist[i] = d1


@numba.njit(cache=True, nogil=True)
def _assign_serial(X, centers_t, labels, sq_dist, n_blocks):  # pragma: no cover - compiled
    for b in range(n_blocks):
        _assign_block(X, centers_t, labels, sq_dist, b, n_blocks)


@numba.njit(parallel=True, cache=True, nogil=True)
def _assign_parallel(X, centers_t, labels, sq_dist, n_blocks):  # pragma: no cover - compiled
    for b in prange(n_blocks):
        _assign_block(X, centers_t, labels, sq_dist, b, n_blocks)


@numba.njit(cache=True, nogil=True)
def _step_block(X, w, centers, centers_t, labels, lower, half_gap, fresh,
                sums, mass, inertia, sq_dist, b, n_blocks):  # pragma: no cover - compiled
    """Rows b, b + B, b + 2B… of one bounded Lloyd step, into block b's partial sums."""
    n_channels = X.shape[1]
    dist = np.empty(centers.shape[0])
    sums[b] = 0.0
    mass[b] = 0.0
    acc = 0.0
    for i in range(b, X.shape[0], n_blocks):
        best = labels[i]
        d_own = 0.0
        rescan = fresh
        if not fresh:
            for c in range(n_channels):
                t = X[i, c] - centers[best, c]
                d_own += t * t
            rescan = np.sqrt(d_own) >= max(lower[i], half_gap[best])
        if rescan:
            best, d_own, d2 = _scan(X[i], centers_t, dist)
            labels[i] = best
            lower[i] = np.sqrt(d2) * (1.0 - _SLACK)
        sq_dist[i] = d_own
        wi = w[i]
        acc += wi * d_own
        mass[b, best] += wi
        for c in range(n_channels):
            sums[b, best, c] += wi * X[i, c]
    inertia[b] = acc


@numba.njit(cache=True, nogil=True)
def _step_serial(X, w, centers, centers_t, labels, lower, half_gap, fresh,
                 sums, mass, inertia, sq_dist, n_blocks):  # pragma: no cover - compiled
    for b in range(n_blocks):
        _step_block(X, w, centers, centers_t, labels, lower, half_gap, fresh,
                    sums, mass, inertia, sq_dist, b, n_blocks)


@numba.njit(parallel=True, cache=True, nogil=True)
def _step_parallel(X, w, centers, centers_t, labels, lower, half_gap, fresh,
                   sums, mass, inertia, sq_dist, n_blocks):  # pragma: no cover - compiled
    for b in prange(n_blocks):
        _step_block(X, w, centers, centers_t, labels, lower, half_gap, fresh,
                    sums, mass, inertia, sq_dist, b, n_blocks)


@numba.njit(cache=True, nogil=True)
def _shrink_lower(labels, lower, top, top_index, second):  # pragma: no cover - compiled
    for i in range(labels.shape[0]):
        lower[i] -= second if labels[i] == top_index else top


class NumbaEngine:
    """Lloyd iterations compiled with numba; see :mod:`kmquant.engines` for the contract."""

    name = "numba"

    def __init__(self) -> None:
        self._X: NDArray[np.float64] | None = None  # the data the bounds below belong to
        self._labels: NDArray[np.intp] | None = None
        self._lower: NDArray[np.float64] | None = None
        self._centers: NDArray[np.float64] | None = None  # centres the bounds were made for

    def assign(
        self, X: NDArray[np.float64], centers: NDArray[np.float64]
    ) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
        """Nearest centre of every row; shapes as in :meth:`NumpyEngine.assign`.

        On the ``X`` of the previous calls the bounds make this cheap.
        """
        if self._fresh(X, centers):
            n = X.shape[0]
            labels = np.empty(n, dtype=np.intp)
            sq_dist = np.empty(n, dtype=np.float64)
            kernel = _assign_parallel if n * len(centers) >= PARALLEL_WORK else _assign_serial
            kernel(np.ascontiguousarray(X), np.ascontiguousarray(centers.T), labels, sq_dist,
                   _N_BLOCKS)
            return labels, sq_dist
        labels, _, _, sq_dist = self._run(X, np.ones(X.shape[0]), centers)
        return labels, sq_dist

    def step(
        self, X: NDArray[np.float64], w: NDArray[np.float64], centers: NDArray[np.float64]
    ) -> tuple[NDArray[np.intp], NDArray[np.float64], float]:
        """One Lloyd iteration; shapes as in :meth:`NumpyEngine.step`.

        Consecutive calls with the same ``X`` object reuse Hamerly's bounds; the result is the
        same as without them.
        """
        labels, new_centers, inertia, _ = self._run(X, w, centers)
        return labels, new_centers, inertia

    def _fresh(self, X: NDArray[np.float64], centers: NDArray[np.float64]) -> bool:
        return not (self._X is X and self._centers is not None
                    and self._centers.shape == centers.shape)

    def _run(self, X, w, centers):
        n = X.shape[0]
        k, n_channels = centers.shape
        centers = np.ascontiguousarray(centers, dtype=np.float64)
        fresh = self._fresh(X, centers)
        if fresh:
            self._X = X
            self._labels = np.zeros(n, dtype=np.intp)
            self._lower = np.zeros(n, dtype=np.float64)
        else:  # every centre moved by at most `moved`: the lower bounds shrink by as much
            moved = np.sqrt(((centers - self._centers) ** 2).sum(axis=1))
            order = np.argsort(moved)
            second = float(moved[order[-2]]) if k > 1 else 0.0
            _shrink_lower(self._labels, self._lower, float(moved[order[-1]]), int(order[-1]), second)
        if k > 1:
            gaps = np.sqrt(((centers[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2))
            np.fill_diagonal(gaps, np.inf)
            half_gap = 0.5 * gaps.min(axis=1) * (1.0 - _SLACK)
        else:
            half_gap = np.full(1, np.inf)
        sums = np.empty((_N_BLOCKS, k, n_channels))
        mass = np.empty((_N_BLOCKS, k))
        inertia = np.empty(_N_BLOCKS)
        sq_dist = np.empty(n)
        kernel = _step_parallel if n * k >= PARALLEL_WORK else _step_serial
        kernel(
            np.ascontiguousarray(X), np.ascontiguousarray(w, dtype=np.float64), centers,
            np.ascontiguousarray(centers.T), self._labels, self._lower, half_gap, fresh,
            sums, mass, inertia, sq_dist, _N_BLOCKS,
        )
        self._centers = centers.copy()
        total_mass = mass.sum(axis=0)
        new_centers = centers.copy()
        filled = total_mass > 0
        new_centers[filled] = sums.sum(axis=0)[filled] / total_mass[filled, None]
        return self._labels.copy(), new_centers, float(inertia.sum()), sq_dist
