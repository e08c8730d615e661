"""Original and compressed pictures compared: where the error is, and how large."""

from __future__ import annotations

import math

import numpy as np
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from numpy.typing import NDArray

from ..metrics import psnr, ssim, visible
from ..report import human_bytes

__all__ = ["compare_figure", "largest_error_region"]

_GAP = 2  # white columns between the two zoomed crops
_MARK = "#ffd400"  # the rectangle: yellow with a black outline shows on any picture


def largest_error_region(
    original: NDArray[np.uint8],
    compressed: NDArray[np.uint8],
    *,
    size: int = 64,
) -> tuple[int, int, int, int]:
    """The ``size`` × ``size`` window where the two images differ most.

    The window is clipped to the image (the whole image when it is smaller than ``size`` on a
    side). Sums come from an integral image of the squared error, in integers, so the answer is
    exact; ties go to the first window in row-major order.

    Parameters
    ----------
    original, compressed : (H, W, C) uint8 ndarray
    size : int
        Side of the window in pixels, at least 1.

    Returns
    -------
    (top, left, height, width) : tuple of int
        ``original[top:top + height, left:left + width]`` is the window with the largest mean
        squared error; ``height = min(size, H)``, ``width = min(size, W)``.

    Raises
    ------
    ValueError
        If the images differ in shape, are not (H, W, C) uint8, or ``size`` is below 1.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((100, 120, 3), np.uint8)
    >>> b = a.copy()
    >>> b[40:50, 70:80] = 200
    >>> largest_error_region(a, b, size=10)
    (40, 70, 10, 10)
    """
    _check_pair(original, compressed, "original", "compressed")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a whole number of pixels, at least 1 (got {size!r})")
    height, width = original.shape[:2]
    h, w = min(int(size), height), min(int(size), width)
    squared = _squared_error(original, compressed).sum(axis=2)
    integral = np.zeros((height + 1, width + 1), dtype=np.int64)
    np.cumsum(np.cumsum(squared, axis=0), axis=1, out=integral[1:, 1:])
    windows = integral[h:, w:] - integral[:-h, w:] - integral[h:, :-w] + integral[:-h, :-w]
    top, left = np.unravel_index(int(np.argmax(windows)), windows.shape)
    return int(top), int(left), h, w


def compare_figure(
    original: NDArray[np.uint8],
    compressed: NDArray[np.uint8],
    *,
    original_bytes: int,
    compressed_bytes: int,
    original_name: str = "original",
    compressed_name: str = "compressed",
    crop_size: int = 64,
    width_inches: float = 12.0,
) -> Figure:
    """Four panels: both pictures, a zoom on the worst region, and a map of the error.

    Top left the original, top right the compressed picture (name, file size, ratio, PSNR and
    SSIM in the titles); a rectangle on both marks the ``crop_size`` window with the largest
    error. Bottom left that window zoomed, original and compressed side by side (2 white pixels
    apart, nearest-neighbour). Bottom right the root-mean-square error over channels at every
    pixel, with a colour bar. Quality and error are measured on :func:`kmquant.metrics.visible`
    (RGBA premultiplied), as in the report.

    Parameters
    ----------
    original, compressed : (H, W, C) uint8 ndarray
        The same size; C = 1 (grey, shown in grey), 3 (RGB) or 4 (RGBA, shown with alpha).
    original_bytes, compressed_bytes : int
        File sizes, positive, shown in the titles.
    original_name, compressed_name : str
        Names for the titles (file names, for instance).
    crop_size : int
        Side of the zoomed window in pixels.
    width_inches : float

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.axes`` is ``[original, compressed, zoom, error map, colour bar]``.

    Raises
    ------
    ValueError
        If the images differ in size or are not (H, W, 1|3|4) uint8, or a byte count is not
        positive.
    """
    _check_pair(original, compressed, original_name, compressed_name)
    for label, n in (("original_bytes", original_bytes), ("compressed_bytes", compressed_bytes)):
        if n <= 0:
            raise ValueError(f"{label} must be a positive file size in bytes (got {n!r})")
    seen_original, seen_compressed = visible(original), visible(compressed)
    region = largest_error_region(seen_original, seen_compressed, size=crop_size)

    height, width = original.shape[:2]
    fig = Figure(figsize=(width_inches, 0.9 * width_inches * height / width + 1.3),
                 layout="constrained")
    (top_left, top_right), (bottom_left, bottom_right) = fig.subplots(2, 2)
    titles = _picture_titles(seen_original, seen_compressed, original_bytes, compressed_bytes,
                             original_name, compressed_name)
    for ax, pixels, title in zip((top_left, top_right), (original, compressed), titles):
        _show(ax, pixels)
        _mark(ax, region)
        ax.set_title(title, fontsize=10)
    _zoom_panel(bottom_left, original, compressed, region, original_name, compressed_name)
    _error_panel(fig, bottom_right, _rms_error(seen_original, seen_compressed))
    return fig


