"""THE k-means driver: loop, tolerance, empty clusters, final assignment, progress and abort.

Engines run one step on data they have bound (:class:`kmquant.engines.Session`); everything else
about k-means lives here, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
from numpy.typing import NDArray

from .engines import FittingSession, Session
from .errors import AbortedError, InvalidOptionError
from .options import DEFAULT_MAX_ITER, DEFAULT_TOL

__all__ = ["RefineResult", "refine", "report_progress", "Progress"]

#: ``progress(stage, done, total)``; returning ``False`` aborts the work.
Progress = Optional[Callable[[str, int, int], Optional[bool]]]


@dataclass(frozen=True)
class RefineResult:
    """Converged centres.

    Attributes
    ----------
    centers : (K, C) float64 ndarray
    labels : (n,) intp ndarray
        Nearest centre of each row of ``X`` (a final assignment, consistent with ``centers``).
    inertia : float
        Weighted sum of squared distances of the rows to ``centers``.
    n_iter : int
    converged : bool
        False when ``max_iter`` ran out first.
    """

    centers: NDArray[np.float64]
    labels: NDArray[np.intp]
    inertia: float
    n_iter: int
    converged: bool


def refine(
    session: Session,
    centers: NDArray[np.float64],
    *,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
    seed: int = 0,
    progress: Progress = None,
    fixed: int = 0,
) -> RefineResult:
    """Weighted Lloyd k-means from ``centers`` until the centres stop moving.

    Stops when the summed squared movement of the centres is at most ``tol`` × the weighted
    variance of ``X`` (averaged over channels, as scikit-learn does), when no label changes, or
    after ``max_iter`` steps. A cluster left empty is re-seeded at the colour that contributes the
    most error (weight × squared distance), so K centres stay in use while K ≤ n.

    Parameters
    ----------
    session : Session
        An engine bound to the distinct colours ``X`` (n, C) in the working space and their pixel
        counts ``w`` (n,) (``engine.bind(X, w)``).
    centers : (K, C) float64 ndarray
        Initial centres, K ≤ n.
    max_iter : int
    tol : float
    seed : int
        Passed to engines that draw random numbers themselves.
    progress : callable, optional
        Called as ``progress("refine", iteration, max_iter)``; returning False raises
        :class:`AbortedError`.
    fixed : int
        The first ``fixed`` centres stay where they are (colours that must be kept exactly); the
        others move around them. Needs a step engine (not a whole-fit one).

    Returns
    -------
    RefineResult
    """
    X, w = session.X, session.w
    centers = np.array(centers, dtype=np.float64)
    k = centers.shape[0]
    threshold = 0.0
    if tol > 0:  # the swap search runs fixed steps (tol 0) many times: skip the O(n) variance
        mean = (w @ X) / w.sum()
        threshold = tol * float(np.mean((w @ (X - mean) ** 2) / w.sum()))

    n_iter, converged = 0, False
    if fixed and isinstance(session, FittingSession):
        raise InvalidOptionError(
            "colours kept exactly need a step engine (native, numpy or torch), not a whole-fit one")
    if isinstance(session, FittingSession):
        centers, n_iter = session.fit(centers, max_iter=max_iter, tol=tol, seed=seed)
        converged = n_iter < max_iter
        report_progress(progress, "refine", max_iter, max_iter)
    else:
        labels = None
        for n_iter in range(1, max_iter + 1):
            new_labels, new_centers, _ = session.step(centers)
            if fixed:
                new_centers[:fixed] = centers[:fixed]
            empty = np.flatnonzero(np.bincount(new_labels, minlength=k) == 0)  # weights are > 0
            empty = empty[empty >= fixed]  # a kept colour no pixel is nearest to stays kept
            if empty.size:
                _reseed_empty(X, w, new_labels, new_centers, empty)
            shift = float(((new_centers - centers) ** 2).sum())
            stable = labels is not None and np.array_equal(labels, new_labels)
            centers, labels = new_centers, new_labels
            report_progress(progress, "refine", n_iter, max_iter)
            if not empty.size and (stable or shift <= threshold):
                converged = True
                break
    labels, sq_dist = session.assign(centers)
    return RefineResult(centers, labels, float(w @ sq_dist), n_iter, converged)


def _reseed_empty(
    X: NDArray[np.float64],
    w: NDArray[np.float64],
    labels: NDArray[np.intp],
    centers: NDArray[np.float64],
    empty: NDArray[np.intp],
) -> None:
    """Move each empty centre onto one of the worst-fitting colours, in place."""
    error = w * ((X - centers[labels]) ** 2).sum(axis=1)
    worst = np.argsort(error, kind="stable")[::-1][: empty.size]
    centers[empty[: worst.size]] = X[worst]


def report_progress(progress: Progress, stage: str, done: int, total: int) -> None:
    """Call ``progress(stage, done, total)``; raise :class:`AbortedError` if it returns False."""
    if progress is not None and progress(stage, done, total) is False:
        raise AbortedError(f"stopped by the progress callback during {stage}")
