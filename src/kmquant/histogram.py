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
    unique, counts, inverse = _unique_with_inverse(keys)
    colors = np.empty((unique.shape[0], channels), dtype=np.uint8)
    for c in range(channels):
        colors[:, c] = (unique >> np.uint32(8 * (channels - 1 - c))) & np.uint32(0xFF)
    return Histogram(colors, counts.astype(np.int64), inverse.reshape(-1))


def _unique_with_inverse(
    keys: NDArray[np.uint32],
) -> tuple[NDArray[np.uint32], NDArray[np.int64], NDArray[np.intp]]:
    """``np.unique(keys, return_inverse=True, return_counts=True)`` in about half the time.

    Each key is packed with its position into one uint64 and the packed values sorted: one plain
    sort (fast for integers) instead of ``np.unique``'s argsort.

    Parameters
    ----------
    keys : (n,) uint32 ndarray
        n < 2³².

    Returns
    -------
    unique : (m,) uint32 ndarray
    counts : (m,) int64 ndarray
    inverse : (n,) intp ndarray
    """
    n = keys.shape[0]
    packed = (keys.astype(np.uint64) << np.uint64(32)) | np.arange(n, dtype=np.uint64)
    packed.sort()
    sorted_keys = (packed >> np.uint64(32)).astype(np.uint32)
    starts = np.empty(n, dtype=bool)
    starts[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=starts[1:])
    inverse = np.empty(n, dtype=np.intp)
    inverse[(packed & np.uint64(0xFFFFFFFF)).astype(np.intp)] = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    counts = np.diff(np.append(first, n)).astype(np.int64)
    return sorted_keys[first], counts, inverse
