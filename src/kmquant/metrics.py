"""Image quality and size figures; the image metrics come from scikit-image.

scikit-image is imported inside the functions: it pulls in SciPy's statistics (half a second),
which a command that measures nothing should not pay for.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

__all__ = ["mse", "psnr", "ssim", "delta_e", "bits_per_pixel", "visible"]

#: Pixels per chunk of rows in :func:`delta_e` (bounds its memory to about 100 MB).
_DELTA_E_CHUNK = 1 << 20
#: Bins per unit of ΔE in the histogram behind ``delta_e(..., percentile=q)``.
_DELTA_E_BINS = 1000


def visible(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """What a viewer sees: RGBA premultiplied by alpha; other images unchanged.

    The colour under a fully transparent pixel is invisible and arbitrary (kmquant stores it as
    black), so quality is measured on premultiplied values, where it counts in proportion to its
    opacity.

    Parameters
    ----------
    pixels : (H, W, C) uint8 ndarray

    Returns
    -------
    (H, W, C) uint8 ndarray
    """
    if pixels.shape[2] != 4:
        return pixels
    alpha = pixels[:, :, 3:].astype(np.float64) / 255.0
    rgb = np.rint(pixels[:, :, :3] * alpha).astype(np.uint8)
    return np.concatenate([rgb, pixels[:, :, 3:]], axis=2)


def _pair(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> tuple[np.ndarray, np.ndarray]:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return a, b


def mse(original: NDArray[np.uint8], quantized: NDArray[np.uint8]) -> float:
    """Mean squared error over all pixels and channels.

    Parameters
    ----------
    original, quantized : (H, W, C) uint8 ndarray
    """
    from skimage.metrics import mean_squared_error

    return float(mean_squared_error(*_pair(original, quantized)))


def psnr(original: NDArray[np.uint8], quantized: NDArray[np.uint8]) -> float:
    """Peak signal-to-noise ratio in dB (``inf`` for identical images).

    Parameters
    ----------
    original, quantized : (H, W, C) uint8 ndarray
    """
    from skimage.metrics import peak_signal_noise_ratio

    a, b = _pair(original, quantized)
    if np.array_equal(a, b):
        return math.inf
    return float(peak_signal_noise_ratio(a, b, data_range=255))


def ssim(original: NDArray[np.uint8], quantized: NDArray[np.uint8]) -> float | None:
    """Mean structural similarity (Wang et al. 2004), 7×7 windows, channels averaged.

    Parameters
    ----------
    original, quantized : (H, W, C) uint8 ndarray

    Returns
    -------
    float or None
        None for images under 3 pixels on a side, which have no SSIM window.
    """
    from skimage.metrics import structural_similarity

    a, b = _pair(original, quantized)
    side = min(a.shape[0], a.shape[1])
    if side < 3:
        return 1.0 if np.array_equal(a, b) else None
    win = min(7, side if side % 2 else side - 1)
    return float(structural_similarity(a, b, win_size=win, data_range=255, channel_axis=2))


def bits_per_pixel(n_bytes: int, width: int, height: int) -> float:
    """File size in bits divided by the number of pixels."""
    return 8.0 * n_bytes / (width * height)


def delta_e(
    original: NDArray[np.uint8], quantized: NDArray[np.uint8], *, percentile: float | None = None
) -> float:
    """Mean (or a percentile of) the CIEDE2000 colour difference per pixel.

    Colours go to CIELAB (D65) with :func:`skimage.color.rgb2lab` and are compared with
    :func:`skimage.color.deltaE_ciede2000`. The work runs over chunks of rows, on each chunk's
    distinct (original, quantized) colour pairs only -- a quantized image has few of them -- so
    memory stays bounded and large images are fast; the result is the same as per pixel.

    Parameters
    ----------
    original, quantized : (H, W, C) uint8 ndarray
        C = 3 (RGB), 4 (RGBA: alpha is ignored; pass :func:`visible` images to weigh colours by
        their opacity) or 1 (grey, compared as the RGB grey).
    percentile : float, optional
        From 0 to 100: return this percentile of the per-pixel differences instead of the mean
        (the smallest ΔE that at least ``percentile`` % of the pixels do not exceed, as
        ``numpy.percentile(..., method="inverted_cdf")``), to within 0.001.

    Returns
    -------
    float
        0.0 for identical colours; about 1 is a just-noticeable difference.

    Raises
    ------
    ValueError
        Shapes differ, C is not 1, 3 or 4, the images have no pixels, or ``percentile`` is out of
        range.

    Examples
    --------
    >>> import numpy as np
    >>> grey = np.full((2, 2, 3), 128, np.uint8)
    >>> delta_e(grey, grey)
    0.0
    """

    a, b = _pair(original, quantized)
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ValueError(f"images must be (H, W, C) with C = 1, 3 or 4, got shape {a.shape}")
    height, width = a.shape[:2]
    if height * width == 0:
        raise ValueError(f"images have no pixels (shape {a.shape})")
    if percentile is not None and not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be from 0 to 100, got {percentile!r}")
    rows = max(1, _DELTA_E_CHUNK // width)
    total = 0.0
    counts, sums = np.zeros(1), np.zeros(1)
    for start in range(0, height, rows):
        de, n = _pair_ciede2000(a[start:start + rows], b[start:start + rows])
        total += float(de @ n)
        if percentile is not None:
            bins = (de * _DELTA_E_BINS).astype(np.intp)
            counts = _add(counts, np.bincount(bins, weights=n))
            sums = _add(sums, np.bincount(bins, weights=de * n))
    if percentile is None:
        return total / (height * width)
    cumulative = np.cumsum(counts)
    i = int(np.searchsorted(cumulative, max(percentile / 100 * cumulative[-1], 0.5)))
    return float(sums[i] / counts[i])  # mean of the values in the bin: exact when they are equal


def _pair_ciede2000(
    a: NDArray[np.uint8], b: NDArray[np.uint8]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """CIEDE2000 of each distinct colour pair of two (h, w, C) images, and its pixel count."""

    def packed(pixels: NDArray[np.uint8]) -> NDArray[np.int64]:
        rgb = pixels.reshape(-1, pixels.shape[2]).astype(np.int64)
        if rgb.shape[1] == 1:
            return rgb[:, 0] * 0x010101
        return (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]

    from skimage.color import deltaE_ciede2000, rgb2lab

    def lab(keys: NDArray[np.int64]) -> NDArray[np.float64]:
        rgb = np.stack([keys >> 16, keys >> 8, keys], axis=-1) & 0xFF
        return rgb2lab(rgb.astype(np.uint8))

    pairs, n = np.unique((packed(a) << 24) | packed(b), return_counts=True)
    de = deltaE_ciede2000(lab(pairs >> 24), lab(pairs & 0xFFFFFF))
    return de, n.astype(np.float64)


def _add(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    """Sum of two 1-D arrays of maybe different lengths, the shorter padded with zeros."""
    if x.size < y.size:
        x, y = y, x
    x = x.copy()
    x[: y.size] += y
    return x
