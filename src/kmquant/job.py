"""The file-to-file job: decode, choose K if asked, quantize, encode, measure, then write atomically."""

from __future__ import annotations

import dataclasses
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from . import metrics
from .animation import FramesResult, frame_durations_note, from_stacked, quantize_frames, widen
from .choose import KChoice, Target, choose_k
from .encode import (
    EXTENSION_FORMATS,
    FORMAT_EXTENSIONS,
    NO_ALPHA_FORMATS,
    check_output,
    describe_encoding,
    encode_apng,
    encode_as,
    encode_gif,
    encode_png,
    flatten,
    format_for_extension,
    gif_palette,
    write_atomic,
)
from .engines import Engine, get_engine
from .errors import InvalidOptionError, OutputExistsError, OutputLargerError
from .load import LoadedFrames, LoadedImage, load_frames, load_image
from .options import OUTPUT_FORMATS, Options
from .palette import Quantizer, palette_of, remap
from .pipeline import Prepared, prepare, quantize_prepared
from .refine import Progress
from .report import Report

__all__ = ["compress", "decode", "Decoded", "default_output_path"]


@dataclass
class Decoded:
    """An input decoded once for many compressions (at several K or settings): its pixels, its
    frames, and its colour histogram in each working space asked for, kept.

    Make one with :func:`decode`; pass it to :func:`compress` as ``src``. The web server keeps
    one per upload, so that moving K costs one k-means, not a decode and a count.

    Attributes
    ----------
    loaded : LoadedImage
        The picture (the first frame of an animation).
    frames : LoadedFrames
        Every frame (one for a still).
    label : str
        What reports and messages call it.
    original_bytes : int
        Size of the encoded input.
    """

    loaded: LoadedImage
    frames: LoadedFrames
    label: str
    original_bytes: int
    _prepared: dict[str, Prepared] = field(default_factory=dict, repr=False)

    def prepared(self, space: str) -> Prepared:
        """The picture's histogram in ``space``, counted on the first call only (later calls
        report 0 s for it)."""
        if space in self._prepared:
            return dataclasses.replace(self._prepared[space], seconds=0.0)
        self._prepared[space] = prepare(self.loaded.pixels, space)
        return self._prepared[space]

    @property
    def nbytes(self) -> int:
        """Memory held by the pixels and the histograms kept (estimated for the hash tables)."""
        pixels = self.frames.frames.nbytes if self.frames.is_animated else 0
        # the hash table of a histogram: 16 to 64 bytes a colour
        kept = sum(p.X.nbytes + p.counts.nbytes + p.histogram.n_colors * 48
                   for p in self._prepared.values())
        return int(self.loaded.pixels.nbytes + pixels + kept)


def decode(source: str | os.PathLike | bytes, *, name: str | None = None,
           options: Options | None = None, **fields: Any) -> Decoded:
    """Decode an image file (every frame of an animation) for :func:`compress`.

    Parameters
    ----------
    source : path or bytes
        The encoded image.
    name : str, optional
        For bytes: what reports and messages call it (default ``<stdin>``).
    options : Options, optional
    **fields
        Fields of :class:`kmquant.Options`; the decoding limits (``max_pixels``,
        ``max_memory``, ``allow_truncated``, ``srgb``) are the ones that count here.

    Returns
    -------
    Decoded

    Raises
    ------
    KmquantError
        The input cannot be read, is not an image, or is over the limits.
    """
    opts = Options.build(options, **fields)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = name or "<stdin>"
        loaded, frames = _load(data, "png", opts, label)
        size = len(data)
    else:
        path = Path(source)
        label = str(source)
        loaded, frames = _load(path, "png", opts, None)
        size = path.stat().st_size
    assert frames is not None  # "png" output: the frames are decoded
    return Decoded(loaded, frames, label, size)


def default_output_path(src: str | os.PathLike, n_colors: int, fmt: str = "PNG") -> Path:
    """``photo.jpg`` with K=32 → ``photo.k32.png`` beside it (or ``.jpg`` for ``fmt="JPEG"``)."""
    src = Path(src)
    return src.with_name(f"{src.stem}.k{n_colors}{FORMAT_EXTENSIONS[fmt]}")


