"""Exact nearest-palette-colour index for every pixel.

Pixels of one colour share their nearest palette entry, so the search runs once per distinct colour
of the histogram and a look-up spreads the answers over the pixels.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .colorspace import to_working
from .engines import Session, get_engine
from .histogram import Histogram

__all__ = ["remap", "nearest_entries"]


def remap(
    histogram: Histogram,
    pixels: NDArray[np.uint8],
    palette: NDArray[np.uint8],
    *,
    space: str = "rgb",
    session: Session | None = None,
) -> NDArray[np.uint8]:
    """Index of the nearest palette colour (in the working space) for every pixel.

    Parameters
    ----------
    histogram : Histogram
        Of ``pixels``.
    pixels : (H, W, C) uint8 ndarray
    palette : (K, C) uint8 ndarray
        K ≤ 256.
    space : str
        Working colour space the distances are measured in.
    session : Session, optional
        An engine bound to ``histogram.colors`` in the working space (any weights). Passing the
        session the palette was fitted in lets the engine reuse what it knows (the native
        engine's bounds). Default: the native engine, bound here.

    Returns
    -------
    (H, W) uint8 ndarray
        Palette indices; ties go to the lower index.
    """
    labels = nearest_entries(histogram, palette, space=space, session=session)
    return histogram.lookup(pixels, labels.astype(np.uint8))


def nearest_entries(
    histogram: Histogram,
    palette: NDArray[np.uint8],
    *,
    space: str = "rgb",
    session: Session | None = None,
) -> NDArray[np.intp]:
    """Index of the nearest palette colour for every distinct colour of ``histogram``.

    Parameters
    ----------
    histogram : Histogram
    palette : (K, C) uint8 ndarray
    space, session
        As for :func:`remap`.

    Returns
    -------
    (n,) intp ndarray
        One entry per row of ``histogram.colors``; ties go to the lower index.
    """
    if session is None:
        colors = to_working(histogram.colors, space)
        session = get_engine("native").bind(colors, np.ones(colors.shape[0]))
    labels, _ = session.assign(to_working(palette, space))
    return labels
