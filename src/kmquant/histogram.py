"""The colour histogram: unique colours and how many pixels have each.

k-means on the unique colours weighted by their counts has exactly the objective of k-means on
every pixel (Celebi 2009), and a photograph has far fewer unique colours than pixels.

The counting is compiled (:mod:`kmquant._core._histogram`): each pixel is read as one 32-bit key
and counted in a hash table that grows with the distinct colours (8 bytes a slot, 2 to 8 slots
a colour, fewer past millions of colours), and the histogram keeps that table so that
:meth:`Histogram.lookup` can map every pixel to a value of its colour by hashing the pixels
again. Nothing of one entry per pixel is made: the memory grows with the distinct colours only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ._core._histogram import ColorTable, max_threads

__all__ = ["Histogram", "color_histogram"]


@dataclass(frozen=True)
class Histogram:
    """Unique colours of an image.

    Attributes
    ----------
    colors : (n, C) uint8 ndarray
        The distinct colours, sorted by their packed value (channels big-endian, so
        lexicographically).
    counts : (n,) int64 ndarray
        Pixels of each colour; sums to H × W.
    """

    colors: NDArray[np.uint8]
    counts: NDArray[np.int64]
    _table: ColorTable = field(repr=False, compare=False)

    @property
    def n_colors(self) -> int:
        return int(self.colors.shape[0])

    @property
    def clear_transparent(self) -> bool:
        """Whether every alpha-0 pixel was counted (and is looked up) as (0, 0, 0, 0)."""
        return self._table.clear_transparent

    def lookup(
        self, pixels: NDArray[np.uint8], values: NDArray[np.uint8], *, n_threads: int | None = None
    ) -> NDArray[np.uint8]:
        """One value per colour → one per pixel: ``values[row of the colour of each pixel]``.

        Parameters
        ----------
        pixels : (H, W, C) uint8 ndarray
            The image counted (or part of it: any pixels whose colours were counted), as it was
            passed to :func:`color_histogram`; with ``clear_transparent``, every alpha-0 pixel
            stands for (0, 0, 0, 0) here too.
        values : (n,) uint8 ndarray
            One value per row of ``colors`` (e.g. the palette index of each colour).
        n_threads : int, optional
            At most this many threads (each gets at least 2¹⁸ pixels); OpenMP's default when
            None.

        Returns
        -------
        (H, W) uint8 ndarray

        Raises
        ------
        ValueError
            ``pixels`` not (H, W, C) uint8 with C as counted, ``values`` not (n,) uint8, or a
            pixel whose colour was not counted.
        """
        pixels = _checked(pixels)
        values = np.asarray(values)
        if values.dtype != np.uint8 or values.shape != (self.n_colors,):
            raise ValueError(f"values must be ({self.n_colors},) uint8, one per colour; got "
                             f"{values.shape} {values.dtype}")
        out = np.empty(pixels.shape[:2], dtype=np.uint8)
        self._table.lookup(pixels, np.ascontiguousarray(values), out, _threads(n_threads))
        return out


def color_histogram(
    pixels: NDArray[np.uint8], *, clear_transparent: bool = False, n_threads: int | None = None
) -> Histogram:
    """Count the distinct colours of an image.

    Parameters
    ----------
    pixels : (H, W, C) uint8 ndarray
        C from 1 to 4. Read where it lies when the channels of each pixel are adjacent (any
        C-contiguous array, or a view of rows, columns or leading channels of one); otherwise
        copied first.
    clear_transparent : bool
        For C = 4: count every pixel whose alpha is 0 as (0, 0, 0, 0), and look it up so in
        :meth:`Histogram.lookup`. No effect for C < 4.
    n_threads : int, optional
        At most this many threads (each gets a band of at least 2¹⁸ pixels); OpenMP's default
        (all cores, or ``OMP_NUM_THREADS``) when None. The result is the same for any number.

    Returns
    -------
    Histogram

    Raises
    ------
    ValueError
        ``pixels`` not (H, W, C) uint8 with 1 ≤ C ≤ 4.

    Examples
    --------
    >>> import numpy as np
    >>> pixels = np.array([[[1, 2, 3], [1, 2, 3], [9, 9, 9]]], dtype=np.uint8)
    >>> h = color_histogram(pixels)
    >>> h.colors.tolist(), h.counts.tolist()
    ([[1, 2, 3], [9, 9, 9]], [2, 1])
    >>> h.lookup(pixels, np.array([7, 5], dtype=np.uint8)).tolist()
    [[7, 7, 5]]
    """
    pixels = _checked(pixels)
    table = ColorTable()
    table.count(pixels, bool(clear_transparent), _threads(n_threads))
    colors = np.empty((table.n_colors, table.channels), dtype=np.uint8)
    counts = np.empty(table.n_colors, dtype=np.int64)
    table.finish(colors, counts)
    return Histogram(colors, counts, table)


def _checked(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """``pixels`` as the compiled core takes them: (H, W, C) uint8, 1 ≤ C ≤ 4, the channels of a
    pixel adjacent (copied only if they are not)."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or not 1 <= pixels.shape[2] <= 4:
        raise ValueError(f"pixels must be (H, W, C) uint8 with 1 ≤ C ≤ 4; got {pixels.shape} "
                         f"{pixels.dtype}")
    if pixels.shape[2] > 1 and pixels.strides[2] != 1:
        pixels = np.ascontiguousarray(pixels)
    return pixels


def _threads(n_threads: int | None) -> int:
    if n_threads is None:
        return max_threads()
    if n_threads < 1:
        raise ValueError(f"n_threads must be at least 1; got {n_threads}")
    return int(n_threads)
