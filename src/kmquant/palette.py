"""One palette for many images: fit it once over all of them, map each to it exactly.

A catalogue, a sprite sheet or a set of map tiles should share one palette: the images then look
alike and one palette serves them all. :class:`Quantizer` fits K colours by k-means on the colour
histograms of all the images merged (each colour weighted by its pixels in all of them); its
:meth:`Quantizer.remap` and :func:`remap` map an image to a given palette, every pixel to its
exact nearest entry. The palette keeps its order in every output, so index i is the same colour in
every file. Colours that must stay exact (a brand colour, a transparent key) are kept as fixed
centres: they are in the palette as given and k-means moves the other centres around them.

Palettes are read from a PNG (its palette, or its colours when it has at most 256), a GIMP
``.gpl`` file or a list of hex colours (:func:`read_palette`).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .colorspace import to_working
from .dither import dither
from .encode import palette_order
from .engines import get_engine
from .errors import InputNotFoundError, InvalidOptionError
from .histogram import color_histogram
from .load import ImageSource, load_image
from .nearest import nearest_entries
from .options import MAX_COLORS, Options
from .pipeline import Result, from_working_unique
from .refine import Progress, refine, report_progress
from .seeding import extend_centers, seed_centers

__all__ = ["Quantizer", "remap", "read_palette", "parse_colors", "palette_of"]


class Quantizer:
    """A palette fitted once over many images, to map each of them to.

    Parameters
    ----------
    options : Options, optional
        ``n_colors`` is the palette size K; ``engine``, ``seed``, ``space``… steer the fit,
        ``dither`` the remap.
    keep_colors : (m, C) uint8 array-like or str, optional
        Colours the palette must hold exactly (m < K): an array, or text for
        :func:`parse_colors` (``"#ff0000, 00ff00"``).
    **fields
        Any field of :class:`kmquant.Options`.

    Attributes
    ----------
    palette_ : (K', C) uint8 ndarray
        After :meth:`fit`: the palette, translucent entries first, then by luma; K' ≤ K (fewer
        when the images have fewer colours).

    Examples
    --------
    >>> import numpy as np, kmquant
    >>> rng = np.random.default_rng(0)
    >>> a, b = (rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(2))
    >>> q = kmquant.Quantizer(n_colors=8).fit(a, b)
    >>> q.palette_.shape, q.remap(a).indices.shape
    ((8, 3), (16, 16))
    """

    def __init__(
        self, options: Options | None = None, *, keep_colors: Any = None, **fields: Any
    ) -> None:
        self.options = Options.build(options, **fields)
        self.keep_colors = None if keep_colors is None else palette_of(keep_colors)
        if self.keep_colors is not None and len(self.keep_colors) >= self.options.n_colors:
            raise InvalidOptionError(
                f"{len(self.keep_colors)} kept colours leave no room in a palette of "
                f"K = {self.options.n_colors}; raise K or keep fewer")
        self.palette_: NDArray[np.uint8] | None = None

    def fit(self, *images: ImageSource, progress: Progress = None) -> Quantizer:
        """Fit the palette over ``images`` (paths, bytes, PIL images or arrays); returns self.

        The images are decoded one at a time and only their colour histograms are kept, so the
        memory is that of the largest image plus the merged histogram.
        """
        if not images:
            raise InvalidOptionError("fit needs at least one image")
        opts = self.options
        colors, counts = _merged_histogram(images, opts, progress)
        kept = self.keep_colors
        channels = colors.shape[1] if kept is None else max(colors.shape[1], kept.shape[1])
        colors = _widen(colors, channels)
        kept = None if kept is None else _widen(kept, channels)
        reserved = np.empty((0, channels), np.uint8)
        if channels == 4 and len(colors) > 1 and not colors[0].any():
            reserved, colors, counts = colors[:1], colors[1:], counts[1:]  # the transparent entry
        free = opts.n_colors - len(reserved)
        n_kept = 0 if kept is None else len(kept)
        if len(colors) <= free and n_kept == 0:
            palette = np.concatenate([reserved, colors])
        else:
            X, w = to_working(colors, opts.space), counts.astype(np.float64)
            k = min(free, len(colors) + n_kept)
            if kept is not None:
                start = extend_centers(X, w, to_working(kept, opts.space), k, opts.seed)
            else:
                start = seed_centers(opts.init, X, w, k, opts.seed)
            fitted = refine(get_engine(opts.engine).bind(X, w), start, max_iter=opts.max_iter,
                            tol=opts.effective_tol, seed=opts.seed, progress=progress, fixed=n_kept)
            free_part = from_working_unique(fitted.centers[n_kept:], opts.space)
            parts = [reserved] + ([kept] if kept is not None else []) + [free_part]
            palette = _unique_rows(np.concatenate(parts))
        # one order for every image: translucent first, then by luma (what order_palette does)
        order_weights = np.ones(len(palette))
        self.palette_, _ = palette_order(palette, order_weights)
        return self

    def remap(self, image: ImageSource, *, progress: Progress = None) -> Result:
        """Map ``image`` to the fitted palette; see :func:`remap`."""
        if self.palette_ is None:
            raise InvalidOptionError("call fit(...) before remap(...): there is no palette yet")
        return remap(image, self.palette_, options=self.options, progress=progress)


def remap(
    image: ImageSource,
    palette: Any,
    *,
    options: Options | None = None,
    progress: Progress = None,
    **fields: Any,
) -> Result:
    """Map every pixel of ``image`` to its nearest colour of ``palette``, kept as given.

    Parameters
    ----------
    image : path, bytes, PIL.Image.Image or uint8 ndarray
    palette : (K, C) uint8 array-like or str
        1 ≤ K ≤ 256 colours (text for :func:`parse_colors`, a path for :func:`read_palette`).
        The output keeps its entries and their order, used or not, so that every image mapped to
        it shares it.
    options : Options, optional
        ``space`` (the distance), ``dither``, the limits.
    progress : callable, optional
    **fields
        Any field of :class:`kmquant.Options`.

    Returns
    -------
    Result
        ``palette`` is the given palette (widened to the image's channels when it has fewer: a
        grey palette for an RGB image, an opaque one for RGBA); ``indices`` the nearest entries,
        ties to the lower index.
    """
    opts = Options.build(options, **fields)
    clock = time.perf_counter()
    colors = palette_of(palette)
    loaded = load_image(image, max_pixels=opts.max_pixels, max_memory=opts.max_memory,
                        allow_truncated=opts.allow_truncated)
    channels = max(loaded.channels, colors.shape[1])
    pixels, colors = _widen_pixels(loaded.pixels, channels), _widen(colors, channels)
    notes: list[str] = []
    if loaded.channels == 4 and bool((colors[:, 3] == 255).all()):
        notes.append("the palette has no transparent entry: transparent pixels become opaque")
    rdo = opts.effective_rdo
    if (opts.dither != "none" or rdo) and len(colors) > 1:
        indices = dither(pixels, colors, opts.dither, strength=opts.dither_strength, rdo=rdo)
    else:
        histogram = color_histogram(pixels, clear_transparent=channels == 4)
        labels = nearest_entries(histogram, colors, space=opts.space)
        indices = histogram.lookup(pixels, labels.astype(np.uint8))
    report_progress(progress, "remap", 1, 1)
    return Result(colors, indices, inertia=0.0, n_iter=0, engine="remap",
                  k_requested=len(colors), timings={"remap": time.perf_counter() - clock},
                  notes=tuple(notes))


def palette_of(value: Any) -> NDArray[np.uint8]:
    """A palette given any way: an array-like (K, C), a path of a palette file
    (:func:`read_palette`) or text of hex colours (:func:`parse_colors`)."""
    if isinstance(value, os.PathLike) or (isinstance(value, str) and Path(value).is_file()):
        return read_palette(value)
    return _colors_of(value)


def read_palette(path: str | os.PathLike) -> NDArray[np.uint8]:
    """The colours of a palette file, in its order.

    Parameters
    ----------
    path : str or PathLike
        A GIMP palette (``.gpl``), a text file of hex colours (``#rrggbb`` or ``#rrggbbaa``, one
        or more a line, ``#`` comments after a space), or an image: a palette image's palette
        (its used entries), else its distinct colours when it has at most 256.

    Returns
    -------
    (K, C) uint8 ndarray
        C = 3, or 4 when a colour has alpha.

    Raises
    ------
    InputNotFoundError, InvalidOptionError
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"{path}: no such palette file; check the path")
    head = path.read_bytes()[:16]
    if head.startswith(b"GIMP Palette"):
        return _gpl(path)
    if head[:1] in (b"#",) or all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return parse_colors(path.read_text(encoding="utf-8", errors="replace"), source=str(path))
    return _image_palette(path)


