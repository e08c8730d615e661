"""Image quality and size figures; the image metrics come from scikit-image."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

__all__ = ["mse", "psnr", "ssim", "bits_per_pixel", "visible"]


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
    return float(mean_squared_error(*_pair(original, quantized)))


def psnr(original: NDArray[np.uint8], quantized: NDArray[np.uint8]) -> float:
    """Peak signal-to-noise ratio in dB (``inf`` for identical images).

    Parameters
    ----------
    original, quantized : (H, W, C) uint8 ndarray
    """
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
    a, b = _pair(original, quantized)
    side = min(a.shape[0], a.shape[1])
    if side < 3:
        return 1.0 if np.array_equal(a, b) else None
    win = min(7, side if side % 2 else side - 1)
    return float(structural_similarity(a, b, win_size=win, data_range=255, channel_axis=2))


def bits_per_pixel(n_bytes: int, width: int, height: int) -> float:
    """File size in bits divided by the number of pixels."""
    return 8.0 * n_bytes / (width * height)
