"""Conversion between 8-bit colours and the working space of the clustering.

Only ``rgb`` (the 8-bit values as floats) exists so far; the registry is where ``linear``,
``oklab`` and ``lab`` plug in. Alpha, when present, is the last channel and is scaled by
:data:`ALPHA_WEIGHT` in every space, so that an error in opacity costs more than the same error in
one colour channel: k-means then keeps opaque and translucent pixels in separate clusters instead
of giving opaque pixels a palette entry that is slightly see-through.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from numpy.typing import NDArray

__all__ = ["to_working", "from_working", "SPACES"]


ALPHA_WEIGHT = 4.0


def _rgb_to(colors: NDArray[np.uint8]) -> NDArray[np.float64]:
    return colors.astype(np.float64)


def _rgb_from(values: NDArray[np.float64]) -> NDArray[np.uint8]:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


SPACES: dict[str, tuple[Callable, Callable]] = {"rgb": (_rgb_to, _rgb_from)}


def to_working(colors: NDArray[np.uint8], space: str = "rgb") -> NDArray[np.float64]:
    """Map 8-bit colours into the working space.

    Parameters
    ----------
    colors : (n, C) uint8 ndarray
    space : str

    Returns
    -------
    (n, C) float64 ndarray
    """
    if colors.shape[1] == 4:
        values = SPACES[space][0](colors[:, :3])
        return np.ascontiguousarray(np.column_stack([values, colors[:, 3] * ALPHA_WEIGHT]))
    return np.ascontiguousarray(SPACES[space][0](colors))


def from_working(values: NDArray[np.float64], space: str = "rgb") -> NDArray[np.uint8]:
    """Map working-space values back to the nearest 8-bit colours.

    Parameters
    ----------
    values : (K, C) float64 ndarray
    space : str

    Returns
    -------
    (K, C) uint8 ndarray
    """
    if values.shape[1] == 4:
        alpha = np.clip(np.rint(values[:, 3] / ALPHA_WEIGHT), 0, 255).astype(np.uint8)
        return np.column_stack([SPACES[space][1](values[:, :3]), alpha])
    return SPACES[space][1](values)
