"""Escape k-means' local minimum: move a centre that does little to where the error is.

Lloyd's algorithm stops where no single centre can move to a better place on its own, which can
leave two centres splitting a region one would cover while another region is under-served. A swap
(Fränti's random swap, made greedy here) fixes that: take a centre whose removal costs little,
split a cluster with a large error along its principal axis with it, run a few Lloyd steps, and
keep the result if the total error dropped. (donor, target) pairs are tried in order of the sum of
their ranks, the six cheapest donors against the six worst clusters.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .engines import Engine
from .refine import RefineResult, refine

__all__ = ["swap_search"]


def swap_search(
    X: NDArray[np.float64],
    w: NDArray[np.float64],
    fitted: RefineResult,
    engine: Engine,
    *,
    rounds: int,
    steps: int = 3,
) -> tuple[RefineResult, int]:
    """Try ``rounds`` greedy swaps on converged centres; keep those that lower the error.

    Parameters
    ----------
    X : (n, C) float64 ndarray
        Distinct colours in the working space.
    w : (n,) float64 ndarray
        Their pixel counts.
    fitted : RefineResult
        Converged k-means (centres (K, C), labels consistent with them).
    engine : Engine
    rounds : int
        Swaps to try.
    steps : int
        Lloyd steps after each swap before it is judged.

    Returns
    -------
    best : RefineResult
        The best centres found (``fitted`` itself when no swap helped).
    accepted : int
        Swaps kept.
    """
    best = fitted
    k = best.centers.shape[0]
    tried: set[tuple[int, int]] = set()
    accepted = 0
    state = None  # what the pairs are ranked by; it changes only when a swap is kept
    for _ in range(rounds):
        if k < 3:
            break
        if state is None:
            labels = best.labels
            sq_dist = ((X - best.centers[labels]) ** 2).sum(axis=1)
            mass = np.bincount(labels, weights=w, minlength=k)
            error = np.bincount(labels, weights=w * sq_dist, minlength=k)
            state = labels, _merge_costs(best.centers, mass), error
        labels, removal, error = state
        pair = _next_pair(removal, error, tried)
        if pair is None:
            break
        tried.add(pair)
        centers = _split(X, w, labels, best.centers, *pair)
        if centers is None:
            continue
        trial = refine(X, w, centers, engine, max_iter=steps, tol=0.0)
        if trial.inertia < best.inertia:
            best, tried, state = trial, set(), None
            accepted += 1
    return best, accepted


def _next_pair(
    removal: NDArray[np.float64], error: NDArray[np.float64], tried: set[tuple[int, int]],
    depth: int = 6,
) -> tuple[int, int] | None:
    """The untried (donor, target) pair with the best combined rank: donors by cheapest removal,
    targets by largest error, the ``depth`` best of each."""
    donors = np.argsort(removal, kind="stable")[:depth]
    targets = np.argsort(-error, kind="stable")[:depth]
    pairs = sorted(
        ((i + j, int(d), int(t)) for i, d in enumerate(donors) for j, t in enumerate(targets)
         if d != t and (int(d), int(t)) not in tried),
    )
    return (pairs[0][1], pairs[0][2]) if pairs else None


def _merge_costs(centers: NDArray[np.float64], mass: NDArray[np.float64]) -> NDArray[np.float64]:
    """Error added by merging each cluster into its nearest neighbour (Ward's criterion), (K,)."""
    gaps = ((centers[:, None, :] - centers[None]) ** 2).sum(axis=2)
    np.fill_diagonal(gaps, np.inf)
    nearest = gaps.argmin(axis=1)
    pair = mass + mass[nearest]
    with np.errstate(invalid="ignore", divide="ignore"):
        cost = np.where(pair > 0, mass * mass[nearest] / pair, 0.0)
    return cost * gaps[np.arange(len(centers)), nearest]


def _split(
    X: NDArray[np.float64],
    w: NDArray[np.float64],
    labels: NDArray[np.intp],
    centers: NDArray[np.float64],
    donor: int,
    target: int,
) -> NDArray[np.float64] | None:
    """Centres with ``target``'s cluster split in two along its principal axis, the second half
    taken by ``donor``; None when the cluster cannot be split."""
    members = labels == target
    Xt, wt = X[members], w[members]
    if Xt.shape[0] < 2:
        return None
    mean = wt @ Xt / wt.sum()
    spread = ((Xt - mean).T * wt) @ (Xt - mean) / wt.sum()
    axis = np.linalg.eigh(spread)[1][:, -1]
    side = (Xt - mean) @ axis > 0
    if side.all() or not side.any():
        return None
    new = centers.copy()
    new[donor] = wt[side] @ Xt[side] / wt[side].sum()
    new[target] = wt[~side] @ Xt[~side] / wt[~side].sum()
    return new
