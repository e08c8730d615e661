"""Exact nearest-palette-colour index for every pixel.

Pixels of one colour share their nearest palette entry, so the search runs once per distinct colour
of the histogram and a lookup spreads the answers over the pixels.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .colorspace import to_working
from .engines import Engine
from .histogram import Histogram

__all__ = ["remap"]


def remap(
    histogram: Histogram,
    palette: NDArray[np.uint8],
    shape: tuple[int, int],
    engine: Engine,
    space: str = "rgb",
    *,
    colors_working: NDArray[np.float64] | None = None,
) -> NDArray[np.uint8]:
    """Index of the nearest palette colour (in the working space) for every pixel.

    Parameters
    ----------
    histogram : Histogram
        Of the image, with ``inverse`` of length H × W.
    palette : (K, C) uint8 ndarray
        K ≤ 256.
    shape : (H, W)
    engine : Engine
        Runs the nearest-centre search.
    space : str
        Working colour space the distances are measured in.
    colors_working : (n, C) float64 ndarray, optional
        ``histogram.colors`` already in the working space. Passing the very array the palette was
        fitted on lets an engine reuse what it knows about it (the numba engine's bounds).

    Returns
    -------
    (H, W) uint8 ndarray
        Palette indices; ties go to the lower index.
    """
    if colors_working is None:
        colors_working = to_working(histogram.colors, space)
    labels, _ = engine.assign(colors_working, to_working(palette, space))
    return histogram.spread(labels.astype(np.uint8)).reshape(shape)
