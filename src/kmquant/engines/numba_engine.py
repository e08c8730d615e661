"""The fast CPU engine: the same Lloyd step as the reference, compiled with numba.

Rows are split into a fixed number of blocks (independent of the thread count) that run in
parallel, each with its own partial sums; the partials are added in block order, so results are
identical on every run and every machine whatever the number of cores.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange
from numpy.typing import NDArray

__all__ = ["NumbaEngine"]

_N_BLOCKS = 64


@numba.njit(cache=True, nogil=True)
def _nearest(x, centers_t, dist):  # pragma: no cover - compiled
    n_channels, k = centers_t.shape
    for j in range(k):
        dist[j] = 0.0
    for c in range(n_channels):
        xc = x[c]
        for j in range(k):  # contiguous over j: vectorises
            d = xc - centers_t[c, j]
            dist[j] += d * d
    best = 0
    best_d = dist[0]
    for j in range(1, k):
        if dist[j] < best_d:
            best_d = dist[j]
            best = j
    return best, best_d


@numba.njit(parallel=True, cache=True, nogil=True)
def _assign(X, centers_t, labels, sq_dist, n_blocks):  # pragma: no cover - compiled
    n = X.shape[0]
    k = centers_t.shape[1]
    size = (n + n_blocks - 1) // n_blocks
    for b in prange(n_blocks):
        dist = np.empty(k)
        for i in range(b * size, min(n, (b + 1) * size)):
            best, best_d = _nearest(X[i], centers_t, dist)
            labels[i] = best
            sq_dist[i] = best_d


@numba.njit(parallel=True, cache=True, nogil=True)
def _step(X, w, centers_t, labels, sums, mass, inertia, n_blocks):  # pragma: no cover - compiled
    n, n_channels = X.shape
    k = centers_t.shape[1]
    size = (n + n_blocks - 1) // n_blocks
    for b in prange(n_blocks):
        dist = np.empty(k)
        sums[b] = 0.0
        mass[b] = 0.0
        acc = 0.0
        for i in range(b * size, min(n, (b + 1) * size)):
            best, best_d = _nearest(X[i], centers_t, dist)
            labels[i] = best
            wi = w[i]
            acc += wi * best_d
            mass[b, best] += wi
            for c in range(n_channels):
                sums[b, best, c] += wi * X[i, c]
        inertia[b] = acc


class NumbaEngine:
    """Lloyd iterations compiled with numba; see :mod:`kmquant.engines` for the contract."""

    name = "numba"

    def assign(
        self, X: NDArray[np.float64], centers: NDArray[np.float64]
    ) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
        """Nearest centre of every row; shapes as in :meth:`NumpyEngine.assign`."""
        n = X.shape[0]
        labels = np.empty(n, dtype=np.intp)
        sq_dist = np.empty(n, dtype=np.float64)
        _assign(np.ascontiguousarray(X), np.ascontiguousarray(centers.T), labels, sq_dist, _N_BLOCKS)
        return labels, sq_dist

    def step(
        self, X: NDArray[np.float64], w: NDArray[np.float64], centers: NDArray[np.float64]
    ) -> tuple[NDArray[np.intp], NDArray[np.float64], float]:
        """One Lloyd iteration; shapes as in :meth:`NumpyEngine.step`."""
        n = X.shape[0]
        k, n_channels = centers.shape
        labels = np.empty(n, dtype=np.intp)
        sums = np.empty((_N_BLOCKS, k, n_channels))
        mass = np.empty((_N_BLOCKS, k))
        inertia = np.empty(_N_BLOCKS)
        _step(
            np.ascontiguousarray(X),
            np.ascontiguousarray(w, dtype=np.float64),
            np.ascontiguousarray(centers.T),
            labels,
            sums,
            mass,
            inertia,
            _N_BLOCKS,
        )
        total_mass = mass.sum(axis=0)
        total_sums = sums.sum(axis=0)
        new_centers = centers.copy()
        filled = total_mass > 0
        new_centers[filled] = total_sums[filled] / total_mass[filled, None]
        return labels, new_centers, float(inertia.sum())
