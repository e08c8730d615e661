"""Escape k-means' local minimum: move a centre that does little to where the error is.

Lloyd's algorithm stops where no single centre can move to a better place on its own, which can
leave two centres splitting a region one would cover while another region is under-served. A swap
(Fränti's random swap, made greedy here) fixes that: take the centre whose removal costs least,
split the cluster with the largest error along its principal axis with it, run a few Lloyd steps,
and keep the result if the total error dropped.
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
    tried: set[int] = set()
    accepted = 0
    for _ in range(rounds):
        if k < 3 or len(tried) >= k:
            break
        labels, sq_dist = engine.assign(X, best.centers)
        mass = np.bincount(labels, weights=w, minlength=k)
        error = np.bincount(labels, weights=w * sq_dist, minlength=k)
        removal = _merge_costs(best.centers, mass)
        donor = next(int(j) for j in np.argsort(removal, kind="stable") if int(j) not in tried)
        target = next(int(t) for t in np.argsort(-error, kind="stable") if int(t) != donor)
        centers = _split(X, w, labels, best.centers, donor, target)
        if centers is None:
            tried.add(donor)
            continue
        trial = refine(X, w, centers, engine, max_iter=steps, tol=0.0)
        if trial.inertia < best.inertia:
            best, tried = trial, set()
            accepted += 1
        else:
            tried.add(donor)
    return best, accepted


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
