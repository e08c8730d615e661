"""Dithering: map every pixel to a palette index, spreading the quantization error.

Three methods, all in the 8-bit RGB(A) space of the pixels and the palette:

``none``
    The exact nearest palette colour of every pixel.
``fs``
    Floyd–Steinberg error diffusion (Floyd & Steinberg 1976) in serpentine order: even rows left to
    right, odd rows right to left. The error of a pixel (its error-adjusted colour minus the chosen
    palette colour) goes 7/16 to the next pixel in the row, 3/16, 5/16 and 1/16 to the three
    pixels below (behind, under, ahead); error that would leave the image is dropped.
``ordered``
    Bayer ordered dithering: a fixed threshold pattern, tiled over the image, nudges every pixel
    before its nearest colour is looked up. No error travels, so the result is periodic on flat
    areas and each pixel depends only on its own value and position.

The nearest colour is always the exact one: squared Euclidean distance over the C channels, ties
to the lower index. The search starts from the previous pixel's answer and skips, by the triangle
inequality, every palette colour farther from that answer than the sum of its distance and the
best distance found so far (the same idea as pngquant's nearest search); the result is the same
as a full search, only faster on smooth images.

Error clamp (``fs``)
--------------------
Textbook error diffusion lets the error grow without bound where the image leaves the palette's
range: in a flat dark navy area with no dark-enough blue in the palette, the blue surplus piles up
pixel after pixel until it picks a bright blue entry — speckles — and the debt bleeds into
whatever follows. Clipping each channel of the adjusted colour to 0..255 is not enough: the
channels that are already at 0 stop growing, but the others still run up to 255, and the speckles
come back (and with a changed hue). kmquant follows pngquant's rule instead: the incoming error is
scaled down *as a whole vector* (direction kept) so that no colour channel of the adjusted colour
goes more than ``clamp`` levels outside 0..255. A saturated pixel has a channel at the edge of the
range, so the error that can reach it stays within about ``clamp`` levels, and nothing runs away;
inside the range, where the error can be paid back, it flows unchanged. The default, 8 levels,
leaves some headroom so that one saturated channel does not switch dithering off for the others
(pngquant allows about 10 % of its range). Alpha is not part of the scaling: an adjusted alpha is
clipped to 0..255. ``clamp=None`` turns the limit off (textbook Floyd–Steinberg).

Measured on Kodak kodim03, 05 and 23 at K = 16 and 64 (SSIMULACRA2, higher is better): no clamp
scores 9 to 36 points below the default and 1 to 3.5 dB lower in PSNR; per-channel clipping to
0..255 scores 2 to 14 points below it; clamps of 0, 8 and 16 are within 2 points of each other,
32 and 64 mostly fall behind (and 32 lets the navy speckles through). Larger clamps keep the
blurred image a little closer to the original (the error is paid back more fully), smaller ones
give less noise; 8 is the middle. The clamp costs nothing in tone: a flat grey dithered with
black and white keeps its mean at every level.

Spread (``ordered``)
--------------------
The Bayer threshold, centred on zero and ranging over (-1/2, 1/2), is multiplied by a spread and
added to every colour channel (not alpha). The spread is the median over palette entries of the
distance to the nearest other entry in the largest per-channel difference (Chebyshev distance): a
threshold range of one step per channel is what it takes to move a colour from one palette
colour to its neighbour, whether the two differ along one axis or, like two greys, along all
three. For a two-colour black/white palette this gives 255 and a flat grey comes out with its
share of white to within 1/n² (n × n matrix); for a K = 64 photo palette it is about 15 to 20
levels. The median ignores a few outliers such as the transparent entry or duplicates.

Transparency
------------
Fully transparent pixels (alpha 0) map to the nearest palette entry with alpha 0 when there is
one, receive no error and diffuse none; without such an entry they get the plain nearest colour.

Everything runs in one thread in a fixed order, in float64: the same input gives the same output
on every run and machine, whatever the thread count.

Implementation
--------------
The loops are compiled ahead of time (``kmquant._core._dither``, Cython) and release the GIL. They
read the uint8 pixels directly: ``none`` and ``ordered`` compute each (offset) colour as they go,
so no float copy of the image exists. On a 12.6 MP RGB image with K = 256, the memory they need
beyond the image fell from 313 MiB (``none``) and 409 MiB (``ordered``) with the former full-image
float64 arrays to 13 and 16 MiB (the index array itself is 12 MiB).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

import kmquant._core._dither as _dither

from .errors import InvalidOptionError
from .options import DITHER_METHODS  # the names users choose from

__all__ = [
    "DITHER_METHODS",
    "DEFAULT_CLAMP",
    "MATRIX_SIZES",
    "dither",
    "floyd_steinberg",
    "ordered",
    "nearest",
    "bayer_matrix",
    "ordered_spread",
]

#: Levels by which a Floyd–Steinberg adjusted colour channel may leave 0..255 (module docstring).
DEFAULT_CLAMP = 8.0
#: Bayer matrix sizes accepted by :func:`ordered`.
MATRIX_SIZES = (2, 4, 8, 16)

# --------------------------------------------------------------------------------------------
# Public functions


def floyd_steinberg(
    pixels: NDArray[np.uint8],
    palette: NDArray[np.uint8],
    *,
    strength: float = 1.0,
    clamp: float | None = DEFAULT_CLAMP,
) -> NDArray[np.uint8]:
    """Floyd–Steinberg error diffusion, serpentine, onto the exact nearest palette colours.

    Parameters
    ----------
    pixels : (H, W, C) uint8 ndarray
        C = 1 (grey), 3 (RGB) or 4 (RGBA).
    palette : (K, C) uint8 ndarray
        1 ≤ K ≤ 256.
    strength : float
        0 to 1: the share of the error that is passed on (0 gives the plain nearest colour).
    clamp : float or None
        How many levels an error-adjusted colour channel may go outside 0..255; the incoming
        error is scaled down as a whole vector to keep within it (see the module docstring).
        None: no limit.

    Returns
    -------
    (H, W) uint8 ndarray
        Palette indices.

    Raises
    ------
    InvalidOptionError
        ``strength`` outside 0..1 or ``clamp`` negative.
    ValueError
        Arrays of the wrong dtype or shape.

    Examples
    --------
    >>> import numpy as np
    >>> grey = np.full((2, 2, 1), 100, dtype=np.uint8)
    >>> floyd_steinberg(grey, np.array([[0], [255]], dtype=np.uint8))
    array([[0, 1],
           [1, 0]], dtype=uint8)
    """
    pixels, pal = _check_arrays(pixels, palette)
    _check_strength(strength)
    if clamp is not None and not (_is_number(clamp) and math.isfinite(clamp) and clamp >= 0):
        raise InvalidOptionError(f"clamp must be a number >= 0 or None, got {clamp!r}")
    order, gap = _search_tables(pal)
    out = np.empty(pixels.shape[:2], dtype=np.uint8)
    _dither.fs_indices(pixels, pal, order, gap, _clear_entries(palette), float(strength),
                       -1.0 if clamp is None else float(clamp), out)
    return out


def ordered(
    pixels: NDArray[np.uint8],
    palette: NDArray[np.uint8],
    *,
    strength: float = 1.0,
    matrix_size: int = 8,
) -> NDArray[np.uint8]:
    """Bayer ordered dithering onto the exact nearest palette colours.

    Every colour channel (not alpha) of pixel (y, x) is offset by ``strength`` × spread ×
    threshold[y mod n, x mod n], with the threshold in (-1/2, 1/2) and the spread from
    :func:`ordered_spread`; the offset colour gets its nearest palette entry.

    Parameters
    ----------
    pixels : (H, W, C) uint8 ndarray
        C = 1, 3 or 4.
    palette : (K, C) uint8 ndarray
        1 ≤ K ≤ 256.
    strength : float
        0 to 1; 0 gives the plain nearest colour.
    matrix_size : int
        n, the side of the Bayer matrix: 2, 4, 8 or 16. A flat area repeats every n pixels.

    Returns
    -------
    (H, W) uint8 ndarray
        Palette indices.

    Raises
    ------
    InvalidOptionError
        ``strength`` outside 0..1 or ``matrix_size`` not one of 2, 4, 8, 16.
    ValueError
        Arrays of the wrong dtype or shape.
    """
    pixels, pal = _check_arrays(pixels, palette)
    _check_strength(strength)
    if not isinstance(matrix_size, (int, np.integer)) or matrix_size not in MATRIX_SIZES:
        raise InvalidOptionError(
            f"matrix_size must be one of {', '.join(map(str, MATRIX_SIZES))}, got {matrix_size!r}"
        )
    # The kernel adds bayer[y mod n, x mod n] × (strength × spread) to each colour channel of
    # pixel (y, x): no float copy of the image.
    order, gap = _search_tables(pal)
    out = np.empty(pixels.shape[:2], dtype=np.uint8)
    _dither.ordered_indices(pixels, pal, order, gap, _clear_entries(palette),
                            bayer_matrix(int(matrix_size)),
                            float(strength) * ordered_spread(palette), out)
    return out


def nearest(pixels: NDArray[np.uint8], palette: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Exact nearest palette colour of every pixel, no dithering (method ``none``).

    Parameters
    ----------
    pixels : (H, W, C) uint8 ndarray
        C = 1, 3 or 4.
    palette : (K, C) uint8 ndarray
        1 ≤ K ≤ 256.

    Returns
    -------
    (H, W) uint8 ndarray
        Palette indices; squared Euclidean distance in 8-bit RGB(A), ties to the lower index;
        fully transparent pixels as described in the module docstring.
    """
    pixels, pal = _check_arrays(pixels, palette)
    order, gap = _search_tables(pal)
    out = np.empty(pixels.shape[:2], dtype=np.uint8)
    _dither.nearest_indices(pixels, pal, order, gap, _clear_entries(palette), out)
    return out


