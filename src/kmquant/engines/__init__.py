"""k-means engines behind one contract, and the registry that finds them by name.

The contract (ARCHITECTURE.md). An :class:`Engine` binds the data once, ``engine.bind(X, w)``,
and returns a :class:`Session` that holds whatever the engine keeps between calls (bounds, a
device copy): ``session.step(centers) -> (labels, new_centers, inertia)`` runs one Lloyd
iteration and ``session.assign(centers) -> (labels, sq_dist)`` finds each row's nearest centre.
``X`` is ``(n, C)`` float64, ``w`` is ``(n,)`` float64 weights, ``centers`` is ``(K, C)`` float64;
the session assumes nobody writes into ``X`` or ``w`` while it lives. A cluster that receives no
weight keeps its old centre in ``new_centers``; the driver in :mod:`kmquant.refine` owns
everything else (loop, tolerance, empty clusters, final assignment).

An engine that can only run a whole fit (the scikit-learn adapter) returns a
:class:`FittingSession`, which adds ``fit``; the driver hands it the loop.
"""

from __future__ import annotations

import importlib
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from ..errors import EngineUnavailableError, InvalidOptionError

__all__ = [
    "Engine", "Session", "FittingSession", "get_engine", "available_engines", "ENGINE_MODULES",
]


@runtime_checkable
class Session(Protocol):
    """An engine bound to one ``X (n, C)`` and ``w (n,)``."""

    X: NDArray[np.float64]
    w: NDArray[np.float64]

    def step(
        self, centers: NDArray[np.float64]
    ) -> tuple[NDArray[np.intp], NDArray[np.float64], float]:
        """One Lloyd iteration from ``centers`` (K, C): labels (n,) intp, the weighted means
        (K, C) (an empty cluster keeps its centre) and the inertia before the move."""
        ...

    def assign(
        self, centers: NDArray[np.float64]
    ) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
        """Nearest centre (n,) intp of every row (ties to the lower index) and the squared
        distance (n,) float64 to it."""
        ...


@runtime_checkable
class FittingSession(Session, Protocol):
    """A session that runs the whole k-means loop itself."""

    def fit(
        self, centers: NDArray[np.float64], *, max_iter: int, tol: float, seed: int
    ) -> tuple[NDArray[np.float64], int]:
        """Fitted centres (K, C) from ``centers`` and the number of iterations run."""
        ...


class Engine(Protocol):
    """What :func:`kmquant.refine.refine` needs from an engine: a name and ``bind``."""

    name: str

    def bind(self, X: NDArray[np.float64], w: NDArray[np.float64]) -> Session:
        """Bind the data: ``X (n, C)`` float64 C-contiguous, ``w (n,)`` float64 > 0."""
        ...


#: engine name → (module, factory name, package it needs, what to pip install)
ENGINE_MODULES: dict[str, tuple[str, str, str, str]] = {
    "numpy": ("numpy_engine", "NumpyEngine", "numpy", "numpy"),
    "native": ("native_engine", "NativeEngine", "kmquant's compiled core",
               "--force-reinstall kmquant (the compiled core is missing: a broken install)"),
    "sklearn": ("sklearn_engine", "lloyd", "scikit-learn", "scikit-learn"),
    "sklearn-elkan": ("sklearn_engine", "elkan", "scikit-learn", "scikit-learn"),
    "sklearn-minibatch": ("sklearn_engine", "minibatch", "scikit-learn", "scikit-learn"),
    "torch": ("torch_engine", "TorchEngine", "PyTorch", "'kmquant[torch]'"),
}


def get_engine(name: str) -> Engine:
    """Return the engine called ``name``; ``auto`` is the compiled native engine.

    Raises
    ------
    InvalidOptionError
        Unknown name.
    EngineUnavailableError
        The engine's package is not installed; the message says what to install.
    """
    if name == "auto":
        return get_engine("native")
    if name not in ENGINE_MODULES:
        raise InvalidOptionError(
            f"engine must be one of auto, {', '.join(ENGINE_MODULES)}; got {name!r}"
        )
    module, factory, package, install = ENGINE_MODULES[name]
    try:
        mod = importlib.import_module(f"{__name__}.{module}")
    except ImportError as exc:
        raise EngineUnavailableError(
            f"engine {name!r} needs {package}, which is not installed ({exc}); "
            f"run: pip install {install}"
        ) from None
    return getattr(mod, factory)()


def available_engines() -> list[str]:
    """Names of the engines whose packages are installed."""
    names = []
    for name in ENGINE_MODULES:
        try:
            get_engine(name)
        except EngineUnavailableError:
            continue
        names.append(name)
    return names