def compress(
    src: str | os.PathLike | bytes | Decoded,
    dst: str | os.PathLike | BinaryIO | None = None,
    *,
    out_dir: str | os.PathLike | None = None,
    n_colors: int | str = 64,
    target: Target | None = None,
    best_effort: bool = False,
    output_format: str | None = None,
    force: bool = False,
    measure: bool = True,
    palette: Any = None,
    keep_colors: Any = None,
    skip_if_larger: bool = False,
    options: Options | None = None,
    progress: Progress = None,
    name: str | None = None,
    **fields: Any,
) -> Report:
    """Compress an image file to an indexed PNG (or another format) and report on it.

    Everything that can fail (decoding, quantizing, encoding, measuring) runs before the output
    is written, and a file is written whole or not at all: on any error nothing is left.

    Parameters
    ----------
    src : path, bytes or Decoded
        The input image; never overwritten unless ``force`` and ``dst`` is the same file.
        Bytes are an encoded file (read from standard input, say); ``dst`` is then needed.
        A :class:`Decoded` input (see :func:`decode`) is not decoded again, and its histogram
        is reused; ``dst`` is needed, and its decoding limits are the ones it was made with.
    dst : path or binary file object, optional
        Output path; default ``<stem>.k<K>.png`` (or the format's extension) beside ``src``,
        or in ``out_dir``. A path must be a regular file (or new): devices, FIFOs, sockets and
        symbolic links are refused. A binary file object (``sys.stdout.buffer``) receives the
        encoded bytes instead, and the report's ``output`` is its ``name``.
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
    output_format : str, optional
        ``png`` (indexed PNG, the compressed form) or ``input``, ``jpeg``, ``webp``, ``tiff``,
        ``bmp``, ``gif`` to write the quantized picture in full colour in that format. Default:
        from the extension of a ``dst`` path (``.png``, ``.jpg``/``.jpeg``, ``.webp``,
        ``.tif``/``.tiff``, ``.bmp``, ``.gif``; another extension is refused), else ``png``.
        A format that contradicts the extension is refused. JPEG and BMP have no alpha: a
        translucent picture is flattened onto white, and measured against the original flattened
        the same way (the report says so).
    force : bool
        Overwrite an existing output.
    measure : bool
        Compute PSNR and SSIM for the report (False leaves them None: faster when nobody reads
        them). ``-k auto`` with a quality target measures its candidates either way.
    palette : (K, C) uint8 array-like, str or path, optional
        Map the image to this palette (kept whole and in order: a shared palette, see
        :mod:`kmquant.palette`) instead of fitting one; ``n_colors`` is then its size.
    keep_colors : (m, C) uint8 array-like, str or path, optional
        Colours the fitted palette must hold exactly.
    skip_if_larger : bool
        Write nothing, and raise :class:`OutputLargerError`, when the output would be larger
        than the input file.
    options : Options, optional
        Every quantization setting at once (its ``n_colors`` gives way to ``n_colors`` here).
    progress : callable, optional
        ``progress(stage, done, total)``; returning False aborts.
    name : str, optional
        For bytes: what the report and error messages call the input (a URL; default
        ``<stdin>``).
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
    if palette is not None:
        palette = palette_of(palette)
        if auto or keep_colors is not None:
            raise InvalidOptionError(
                "a given palette sets the colours: it goes without -k auto and --keep-colors")
        n_colors = len(palette)
    if keep_colors is not None and auto:
        raise InvalidOptionError("--keep-colors needs a fixed K (-k N), not -k auto")
    opts = Options.build(options, **fields, n_colors=1 if auto else n_colors)
    stream: BinaryIO | None = None
    path_dst: Path | None = None
    if isinstance(dst, (str, os.PathLike)):
        path_dst = Path(dst)
    elif dst is not None:  # a binary file object: the bytes go there
        stream = dst
    given: bytes | None = None  # the image itself (standard input), not a path
    decoded: Decoded | None = None
    source: str | os.PathLike | bytes
    if isinstance(src, Decoded):
        decoded, source = src, src.label
    else:
        source = src
    label = str(source) if isinstance(source, (str, os.PathLike)) else (name or "<stdin>")
    if decoded is not None and dst is None:
        raise InvalidOptionError("a decoded image has no file to name the output after; "
                                 "give dst")
    if isinstance(source, (bytes, bytearray, memoryview)):
        given, source = bytes(source), label
        if dst is None:
            raise InvalidOptionError(
                "an image from standard input has no name to derive the output's from; give "
                "-o FILE (or -o - for standard output)")
    src = Path(source)
    if path_dst is not None:  # fail before the work when the output is known
        path_dst = _output_path(src, path_dst, out_dir, opts.n_colors, "PNG", force)
    output_format = _output_format(output_format, path_dst)
    target = target or (Target() if auto else None)
    if target is not None and target.kind == "max_bytes" and output_format != "png":
        raise InvalidOptionError(
            "--max-bytes sizes the indexed PNG; write a .png (or give --format png)")
    if opts.per_frame:
        _check_per_frame(output_format, auto, palette)
    frames: LoadedFrames | None
    if decoded is not None:
        loaded, frames = decoded.loaded, decoded.frames
        prepared: Callable[[str], Prepared] = decoded.prepared
    else:
        loaded, frames = _load(src if given is None else given, output_format, opts,
                               None if given is None else label)
        prepared = _preparer(loaded)
    fmt = _pillow_format(output_format, loaded.format, path_dst)
    if opts.per_frame and fmt != "GIF":  # --format input: known from the input only
        raise InvalidOptionError(_PER_FRAME_GIF)
    if path_dst is None and stream is None and not auto:
        path_dst = _output_path(src, None, out_dir, opts.n_colors, fmt, force)

    engine = get_engine(opts.engine)
    work = dict(target=target if auto else None, best_effort=best_effort, palette=palette,
                keep_colors=keep_colors, measure=measure, progress=progress)
    if frames is not None and frames.is_animated and fmt in ("PNG", "GIF"):
        made = _animation(frames, fmt, opts, engine, **work)
    else:
        made = _still(loaded, fmt, output_format, opts, engine, prepared=prepared, **work)
    if path_dst is None and stream is None:  # -k auto: the name holds the K chosen
        path_dst = _output_path(src, None, out_dir, made.k, fmt, force)
    data = made.data
    original_bytes = (decoded.original_bytes if decoded is not None
                      else src.stat().st_size if given is None else len(given))
    if skip_if_larger and len(data) > original_bytes:
        raise OutputLargerError(
            f"{label}: skipped, the output ({len(data):,} bytes) would be larger than the input "
            f"({original_bytes:,} bytes); nothing written")

    # everything that can fail has run: now the output appears, whole
    if stream is not None:
        stream.write(data)
        stream.flush()
        output = str(getattr(stream, "name", "<stream>"))
    else:
        assert path_dst is not None  # known from the start, or from the chosen K
        write_atomic(path_dst, data, overwrite=force)
        output = str(path_dst)
    return Report(
        input=label,
        output=output,
        width=made.width,
        height=made.height,
        original_bytes=original_bytes,
        compressed_bytes=len(data),
        k_requested=made.k,
        colors_used=made.colors_used,
        psnr=made.quality.psnr,
        ssim=made.quality.ssim,
        delta_e=made.quality.delta_e,
        engine=made.engine,
        n_iter=made.n_iter,
        seconds=time.perf_counter() - started,
        format=describe_encoding(data),
        notes=tuple(made.notes),
        timings=made.timings,
        k_choice=made.choice.to_dict() if made.choice else None,
        frames=made.frames,
    )


@dataclass(frozen=True)
class _Made:
    """What quantizing and encoding one input made, for the report."""

    data: bytes
    k: int
    colors_used: int
    quality: metrics.Quality
    engine: str
    n_iter: int
    notes: list[str]
    timings: dict[str, float]
    choice: KChoice | None
    width: int
    height: int
    frames: int = 1


#: Output formats for which the frames of an animation are decoded (``input``: when the input is
#: a GIF or PNG); any other output holds one picture, and only the first frame is decoded.
_ANIMATED_OUTPUTS = ("png", "gif", "input")
_PER_FRAME_GIF = ("--per-frame needs GIF output (--format gif or a .gif name): an indexed APNG "
                  "holds one palette")


def _preparer(loaded: LoadedImage) -> Callable[[str], Prepared]:
    """``prepared(space)``: the histogram of ``loaded`` in ``space``, counted when asked."""
    return lambda space: prepare(loaded.pixels, space)


def _check_per_frame(output_format: str, auto: bool, palette: Any) -> None:
    """Refuse ``per_frame`` with what cannot hold or make a palette per frame."""
    if output_format not in ("gif", "input"):
        raise InvalidOptionError(_PER_FRAME_GIF)
    if auto:
        raise InvalidOptionError(
            "--per-frame fits a palette of K colours to each frame; give -k N, not -k auto")
    if palette is not None:
        raise InvalidOptionError(
            "--per-frame fits a palette to each frame and --palette gives one for all of them; "
            "drop one")


def _load(
    source: Path | bytes, output_format: str, opts: Options, name: str | None
) -> tuple[LoadedImage, LoadedFrames | None]:
    """The input decoded: with an output that can hold an animation, every frame of one (the
    first as the still, for the other paths); else only the (first) picture."""
    limits: dict[str, Any] = dict(max_pixels=opts.max_pixels, max_memory=opts.max_memory,
                                  allow_truncated=opts.allow_truncated, srgb=opts.srgb,
                                  name=name)
    if output_format not in _ANIMATED_OUTPUTS:
        return load_image(source, **limits), None
    frames = load_frames(source, **limits)
    return frames.first(), frames


def _still(
    loaded: LoadedImage,
    fmt: str,
    output_format: str,
    opts: Options,
    engine: Engine,
    *,
    target: Target | None,
    best_effort: bool,
    palette: Any,
    keep_colors: Any,
    measure: bool,
    progress: Progress,
    prepared: Callable[[str], Prepared],
) -> _Made:
    """Quantize, encode and measure one picture (``prepared(space)``: its histogram)."""
    choice: KChoice | None = None
    if target is not None:  # -k auto
        choice, result = choose_k(prepared(opts.space), loaded.pixels, target, opts, engine,
                                  best_effort=best_effort, progress=progress)
        opts = choice.applied(opts)
    elif palette is not None:
        result = remap(loaded.pixels, palette, options=opts, progress=progress)
    elif keep_colors is not None:
        quantizer = Quantizer(opts, keep_colors=keep_colors).fit(loaded.pixels, progress=progress)
        result = quantizer.remap(loaded.pixels, progress=progress)
    else:
        result, _ = quantize_prepared(prepared(opts.space), opts, engine, progress=progress)
    notes = list(loaded.notes) + list(result.notes) + ([choice.reason] if choice else [])

    clock = time.perf_counter()
    icc = _profile(loaded.icc_profile, opts, notes)
    if fmt == "PNG" and output_format == "png":
        data = encode_png(result.palette, result.indices, icc_profile=icc, level=opts.deflate_level)
    else:
        data = encode_as(result.to_array(), fmt, icc_profile=icc)
    encode_seconds = time.perf_counter() - clock

    clock = time.perf_counter()
    quality = metrics.Quality()
    flattened = fmt in NO_ALPHA_FORMATS and loaded.channels == 4
    notes += _alpha_notes(loaded.pixels, fmt)
    if measure:  # in tiles of rows: memory stays bounded whatever the image size
        if fmt == "PNG" and output_format == "png":
            # a given palette may have alpha that the picture has not
            quality = metrics.measure(widen_pixels(loaded.pixels, result.palette.shape[1]),
                                      result.palette, result.indices, lossless=result.lossless)
        elif flattened:  # what was written against what the original looks like on white
            quality = metrics.measure_arrays(flatten(loaded.pixels), _decoded(data, 3))
        else:  # other formats are measured as written (lossy, or re-quantized for GIF)
            quality = metrics.measure_arrays(loaded.pixels, _decoded(data, loaded.channels))
    metrics_seconds = time.perf_counter() - clock
    notes += _sample_note(quality)
    timings = dict(result.timings, encode=encode_seconds, metrics=metrics_seconds)
    return _Made(data, opts.n_colors, result.colors_used, quality, result.engine, result.n_iter,
                 notes, timings, choice, loaded.width, loaded.height)


def _animation(
    frames: LoadedFrames,
    fmt: str,
    opts: Options,
    engine: Engine,
    *,
    target: Target | None,
    best_effort: bool,
    palette: Any,
    keep_colors: Any,
    measure: bool,
    progress: Progress,
) -> _Made:
    """Quantize, encode and measure the frames of an animation: an indexed APNG (one palette)
    or a GIF (one palette, or one per frame); every frame's duration and the loop count kept."""
    stacked = frames.stacked()
    choice: KChoice | None = None
    if target is not None:  # -k auto: K for the frames stacked into one picture
        if target.kind == "max_bytes":
            raise InvalidOptionError(
                "--max-bytes sizes a still PNG, not an animation; give -k N or a quality "
                "target (--target-psnr, --target-ssim, --target-ssimulacra2, --quality)")
        # the frames were checked one by one; no rate-aware entries (see quantize_frames)
        each = opts.replace(max_pixels=None, rdo=0.0)
        choice, stacked_result = choose_k(prepare(stacked, opts.space), stacked, target, each,
                                          engine, best_effort=best_effort, progress=progress)
        opts = choice.applied(opts)
        result = from_stacked(stacked_result, frames.frames, opts, progress=progress)
    else:
        result = quantize_frames(frames.frames, opts, engine=engine, palette=palette,
                                 keep_colors=keep_colors, progress=progress)
    notes = list(frames.notes) + list(result.notes) + ([choice.reason] if choice else [])

    clock = time.perf_counter()
    icc = _profile(frames.icc_profile, opts, notes)
    if fmt == "PNG":
        data = encode_apng(result.palettes[0], result.indices, frames.durations,
                           loop=frames.loop, icc_profile=icc)
    else:
        data = encode_gif(result.palettes[0] if result.shared else result.palettes,
                          result.indices, frames.durations, loop=frames.loop)
        if icc:
            notes = [n for n in notes if not n.startswith("ICC profile (")]
            notes.append("GIF has no place for the ICC profile: dropped, viewers will take the "
                          "colours as sRGB")
    encode_seconds = time.perf_counter() - clock
    notes.insert(0, _animation_note(frames, result.shared))
    rounded = frame_durations_note(frames.durations, fmt)
    notes += [rounded] if rounded else []
    notes += _alpha_notes(stacked, fmt)

    clock = time.perf_counter()
    quality = metrics.Quality()
    if measure:  # over every frame: the stack as one picture
        quality = _measure_frames(stacked, result, fmt)
    notes += _sample_note(quality)
    timings = dict(result.timings, encode=encode_seconds,
                   metrics=time.perf_counter() - clock)
    return _Made(data, opts.n_colors, result.colors_used, quality, result.engine, result.n_iter,
                 notes, timings, choice, frames.width, frames.height, frames.n_frames)