def parse_colors(text: str, *, source: str = "colours") -> NDArray[np.uint8]:
    """Hex colours in text: ``#rrggbb``, ``rrggbb``, ``#rgb`` or with alpha (``#rrggbbaa``),
    separated by commas, spaces or lines; ``;``, or a ``#`` not followed by a colour, starts a
    comment to the end of the line.

    Returns
    -------
    (K, C) uint8 ndarray
        C = 4 when any colour has alpha (the others opaque), else 3.
    """
    found: list[tuple[int, ...]] = []
    for line in text.splitlines():
        line = line.split(";", 1)[0]
        for token in re.split(r"[\s,]+", line.strip()):
            if not token:
                continue
            digits = token.removeprefix("#")
            if len(digits) == 3:
                digits = "".join(c * 2 for c in digits)
            valid = len(digits) in (6, 8) and re.fullmatch(r"[0-9a-fA-F]+", digits) is not None
            if not valid and token.startswith("#"):
                break  # a comment
            if not valid:
                raise InvalidOptionError(
                    f"{source}: {token!r} is not a hex colour; write colours as #rrggbb or "
                    "#rrggbbaa")
            found.append(tuple(int(digits[i:i + 2], 16) for i in range(0, len(digits), 2)))
    return _checked_colors(found, source)


