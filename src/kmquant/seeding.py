"""Initial palettes: a name → function registry.

Every seeding function takes the weighted colours and returns K distinct starting centres.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from numpy.typing import NDArray

__all__ = ["kmeans_plusplus", "SEEDERS", "seed_centers"]


def kmeans_plusplus(
    X: NDArray[np.float64],
    w: NDArray[np.float64],
    n_clusters: int,
    rng: np.random.Generator,
    *,
    n_local_trials: int | None = None,
) -> NDArray[np.float64]:
    """Greedy weighted k-means++ (Arthur & Vassilvitskii 2007, as in scikit-learn).

    Each new centre is drawn with probability proportional to weight × squared distance to the
    nearest centre so far; of ``n_local_trials`` draws the one that lowers the potential most is
    kept.

    Parameters
    ----------
    X : (n, C) float64 ndarray
        Distinct colours in the working space.
    w : (n,) float64 ndarray
        Their weights (pixel counts), all > 0.
    n_clusters : int
        K, at most n.
    rng : numpy.random.Generator
    n_local_trials : int, optional
        Candidates per step; default ``2 + int(log(K))``.

    Returns
    -------
    (K, C) float64 ndarray
        Rows of ``X``, all distinct.
    """
    n = X.shape[0]
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(n_clusters))
    centers = np.empty((n_clusters, X.shape[1]), dtype=np.float64)
    first = rng.choice(n, p=w / w.sum())
    centers[0] = X[first]
    closest = _sq_dist(X, X[first][None, :])[:, 0]
    potential = float(w @ closest)
    for k in range(1, n_clusters):
        if potential <= 0.0:  # every colour is already a centre: cannot happen while k < n
            break
        cumulative = np.cumsum(w * closest)
        draws = rng.random(n_local_trials) * cumulative[-1]
        candidates = np.minimum(np.searchsorted(cumulative, draws, side="right"), n - 1)
        dist = np.minimum(closest[None, :], _sq_dist(X, X[candidates]).T)  # (trials, n)
        potentials = dist @ w
        best = int(np.argmin(potentials))
        centers[k] = X[candidates[best]]
        closest = dist[best]
        potential = float(potentials[best])
    return centers


def _sq_dist(X: NDArray[np.float64], Y: NDArray[np.float64]) -> NDArray[np.float64]:
    """Squared Euclidean distances, (n, C) × (m, C) → (n, m), exact (no expansion trick)."""
    out = np.zeros((X.shape[0], Y.shape[0]), dtype=np.float64)
    for c in range(X.shape[1]):
        diff = X[:, c, None] - Y[None, :, c]
        out += diff * diff
    return out


def coarsen(
    X: NDArray[np.float64], w: NDArray[np.float64], cells: int = 32
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Pool colours into a grid of ``cells`` per channel: weighted mean and total weight per cell.

    Seeding needs the shape of the colour distribution, not every colour: pooling 10⁵ colours
    into a few thousand cells makes k-means++ tens of times faster, and the refinement that follows
    runs on the full histogram.

    Parameters
    ----------
    X : (n, C) float64 ndarray
    w : (n,) float64 ndarray
    cells : int

    Returns
    -------
    Y : (m, C) float64 ndarray
        Weighted mean colour of each non-empty cell, m ≤ n.
    W : (m,) float64 ndarray
        Total weight of each cell.
    """
    lo, hi = X.min(axis=0), X.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    grid = np.minimum((X - lo) / span * cells, cells - 1).astype(np.int64)
    key = np.zeros(X.shape[0], dtype=np.int64)
    for c in range(X.shape[1]):
        key = key * cells + grid[:, c]
    _, inverse = np.unique(key, return_inverse=True)
    W = np.bincount(inverse, weights=w)
    Y = np.stack([np.bincount(inverse, weights=w * X[:, c]) for c in range(X.shape[1])], axis=1)
    return Y / W[:, None], W


SEEDERS: dict[str, Callable[..., NDArray[np.float64]]] = {"k-means++": kmeans_plusplus}

#: Above this many colours, seeding runs on the pooled colours of :func:`coarsen`.
COARSEN_ABOVE = 8192


def seed_centers(
    name: str, X: NDArray[np.float64], w: NDArray[np.float64], n_clusters: int, seed: int
) -> NDArray[np.float64]:
    """Run the seeding method ``name`` and return K distinct centres.

    Parameters
    ----------
    name : str
        Key of :data:`SEEDERS`.
    X : (n, C) float64 ndarray
    w : (n,) float64 ndarray
    n_clusters : int
        K, at most n.
    seed : int

    Returns
    -------
    (K, C) float64 ndarray
    """
    rng = np.random.default_rng(seed)
    if X.shape[0] > COARSEN_ABOVE:
        Y, W = coarsen(X, w)
        if Y.shape[0] >= n_clusters:
            return SEEDERS[name](Y, W, n_clusters, rng)
    return SEEDERS[name](X, w, n_clusters, rng)