def _animation_note(frames: LoadedFrames, shared: bool) -> str:
    """What was done with an animation, for the report."""
    palettes = ("one palette over all frames" if shared else
                "a palette per frame (GIF local colour tables)")
    plays = {None: "plays once", 0: "loops forever"}.get(frames.loop, f"loop count {frames.loop}")
    return (f"animation: {frames.n_frames} frames, {palettes}; timing and loop kept "
            f"({plays})")


def _measure_frames(stacked: NDArray[np.uint8], result: FramesResult, fmt: str) -> metrics.Quality:
    """PSNR, SSIM and ΔE of every frame, as written (a GIF's alpha is on or off)."""
    channels = max(stacked.shape[2], *(p.shape[1] for p in result.palettes))
    original = widen_pixels(stacked, channels)
    shown = [widen(p, channels) for p in result.palettes]
    if fmt == "GIF":
        shown = [gif_palette(p) for p in shown]
    exact = result.lossless and all(np.array_equal(a, widen(b, channels))
                                    for a, b in zip(shown, result.palettes))
    if result.shared:
        return metrics.measure(original, shown[0], result.stacked_indices(), lossless=exact)
    quantized = np.concatenate([p[i] for p, i in zip(shown, result.indices)])
    return metrics.measure_arrays(original, quantized, lossless=exact)


