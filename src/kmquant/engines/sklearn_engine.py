"""Adapter over scikit-learn's ``KMeans`` (lloyd, elkan) and ``MiniBatchKMeans``.

scikit-learn runs the whole fit itself, so this engine's sessions offer ``fit``
(:class:`kmquant.engines.FittingSession`) and the driver hands them the loop. Histogram counts go
in as ``sample_weight``; the initial palette from our seeding goes in as
``init`` with ``n_init=1``, so every engine starts from the same centres.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import NDArray
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.exceptions import ConvergenceWarning

from .numpy_engine import NumpySession

__all__ = ["SklearnEngine", "SklearnSession", "lloyd", "elkan", "minibatch"]


class SklearnEngine:
    """scikit-learn as a k-means engine."""

    def __init__(self, algorithm: str = "lloyd") -> None:
        self.algorithm = algorithm
        self.name = "sklearn" if algorithm == "lloyd" else f"sklearn-{algorithm}"

    def bind(self, X: NDArray[np.float64], w: NDArray[np.float64]) -> SklearnSession:
        """A session on ``X`` (n, C) and ``w`` (n,)."""
        return SklearnSession(X, w, self.algorithm)


class SklearnSession(NumpySession):
    """scikit-learn bound to ``X`` and ``w``; ``step`` and ``assign`` come from the reference."""

    def __init__(self, X: NDArray[np.float64], w: NDArray[np.float64], algorithm: str) -> None:
        super().__init__(X, w)
        self.algorithm = algorithm

    def fit(
        self,
        centers: NDArray[np.float64],
        *,
        max_iter: int,
        tol: float,
        seed: int,
    ) -> tuple[NDArray[np.float64], int]:
        """Run scikit-learn from ``centers``.

        Parameters
        ----------
        centers : (K, C) float64 ndarray
            Initial centres.
        max_iter, tol, seed
            As in :class:`kmquant.Options`; ``tol`` is rescaled because scikit-learn measures it
            against the unweighted variance of ``X``, and we against the weighted one.

        Returns
        -------
        centers : (K, C) float64 ndarray
        n_iter : int
        """
        X, w = self.X, self.w
        k = centers.shape[0]
        unweighted = float(np.mean(np.var(X, axis=0)))
        mean = (w @ X) / w.sum()
        weighted = float(np.mean((w @ (X - mean) ** 2) / w.sum()))
        sk_tol = tol * weighted / unweighted if unweighted > 0 else tol
        if self.algorithm == "minibatch":
            model = MiniBatchKMeans(
                n_clusters=k, init=centers, n_init=1, max_iter=max_iter, tol=sk_tol,
                random_state=seed, batch_size=4096,
            )
        else:
            model = KMeans(
                n_clusters=k, init=centers, n_init=1, max_iter=max_iter, tol=sk_tol,
                random_state=seed, algorithm=self.algorithm,
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # fewer distinct clusters than K
            model.fit(X, sample_weight=w)
        return np.asarray(model.cluster_centers_, dtype=np.float64), int(model.n_iter_)


def lloyd() -> SklearnEngine:
    return SklearnEngine("lloyd")


def elkan() -> SklearnEngine:
    return SklearnEngine("elkan")


def minibatch() -> SklearnEngine:
    return SklearnEngine("minibatch")