def _gpl(path: Path) -> NDArray[np.uint8]:
    found: list[tuple[int, ...]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace")
                                  .splitlines()[1:], start=2):
        line = line.strip()
        if not line or line.startswith("#") or ":" in line.split()[0]:
            continue  # comments and "Name: …", "Columns: …"
        parts = line.split()
        try:
            found.append(tuple(int(v) for v in parts[:3]))
        except ValueError:
            raise InvalidOptionError(
                f"{path}: line {number} is not 'R G B name' ({line[:40]!r})") from None
    return _checked_colors(found, str(path))


def _image_palette(path: Path) -> NDArray[np.uint8]:
    """A palette image's palette, in order (alpha from its tRNS), else the image's distinct
    colours when it has at most 256."""
    from PIL import Image

    loaded = load_image(path)  # the limits and the clean errors of any input
    with Image.open(path) as im:
        if im.mode == "P" and im.getpalette() is not None:
            rgb = np.asarray(im.getpalette("RGB"), np.uint8).reshape(-1, 3)
            transparency = im.info.get("transparency")
            if transparency is None:
                return _checked_colors([tuple(c) for c in rgb.tolist()], str(path))
            alpha = np.full(len(rgb), 255, np.uint8)
            if isinstance(transparency, bytes):
                alpha[:len(transparency)] = np.frombuffer(transparency, np.uint8)[:len(rgb)]
            elif isinstance(transparency, int) and transparency < len(rgb):
                alpha[transparency] = 0
            rgba = np.column_stack([rgb, alpha])
            return _checked_colors([tuple(c) for c in rgba.tolist()], str(path))
    histogram = color_histogram(loaded.pixels)
    if histogram.n_colors > MAX_COLORS:
        raise InvalidOptionError(
            f"{path}: has {histogram.n_colors:,} colours, more than a palette holds (256); give "
            "an indexed PNG, a .gpl file or a list of hex colours")
    return _widen(histogram.colors, max(3, histogram.colors.shape[1]))