def widen_pixels(pixels: NDArray[np.uint8], channels: int) -> NDArray[np.uint8]:
    """(H, W, C) pixels as (H, W, ``channels``) (grey into RGB, opaque alpha added); the same
    array when C is ``channels`` already."""
    height, width, c = pixels.shape
    if c == channels:
        return pixels
    return widen(pixels.reshape(-1, c), channels).reshape(height, width, channels)


def _profile(icc: bytes | None, opts: Options, notes: list[str]) -> bytes | None:
    """The ICC profile to embed (None with ``--strip``), the notes updated to say so."""
    if not opts.strip:
        return icc
    if icc:
        notes[:] = [n for n in notes if not n.startswith("ICC profile (")]
        notes.append("ICC profile dropped (--strip): viewers will take the colours as sRGB")
    return None


def _sample_note(quality: metrics.Quality) -> list[str]:
    if quality.sample is None:
        return []
    return [f"SSIM and ΔE2000 measured on a seeded {quality.sample:.0%} of the rows "
            f"(the image has over {metrics.SAMPLE_ABOVE:,} pixels); PSNR on every pixel"]


#: How a report names a Pillow format.
_FORMAT_NAMES = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP", "TIFF": "TIFF", "BMP": "BMP",
                 "GIF": "GIF"}


