"""The pipeline: load → histogram → seed → refine → remap → (encode) → metrics.

``quantize`` turns an image into a palette and indices; ``compress`` is the file-to-file job.
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from . import metrics
from .colorspace import from_working, to_working
from .encode import FORMAT_EXTENSIONS, encode_as, encode_png, order_palette, write_atomic
from .engines import Engine, get_engine
from .errors import InvalidOptionError, OutputExistsError
from .histogram import color_histogram
from .load import ImageSource, LoadedImage, load_image
from .options import DEFAULT_MAX_ITER, DEFAULT_MAX_PIXELS, DEFAULT_TOL, OUTPUT_FORMATS, Options
from .refine import Progress, refine, report_progress
from .remap import remap
from .report import Report
from .seeding import seed_centers

__all__ = ["Result", "quantize", "quantize_loaded", "compress", "default_output_path"]

_TRANSPARENT = 0


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
    """

    palette: NDArray[np.uint8]
    indices: NDArray[np.uint8]
    inertia: float
    n_iter: int
    engine: str
    k_requested: int
    timings: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

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
        return encode_png(self.palette, self.indices)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the indexed PNG atomically; see :func:`kmquant.encode.write_atomic`."""
        return write_atomic(path, self.to_png(), overwrite=overwrite)


def quantize(
    image: ImageSource,
    n_colors: int = 64,
    *,
    engine: str = "auto",
    seed: int = 0,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
    init: str = "k-means++",
    space: str = "rgb",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    progress: Progress = None,
) -> Result:
    """Reduce an image to ``n_colors`` colours found by k-means.

    Parameters
    ----------
    image : path, bytes, PIL.Image.Image or (H, W) / (H, W, 3|4) uint8 ndarray
    n_colors : int
        K, 1 to 256.
    engine, seed, max_iter, tol, init, space, max_pixels
        See :class:`kmquant.Options`.
    progress : callable, optional
        ``progress(stage, done, total)``; returning False aborts with :class:`AbortedError`.

    Returns
    -------
    Result

    Examples
    --------
    >>> import numpy as np, kmquant
    >>> pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    >>> result = kmquant.quantize(pixels, 8, engine="numpy")
    >>> result.palette.shape, result.indices.shape
    ((8, 3), (32, 32))
    """
    options = Options(
        n_colors=n_colors, engine=engine, seed=seed, max_iter=max_iter, tol=tol, init=init,
        space=space, max_pixels=max_pixels,
    )
    return quantize_loaded(load_image(image, max_pixels=max_pixels), options, progress=progress)


def quantize_loaded(loaded: LoadedImage, options: Options, *, progress: Progress = None) -> Result:
    """Quantize an already decoded image; see :func:`quantize`."""
    engine = get_engine(options.engine)
    pixels = loaded.pixels
    height, width, channels = pixels.shape
    timings: dict[str, float] = {}
    notes: list[str] = []
    k = options.n_colors

    clock = time.perf_counter()
    if channels == 4:  # every fully transparent pixel is the same invisible colour
        pixels = np.where(pixels[:, :, 3:] == 0, np.uint8(_TRANSPARENT), pixels)
    histogram = color_histogram(pixels)
    timings["histogram"] = time.perf_counter() - clock

    colors, counts = histogram.colors, histogram.counts.astype(np.float64)
    X = to_working(colors, options.space)
    reserved = np.empty((0, channels), dtype=np.uint8)
    if channels == 4 and k > 1 and histogram.n_colors > 1 and not colors[0].any():
        # colours are sorted, so a transparent (0, 0, 0, 0) is row 0: it gets an entry of its own
        reserved, X, counts = colors[:1], X[1:], counts[1:]

    if X.shape[0] <= k - reserved.shape[0]:
        palette, n_iter, inertia = colors, 0, 0.0
        notes.append(
            f"the image has only {histogram.n_colors} colours, so all are kept exactly (lossless)"
        )
    else:
        fitted_palette, n_iter, inertia = _fit_palette(
            X, counts, k - reserved.shape[0], options, engine, progress, timings, notes
        )
        palette = np.concatenate([reserved, fitted_palette])

    clock = time.perf_counter()
    indices = remap(histogram, palette, (height, width), engine, options.space,
                    colors_working=X if not reserved.size else None)
    palette, indices = order_palette(palette, indices)
    timings["remap"] = time.perf_counter() - clock
    report_progress(progress, "remap", 1, 1)
    return Result(palette, indices, inertia, n_iter, engine.name, k, timings, tuple(notes))


def _fit_palette(
    X: NDArray[np.float64],
    counts: NDArray[np.float64],
    k: int,
    options: Options,
    engine: Engine,
    progress: Progress,
    timings: dict[str, float],
    notes: list[str],
) -> tuple[NDArray[np.uint8], int, float]:
    """Seed and refine K centres for the weighted colours; round them to a palette.

    Parameters
    ----------
    X : (n, C) float64 ndarray
        Distinct colours in the working space, n > K.
    counts : (n,) float64 ndarray
    k : int
    timings, notes
        Filled in.

    Returns
    -------
    palette : (K', C) uint8 ndarray
        K' ≤ K: centres that round to the same colour are merged; fitted order kept, so the
        engine's bounds stay tight for the remap.
    n_iter : int
    inertia : float
    """
    clock = time.perf_counter()
    start = seed_centers(options.init, X, counts, k, options.seed)
    timings["seed"] = time.perf_counter() - clock
    clock = time.perf_counter()
    fitted = refine(
        X, counts, start, engine, max_iter=options.max_iter, tol=options.tol,
        seed=options.seed, progress=progress,
    )
    timings["refine"] = time.perf_counter() - clock
    if not fitted.converged:
        notes.append(
            f"k-means stopped at max_iter={options.max_iter} before converging; "
            "raise max_iter for a slightly better palette"
        )
    rounded = from_working(fitted.centers, options.space)
    _, first = np.unique(rounded, axis=0, return_index=True)
    return rounded[np.sort(first)], fitted.n_iter, fitted.inertia


def default_output_path(src: str | os.PathLike, n_colors: int, fmt: str = "PNG") -> Path:
    """``photo.jpg`` with K=32 → ``photo.k32.png`` beside it (or ``.jpg`` for ``fmt="JPEG"``)."""
    src = Path(src)
    return src.with_name(f"{src.stem}.k{n_colors}{FORMAT_EXTENSIONS[fmt]}")


def compress(
    src: str | os.PathLike,
    dst: str | os.PathLike | None = None,
    *,
    out_dir: str | os.PathLike | None = None,
    n_colors: int = 64,
    output_format: str = "png",
    force: bool = False,
    progress: Progress = None,
    **options: object,
) -> Report:
    """Compress an image file to an indexed PNG (or the input's format) and report on it.

    Parameters
    ----------
    src : path
        The input image; never overwritten unless ``force`` and ``dst`` is the same file.
    dst : path, optional
        Output path; default ``<stem>.k<K>.png`` (or the format's extension) beside ``src``,
        or in ``out_dir``.
    out_dir : path, optional
        Folder for the default output name.
    n_colors : int
        K, 1 to 256.
    output_format : str
        ``png`` (indexed PNG, the compressed form) or ``input``, ``jpeg``, ``webp``, ``tiff``,
        ``bmp``, ``gif`` to write the quantized picture in full colour in that format.
    force : bool
        Overwrite an existing output.
    **options
        Any field of :class:`kmquant.Options`.

    Returns
    -------
    Report

    Raises
    ------
    KmquantError
        A subclass for each thing that can go wrong; nothing is written then.
    """
    started = time.perf_counter()
    opts = Options(n_colors=n_colors, **options)  # type: ignore[arg-type]
    if output_format not in OUTPUT_FORMATS:
        raise InvalidOptionError(
            f"format must be one of {', '.join(OUTPUT_FORMATS)}; got {output_format!r}"
        )
    src = Path(src)
    loaded = load_image(src, max_pixels=opts.max_pixels)
    fmt = _pillow_format(output_format, loaded.format)
    if dst is None:
        dst = default_output_path(src, opts.n_colors, fmt)
        if out_dir is not None:
            dst = Path(out_dir) / dst.name
    dst = Path(dst)
    if _same_file(src, dst) and not force:
        raise OutputExistsError(f"{dst}: is the input file; pass --force to overwrite the input")
    if dst.exists() and not force:
        raise OutputExistsError(f"{dst}: already exists; pass --force to overwrite it")

    result = quantize_loaded(loaded, opts, progress=progress)
    quantized = result.to_array()
    clock = time.perf_counter()
    if fmt == "PNG" and output_format == "png":
        data = result.to_png()
    else:
        data = encode_as(quantized, fmt)
    encode_seconds = time.perf_counter() - clock
    write_atomic(dst, data, overwrite=force)

    clock = time.perf_counter()
    written = quantized if fmt == "PNG" else _decoded(data, loaded.channels)  # lossy formats
    original, written = metrics.visible(loaded.pixels), metrics.visible(written)
    psnr = metrics.psnr(original, written)
    ssim = metrics.ssim(original, written)
    timings = dict(result.timings, encode=encode_seconds, metrics=time.perf_counter() - clock)
    return Report(
        input=str(src),
        output=str(dst),
        width=loaded.width,
        height=loaded.height,
        original_bytes=src.stat().st_size,
        compressed_bytes=len(data),
        k_requested=opts.n_colors,
        colors_used=result.colors_used,
        psnr=psnr,
        ssim=ssim,
        engine=result.engine,
        n_iter=result.n_iter,
        seconds=time.perf_counter() - started,
        format=fmt if output_format != "png" else "indexed PNG",
        notes=result.notes,
        timings=timings,
    )


def _decoded(data: bytes, channels: int) -> NDArray[np.uint8]:
    """Pixels of an encoded file as the reader will see them, with ``channels`` channels."""
    with Image.open(io.BytesIO(data)) as im:
        mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
        return np.asarray(im.convert(mode), dtype=np.uint8).reshape(im.height, im.width, channels)


def _pillow_format(output_format: str, input_format: str | None) -> str:
    if output_format == "png":
        return "PNG"
    if output_format == "input":
        if input_format not in FORMAT_EXTENSIONS:
            raise InvalidOptionError(
                f"cannot write the input's format {input_format!r}; use --format png, jpeg or webp"
            )
        return input_format
    return {"jpeg": "JPEG", "webp": "WEBP", "tiff": "TIFF", "bmp": "BMP", "gif": "GIF"}[output_format]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False
