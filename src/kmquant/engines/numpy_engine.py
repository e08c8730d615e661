"""The reference engine: textbook Lloyd k-means in NumPy, vectorised and chunked.

Readable first. Distances are computed exactly as sums of squared differences (not the
``|x|² - 2x·c + |c|²`` expansion, whose cancellation can pick the wrong centre), a block of rows at
a time so memory stays bounded by ``_BLOCK_ELEMENTS`` floats whatever the image size.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["NumpyEngine", "NumpySession", "assign", "step"]

_BLOCK_ELEMENTS = 1 << 21  # rows × K per block: 16 MB of float64 distances


class NumpyEngine:
    """Lloyd iterations with NumPy; see :mod:`kmquant.engines` for the contract."""

    name = "numpy"

    def bind(self, X: NDArray[np.float64], w: NDArray[np.float64]) -> NumpySession:
        """A session on ``X`` (n, C) and ``w`` (n,); it keeps nothing between calls."""
        return NumpySession(X, w)


class NumpySession:
    """The reference engine bound to ``X`` (n, C) and ``w`` (n,)."""

    def __init__(self, X: NDArray[np.float64], w: NDArray[np.float64]) -> None:
        self.X = X
        self.w = w

    def assign(
        self, centers: NDArray[np.float64]
    ) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
        """Nearest centre of every row; see :func:`assign`."""
        return assign(self.X, centers)

    def step(
        self, centers: NDArray[np.float64]
    ) -> tuple[NDArray[np.intp], NDArray[np.float64], float]:
        """One Lloyd iteration; see :func:`step`."""
        return step(self.X, self.w, centers)


def assign(
    X: NDArray[np.float64], centers: NDArray[np.float64]
) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Nearest centre of every row.

    Parameters
    ----------
    X : (n, C) float64 ndarray
    centers : (K, C) float64 ndarray

    Returns
    -------
    labels : (n,) intp ndarray
        Index of the nearest centre (the first one on ties).
    sq_dist : (n,) float64 ndarray
        Squared distance to it.
    """
    n, k = X.shape[0], centers.shape[0]
    labels = np.empty(n, dtype=np.intp)
    sq_dist = np.empty(n, dtype=np.float64)
    block = max(1, _BLOCK_ELEMENTS // k)
    for start in range(0, n, block):
        rows = X[start : start + block]
        dist = np.zeros((rows.shape[0], k), dtype=np.float64)
        for c in range(X.shape[1]):
            diff = rows[:, c, None] - centers[None, :, c]
            dist += diff * diff
        best = np.argmin(dist, axis=1)
        labels[start : start + block] = best
        sq_dist[start : start + block] = dist[np.arange(rows.shape[0]), best]
    return labels, sq_dist


def step(
    X: NDArray[np.float64], w: NDArray[np.float64], centers: NDArray[np.float64]
) -> tuple[NDArray[np.intp], NDArray[np.float64], float]:
    """One Lloyd iteration: assign, then move each centre to its weighted mean.

    Parameters
    ----------
    X : (n, C) float64 ndarray
    w : (n,) float64 ndarray
    centers : (K, C) float64 ndarray

    Returns
    -------
    labels : (n,) intp ndarray
    new_centers : (K, C) float64 ndarray
        Empty clusters keep their old centre.
    inertia : float
        Weighted sum of squared distances to the centres *before* the move.
    """
    labels, sq_dist = assign(X, centers)
    k = centers.shape[0]
    mass = np.bincount(labels, weights=w, minlength=k)
    new_centers = centers.copy()
    filled = mass > 0
    for c in range(X.shape[1]):
        sums = np.bincount(labels, weights=w * X[:, c], minlength=k)
        new_centers[filled, c] = sums[filled] / mass[filled]
    return labels, new_centers, float(w @ sq_dist)
