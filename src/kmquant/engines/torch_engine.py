"""The PyTorch engine: the reference Lloyd step on a CUDA GPU, or on the CPU, with exact labels.

Labels must be the reference's labels, not nearly them: one row that changes cluster moves a
centre, and from then on two engines walk different paths. So the labels and squared distances
this engine returns are those of :class:`~kmquant.engines.numpy_engine.NumpyEngine`, bit for bit,
on either device; only CUDA's centre sums may differ in their last bits (it adds in another
order).

Two ways to find the nearest centre, chosen by ``distances``:

``"direct"`` (the default on the CPU)
    The reference's arithmetic in float64: ``dist += (x_c - c_c)²`` channel by channel, in the same
    order, so every distance is the reference's to the last bit; ties go to the lower index.
``"expanded"`` (the default on CUDA)
    One float64 matrix product per block, ``[x, 1] · [-2cᵀ; |c|²] = |c|² - 2x·c``, which differs
    from ``|x - c|²`` by ``|x|²``, the same for every centre of a row. It is fast on a GPU (one
    pass that writes the block) but cancellation makes it inexact, so each row's gap between its
    best and second-best value is checked against a rounding bound: a row whose gap exceeds
    ``(12C + 20)·u·(|x| + max|c|)²`` (``u = 2⁻⁵³``; over twice the worst case of the product's
    and the reference's rounding together) has the reference's nearest centre for certain. The
    few other rows (in practice exact ties, common with integer colours and a rounded palette) are
    recomputed the direct way, and every row's squared distance is recomputed directly to its
    centre, so both labels and distances are the reference's values.

The centre update adds ``w·x`` and ``w`` per cluster. On the CPU it uses ``torch.bincount``, a
serial loop in row order as in ``numpy.bincount``, so the centres are the reference's bit for bit.
On CUDA, scattered additions (``index_add_``, ``bincount``) use atomics, whose order changes from
run to run, and PyTorch's sorted ``index_put_(accumulate=True)`` adds a cluster's rows in one
thread, slow for a large cluster. So each block of rows becomes a one-hot (rows × K) matrix and
one float64 matrix product adds its rows into the (K, C + 1) totals: cuBLAS gives the same bits on
every run on the same GPU, and the sums differ from the reference's only by rounding (relative
1e-13 or so, far inside the 1e-9 the conformance tests allow).
Everything stays in float64: GPU float32 (or TF32) would need a looser bound and more
recomputation for a small gain on three-channel data, where the work is memory traffic, not
arithmetic.

The distance matrix is built a block of rows at a time, at most ``chunk_elements`` (rows × K)
float64 values per block. The data ``X`` and the weights are moved to the device once, when the
engine is bound to them (:meth:`TorchEngine.bind`), and stay there for the session.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray

from ..errors import EngineUnavailableError, InvalidOptionError

__all__ = ["TorchEngine", "TorchSession", "DISTANCES", "CHUNK_ELEMENTS"]

#: The ways to compute distances, see the module docstring.
DISTANCES = ("direct", "expanded")
#: Default rows × K per block of the distance matrix, by device type: 16 MB of float64 on the CPU
#: (as the numpy reference), 128 MB on a GPU (fewer, larger kernels).
CHUNK_ELEMENTS = {"cpu": 1 << 21, "cuda": 1 << 24}
_UNIT_ROUNDOFF = 2.0**-53


class TorchEngine:
    """Lloyd iterations with PyTorch; see :mod:`kmquant.engines` for the contract.

    Parameters
    ----------
    device : str or torch.device, optional
        ``"cuda"``, ``"cuda:1"``, ``"cpu"`` …; by default CUDA when ``torch.cuda.is_available()``,
        else the CPU.
    distances : {"direct", "expanded"}, optional
        How to find the nearest centre (module docstring); by default ``"direct"`` on the CPU and
        ``"expanded"`` on CUDA. Both give the reference's labels.
    chunk_elements : int, optional
        Rows × K per block of the distance matrix; by default :data:`CHUNK_ELEMENTS` of the device.

    Raises
    ------
    InvalidOptionError
        A device type other than cpu or cuda, an unknown ``distances``, or ``chunk_elements < 1``.
    EngineUnavailableError
        ``device`` is CUDA but this PyTorch sees no CUDA GPU.

    Examples
    --------
    >>> import numpy as np
    >>> engine = TorchEngine(device="cpu")
    >>> X = np.array([[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [1.0, 1.0]])
    >>> w = np.array([3.0, 1.0, 1.0, 3.0])
    >>> labels, centers, inertia = engine.step(X, w, np.array([[0.0, 0.0], [1.0, 1.0]]))
    >>> labels.tolist(), centers.tolist(), inertia
    ([0, 0, 1, 1], [[0.125, 0.0], [0.875, 1.0]], 0.5)
    """

    name = "torch"

    def __init__(
        self,
        device: str | torch.device | None = None,
        *,
        distances: str | None = None,
        chunk_elements: int | None = None,
    ) -> None:
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.device = torch.device(device)
        except RuntimeError as exc:
            raise InvalidOptionError(f"device must be 'cpu' or 'cuda[:N]'; got {device!r}") from exc
        if self.device.type not in CHUNK_ELEMENTS:
            raise InvalidOptionError(f"device must be 'cpu' or 'cuda[:N]'; got {device!r}")
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise EngineUnavailableError(
                f"device {device!r} asked for, but this PyTorch ({torch.__version__}) sees no CUDA "
                "GPU; use device='cpu' or install a CUDA build of torch"
            )
        if self.device.type == "cuda" and (self.device.index or 0) >= torch.cuda.device_count():
            raise EngineUnavailableError(
                f"device {device!r} asked for, but only {torch.cuda.device_count()} CUDA GPU(s) "
                "are visible; use 'cuda' or 'cuda:0'"
            )
        if distances is None:
            distances = "direct" if self.device.type == "cpu" else "expanded"
        if distances not in DISTANCES:
            raise InvalidOptionError(
                f"distances must be one of {', '.join(DISTANCES)}; got {distances!r}"
            )
        if chunk_elements is None:
            chunk_elements = CHUNK_ELEMENTS[self.device.type]
        if chunk_elements < 1:
            raise InvalidOptionError(f"chunk_elements must be at least 1; got {chunk_elements}")
        self.distances = distances
        self.chunk_elements = int(chunk_elements)

    def __repr__(self) -> str:
        return f"TorchEngine(device={str(self.device)!r}, distances={self.distances!r})"

    def bind(self, X: NDArray[np.float64], w: NDArray[np.float64]) -> TorchSession:
        """Move ``X`` (n, C) and ``w`` (n,) to the device once; steps then run there."""
        return TorchSession(self, X, w)

    def _tensor(self, array: NDArray) -> torch.Tensor:
        """A float64 copy (or, on the CPU, a view) of ``array`` on the device."""
        array = np.ascontiguousarray(array, dtype=np.float64)
        if not array.flags.writeable:  # torch.from_numpy warns on read-only arrays
            array = array.copy()
        return torch.from_numpy(array).to(self.device)


class TorchSession:
    """A :class:`TorchEngine` bound to ``X`` (n, C) and ``w`` (n,), both kept on its device."""

    def __init__(self, engine: TorchEngine, X: NDArray[np.float64], w: NDArray[np.float64]) -> None:
        self.X, self.w = X, w
        self.device = engine.device
        self.distances = engine.distances
        self.chunk_elements = engine.chunk_elements
        self._tensor = engine._tensor
        self._X_t = self._tensor(X)  # (n, C) float64 on the device
        self._w_t = self._tensor(w)
        self._X_aug: torch.Tensor | None = None  # (n, C + 1): [X, 1], for "expanded"
        self._X_norm: torch.Tensor | None = None  # (n,) |x|, for "expanded"

    def assign(
        self, centers: NDArray[np.float64]
    ) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
        """Nearest centre of every row; shapes as in :func:`kmquant.engines.numpy_engine.assign`."""
        labels, sq_dist = self._assign(self._X_t, self._tensor(centers))
        return _to_numpy(labels).astype(np.intp, copy=False), _to_numpy(sq_dist)

    def step(
        self, centers: NDArray[np.float64]
    ) -> tuple[NDArray[np.intp], NDArray[np.float64], float]:
        """One Lloyd iteration; shapes as in :func:`kmquant.engines.numpy_engine.step`."""
        X_t, w_t, centers_t = self._X_t, self._w_t, self._tensor(centers)
        labels, sq_dist = self._assign(X_t, centers_t)
        new_centers = self._update(X_t, w_t, labels, centers_t)
        if self.device.type == "cpu":  # the reference's own dot product: the same float
            inertia = float(w_t.numpy() @ sq_dist.numpy())
        else:
            inertia = float(torch.dot(w_t, sq_dist))
        return _to_numpy(labels).astype(np.intp, copy=False), _to_numpy(new_centers), inertia

    def _augmented(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``[X, 1]`` (n, C + 1) and ``|x|`` (n,), made once per session."""
        if self._X_aug is None or self._X_norm is None:
            X_t = self._X_t
            ones = torch.ones((X_t.shape[0], 1), dtype=X_t.dtype, device=X_t.device)
            self._X_aug = torch.cat([X_t, ones], dim=1)
            self._X_norm = torch.linalg.vector_norm(X_t, dim=1)
        return self._X_aug, self._X_norm

    # ---------------------------------------------------------------------------------- kernels

    def _assign(
        self, X_t: torch.Tensor, centers: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels (n,) int64 and squared distances (n,) float64, a block of rows at a time."""
        n, k = X_t.shape[0], centers.shape[0]
        labels = torch.empty(n, dtype=torch.int64, device=self.device)
        sq_dist = torch.empty(n, dtype=torch.float64, device=self.device)
        block = max(1, self.chunk_elements // k)
        if self.distances == "direct":
            for start in range(0, n, block):
                stop = min(n, start + block)
                torch.min(_direct(X_t[start:stop], centers), dim=1,
                          out=(sq_dist[start:stop], labels[start:stop]))
            return labels, sq_dist
        X_aug, X_norm = self._augmented()
        # [x, 1] · [-2cᵀ; |c|²] = |c|² - 2x·c; the factor -2 is exact.
        factors = torch.cat([-2.0 * centers.T, (centers * centers).sum(dim=1)[None]], dim=0)
        reach = torch.linalg.vector_norm(centers, dim=1).max()
        slack = (12 * centers.shape[1] + 20) * _UNIT_ROUNDOFF
        for start in range(0, n, block):
            stop = min(n, start + block)
            rows = X_t[start:stop]
            best = _certified_argmin(rows, X_aug[start:stop], X_norm[start:stop], centers,
                                     factors, reach, slack)
            labels[start:stop] = best
            sq_dist[start:stop] = _direct_to(rows, centers[best])
        return labels, sq_dist

    def _update(
        self, X_t: torch.Tensor, w_t: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor
    ) -> torch.Tensor:
        """New centres (K, C): weighted means of the clusters; empty clusters keep their centre."""
        k = centers.shape[0]
        if self.device.type == "cpu":
            mass, sums = _cluster_sums_serial(X_t, w_t, labels, k)
        else:
            mass, sums = _cluster_sums_blocked(X_t, w_t, labels, k,
                                               max(1, self.chunk_elements // k))
        new_centers = centers.clone()
        filled = mass > 0
        new_centers[filled] = sums[filled] / mass[filled, None]
        return new_centers


def _cluster_sums_serial(
    X_t: torch.Tensor, w_t: torch.Tensor, labels: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight (K,) and weighted sum (K, C) of each cluster, added row by row in row order.

    ``torch.bincount`` on the CPU is the serial loop of ``numpy.bincount``: the reference's sums.
    """
    mass = torch.bincount(labels, weights=w_t, minlength=k)
    sums = torch.stack(
        [torch.bincount(labels, weights=w_t * X_t[:, c], minlength=k) for c in range(X_t.shape[1])],
        dim=1,
    )
    return mass, sums


def _cluster_sums_blocked(
    X_t: torch.Tensor, w_t: torch.Tensor, labels: torch.Tensor, k: int, block: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight (K,) and weighted sum (K, C) of each cluster, by one-hot matrix products.

    Block after block of ``block`` rows, in order: ``totals += onehot(labels)ᵀ · [w·x, w]``. No
    atomics, so the result is the same on every run; the memory is one (block, K) float64 matrix.
    """
    n, n_channels = X_t.shape
    values = torch.cat([w_t[:, None] * X_t, w_t[:, None]], dim=1)  # (n, C + 1)
    totals = torch.zeros((k, n_channels + 1), dtype=torch.float64, device=X_t.device)
    onehot = torch.empty((min(n, block), k), dtype=torch.float64, device=X_t.device)
    for start in range(0, n, block):
        stop = min(n, start + block)
        rows = onehot[: stop - start].zero_()
        rows.scatter_(1, labels[start:stop, None], 1.0)
        totals.addmm_(rows.T, values[start:stop])
    return totals[:, n_channels], totals[:, :n_channels]


def _direct(rows: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Squared distances (m, K) of ``rows`` (m, C) to ``centers`` (K, C), the reference's way.

    Channel by channel, ``dist += (x_c - c_c)²`` with no fused multiply-add, so each value is the
    float :class:`~kmquant.engines.numpy_engine.NumpyEngine` computes.
    """
    dist = torch.empty((rows.shape[0], centers.shape[0]), dtype=torch.float64, device=rows.device)
    diff = torch.empty_like(dist)
    for c in range(rows.shape[1]):
        torch.sub(rows[:, c, None], centers[None, :, c], out=diff)
        if c == 0:
            torch.mul(diff, diff, out=dist)  # = 0 + diff², as the reference's first addition
        else:
            diff.mul_(diff)
            dist.add_(diff)
    return dist


def _direct_to(rows: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Squared distances (m,) of ``rows`` (m, C) to one centre each, ``chosen`` (m, C)."""
    diff = rows - chosen
    sq = diff * diff
    dist = sq[:, 0].clone()
    for c in range(1, rows.shape[1]):
        dist.add_(sq[:, c])
    return dist


def _certified_argmin(
    rows: torch.Tensor,
    rows_aug: torch.Tensor,
    rows_norm: torch.Tensor,
    centers: torch.Tensor,
    factors: torch.Tensor,
    reach: torch.Tensor,
    slack: float,
) -> torch.Tensor:
    """Nearest centre (m,) by the matrix product, made exact where rounding could change it.

    Let ``d_j`` be the exact ``|x - c_j|²``, ``s_j`` the computed ``|c_j|² - 2x·c_j`` and ``D_j``
    the reference's computed ``|x - c_j|²``. By the standard rounding bounds (any summation order,
    with or without fused multiply-add), ``|s_j - (d_j - |x|²)| ≤ (2C + 1)·u·(|x| + |c_j|)²`` and
    ``|D_j - d_j| ≤ (C + 2)·u·(|x| + |c_j|)²``. So if the second-smallest ``s`` exceeds the
    smallest by more than ``2·(3C + 3)·u·(|x| + max|c|)²``, the smallest is the reference's unique
    nearest centre; ``slack``, ``(12C + 20)·u``, is more than twice that factor, against the
    rounding of the test itself. The other rows are recomputed with :func:`_direct`.
    """
    s = rows_aug @ factors  # (m, K)
    first, best = torch.min(s, dim=1)
    if centers.shape[0] == 1:
        return best
    s.scatter_(1, best[:, None], torch.inf)
    second = s.min(dim=1).values
    del s
    unsure = torch.nonzero((second - first) <= slack * (rows_norm + reach) ** 2).squeeze(1)
    if unsure.numel():
        best[unsure] = torch.min(_direct(rows[unsure], centers), dim=1).indices
    return best


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A tensor as a numpy array (a copy from a GPU, a view of a CPU tensor)."""
    return tensor.detach().cpu().numpy()
