"""The pixels in RGB space, coloured by their cluster, and the palette with each colour's share."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import NDArray

from ..report import plural

__all__ = ["scatter_figure", "palette_shares"]

_STRIP_COLUMNS = 1000  # resolution of the swatch strip; every used colour gets at least one column
_LABEL_POINTS = 8.0  # font size of the share labels
_STRIP_RATIO = 7  # the scatter is this many times taller than the swatch strip


def palette_shares(indices: NDArray[np.integer], n_colors: int) -> NDArray[np.float64]:
    """Fraction of the pixels that each palette entry colours.

    Parameters
    ----------
    indices : (H, W) integer ndarray
        Palette index of every pixel, each below ``n_colors``.
    n_colors : int
        K, the palette size.

    Returns
    -------
    (K,) float64 ndarray
        Fractions summing to 1; 0 for unused entries.

    Raises
    ------
    ValueError
        If ``indices`` is empty, not integer, or holds an index outside ``0 .. n_colors - 1``.

    Examples
    --------
    >>> import numpy as np
    >>> palette_shares(np.array([[0, 0, 2, 0]], np.uint8), 3)
    array([0.75, 0.  , 0.25])
    """
    indices = np.asarray(indices)
    if n_colors < 1:
        raise ValueError(f"n_colors must be at least 1 (got {n_colors})")
    if indices.size == 0 or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"indices must be a non-empty integer array "
                         f"(got shape {indices.shape}, dtype {indices.dtype})")
    low, high = int(indices.min()), int(indices.max())
    if low < 0 or high >= n_colors:
        raise ValueError(f"indices must lie in 0..{n_colors - 1} for a palette of {n_colors} "
                         f"colours (found {low}..{high}); pass the palette that goes with them")
    counts = np.bincount(indices.ravel(), minlength=n_colors)
    return counts / indices.size


def scatter_figure(
    pixels: NDArray[np.uint8],
    palette: NDArray[np.uint8],
    indices: NDArray[np.uint8],
    *,
    sample_size: int = 5000,
    seed: int = 0,
    width_inches: float = 10.0,
) -> Figure:
    """A sample of the pixels in RGB space coloured by cluster, over a strip of the palette.

    Top (large): ``min(sample_size, n)`` pixels drawn without replacement by
    ``numpy.random.default_rng(seed)``, where n is the number of pixels (RGBA: of pixels that are
    not fully transparent), at their (R, G, B) coordinates (grey: R = G = B), each coloured by its
    palette colour; the palette entries (the k-means centres) as large diamonds with a black edge.
    Bottom: the palette as adjacent swatches whose widths are the colours' shares of the pixels,
    largest first, labelled in percent where the label fits.

    Parameters
    ----------
    pixels : (H, W, C) uint8 ndarray
        The original picture; C = 1 (grey), 3 (RGB) or 4 (RGBA).
    palette : (K, C) uint8 ndarray
    indices : (H, W) uint8 ndarray
        Palette index of every pixel (``kmquant.quantize(...).palette`` and ``.indices``).
    sample_size : int
        Most pixels to plot, at least 1.
    seed : int
        Seed of the sample: the same seed draws the same pixels.
    width_inches : float

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.axes`` is ``[scatter (3-D), swatch strip]``; the scatter's first collection holds
        the sampled pixels, its second the palette.

    Raises
    ------
    ValueError
        If the shapes do not fit together, an index is outside the palette, or ``sample_size``
        is below 1.
    """
    pixels, palette, indices = np.asarray(pixels), np.asarray(palette), np.asarray(indices)
    _check(pixels, palette, indices, sample_size)
    shares = palette_shares(indices, palette.shape[0])
    fig = Figure(figsize=(width_inches, 0.8 * width_inches), layout="constrained")
    grid = fig.add_gridspec(2, 1, height_ratios=(_STRIP_RATIO, 1))
    ax3d = fig.add_subplot(grid[0], projection="3d")
    strip = fig.add_subplot(grid[1])
    _scatter_panel(ax3d, pixels, palette, indices, sample_size=sample_size, seed=seed)
    _strip_panel(strip, palette, shares, strip_inches=(0.94 * width_inches,
                                                       0.8 * width_inches / (_STRIP_RATIO + 1)))
    return fig


def _check(pixels: NDArray[np.uint8], palette: NDArray[np.uint8], indices: NDArray[np.uint8],
           sample_size: int) -> None:
    if pixels.ndim != 3 or pixels.dtype != np.uint8 or pixels.shape[2] not in (1, 3, 4):
        raise ValueError(f"pixels must be an (H, W, C) uint8 array with C = 1, 3 or 4 "
                         f"(got {pixels.shape}, {pixels.dtype})")
    if palette.ndim != 2 or palette.dtype != np.uint8 or palette.shape[1] != pixels.shape[2]:
        raise ValueError(f"palette must be a (K, {pixels.shape[2]}) uint8 array to go with "
                         f"pixels of shape {pixels.shape} (got {palette.shape}, {palette.dtype})")
    if indices.shape != pixels.shape[:2]:
        raise ValueError(f"indices must be (H, W) = {pixels.shape[:2]}, one per pixel "
                         f"(got {indices.shape})")
    if isinstance(sample_size, bool) or not isinstance(sample_size, (int, np.integer)) \
            or sample_size < 1:
        raise ValueError(f"sample_size must be a whole number, at least 1 (got {sample_size!r})")


def _rgb(colors: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """(N, C) → (N, 3): grey repeated into R, G and B; alpha dropped."""
    return np.repeat(colors, 3, axis=1) if colors.shape[1] == 1 else colors[:, :3]


def _sample(pixels: NDArray[np.uint8], sample_size: int,
            seed: int) -> tuple[NDArray[np.intp], int]:
    """Flat positions of the sampled pixels (never fully transparent ones) and how many could be."""
    flat = pixels.reshape(-1, pixels.shape[2])
    candidates = np.flatnonzero(flat[:, 3]) if pixels.shape[2] == 4 else None
    n = flat.shape[0] if candidates is None else candidates.size
    chosen = np.random.default_rng(seed).choice(n, size=min(int(sample_size), n), replace=False)
    return (chosen if candidates is None else candidates[chosen]), n


def _scatter_panel(ax: Axes, pixels: NDArray[np.uint8], palette: NDArray[np.uint8],
                   indices: NDArray[np.uint8], *, sample_size: int, seed: int) -> None:
    positions, n = _sample(pixels, sample_size, seed)
    points = _rgb(pixels.reshape(-1, pixels.shape[2])[positions]).astype(np.float64)
    colors = _rgb(palette)[indices.ravel()[positions]] / 255.0
    ax.scatter(points[:, 0], points[:, 1], points[:, 2], c=colors, s=3,  # type: ignore[misc]
               linewidths=0, depthshade=False)  # (3-D axes: the third positional is zs)
    centres = palette if palette.shape[1] != 4 else palette[palette[:, 3] > 0]
    rgb = _rgb(centres).astype(np.float64)
    ax.scatter(rgb[:, 0], rgb[:, 1], rgb[:, 2], c=rgb / 255.0, s=90, marker="D",  # type: ignore[misc]
               edgecolors="black", linewidths=1.0, depthshade=False)
    for axis, name in zip("xyz", "RGB"):
        getattr(ax, f"set_{axis}lim")(0, 255)
        getattr(ax, f"set_{axis}label")(name)
    which = "visible pixels" if pixels.shape[2] == 4 else "pixels"
    ax.set_title(f"{positions.size:,} of {n:,} {which} (seed {seed}), coloured by their palette "
                 f"colour; ◆ = palette", fontsize=10)


def _strip_panel(ax: Axes, palette: NDArray[np.uint8], shares: NDArray[np.float64], *,
                 strip_inches: tuple[float, float]) -> None:
    order = np.argsort(-shares, kind="stable")
    used = order[shares[order] > 0]
    # rounded boundaries, not rounded widths: the widths then add up to the strip, each within a column
    bounds = np.rint(np.cumsum(shares[used]) / shares[used].sum() * _STRIP_COLUMNS).astype(np.intp)
    widths = np.maximum(np.diff(np.r_[0, bounds]), 1)
    colors = palette[used] if palette.shape[1] == 4 else _rgb(palette[used])
    ax.imshow(np.repeat(colors, widths, axis=0)[np.newaxis], interpolation="nearest",
              aspect="auto", extent=(0.0, 1.0, 0.0, 1.0))
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    ends = np.cumsum(widths) / widths.sum()
    for share, color, end, width in zip(shares[used], colors, ends, widths / widths.sum()):
        _label(ax, share, color, centre=end - width / 2, width_inches=width * strip_inches[0],
               height_inches=strip_inches[1])
    unused = palette.shape[0] - used.size
    note = f" ({unused} unused)" if unused else ""
    ax.set_title(f"palette: {plural(palette.shape[0], 'colour')}{note}, width = share of pixels",
                 fontsize=10)


def _label(ax: Axes, share: float, color: NDArray[np.uint8], *, centre: float,
           width_inches: float, height_inches: float) -> None:
    """Write the share on its swatch: across if it fits, upwards if only that fits, else not."""
    text = f"{100 * share:.1f}%"
    length = len(text) * 0.6 * _LABEL_POINTS / 72 + 0.06  # rough width of the text, in inches
    thickness = 1.3 * _LABEL_POINTS / 72
    if width_inches >= length:
        rotation = 0
    elif width_inches >= thickness and height_inches >= length:
        rotation = 90
    else:
        return
    ax.text(centre, 0.5, text, rotation=rotation, ha="center", va="center",
            fontsize=_LABEL_POINTS, color="black" if _luma_on_white(color) > 128 else "white")


def _luma_on_white(color: NDArray[np.uint8]) -> float:
    """Rec. 601 luma of a palette colour as shown over a white background."""
    rgb = _rgb(color[np.newaxis])[0].astype(np.float64)
    if color.shape[0] == 4:
        alpha = color[3] / 255.0
        rgb = rgb * alpha + 255.0 * (1.0 - alpha)
    return float(rgb @ np.array([0.299, 0.587, 0.114]))