def _rms_error(original: NDArray[np.uint8], compressed: NDArray[np.uint8]) -> NDArray[np.float64]:
    """Root-mean-square error over channels at every pixel, on the 0–255 scale.

    Parameters
    ----------
    original, compressed : (H, W, C) uint8 ndarray

    Returns
    -------
    (H, W) float64 ndarray
    """
    return np.sqrt(_squared_error(original, compressed).mean(axis=2))


def _squared_error(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> NDArray[np.int64]:
    """(H, W, C) int64 squared differences."""
    diff = a.astype(np.int64) - b.astype(np.int64)
    return diff * diff


def _check_pair(a: NDArray[np.uint8], b: NDArray[np.uint8], name_a: str, name_b: str) -> None:
    for name, pixels in ((name_a, a), (name_b, b)):
        if (not isinstance(pixels, np.ndarray) or pixels.ndim != 3 or pixels.dtype != np.uint8
                or pixels.shape[2] not in (1, 3, 4)):
            raise ValueError(f"{name} must be an (H, W, C) uint8 array with C = 1, 3 or 4 "
                             f"(got {getattr(pixels, 'shape', None)}, "
                             f"{getattr(pixels, 'dtype', type(pixels).__name__)})")
    if a.shape != b.shape:
        raise ValueError(f"the two images must be the same size: {name_a} is {_describe(a)}, "
                         f"{name_b} is {_describe(b)}; compare a picture with its own quantized "
                         f"version")


def _describe(pixels: NDArray[np.uint8]) -> str:
    height, width, channels = pixels.shape
    return f"{width}×{height} with {channels} channel{'s' if channels != 1 else ''}"


def _picture_titles(
    seen_original: NDArray[np.uint8],
    seen_compressed: NDArray[np.uint8],
    original_bytes: int,
    compressed_bytes: int,
    original_name: str,
    compressed_name: str,
) -> tuple[str, str]:
    value = psnr(seen_original, seen_compressed)
    quality = "lossless" if not math.isfinite(value) else f"PSNR {value:.2f} dB"
    similarity = ssim(seen_original, seen_compressed)
    if similarity is not None:
        quality += f", SSIM {similarity:.3f}"
    if compressed_bytes <= original_bytes:
        change = f"{original_bytes / compressed_bytes:.1f}× smaller"
    else:
        change = f"{compressed_bytes / original_bytes:.1f}× larger"
    return (
        f"{original_name} — {human_bytes(original_bytes)}",
        f"{compressed_name} — {human_bytes(compressed_bytes)} ({change})\n{quality}",
    )


def _show(ax: Axes, pixels: NDArray[np.uint8]) -> None:
    """``imshow`` an (H, W, C) uint8 picture: grey in grey, RGB(A) as it is."""
    grey = pixels.shape[2] == 1
    ax.imshow(pixels[:, :, 0] if grey else pixels, cmap="gray" if grey else None,
              vmin=0, vmax=255, interpolation="nearest")
    ax.set_axis_off()


def _mark(ax: Axes, region: tuple[int, int, int, int]) -> None:
    top, left, h, w = region
    outline = [patheffects.withStroke(linewidth=3.5, foreground="black")]
    ax.add_patch(Rectangle((left - 0.5, top - 0.5), w, h, fill=False, edgecolor=_MARK,
                           linewidth=1.5, path_effects=outline))


def _zoom_panel(
    ax: Axes,
    original: NDArray[np.uint8],
    compressed: NDArray[np.uint8],
    region: tuple[int, int, int, int],
    original_name: str,
    compressed_name: str,
) -> None:
    top, left, h, w = region
    window = (slice(top, top + h), slice(left, left + w))
    gap = np.full((h, _GAP, original.shape[2]), 255, dtype=np.uint8)
    _show(ax, np.concatenate([original[window], gap, compressed[window]], axis=1))
    ax.set_title(f"largest error: rows {top}–{top + h - 1}, columns {left}–{left + w - 1}\n"
                 f"{original_name} (left) | {compressed_name} (right)", fontsize=10)


def _error_panel(fig: Figure, ax: Axes, error: NDArray[np.float64]) -> None:
    image = ax.imshow(error, cmap="magma", vmin=0.0, vmax=max(float(error.max()), 1.0),
                      interpolation="nearest")
    ax.set_title(f"error per pixel: mean {error.mean():.1f}, max {error.max():.1f}", fontsize=10)
    ax.set_axis_off()
    fig.colorbar(image, ax=ax, label="RMS error (0–255)", shrink=0.9)
