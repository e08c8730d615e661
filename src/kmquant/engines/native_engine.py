"""The fast CPU engine: the reference Lloyd step, compiled ahead of time (Cython), with Yinyang
bounds.

Lloyd's step is exact, but most of its work is wasted once the centres settle: few colours change
cluster. Yinyang k-means (Ding et al., ICML 2015) skips it and still returns the exact nearest
centre. The centres are split into groups of about ten (five Lloyd steps on the centres
themselves); each colour keeps one lower bound per group on its distance to that group's centres
(other than its own). Each call, a bound shrinks by the largest move of a centre in its group; a
group whose bound exceeds the colour's exact distance to its own centre cannot hold a closer one
and is not searched, and when its own centre is nearer than half the gap to the next centre,
nothing is searched at all. A global bound per colour (the smallest of its group bounds, shrunk by
the largest move of any centre) skips the per-group checks for most colours. The first call
searches from the groups' balls (the mean of a group's centres and the farthest one's distance to
it): the nearest ball first, then only the groups whose ball could hold a nearer centre.

The bounds live in the :class:`NativeSession`, so any ``centers`` may be passed to ``step`` and
``assign`` in any order: moved ones, a re-seeded (jumping) centre, the rounded final palette, whose
assign then costs little. A different K starts the bounds afresh. Distances are the same sums of
squared differences in the same order as the NumPy reference, so labels and squared distances
equal its own bit for bit (ties go to the lower index).

Determinism: the rows are cut into 64 fixed contiguous blocks (independent of the thread count),
each with its own partial sums; the partials are added in block order, so the results are the same
bits on every run and machine whatever the number of threads. Threads take the blocks in
bit-reversed order, so each thread's share is spread over the whole (sorted) colour range and the
work stays even; each block's scratch (its partial sums included) fills whole cache
lines of its own. The GIL is released throughout.

Threads: the blocks run on OpenMP threads only when a call holds at least :data:`PARALLEL_WORK`
distance computations' worth of work; below that they run in the calling thread (a call of well
under a millisecond gains nothing from a second thread that must be woken). The first call on
fresh bounds counts rows × K. A later call counts what the previous call did compute, plus
:data:`ROW_WORK` + G per row (G groups): the bounds skip most of rows × K (on the sample's 72 079
colours at K = 256, 3.7 M distances in the first call, 0.2 M once converged, against 18.4 M), but
every row still pays its bookkeeping, and a row whose global bound fails checks all G group
bounds. Measured in process on four Kodak photos (768×512, 35–64 k colours; ``quantize`` time ÷
libimagequant's, medians of 5, 2 shared cores): with threads only from 2²³ (the numba engine's
rule) 0.68 / 0.61 / 1.02 at K = 16 / 64 / 256; with this rule and 2²⁰, 0.63 / 0.61 / 0.82. With
threads for every call from 2¹⁹ on, K = 16 and 64 were slower (0.70, 0.61–0.72): their steps of
1–3 ms lose more to waking the second thread than they gain.

Memory: per colour one float32 lower bound per group (at most :data:`MAX_GROUPS` groups), an
intp label and a float64 global bound. The float32 bounds are rounded down (strictly below the
float64 value), so they stay valid lower bounds and the answer stays exact; the float32 ulp
(6e-8 relative) also covers the float64 rounding of the drift sums. The drift bookkeeping stays in
float64. For 275 600 colours × 26 groups the bounds take 29 MB instead of 57 MB.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

import kmquant._core._lloyd as _lloyd

__all__ = ["NativeEngine", "NativeSession", "PARALLEL_WORK", "MAX_GROUPS", "N_BLOCKS"]

#: Work (in distance computations) from which a call runs on several threads; see the module
#: docstring for the measurement.
PARALLEL_WORK = 1 << 20
#: A row's bookkeeping in a bounded call, in distance computations, on top of one per group:
#: measured on the sample's 72 079 colours (one thread), a call costs about 100 ns a row plus 8 ns
#: a distance.
ROW_WORK = 12
#: Upper bound on the number of centre groups (bounds stored per colour).
MAX_GROUPS = 32
#: Fixed row blocks, each with its own partial sums.
N_BLOCKS = _lloyd.N_BLOCKS


class NativeEngine:
    """Lloyd iterations in the compiled core; see :mod:`kmquant.engines` for the contract.

    Parameters
    ----------
    n_threads : int, optional
        Threads for large calls; None uses OpenMP's default (all cores, or ``OMP_NUM_THREADS``).
        The results do not depend on it.
    parallel_work : int, optional
        Distance computations from which a call runs on threads; None reads
        :data:`PARALLEL_WORK` at each call.
    """

    name = "native"

    def __init__(self, n_threads: int | None = None, parallel_work: int | None = None) -> None:
        if n_threads is not None and n_threads < 1:
            raise ValueError(f"n_threads must be at least 1; got {n_threads}")
        self.n_threads = n_threads
        self.parallel_work = parallel_work

    def bind(self, X: NDArray[np.float64], w: NDArray[np.float64]) -> NativeSession:
        """A session on ``X`` (n, C) and ``w`` (n,), which keeps the bounds between calls."""
        return NativeSession(X, w, n_threads=self.n_threads, parallel_work=self.parallel_work)


class NativeSession:
    """The native engine bound to ``X`` (n, C) and ``w`` (n,).

    Attributes
    ----------
    X : (n, C) float64 C-contiguous ndarray
    w : (n,) float64 ndarray
    """

    def __init__(
        self,
        X: NDArray[np.float64],
        w: NDArray[np.float64],
        *,
        n_threads: int | None = None,
        parallel_work: int | None = None,
    ) -> None:
        X = np.ascontiguousarray(X, dtype=np.float64)
        w = np.ascontiguousarray(w, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] < 1:
            raise ValueError(f"X must be (n, C) with C ≥ 1; got shape {X.shape}")
        if w.shape != (X.shape[0],):
            raise ValueError(f"w must be ({X.shape[0]},); got shape {w.shape}")
        self.X = X
        self.w = w
        self._n_threads = n_threads
        self._parallel_work = parallel_work
        self._centers: NDArray[np.float64] | None = None  # centres the bounds were made for
        self._work = 0  # the previous call's distance computations
        self._sq_dist = np.empty(X.shape[0])  # step's distances, not returned: one buffer

    def step(
        self, centers: NDArray[np.float64]
    ) -> tuple[NDArray[np.intp], NDArray[np.float64], float]:
        """One Lloyd iteration from ``centers`` (K, C).

        Returns
        -------
        labels : (n,) intp ndarray
        new_centers : (K, C) float64 ndarray
            Weighted mean of each cluster; an empty cluster keeps its centre.
        inertia : float
            Weighted sum of squared distances to ``centers`` (before the move).
        """
        centers = self._centers_of(centers)
        new_centers = np.empty_like(centers)
        inertia = np.empty(N_BLOCKS)
        labels = self._run(centers, self._sq_dist, new_centers, inertia)
        # the blocks' inertias in a fixed order (NumPy's pairwise sum): the same bits whatever
        # the threads
        return labels, new_centers, float(inertia.sum())

    def assign(
        self, centers: NDArray[np.float64]
    ) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
        """Nearest centre (n,) intp of every row (ties to the lower index) and the squared distance
        (n,) float64 to it; cheap when ``centers`` are near those of the previous call."""
        centers = self._centers_of(centers)
        sq_dist = np.empty(self.X.shape[0])
        labels = self._run(centers, sq_dist, None, None)
        return labels, sq_dist

    def _centers_of(self, centers: NDArray[np.float64]) -> NDArray[np.float64]:
        """``centers`` as a (K, C) float64 C-contiguous array, checked against ``X``."""
        centers = np.ascontiguousarray(centers, dtype=np.float64)
        if centers.ndim != 2 or centers.shape[1] != self.X.shape[1] or centers.shape[0] < 1:
            raise ValueError(
                f"centers must be (K, {self.X.shape[1]}) with K ≥ 1; got shape {centers.shape}"
            )
        return centers

    def _run(self, centers, sq_dist, new_centers, inertia) -> NDArray[np.intp]:
        """Assign (and with ``new_centers``, accumulate) in the compiled kernel; returns the
        labels."""
        fresh = self._centers is None or self._centers.shape != centers.shape
        if fresh:
            self._start(centers)
        else:  # every bound of group g shrinks by the largest move of a centre in g
            self._drift_all += _lloyd.update_drift(centers, self._centers, self._group_of,
                                                   self._drift)
        n_threads = self._n_threads if self._n_threads is not None else _lloyd.max_threads()
        parallel_work = PARALLEL_WORK if self._parallel_work is None else self._parallel_work
        n, k = self.X.shape[0], centers.shape[0]
        # the bounds skip most distances: after the first call, what the previous one computed
        row_work = ROW_WORK + self._lower.shape[1]  # bookkeeping and the G group bounds
        work = n * k if fresh else min(n * k, self._work + row_work * n)
        parallel = n_threads > 1 and work >= parallel_work
        try:
            self._work = _lloyd.lloyd_step(
                self.X, self.w, centers, self._labels, self._lower, self._bound, self._drift,
                self._drift_all, self._group_of, self._members, self._starts, self._g_mean_t,
                self._g_radius, fresh, sq_dist, new_centers, inertia, self._scratch, n_threads,
                parallel,
            )
        except BaseException:
            self._centers = None  # the bounds may be half-updated: the next call starts afresh
            raise
        self._centers = centers.copy()
        return self._labels.copy()

    def _start(self, centers: NDArray[np.float64]) -> None:
        """New bounds for ``centers``: group them; this call then searches from the groups'
        balls."""
        n, k = self.X.shape[0], centers.shape[0]
        self._group_of = group_centers(centers, min(MAX_GROUPS, max(1, round(k / 10))))
        n_groups = int(self._group_of.max()) + 1
        self._members = np.argsort(self._group_of, kind="stable")
        self._starts = np.searchsorted(self._group_of[self._members],
                                       np.arange(n_groups + 1)).astype(np.intp)
        self._labels = np.zeros(n, dtype=np.intp)
        self._lower = np.zeros((n, n_groups), dtype=np.float32)
        self._bound = np.zeros(n)
        self._drift = np.zeros(n_groups)
        self._drift_all = 0.0
        # each group's ball: the mean of its centres and the farthest centre's distance to it
        g_mean = np.zeros((n_groups, centers.shape[1]))
        self._g_radius = np.empty(n_groups)
        _lloyd.group_balls(centers, self._group_of, g_mean, self._g_radius)
        self._g_mean_t = np.ascontiguousarray(g_mean.T)
        self._scratch = np.empty(_lloyd.scratch_bytes(k, centers.shape[1], n_groups), np.uint8)


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
    centers = np.ascontiguousarray(centers, dtype=np.float64)
    group = np.empty(centers.shape[0], dtype=np.intp)
    _lloyd.group_lloyd(centers, n_groups, group)
    return np.unique(group, return_inverse=True)[1].reshape(-1).astype(np.intp, copy=False)
