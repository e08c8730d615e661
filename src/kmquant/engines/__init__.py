"""k-means engines behind one contract, and the registry that finds them by name.

The contract (ARCHITECTURE.md): ``step(X, w, centers) -> (labels, new_centers, inertia)`` runs one
Lloyd iteration, and ``assign(X, centers) -> (labels, sq_dist)`` finds each row's nearest centre.
``X`` is ``(n, C)`` float64, ``w`` is ``(n,)`` float64 weights, ``centers`` is ``(K, C)`` float64.
A cluster that receives no weight keeps its old centre in ``new_centers``; the driver in
:mod:`kmquant.refine` owns everything else (loop, tolerance, empty clusters, final assignment).
An engine that can only run a whole fit (the scikit-learn adapter) offers ``fit`` as well, and the
driver hands it the loop.
"""

from __future__ import annotations

import importlib
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from ..errors import EngineUnavailableError, InvalidOptionError

__all__ = ["Engine", "get_engine", "available_engines", "ENGINE_MODULES"]


class Engine(Protocol):
    """What :func:`kmquant.refine.refine` needs from an engine."""

    name: str

    def step(
        self, X: NDArray[np.float64], w: NDArray[np.float64], centers: NDArray[np.float64]
    ) -> tuple[NDArray[np.intp], NDArray[np.float64], float]: ...

    def assign(
        self, X: NDArray[np.float64], centers: NDArray[np.float64]
    ) -> tuple[NDArray[np.intp], NDArray[np.float64]]: ...


#: engine name → (module, factory name, package it needs, what to pip install)
ENGINE_MODULES: dict[str, tuple[str, str, str, str]] = {
    "numpy": ("numpy_engine", "NumpyEngine", "numpy", "numpy"),
    "numba": ("numba_engine", "NumbaEngine", "numba", "numba"),
    "sklearn": ("sklearn_engine", "lloyd", "scikit-learn", "scikit-learn"),
    "sklearn-elkan": ("sklearn_engine", "elkan", "scikit-learn", "scikit-learn"),
    "sklearn-minibatch": ("sklearn_engine", "minibatch", "scikit-learn", "scikit-learn"),
    "torch": ("torch_engine", "TorchEngine", "PyTorch", "'kmquant[torch]'"),
}


def get_engine(name: str) -> Engine:
    """Return the engine called ``name``; ``auto`` is numba when installed, else numpy.

    Raises
    ------
    InvalidOptionError
        Unknown name.
    EngineUnavailableError
        The engine's package is not installed; the message says what to install.
    """
    if name == "auto":
        try:
            return get_engine("numba")
        except EngineUnavailableError:
            return get_engine("numpy")
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
