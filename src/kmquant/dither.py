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
    "adaptive",
    "rate_aware",
    "dither_map",
    "refit_palette",
    "mean_nearest_distance",
    "local_activity",
    "rate_weights",
]

#: Levels by which a Floyd–Steinberg adjusted colour channel may leave 0..255 (module docstring).
DEFAULT_CLAMP = 8.0
#: Second difference (8-bit levels) at which :func:`dither_map` stops dithering: a change of
#: direction this sharp is an edge or texture.
MAP_ACTIVITY = 24
#: Error length (8-bit levels) below which adaptive dithering applies no error.
SKIP_ERROR = 1.5
_MAP_RADIUS = 2
#: :func:`rate_weights`: the activity at which texture pays the most, and the factors of the
#: rate-aware penalty on flat areas and on texture.
RATE_ACTIVITY = 32
RATE_FLOOR = 0.05
RATE_CEIL = 1.5
#: Pixels per chunk for the passes that would make a float64 copy of the image.
_CHUNK = 1 << 20
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


def dither_map(pixels: NDArray[np.uint8], indices: NDArray[np.uint8]) -> NDArray[np.float32]:
    """How much of the diffused error each pixel takes in adaptive dithering (method ``on``).

    The product of two maps, each 0 to 1:

    smoothness
        1 − a/:data:`MAP_ACTIVITY`, floored at 0, for the :func:`local_activity` a. Edges and
        texture have a large a: dithering there only adds noise and bytes, the detail already
        hides the bands.
    banding
        The share of the 24 pixels of the 5 × 5 window around the pixel that have its own entry in
        the undithered ``indices``, squared. Wide areas of one entry are the bands that dithering
        is for; where entries already change from pixel to pixel there is nothing to hide.

    Fully transparent pixels (C = 4, alpha 0) get 0.

    Parameters
    ----------
    pixels : (H, W, C) uint8 ndarray
    indices : (H, W) uint8 ndarray
        The nearest (undithered) entries of the pixels.

    Returns
    -------
    (H, W) float32 ndarray, C-contiguous
    """
    height, width = indices.shape
    if indices.size == 0:
        return np.zeros((height, width), dtype=np.float32)
    activity = local_activity(pixels)
    smooth = 1.0 - activity.astype(np.float32) / np.float32(MAP_ACTIVITY)
    np.clip(smooth, 0.0, 1.0, out=smooth)
    same = np.zeros((height, width), dtype=np.uint8)
    r = _MAP_RADIUS
    padded = np.pad(indices, r, mode="edge")
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dy or dx:
                same += padded[r + dy:r + dy + height, r + dx:r + dx + width] == indices
    band = same.astype(np.float32) / np.float32((2 * r + 1) ** 2 - 1)
    levels = smooth * band * band
    if pixels.shape[2] == 4:
        levels[pixels[:, :, 3] == 0] = 0.0
    return np.ascontiguousarray(levels, dtype=np.float32)


def local_activity(pixels: NDArray[np.uint8]) -> NDArray[np.int16]:
    """How busy the picture is around each pixel: 0 on flat areas and smooth gradients.

    The largest second difference (|2p − left − right| or |2p − up − down|, over the colour
    channels, 8-bit levels) in the pixel's 3 × 3 neighbourhood.

    Parameters
    ----------
    pixels : (H, W, C) uint8 ndarray

    Returns
    -------
    (H, W) int16 ndarray
        0 to 510.
    """
    pixels = np.ascontiguousarray(pixels)
    activity = np.empty(pixels.shape[:2], dtype=np.int16)
    _dither.local_activity(pixels, activity)
    return activity