def _alpha_notes(pixels: NDArray[np.uint8], fmt: str) -> list[str]:
    """What a format without (full) alpha did to a translucent picture, for the report."""
    if pixels.shape[2] != 4 or fmt not in NO_ALPHA_FORMATS + ("GIF",):
        return []
    alpha = pixels[:, :, 3]
    if fmt == "GIF":
        if ((alpha > 0) & (alpha < 255)).any():
            return ["GIF has only on/off transparency: translucent pixels became opaque or "
                    "transparent (PSNR and SSIM measure the file as written)"]
        return []
    if (alpha < 255).any():
        return [f"{_FORMAT_NAMES[fmt]} has no transparency: flattened onto white; PSNR and SSIM "
                "compare it with the original flattened onto white"]
    return []


def _output_format(output_format: str | None, dst: Path | None) -> str:
    """The output format asked for, or told by the output name's extension; a format and an
    extension that disagree are refused, as is an extension kmquant does not write (without a
    format that says what to write)."""
    if output_format is not None and output_format not in OUTPUT_FORMATS:
        raise InvalidOptionError(
            f"format must be one of {', '.join(OUTPUT_FORMATS)}; got {output_format!r}"
        )
    named = format_for_extension(dst) if dst is not None else None
    if output_format is None:
        if dst is None:
            return "png"
        if named is None:
            raise InvalidOptionError(
                f"{dst}: cannot tell the output format from the name "
                f"({'no extension' if not dst.suffix else repr(dst.suffix)}); end it in "
                f"{', '.join(EXTENSION_FORMATS)} or give --format")
        return named
    if dst is not None and named is not None and output_format not in ("input", named):
        raise InvalidOptionError(
            f"--format {output_format} and the output name {dst.name} ({named}) disagree; "
            "drop --format or change the extension")
    return output_format


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
    return check_output(dst, overwrite=force, alternative="or -o - for standard output")