def _checked_colors(found: list[tuple[int, ...]], source: str) -> NDArray[np.uint8]:
    if not found:
        raise InvalidOptionError(f"{source}: no colours found")
    if len(found) > MAX_COLORS:
        raise InvalidOptionError(f"{source}: {len(found)} colours, more than a palette holds (256)")
    if any(not 0 <= v <= 255 for c in found for v in c):
        raise InvalidOptionError(f"{source}: colour values must be 0 to 255")
    width = max(len(c) for c in found)
    rows = [c + (255,) * (width - len(c)) for c in found]
    return np.asarray(rows, dtype=np.uint8)


def _colors_of(value: Any) -> NDArray[np.uint8]:
    """An array-like (K, C) of colours, or text, as a checked uint8 array."""
    if isinstance(value, str):
        return parse_colors(value)
    array = np.asarray(value)
    if array.ndim != 2 or array.shape[1] not in (1, 3, 4) or not 1 <= len(array) <= MAX_COLORS:
        raise InvalidOptionError(
            f"a palette must be (K, 1|3|4) colours with 1 ≤ K ≤ 256, got shape {array.shape}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or array.max() > 255:
            raise InvalidOptionError("palette colours must be integers from 0 to 255")
        array = array.astype(np.uint8)
    return np.ascontiguousarray(array)


def _widen(colors: NDArray[np.uint8], channels: int) -> NDArray[np.uint8]:
    """(n, C) colours as (n, channels): grey repeated into RGB, opaque alpha added."""
    if colors.shape[1] == channels:
        return colors
    if colors.shape[1] == 1:
        colors = np.repeat(colors, 3, axis=1)
    if channels == 4 and colors.shape[1] == 3:
        colors = np.column_stack([colors, np.full(len(colors), 255, np.uint8)])
    return np.ascontiguousarray(colors)


def _widen_pixels(pixels: NDArray[np.uint8], channels: int) -> NDArray[np.uint8]:
    height, width, c = pixels.shape
    if c == channels:
        return pixels
    return _widen(pixels.reshape(-1, c), channels).reshape(height, width, channels)


def _unique_rows(colors: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Rows in their first order, duplicates dropped."""
    _, first = np.unique(colors, axis=0, return_index=True)
    return colors[np.sort(first)]


def _merged_histogram(
    images: tuple[ImageSource, ...], opts: Options, progress: Progress
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Distinct colours and their pixel counts over all ``images`` (widened to the most
    channels among them), sorted."""
    parts: list[tuple[NDArray[np.uint8], NDArray[np.int64]]] = []
    for done, image in enumerate(images, start=1):
        loaded = load_image(image, max_pixels=opts.max_pixels, max_memory=opts.max_memory,
                            allow_truncated=opts.allow_truncated)
        histogram = color_histogram(loaded.pixels, clear_transparent=loaded.channels == 4)
        parts.append((histogram.colors, histogram.counts))
        report_progress(progress, "fit", done, len(images))
    channels = max(colors.shape[1] for colors, _ in parts)
    colors = np.concatenate([_widen(c, channels) for c, _ in parts])
    counts = np.concatenate([n for _, n in parts])
    keys = np.zeros(len(colors), np.uint32)
    for c in range(channels):  # big-endian packing: sorted keys are sorted colours
        keys = (keys << np.uint32(8)) | colors[:, c].astype(np.uint32)
    unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    merged = np.zeros(len(unique), np.int64)
    np.add.at(merged, inverse.reshape(-1), counts)
    return np.ascontiguousarray(colors[first]), merged
