"""The file-to-file job: decode, choose K if asked, quantize, encode, write atomically, measure."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from . import metrics
from .choose import KChoice, Target, choose_k
from .encode import FORMAT_EXTENSIONS, check_output, encode_as, write_atomic
from .engines import get_engine
from .errors import InvalidOptionError, OutputExistsError
from .load import load_image
from .options import OUTPUT_FORMATS, Options
from .pipeline import prepare, quantize_prepared
from .refine import Progress
from .report import Report

__all__ = ["compress", "default_output_path"]


def default_output_path(src: str | os.PathLike, n_colors: int, fmt: str = "PNG") -> Path:
    """``photo.jpg`` with K=32 → ``photo.k32.png`` beside it (or ``.jpg`` for ``fmt="JPEG"``)."""
    src = Path(src)
    return src.with_name(f"{src.stem}.k{n_colors}{FORMAT_EXTENSIONS[fmt]}")


def compress(
    src: str | os.PathLike,
    dst: str | os.PathLike | None = None,
    *,
    out_dir: str | os.PathLike | None = None,
    n_colors: int | str = 64,
    target: Target | None = None,
    best_effort: bool = False,
    output_format: str = "png",
    force: bool = False,
    measure: bool = True,
    options: Options | None = None,
    progress: Progress = None,
    **fields: Any,
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
    n_colors : int or "auto"
        K, 1 to 256, or ``"auto"`` to choose K for ``target``.
    target : Target, optional
        With ``n_colors="auto"``: a quality or size target (default: the knee of the inertia
        curve). See :mod:`kmquant.choose`.
    best_effort : bool
        With a target that no K ≤ 256 meets: write the closest K instead of raising
        :class:`TargetUnreachableError`.
    output_format : str
        ``png`` (indexed PNG, the compressed form) or ``input``, ``jpeg``, ``webp``, ``tiff``,
        ``bmp``, ``gif`` to write the quantized picture in full colour in that format.
    force : bool
        Overwrite an existing output.
    measure : bool
        Compute PSNR and SSIM for the report (False leaves them None: faster when nobody reads
        them). ``-k auto`` with a quality target measures its candidates either way.
    options : Options, optional
        Every quantization setting at once (its ``n_colors`` gives way to ``n_colors`` here).
    progress : callable, optional
        ``progress(stage, done, total)``; returning False aborts.
    **fields
        Any field of :class:`kmquant.Options`, applied on top of ``options``.

    Returns
    -------
    Report

    Raises
    ------
    KmquantError
        A subclass for each thing that can go wrong; nothing is written then.
    """
    started = time.perf_counter()
    auto = n_colors == "auto"
    if target is not None and not auto:
        raise InvalidOptionError("a quality or size target needs -k auto (n_colors='auto')")
    opts = Options.build(options, **fields, n_colors=1 if auto else n_colors)
    if output_format not in OUTPUT_FORMATS:
        raise InvalidOptionError(
            f"format must be one of {', '.join(OUTPUT_FORMATS)}; got {output_format!r}"
        )
    target = target or (Target() if auto else None)
    if target is not None and target.kind == "max_bytes" and output_format != "png":
        raise InvalidOptionError("--max-bytes sizes the indexed PNG; use it with --format png")
    src = Path(src)
    loaded = load_image(src, max_pixels=opts.max_pixels)
    fmt = _pillow_format(output_format, loaded.format)
    if dst is not None or not auto:  # fail before the work when the output is known
        dst = _output_path(src, dst, out_dir, opts.n_colors, fmt, force)

    engine = get_engine(opts.engine)
    prepared = prepare(loaded.pixels, opts.space)
    choice: KChoice | None = None
    if auto:
        assert target is not None  # set above for -k auto
        choice, result = choose_k(prepared, loaded.pixels, target, opts, engine,
                                  best_effort=best_effort, progress=progress)
        opts = opts.replace(n_colors=choice.k)
        if dst is None:
            dst = _output_path(src, None, out_dir, choice.k, fmt, force)
    else:
        result, _ = quantize_prepared(prepared, opts, engine, progress=progress)
    clock = time.perf_counter()
    if fmt == "PNG" and output_format == "png":
        data = result.to_png()
    else:
        data = encode_as(result.to_array(), fmt)
    encode_seconds = time.perf_counter() - clock
    assert dst is not None  # known from the start, or from the chosen K
    write_atomic(dst, data, overwrite=force)

    clock = time.perf_counter()
    quality = metrics.Quality()
    if measure:  # in tiles of rows: memory stays bounded whatever the image size
        if fmt == "PNG":
            quality = metrics.measure(loaded.pixels, result.palette, result.indices,
                                      lossless=result.lossless)
        else:  # lossy formats are measured as written
            quality = metrics.measure_arrays(loaded.pixels, _decoded(data, loaded.channels))
    psnr, ssim, delta_e = quality.psnr, quality.ssim, quality.delta_e
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
        delta_e=delta_e,
        engine=result.engine,
        n_iter=result.n_iter,
        seconds=time.perf_counter() - started,
        format=fmt if output_format != "png" else "indexed PNG",
        notes=result.notes + ((choice.reason,) if choice else ()),
        timings=timings,
        k_choice=choice.to_dict() if choice else None,
    )


def _output_path(
    src: Path, dst, out_dir, n_colors: int, fmt: str, force: bool
) -> Path:
    """The output path, checked: never the input (unless forced), never an existing file."""
    if dst is None:
        dst = default_output_path(src, n_colors, fmt)
        if out_dir is not None:
            dst = Path(out_dir) / dst.name
    dst = Path(dst)
    if _same_file(src, dst) and not force:
        raise OutputExistsError(f"{dst}: is the input file; pass --force to overwrite the input")
    return check_output(dst, overwrite=force)


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
