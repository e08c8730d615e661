"""The colour histogram: unique colours and how many pixels have each.

k-means on the unique colours weighted by their counts has exactly the objective of k-means on
every pixel (Celebi 2009), and a photograph has far fewer unique colours than pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
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
    inverse : (H × W,) int32 or intp ndarray
        For every pixel in row-major order, the row of its colour in ``colors``.
    """

    colors: NDArray[np.uint8]
    counts: NDArray[np.int64]
    inverse: NDArray[np.intp]

    @property
    def n_colors(self) -> int:
        return int(self.colors.shape[0])

    def spread(self, values: NDArray) -> NDArray:
        """Per-colour values (n,) → per-pixel values (H × W,): ``values[inverse]``, without
        numpy's conversion of the index array to intp (100 MB for a 12 MP image)."""
        out = np.empty(self.inverse.shape[0], dtype=values.dtype)
        _look_up(self.inverse, np.ascontiguousarray(values), out)
        return out


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
    keys = _pack(np.ascontiguousarray(pixels).reshape(height * width, channels))
    if channels <= 3 and keys.shape[0] >= _TABLE_FROM:
        unique, counts, inverse = _unique_by_table(keys, 8 * channels)
    else:
        unique, counts, inverse = _unique_by_hash(keys)
    colors = np.empty((unique.shape[0], channels), dtype=np.uint8)
    for c in range(channels):
        colors[:, c] = (unique >> np.uint32(8 * (channels - 1 - c))) & np.uint32(0xFF)
    return Histogram(colors, counts.astype(np.int64), inverse.reshape(-1))


#: From this many pixels on, colours of ≤ 24 bits are counted in a table with one slot per
#: possible colour (2²⁴ int32 slots, 64 MB while it runs) instead of by sorting: 4× faster on 12 MP.
_TABLE_FROM = 1 << 22


@numba.njit(cache=True, nogil=True)
def _count_into(keys, table):  # pragma: no cover - compiled
    for i in range(keys.shape[0]):
        table[keys[i]] += 1


@numba.njit(cache=True, nogil=True)
def _look_up(keys, table, out):  # pragma: no cover - compiled
    for i in range(keys.shape[0]):
        out[i] = table[keys[i]]


def _unique_by_table(
    keys: NDArray[np.uint32], bits: int
) -> tuple[NDArray[np.uint32], NDArray[np.int64], NDArray[np.int32]]:
    """Same result as :func:`_unique_by_hash`, counting into a table of 2**bits slots.

    Parameters
    ----------
    keys : (n,) uint32 ndarray
        Each below 2**bits.
    bits : int
        At most 24.
    """
    table = np.zeros(1 << bits, dtype=np.int32)
    _count_into(keys, table)
    unique = np.flatnonzero(table).astype(np.uint32)
    counts = table[unique].astype(np.int64)
    table[unique] = np.arange(unique.shape[0], dtype=np.int32)  # now: colour → its row
    inverse = np.empty(keys.shape[0], dtype=np.int32)
    _look_up(keys, table, inverse)
    return unique, counts, inverse


@numba.njit(cache=True, nogil=True)
def _pack(flat):  # pragma: no cover - compiled
    """Each colour (n, C) as one integer, channels big-endian: (n,) uint32."""
    n, channels = flat.shape
    keys = np.empty(n, dtype=np.uint32)
    for i in range(n):
        key = np.uint32(0)
        for c in range(channels):
            key = (key << np.uint32(8)) | np.uint32(flat[i, c])
        keys[i] = key
    return keys


@numba.njit(cache=True, nogil=True)
def _slot(key, mask):  # pragma: no cover - compiled
    """Home slot of ``key`` in a table of ``mask + 1`` slots (Fibonacci hashing)."""
    return np.int64((np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)) & mask


@numba.njit(cache=True, nogil=True)
def _count_by_hash(keys):  # pragma: no cover - compiled
    """Open-addressing count of ``keys``: (table keys, counts), a slot empty where its count is 0.

    The table starts small and grows fourfold whenever it is half full, so it stays about the size
    of the distinct keys (1 MB for 10⁵ colours, in cache) whatever the image size. A run of one
    colour (flat areas) costs one comparison a pixel.
    """
    size = 1 << 12
    table = np.zeros(size, dtype=np.uint32)
    counts = np.zeros(size, dtype=np.int64)
    used = 0
    previous, slot = np.uint32(0), -1
    for i in range(keys.shape[0]):
        key = keys[i]
        if slot >= 0 and key == previous:
            counts[slot] += 1
            continue
        mask = size - 1
        slot = _slot(key, mask)
        while counts[slot] != 0 and table[slot] != key:
            slot = (slot + 1) & mask
        if counts[slot] == 0:
            table[slot] = key
            used += 1
        counts[slot] += 1
        previous = key
        if 2 * used > size:
            old_table, old_counts = table, counts
            size *= 4
            mask = size - 1
            table = np.zeros(size, dtype=np.uint32)
            counts = np.zeros(size, dtype=np.int64)
            for q in range(old_table.shape[0]):
                if old_counts[q]:
                    s = _slot(old_table[q], mask)
                    while counts[s] != 0:
                        s = (s + 1) & mask
                    table[s] = old_table[q]
                    counts[s] = old_counts[q]
            slot = -1
    return table, counts


@numba.njit(cache=True, nogil=True)
def _rows_by_hash(keys, table, row):  # pragma: no cover - compiled
    """Row of every key: look up its slot in ``table``, then ``row[slot]``; (n,) int32."""
    mask = table.shape[0] - 1
    out = np.empty(keys.shape[0], dtype=np.int32)
    previous, found = np.uint32(0), -1
    for i in range(keys.shape[0]):
        key = keys[i]
        if found < 0 or key != previous:
            slot = _slot(key, mask)
            while table[slot] != key:
                slot = (slot + 1) & mask
            found, previous = row[slot], key
        out[i] = found
    return out


def _unique_by_hash(
    keys: NDArray[np.uint32],
) -> tuple[NDArray[np.uint32], NDArray[np.int64], NDArray[np.int32]]:
    """``np.unique(keys, return_inverse=True, return_counts=True)``, by hashing: 2-3× faster
    than sorting every pixel (only the distinct keys are sorted).

    Parameters
    ----------
    keys : (n,) uint32 ndarray
        n < 2³¹.

    Returns
    -------
    unique : (m,) uint32 ndarray
        Sorted.
    counts : (m,) int64 ndarray
    inverse : (n,) int32 ndarray
    """
    table, counts = _count_by_hash(keys)
    filled = np.flatnonzero(counts)
    order = np.argsort(table[filled], kind="stable")
    row = np.zeros(table.shape[0], dtype=np.int32)
    row[filled[order]] = np.arange(order.shape[0], dtype=np.int32)
    inverse = _rows_by_hash(keys, table, row)
    return table[filled[order]], counts[filled[order]], inverse