def dither(
    pixels: NDArray[np.uint8],
    palette: NDArray[np.uint8],
    method: str,
    *,
    strength: float = 1.0,
) -> NDArray[np.uint8]:
    """Palette index of every pixel by the named method, with each method's defaults.

    Parameters
    ----------
    pixels : (H, W, C) uint8 ndarray
        C = 1, 3 or 4.
    palette : (K, C) uint8 ndarray
        1 ≤ K ≤ 256.
    method : str
        One of :data:`DITHER_METHODS`: ``none`` (:func:`nearest`), ``fs``
        (:func:`floyd_steinberg`) or ``ordered`` (:func:`ordered`).
    strength : float
        0 to 1, passed to the method (checked but unused for ``none``).

    Returns
    -------
    (H, W) uint8 ndarray

    Raises
    ------
    InvalidOptionError
        Unknown ``method`` or ``strength`` outside 0..1.
    """
    if method not in DITHER_METHODS:
        raise InvalidOptionError(
            f"dither method must be one of {', '.join(DITHER_METHODS)}, got {method!r}"
        )
    if method == "fs":
        return floyd_steinberg(pixels, palette, strength=strength)
    if method == "ordered":
        return ordered(pixels, palette, strength=strength)
    _check_strength(strength)
    return nearest(pixels, palette)