def _decoded(data: bytes, channels: int) -> NDArray[np.uint8]:
    """Pixels of an encoded file as the reader will see them, with ``channels`` channels."""
    with Image.open(io.BytesIO(data)) as im:
        mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
        return np.asarray(im.convert(mode), dtype=np.uint8).reshape(im.height, im.width, channels)


def _pillow_format(output_format: str, input_format: str | None, dst: Path | None) -> str:
    """The Pillow format to write; for ``input``, the input's, which ``dst``'s extension (if
    kmquant knows it) must agree with."""
    if output_format == "png":
        return "PNG"
    if output_format != "input":
        return {"jpeg": "JPEG", "webp": "WEBP", "tiff": "TIFF", "bmp": "BMP",
                "gif": "GIF"}[output_format]
    if input_format not in FORMAT_EXTENSIONS:
        raise InvalidOptionError(
            f"cannot write the input's format {input_format!r}; use --format png, jpeg or webp"
        )
    named = format_for_extension(dst) if dst is not None else None
    if dst is not None and named is not None and named.upper() != input_format:
        raise InvalidOptionError(
            f"--format input ({input_format}) and the output name {dst.name} ({named}) "
            "disagree; drop --format or change the extension")
    return input_format


def _same_file(a: Path, b: Path) -> bool:
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False