def rate_weights(pixels: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Per-pixel factor of the rate-aware penalties: small on smooth areas, large on texture.

    ``RATE_FLOOR + (RATE_CEIL − RATE_FLOOR) × min(a / RATE_ACTIVITY, 1)`` for the
    :func:`local_activity` a. An entry that is a little off shows on a smooth gradient (as a
    streak or a step), and hides in grass, foliage or hair; so texture pays for the bytes.
    On the Kodak photos this made the same strength 5 to 9 points of Bjøntegaard delta rate
    better at equal SSIMULACRA2 than one penalty everywhere (``bench/bench_rd.py``).

    Parameters
    ----------
    pixels : (H, W, C) uint8 ndarray

    Returns
    -------
    (H, W) float32 ndarray, C-contiguous
    """
    busy = np.minimum(local_activity(pixels).astype(np.float32) / np.float32(RATE_ACTIVITY), 1)
    return np.ascontiguousarray(RATE_FLOOR + (RATE_CEIL - RATE_FLOOR) * busy, dtype=np.float32)


def adaptive(
    pixels: NDArray[np.uint8],
    palette: NDArray[np.uint8],
    *,
    strength: float = 1.0,
    rdo: float = 0.0,
    nearest_indices: NDArray[np.uint8] | None = None,
) -> NDArray[np.uint8]:
    """Adaptive error diffusion (method ``on``): dithers smooth bands, holds back elsewhere.

    Serpentine Floyd–Steinberg in which each pixel takes ``strength`` × :func:`dither_map` of
    the error that reaches it; errors shorter than :data:`SKIP_ERROR` levels are dropped (a
    near-exact area stays flat: no grain, fewer bytes) and long ones clamped as in
    :func:`floyd_steinberg`. With ``rdo > 0`` the entries are chosen rate-aware as in
    :func:`rate_aware` (the error of the cheaper entry is diffused like any other).

    Parameters
    ----------
    pixels : (H, W, C) uint8 ndarray
        C = 1, 3 or 4.
    palette : (K, C) uint8 ndarray
    strength : float
        0 to 1: scales the map.
    rdo : float
        Rate-aware strength, >= 0 (0: always the nearest entry to the adjusted colour).
    nearest_indices : (H, W) uint8 ndarray, optional
        The pixels' nearest entries, when the caller has them already.

    Returns
    -------
    (H, W) uint8 ndarray
    """
    pixels, pal = _check_arrays(pixels, palette)
    _check_strength(strength)
    _check_rdo(rdo)
    if nearest_indices is None:
        nearest_indices = nearest(pixels, palette)
    levels = dither_map(pixels, nearest_indices)
    if strength != 1.0:
        levels *= np.float32(strength)
    return _adaptive(pixels, palette, pal, levels, rdo, nearest_indices)


def rate_aware(
    pixels: NDArray[np.uint8],
    palette: NDArray[np.uint8],
    *,
    rdo: float,
    nearest_indices: NDArray[np.uint8] | None = None,
) -> NDArray[np.uint8]:
    """Entries chosen for deflate as well as for colour (no dithering).

    Rows left to right; each pixel takes the entry J = d + rate is smallest for, among its
    nearest entry (rate: a literal), the entry of the pixel before it (rate 0: a run) and the
    entries of the three pixels above it (rate 0 when the pixel before copied from the same
    offset, else a match start). d is the squared distance in 8-bit levels; the literal and the
    match start cost ``rdo`` × m × w each, m the mean squared distance of the pixels to their
    nearest entries — so the trade scales with the palette's own error and one strength fits
    every K — and w the pixel's :func:`rate_weights` (texture pays, smooth areas hardly).

    Parameters
    ----------
    pixels : (H, W, C) uint8 ndarray
    palette : (K, C) uint8 ndarray
    rdo : float
        >= 0; 0 gives the nearest entries (:func:`nearest`).
    nearest_indices : (H, W) uint8 ndarray, optional
        The pixels' nearest entries, when the caller has them already.

    Returns
    -------
    (H, W) uint8 ndarray
    """
    pixels, pal = _check_arrays(pixels, palette)
    _check_rdo(rdo)
    if nearest_indices is None:
        nearest_indices = nearest(pixels, palette)
    return _adaptive(pixels, palette, pal, np.zeros((0, 0), dtype=np.float32), rdo,
                     nearest_indices)


def refit_palette(
    pixels: NDArray[np.uint8], indices: NDArray[np.uint8], palette: NDArray[np.uint8]
) -> NDArray[np.uint8]:
    """Each used entry moved to the mean colour of its pixels (rounded).

    For fixed indices this lowers the squared error of every entry, so after a rate-aware
    choice (which moves pixels away from their nearest entry) PSNR comes back for free.
    Fully transparent entries (alpha 0) and unused ones are kept.

    Parameters
    ----------
    pixels : (H, W, C) uint8 ndarray
    indices : (H, W) uint8 ndarray
    palette : (K, C) uint8 ndarray

    Returns
    -------
    (K, C) uint8 ndarray
    """
    k, channels = palette.shape
    flat = np.ascontiguousarray(indices).reshape(-1)
    values = np.ascontiguousarray(pixels).reshape(-1, channels)
    counts = np.zeros(k, dtype=np.float64)
    sums = np.zeros((k, channels), dtype=np.float64)
    for start in range(0, flat.size, _CHUNK):  # bincount makes float64 copies: chunk by chunk
        part = flat[start:start + _CHUNK]
        counts += np.bincount(part, minlength=k)
        for c in range(channels):
            sums[:, c] += np.bincount(part, weights=values[start:start + _CHUNK, c], minlength=k)
    keep = counts == 0
    if channels == 4:
        keep |= palette[:, 3] == 0
    means = np.rint(sums / np.maximum(counts, 1.0)[:, None])
    return np.where(keep[:, None], palette, np.clip(means, 0, 255)).astype(np.uint8)


def dither(
    pixels: NDArray[np.uint8],
    palette: NDArray[np.uint8],
    method: str,
    *,
    strength: float = 1.0,
    rdo: float = 0.0,
) -> NDArray[np.uint8]:
    """Palette index of every pixel by the named method, with each method's defaults.

    Parameters
    ----------
    pixels : (H, W, C) uint8 ndarray
        C = 1, 3 or 4.
    palette : (K, C) uint8 ndarray
        1 ≤ K ≤ 256.
    method : str
        One of :data:`DITHER_METHODS`: ``none`` (:func:`nearest`, or :func:`rate_aware` when
        ``rdo > 0``), ``on`` (:func:`adaptive`), ``fs`` (:func:`floyd_steinberg`) or
        ``ordered`` (:func:`ordered`).
    strength : float
        0 to 1, passed to the method (checked but unused for ``none``).
    rdo : float
        Rate-aware strength for ``none`` and ``on`` (ignored by ``fs`` and ``ordered``).

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
    if method == "on":
        return adaptive(pixels, palette, strength=strength, rdo=rdo)
    if method == "fs":
        return floyd_steinberg(pixels, palette, strength=strength)
    if method == "ordered":
        return ordered(pixels, palette, strength=strength)
    _check_strength(strength)
    if rdo:
        return rate_aware(pixels, palette, rdo=rdo)
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


def _adaptive(
    pixels: NDArray[np.uint8], palette: NDArray[np.uint8], pal: NDArray[np.float64],
    levels: NDArray[np.float32], rdo: float, nearest_indices: NDArray[np.uint8],
) -> NDArray[np.uint8]:
    """Run the adaptive kernel; the rate penalties are ``rdo`` × the mean nearest distance."""
    penalty = rdo * mean_nearest_distance(pixels, palette, nearest_indices) if rdo else 0.0
    # the kernel turns activity into the weights of rate_weights as it goes (no float map)
    activity = local_activity(pixels) if rdo else np.zeros((0, 0), dtype=np.int16)
    # without diffusion every pixel's nearest entry is the one given: no search
    known = (np.ascontiguousarray(nearest_indices, dtype=np.uint8) if levels.shape[0] == 0
             else np.zeros((0, 0), dtype=np.uint8))
    if known.shape[0]:  # the search tables are not read
        k = pal.shape[0]
        order, gap = np.zeros((k, k), dtype=np.int64), np.zeros((k, k), dtype=np.float64)
    else:
        order, gap = _search_tables(pal)
    out = np.empty(pixels.shape[:2], dtype=np.uint8)
    _dither.adaptive_indices(pixels, pal, order, gap, _clear_entries(palette), levels, activity,
                             RATE_FLOOR, RATE_CEIL, RATE_ACTIVITY, known, DEFAULT_CLAMP,
                             SKIP_ERROR**2, penalty, penalty, out)
    return out


def mean_nearest_distance(
    pixels: NDArray[np.uint8], palette: NDArray[np.uint8], indices: NDArray[np.uint8]
) -> float:
    """Mean squared distance (sum over channels, 8-bit levels) of the pixels to their entries.

    Parameters
    ----------
    pixels : (H, W, C) uint8 ndarray
    palette : (K, C) uint8 ndarray
    indices : (H, W) uint8 ndarray

    Returns
    -------
    float
    """
    return float(_dither.mean_distance(np.ascontiguousarray(pixels),
                                       np.ascontiguousarray(palette, dtype=np.float64),
                                       np.ascontiguousarray(indices, dtype=np.uint8)))


def _check_rdo(rdo: float) -> None:
    if not (_is_number(rdo) and math.isfinite(rdo) and rdo >= 0):
        raise InvalidOptionError(f"rdo must be a number >= 0, got {rdo!r}")


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
