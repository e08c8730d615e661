"""The pipeline: load → histogram → seed → refine → remap.

``quantize`` turns an image into a palette and indices; :mod:`kmquant.job` is the file-to-file job
built on it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from .colorspace import from_working, to_working
from .dither import adaptive, dither, rate_aware, refit_palette
from .encode import encode_png, order_palette, palette_order, write_atomic
from .engines import Engine, Session, get_engine
from .errors import ImageTooLargeError
from .histogram import Histogram, color_histogram
from .load import ImageSource, LoadedImage, load_image
from .nearest import nearest_entries
from .options import Options
from .refine import Progress, RefineResult, refine, report_progress
from .report import plural
from .seeding import seed_centers
from .swaps import swap_search

__all__ = ["Result", "Prepared", "quantize", "quantize_loaded", "quantize_prepared", "prepare"]


@dataclass(frozen=True)
class Result:
    """A quantized image: a palette and one palette index per pixel.

    Attributes
    ----------
    palette : (K, C) uint8 ndarray
        C = 1 (grey), 3 (RGB) or 4 (RGBA); translucent entries first, then by luma.
    indices : (H, W) uint8 ndarray
    inertia : float
        k-means objective: sum over all pixels of the squared distance (working space) to the
        centre of their cluster, before the centres were rounded to 8 bits.
    n_iter : int
        k-means iterations run (0 when the image had no more than K colours).
    engine : str
    k_requested : int
    timings : dict of str to float
        Seconds per stage: histogram, seed, refine, remap.
    notes : tuple of str
        Things a user should know (lossless shortcut, unconverged run...).
    lossless : bool
        The image had no more than K colours: every pixel keeps its exact colour.
    deflate_level : int or None
        The libdeflate level :meth:`to_png` uses (None: the default for the image's size).
    """

    palette: NDArray[np.uint8]
    indices: NDArray[np.uint8]
    inertia: float
    n_iter: int
    engine: str
    k_requested: int
    timings: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    lossless: bool = False
    deflate_level: int | None = None

    @property
    def colors_used(self) -> int:
        return int(self.palette.shape[0])

    def to_array(self) -> NDArray[np.uint8]:
        """The quantized picture as an ``(H, W, C)`` uint8 array."""
        return self.palette[self.indices]

    def to_image(self) -> Image.Image:
        """The quantized picture as a full-colour PIL image (mode L, RGB or RGBA)."""
        pixels = self.to_array()
        return Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)

    def to_png(self) -> bytes:
        """The indexed PNG (smallest bit depth for K, tRNS when translucent)."""
        return encode_png(self.palette, self.indices, level=self.deflate_level)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the indexed PNG atomically; see :func:`kmquant.encode.write_atomic`."""
        return write_atomic(path, self.to_png(), overwrite=overwrite)


def quantize(
    image: ImageSource,
    n_colors: int | None = None,
    *,
    options: Options | None = None,
    progress: Progress = None,
    **fields: Any,
) -> Result:
    """Reduce an image to ``n_colors`` colours found by k-means.

    Parameters
    ----------
    image : path, bytes, PIL.Image.Image or (H, W) / (H, W, 3|4) uint8 ndarray
    n_colors : int, optional
        K, 1 to 256 (default: ``options.n_colors``, 64).
    options : Options, optional
        Every setting at once; the defaults when omitted.
    progress : callable, optional
        ``progress(stage, done, total)``; returning False aborts with :class:`AbortedError`.
    **fields
        Any field of :class:`kmquant.Options` (``engine="numpy"``, ``dither="fs"``…), applied
        on top of ``options``.

    Returns
    -------
    Result

    Raises
    ------
    InvalidOptionError
        An unknown option or a value out of range.

    Examples
    --------
    >>> import numpy as np, kmquant
    >>> pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    >>> result = kmquant.quantize(pixels, 8, engine="numpy")
    >>> result.palette.shape, result.indices.shape
    ((8, 3), (32, 32))
    """
    if n_colors is not None:
        fields["n_colors"] = n_colors
    opts = Options.build(options, **fields)
    loaded = load_image(image, max_pixels=opts.max_pixels, max_memory=opts.max_memory,
                        allow_truncated=opts.allow_truncated)
    return quantize_loaded(loaded, opts, progress=progress)


def quantize_loaded(loaded: LoadedImage, options: Options, *, progress: Progress = None) -> Result:
    """Quantize an already decoded image; see :func:`quantize`."""
    result, _ = quantize_prepared(
        prepare(loaded.pixels, options.space), options, get_engine(options.engine),
        progress=progress,
    )
    return result


@dataclass(frozen=True)
class Prepared:
    """An image made ready for quantization at any K: its colour histogram in the working space.

    Attributes
    ----------
    histogram : Histogram
        Of the pixels, every fully transparent one counted as (0, 0, 0, 0).
    pixels : (H, W, C) uint8 ndarray
        The decoded pixels (not copied).
    X : (n, C) float64 ndarray
        The colours to cluster, in the working space: every colour but (0, 0, 0, 0) when the image
        has fully transparent pixels (they get a palette entry of their own).
    counts : (n,) float64 ndarray
        Pixels of each row of ``X``.
    reserved : (r, C) uint8 ndarray
        r = 1 for the transparent entry, else 0.
    shape : (H, W)
    space : str
    seconds : float
        Time spent on the histogram.
    """

    histogram: Histogram
    pixels: NDArray[np.uint8]
    X: NDArray[np.float64]
    counts: NDArray[np.float64]
    reserved: NDArray[np.uint8]
    shape: tuple[int, int]
    space: str
    seconds: float


def prepare(pixels: NDArray[np.uint8], space: str = "rgb") -> Prepared:
    """Count the colours of ``pixels`` (H, W, C) once, for one or many quantizations."""
    clock = time.perf_counter()
    height, width, channels = pixels.shape
    # every fully transparent pixel is the same invisible colour, (0, 0, 0, 0)
    histogram = color_histogram(pixels, clear_transparent=channels == 4)
    colors, counts = histogram.colors, histogram.counts.astype(np.float64)
    X = to_working(colors, space)
    reserved = np.empty((0, channels), dtype=np.uint8)
    if channels == 4 and histogram.n_colors > 1 and not colors[0].any():
        # colours are sorted, so a transparent (0, 0, 0, 0) is row 0
        reserved, X, counts = colors[:1], X[1:], counts[1:]
    return Prepared(histogram, pixels, X, counts, reserved, (height, width), space,
                    time.perf_counter() - clock)


def quantize_prepared(
    prepared: Prepared,
    options: Options,
    engine: Engine,
    *,
    start: NDArray[np.float64] | None = None,
    progress: Progress = None,
) -> tuple[Result, NDArray[np.float64] | None]:
    """Quantize a prepared image with ``options.n_colors`` colours.

    Parameters
    ----------
    prepared : Prepared
    options : Options
    engine : Engine
    start : (K', C) float64 ndarray, optional
        Initial centres (for warm starts); default: seeded by ``options.init``.
    progress : callable, optional

    Returns
    -------
    result : Result
    centers : (K', C) float64 ndarray or None
        The fitted centres in the working space (None when the colours were kept exactly).
    """
    k = options.n_colors
    histogram = prepared.histogram
    timings: dict[str, float] = {"histogram": prepared.seconds}
    notes: list[str] = []
    reserved, X, counts = prepared.reserved, prepared.X, prepared.counts
    if k == 1 and reserved.size:  # one entry for everything: no transparent one of its own
        reserved = reserved[:0]
        X, counts = to_working(histogram.colors, prepared.space), histogram.counts.astype(float)

    centers = None
    session: Session | None = None
    if X.shape[0] <= k - reserved.shape[0]:
        palette, n_iter, inertia = histogram.colors, 0, 0.0
        notes.append(
            "the image has only 1 colour, so it is kept exactly (lossless)"
            if histogram.n_colors == 1 else
            f"the image has only {histogram.n_colors} colours, so all are kept exactly (lossless)"
        )
    else:
        check_clustering_memory(X.shape[0], X.shape[1], k, options.max_memory)
        session = engine.bind(X, counts)
        fitted = _fit_palette(
            session, k - reserved.shape[0], options, start, progress, timings, notes,
            score=_palette_error(session, reserved, prepared.space),
        )
        centers = fitted.centers
        palette = np.concatenate([reserved, from_working_unique(centers, prepared.space)])
        n_iter, inertia = fitted.n_iter, fitted.inertia

    clock = time.perf_counter()
    if options.dither in ("none", "on") or palette.shape[0] < 2 or centers is None:
        # each distinct colour's entry, ordered from the histogram's counts, then one pass over
        # the pixels (no count or rewrite of the indices afterwards)
        if centers is None:  # lossless: colour i of the histogram is palette entry i
            labels = np.arange(palette.shape[0])
        else:
            if session is None or X.shape[0] != histogram.n_colors:  # no transparent colour in it
                session = engine.bind(to_working(histogram.colors, prepared.space),
                                      histogram.counts.astype(np.float64))
            labels = nearest_entries(histogram, palette, space=prepared.space, session=session)
        used = np.bincount(labels, weights=histogram.counts, minlength=palette.shape[0])
        palette, new_index = palette_order(palette, used)
        indices = histogram.lookup(prepared.pixels, new_index[labels])
        if centers is not None and palette.shape[0] > 1 and (
                options.dither == "on" or options.effective_rdo):
            palette, indices = _rate_and_dither(prepared.pixels, palette, indices, options)
    else:
        indices = dither(_cleared(prepared.pixels), palette, options.dither,
                         strength=options.dither_strength)
        palette, indices = order_palette(palette, indices)
    timings["remap"] = time.perf_counter() - clock
    report_progress(progress, "remap", 1, 1)
    result = Result(palette, indices, inertia, n_iter, engine.name, k, timings, tuple(notes),
                    lossless=centers is None, deflate_level=options.deflate_level)
    return result, centers


def _fit_palette(
    session: Session,
    k: int,
    options: Options,
    start: NDArray[np.float64] | None,
    progress: Progress,
    timings: dict[str, float],
    notes: list[str],
    score: Callable[[RefineResult], float] | None = None,
) -> RefineResult:
    """Seed (unless ``start`` is given) and refine K centres for the bound weighted colours.

    Parameters
    ----------
    session : Session
        The engine bound to the distinct colours ``X`` (n, C), n > K, and their counts.
    k : int
    start : (K, C) float64 ndarray or None
    timings, notes
        Filled in.
    score : callable, optional
        What the swap search compares (see :func:`_palette_error`); default the inertia.

    Returns
    -------
    RefineResult
    """
    clock = time.perf_counter()
    if start is None:
        start = seed_centers(options.init, session.X, session.w, k, options.seed)
    timings["seed"] = time.perf_counter() - clock
    clock = time.perf_counter()
    fitted = refine(session, start, max_iter=options.max_iter, tol=options.effective_tol,
                    seed=options.seed, progress=progress)
    timings["refine"] = time.perf_counter() - clock
    swaps = options.effective_swaps
    if swaps:
        clock = time.perf_counter()

        def settle(trial: RefineResult) -> RefineResult:
            # a swap is judged as what would be returned: converged by the usual stopping rule
            return refine(session, trial.centers, max_iter=options.max_iter,
                          tol=options.effective_tol, seed=options.seed)

        fitted, accepted = swap_search(session, fitted, rounds=swaps, settle=settle,
                                       score=score)
        timings["swaps"] = time.perf_counter() - clock
        notes.append(f"{accepted} of {plural(swaps, 'swap')} kept")
    if not fitted.converged:
        notes.append(
            f"k-means stopped at max_iter={options.max_iter} before converging; "
            "raise max_iter for a slightly better palette"
        )
    return fitted


def _palette_error(
    session: Session, reserved: NDArray[np.uint8], space: str
) -> Callable[[RefineResult], float]:
    """The error of the picture that fitted centres give once written: Σ count × squared distance
    (working space) of each bound colour to its nearest palette entry, the centres rounded to 8
    bits as :func:`from_working_unique` rounds them, the ``reserved`` entries included.

    The swap search compares swaps by this rather than by the centres' own inertia: rounding
    moves every centre a little, and a swap that lowers the inertia may still raise this (with
    ``space="rgb"`` it is the written image's squared error, so PSNR follows it exactly).
    """

    def error(fitted: RefineResult) -> float:
        palette = np.concatenate([reserved, from_working_unique(fitted.centers, space)])
        _, sq_dist = session.assign(to_working(palette, space))
        return float(session.w @ sq_dist)

    return error


#: Bytes per distinct colour while k-means runs, at most: the colour in the working space and its
#: weight (C + 1 doubles), the engine's label, bounds and distance (3 × 8 bytes), its per-group
#: float32 bounds (at most 32 groups) and the copies a step hands back (labels, distances).
def clustering_bytes(n_colors: int, channels: int, k: int) -> int:
    """Bytes k-means on ``n_colors`` distinct colours of ``channels`` channels at K = ``k`` needs
    at most (the native engine's state; the other engines need no more per colour)."""
    groups = min(32, max(1, round(k / 10)))
    return n_colors * (8 * (channels + 1) + 3 * 8 + 4 * groups + 2 * 8)


def check_clustering_memory(n_colors: int, channels: int, k: int, max_memory: int | None) -> None:
    """Refuse, before k-means starts, when its state would not fit the memory budget.

    Raises
    ------
    ImageTooLargeError
    """
    if max_memory is None:
        return
    need = clustering_bytes(n_colors, channels, k)
    if need > max_memory:
        raise ImageTooLargeError(
            f"k-means on {n_colors:,} distinct colours at K = {k} would need about "
            f"{need / 2**20:,.0f} MB, over the memory budget of {max_memory / 2**20:,.0f} MB; "
            "raise --max-memory if this machine has the memory"
        )


def _rate_and_dither(
    pixels: NDArray[np.uint8], palette: NDArray[np.uint8], nearest: NDArray[np.uint8],
    options: Options,
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Adaptive dithering (``dither="on"``) or rate-aware entries, from the nearest ones.

    Without dithering the palette is then refitted to the pixels each entry got (PSNR back for
    free); with it, the entries stay where k-means put them (the dither mixes them).

    Rate-aware entries are used in the ``rgb`` space only (:attr:`Options.effective_rdo`).
    """
    pixels = _cleared(pixels)
    rdo = options.effective_rdo
    if options.dither == "on":
        indices = adaptive(pixels, palette, strength=options.dither_strength, rdo=rdo,
                           nearest_indices=nearest)
    else:
        indices = rate_aware(pixels, palette, rdo=options.rdo, nearest_indices=nearest)
        palette = refit_palette(pixels, indices, palette)
    return order_palette(palette, indices)


def _cleared(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """RGBA pixels with every fully transparent one made (0, 0, 0, 0), as the histogram counts
    them (a copy only when there is such a pixel); other images unchanged."""
    if pixels.shape[2] != 4 or pixels[:, :, 3].all():
        return pixels
    return np.where(pixels[:, :, 3:] == 0, np.uint8(0), pixels)


def from_working_unique(centers: NDArray[np.float64], space: str) -> NDArray[np.uint8]:
    """Round centres (K, C) to 8-bit colours, merging those that round alike; order kept.

    The fitted order is kept so that an engine's bounds stay tight for the remap.
    """
    rounded = from_working(centers, space)
    _, first = np.unique(rounded, axis=0, return_index=True)
    return rounded[np.sort(first)]
