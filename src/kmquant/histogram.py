"""The colour histogram: unique colours and how many pixels have each.

k-means on the unique colours weighted by their counts has exactly the objective of k-means on
every pixel (Celebi 2009), and a photograph has far fewer unique colours than pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["Histogram", "color_histogram"]


@dataclass(frozen=True)
class Histogram:
    """Unique colours of an image.

    Attributes
    ----------
    colors : (n, C) uint8 ndarray
        The distinct colours, sorted by their packed value.
    counts : (n,) int64 ndarray
        Pixels of each colour; sums to H × W.
    inverse : (H × W,) int64 ndarray
        For every pixel in row-major order, the row of its colour in ``colors``.
    """

    colors: NDArray[np.uint8]
    counts: NDArray[np.int64]
    inverse: NDArray[np.intp]

    @property
    def n_colors(self) -> int:
        return int(self.colors.shape[0])


def color_histogram(pixels: NDArray[np.uint8]) -> Histogram:
    """Count the distinct colours of an image.

    Parameters
    ----------
    pixels : (H, W, C) uint8 ndarray
        C from 1 to 4.

    Returns
    -------
    Histogram

    Examples
    --------
    >>> import numpy as np
    >>> h = color_histogram(np.array([[[1, 2, 3], [1, 2, 3], [9, 9, 9]]], dtype=np.uint8))
    >>> h.colors.tolist(), h.counts.tolist()
    ([[1, 2, 3], [9, 9, 9]], [2, 1])
    """
    height, width, channels = pixels.shape
    flat = np.ascontiguousarray(pixels).reshape(height * width, channels)
    keys = np.zeros(flat.shape[0], dtype=np.uint32)
    for c in range(channels):  # pack each colour into one integer, big-endian channel order
        keys |= flat[:, c].astype(np.uint32) << np.uint32(8 * (channels - 1 - c))
    unique, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    colors = np.empty((unique.shape[0], channels), dtype=np.uint8)
    for c in range(channels):
        colors[:, c] = (unique >> np.uint32(8 * (channels - 1 - c))) & np.uint32(0xFF)
    return Histogram(colors, counts.astype(np.int64), inverse.reshape(-1))
