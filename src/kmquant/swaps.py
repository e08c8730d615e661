"""Escape k-means' local minimum: move a centre that does little to where the error is.

Lloyd's algorithm stops where no single centre can move to a better place on its own, which can
leave two centres splitting a region one would cover while another region is under-served. A swap
(Fränti's random swap, made greedy here) fixes that: take a centre whose removal costs little,
split a cluster with a large error along its principal axis with it, run a few Lloyd steps, and
keep the result if the total error dropped. (donor, target) pairs are tried in order of the sum of
their ranks, the six cheapest donors against the six worst clusters.

What is returned is judged as it will be used: the pipeline settles each kept swap (Lloyd to
convergence) and scores it by the error of its centres rounded to the 8-bit palette, and returns
the best of those and the start. Settling or rounding can undo a swap's gain, so the last swap
kept is not always the best; judged this way, more rounds never give a worse palette.

:func:`random_swap` runs a long random-swap search instead (Fränti 2018, compiled), which the
search benchmark uses as the ceiling that no palette search is expected to beat.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
from numpy.typing import NDArray

import kmquant._core._random_swap as _random_swap

from .engines import Session
from .refine import RefineResult, refine

__all__ = ["swap_search", "random_swap", "Settle", "Score"]

#: Turns a swap's few-step trial into the result that is judged (e.g. Lloyd run to convergence).
Settle = Optional[Callable[[RefineResult], RefineResult]]
#: The error a result is judged by (e.g. that of its centres rounded to the 8-bit palette).
Score = Optional[Callable[[RefineResult], float]]


def swap_search(
    session: Session,
    fitted: RefineResult,
    *,
    rounds: int,
    steps: int = 3,
    settle: Settle = None,
    score: Score = None,
) -> tuple[RefineResult, int]:
    """Try ``rounds`` greedy swaps on converged centres; keep those that lower the error.

    The search goes from swap to swap, each run for ``steps`` Lloyd steps and kept when that
    lowers the inertia. Every kept swap is a candidate (settled first when ``settle`` is given),
    and the result is the candidate, or ``fitted``, of the lowest ``score`` (the earliest on a
    tie).
    Nothing depends on ``rounds`` but when to stop, so the first N rounds of a longer search are
    those of an N-round one: the result of N + M rounds never scores higher than that of N rounds,
    nor than ``fitted``.

    Parameters
    ----------
    session : Session
        An engine bound to the distinct colours ``X`` (n, C) in the working space and their pixel
        counts ``w`` (n,).
    fitted : RefineResult
        Converged k-means (centres (K, C), labels consistent with them).
    rounds : int
        Swaps to try.
    steps : int
        Lloyd steps after each swap before it is judged.
    settle : callable, optional
        ``settle(trial)``: what a kept swap offers as its candidate (the pipeline runs Lloyd to
        convergence). Default: the trial itself. The search itself goes on from the trial.
    score : callable, optional
        ``score(result)``: the error candidates are compared by (the pipeline scores the centres
        rounded to the 8-bit palette: the error of the picture it writes). Default: the inertia.

    Returns
    -------
    best : RefineResult
        The best candidate (``fitted`` itself when none scored lower).
    accepted : int
        Swaps that led to ``best`` (0 for ``fitted``).
    """
    X, w = session.X, session.w
    best, chain = fitted, fitted
    best_score = score(fitted) if score is not None else fitted.inertia
    k = chain.centers.shape[0]
    tried: set[tuple[int, int]] = set()
    accepted = kept = 0
    state = None  # what the pairs are ranked by; it changes only when a swap is kept
    for _ in range(rounds):
        if k < 3:
            break
        if state is None:
            labels = chain.labels
            sq_dist = ((X - chain.centers[labels]) ** 2).sum(axis=1)
            mass = np.bincount(labels, weights=w, minlength=k).astype(np.float64)
            error = np.bincount(labels, weights=w * sq_dist, minlength=k).astype(np.float64)
            state = labels, _merge_costs(chain.centers, mass), error
        labels, removal, error = state
        pair = _next_pair(removal, error, tried)
        if pair is None:
            break
        tried.add(pair)
        centers = _split(X, w, labels, chain.centers, *pair)
        if centers is None:
            continue
        trial = refine(session, centers, max_iter=steps, tol=0.0)
        if trial.inertia >= chain.inertia:
            continue
        chain, tried, state = trial, set(), None
        accepted += 1
        # settling or rounding can undo what the swap gained: judge what would be returned
        candidate = settle(trial) if settle is not None else trial
        candidate_score = score(candidate) if score is not None else candidate.inertia
        if candidate_score < best_score:
            best, best_score, kept = candidate, candidate_score, accepted
    return best, kept


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


def random_swap(
    X: NDArray[np.float64],
    w: NDArray[np.float64],
    centers: NDArray[np.float64],
    *,
    trials: int,
    seed: int,
) -> tuple[NDArray[np.float64], float]:
    """Fränti's random swap (2018) with exact local repartition, from ``centers``.

    Each trial moves a random centre onto a colour drawn with probability proportional to its
    share of the error (weight × squared distance to its centre), runs two exact Lloyd iterations
    (searching only the centres that moved) and keeps the result if the weighted error dropped.
    Compiled (:mod:`kmquant._core._random_swap`); the random numbers are drawn here, all at once,
    from ``numpy.random.default_rng(seed)``: ``trials`` uniforms for the colours, then ``trials``
    centre indices. Workspace: 24 n + 40 K² bytes.

    Parameters
    ----------
    X : (n, C) float64 ndarray
        Distinct colours in the working space, finite, n ≥ 1.
    w : (n,) float64 ndarray
        Their weights (pixel counts), finite, ≥ 0.
    centers : (K, C) float64 ndarray
        The start, finite, K ≥ 1; not modified.
    trials : int
        Swaps to try, ≥ 0.
    seed : int
        Seed of the random draws; the same seed gives the same result.

    Returns
    -------
    centers : (K, C) float64 ndarray
        The centres found (a new array).
    error : float
        Their weighted error, Σ w × squared distance of each colour to its nearest centre; never
        above the start's.

    Raises
    ------
    ValueError
        For wrong shapes, no colours or centres, non-finite values, negative weights or
        ``trials`` < 0.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    w = np.ascontiguousarray(w, dtype=np.float64)
    centers = np.array(centers, dtype=np.float64, order="C")  # a copy: the kernel works in place
    if X.ndim != 2 or w.ndim != 1 or centers.ndim != 2:
        raise ValueError(f"X must be (n, C), w (n,) and centers (K, C); got shapes {X.shape}, "
                         f"{w.shape} and {centers.shape}")
    if trials < 0:
        raise ValueError(f"trials must be >= 0, not {trials}")
    rng = np.random.default_rng(seed)
    uniforms = rng.random(trials)
    picks = rng.integers(max(centers.shape[0], 1), size=trials, dtype=np.int64)
    error = _random_swap.random_swap(X, w, centers, uniforms, picks)
    return centers, float(error)