def bayer_matrix(n: int) -> NDArray[np.float64]:
    """Bayer threshold matrix of side n (a power of two), centred on zero.

    Parameters
    ----------
    n : int

    Returns
    -------
    (n, n) float64 ndarray
        ``(B + 1/2) / n² - 1/2`` for the integer Bayer matrix B (a permutation of 0…n²-1):
        values in (-1/2, 1/2), mean exactly 0.
    """
    index = np.zeros((1, 1), dtype=np.int64)
    while index.shape[0] < n:
        index = np.block([[4 * index, 4 * index + 2], [4 * index + 3, 4 * index + 1]])
    return (index + 0.5) / (n * n) - 0.5


def ordered_spread(palette: NDArray[np.uint8]) -> float:
    """Amplitude of the ordered-dithering offset for a palette, in 8-bit levels.

    The median over entries of the largest per-channel difference to the nearest other entry
    (Chebyshev distance); only colour channels count (not alpha). 0 for a single entry.

    Parameters
    ----------
    palette : (K, C) uint8 ndarray

    Returns
    -------
    float
    """
    pal = np.asarray(palette, dtype=np.float64)
    if pal.shape[0] < 2:
        return 0.0
    colour = pal[:, :3] if pal.shape[1] == 4 else pal
    cheb = np.abs(colour[:, None, :] - colour[None, :, :]).max(axis=2)
    np.fill_diagonal(cheb, np.inf)
    return float(np.median(cheb.min(axis=1)))


# --------------------------------------------------------------------------------------------
# Helpers


def _search_tables(pal: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Per entry: all entries sorted by distance from it, and those distances (K, K)."""
    dist = np.sqrt(((pal[:, None, :] - pal[None, :, :]) ** 2).sum(axis=2))
    order = np.argsort(dist, axis=1, kind="stable")
    return order.astype(np.int64), np.take_along_axis(dist, order, axis=1)


def _clear_entries(palette: NDArray[np.uint8]) -> NDArray[np.int64]:
    """Indices of the fully transparent entries (alpha 0) of an RGBA palette."""
    if palette.shape[1] != 4:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(palette[:, 3] == 0).astype(np.int64)


def _check_arrays(pixels, palette) -> tuple[NDArray[np.uint8], NDArray[np.float64]]:
    """Validate shapes and dtypes; return contiguous pixels and the palette as float64."""
    pixels = np.asarray(pixels)
    palette = np.asarray(palette)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"pixels must be a (H, W, C) uint8 array with C = 1, 3 or 4, got {pixels.dtype} "
            f"{pixels.shape}"
        )
    if palette.dtype != np.uint8 or palette.ndim != 2 or palette.shape[1] != pixels.shape[2]:
        raise ValueError(
            f"palette must be a (K, {pixels.shape[2]}) uint8 array to match the pixels, got "
            f"{palette.dtype} {palette.shape}"
        )
    if not 1 <= palette.shape[0] <= 256:
        raise ValueError(f"palette must have 1 to 256 entries, got {palette.shape[0]}")
    return np.ascontiguousarray(pixels), np.ascontiguousarray(palette, dtype=np.float64)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _check_strength(strength: float) -> None:
    if not (_is_number(strength) and 0.0 <= strength <= 1.0):
        raise InvalidOptionError(f"strength must be a number from 0 to 1, got {strength!r}")
