"""Original and quantized pictures next to each other."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import NDArray

from ..encode import write_atomic
from ..report import human_bytes, plural

__all__ = ["side_by_side", "save_figure"]


def side_by_side(
    original: NDArray[np.uint8],
    quantized: NDArray[np.uint8],
    *,
    original_bytes: int,
    compressed_bytes: int,
    psnr: float,
    ssim: float | None = None,
    n_colors: int | None = None,
    width_inches: float = 12.0,
) -> Figure:
    """Original and quantized pictures next to each other, with sizes and quality in the titles.

    Parameters
    ----------
    original, quantized : (H, W, C) uint8 ndarray
    original_bytes, compressed_bytes : int
        File sizes shown in the titles.
    psnr : float
    ssim : float, optional
    n_colors : int, optional
        Colours in the quantized picture.
    width_inches : float

    Returns
    -------
    matplotlib.figure.Figure
    """
    height, width = original.shape[:2]
    fig = Figure(figsize=(width_inches, width_inches / 2 * height / width + 0.9), layout="constrained")
    axes = fig.subplots(1, 2)
    quality = "lossless" if not math.isfinite(psnr) else f"PSNR {psnr:.2f} dB"
    if ssim is not None:
        quality += f", SSIM {ssim:.3f}"
    colours = f"{plural(n_colors, 'colour')}, " if n_colors is not None else ""
    titles = (
        f"original — {human_bytes(original_bytes)}",
        f"quantized — {colours}{human_bytes(compressed_bytes)} "
        f"({original_bytes / compressed_bytes:.1f}× smaller)\n{quality}",
    )
    for ax, pixels, title in zip(axes, (original, quantized), titles):
        grey = pixels.shape[2] == 1
        ax.imshow(pixels[:, :, 0] if grey else pixels, cmap="gray" if grey else None,
                  vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, *, overwrite: bool = False, dpi: int = 100) -> Path:
    """Render ``fig`` to PNG (or the format of the suffix) and write it atomically."""
    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lstrip(".") or "png", dpi=dpi)
    return write_atomic(path, buffer.getvalue(), overwrite=overwrite)
