"""Decode an image once into an ``(H, W, C)`` uint8 array, or refuse it in one clear line.

Every mode Pillow reads becomes RGB (C=3), RGBA (C=4) or greyscale (C=1); EXIF orientation is
applied; 16-bit, 32-bit and float data are scaled, not clipped.

Hostile files are refused, never decoded at any cost:

- Only the formats of :data:`FORMATS` are decoded, all in process by Pillow: never EPS, PDF or
  anything else that hands the file to an outside interpreter (Ghostscript).
- Pillow's own decompression-bomb checks stay on from the first byte, at ``max_pixels``: some
  plugins allocate pixels while the header is read (a GIF frame larger than its screen, an ICO
  holding a large PNG), so checking only afterwards is too late. The pixel count is checked again
  once the image is decoded.
- A memory budget (``max_memory``): what decoding and quantizing the image will need is estimated
  from the header (:func:`decode_bytes`) and the image refused before decoding when over it.
- Every exception a decoder raises on bad data (the closed list :data:`DECODER_ERRORS`) becomes
  :class:`NotAnImageError` (exit 4) or :class:`TruncatedImageError` (exit 5) naming the file.
- Incomplete data is an error unless ``allow_truncated``: Pillow fills the rows of a PNG whose
  compressed stream ends early with zeros and reports success, so the PNG data is counted here.
- Metadata cannot sink a good image: an oversized text or ICC chunk is skipped, and warnings
  about broken EXIF blocks are not printed.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import struct
import sys
import threading
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Union

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFile, ImageOps, PngImagePlugin, UnidentifiedImageError

from .errors import (
    ImageTooLargeError,
    InputNotFoundError,
    InvalidOptionError,
    NotAnImageError,
    TruncatedImageError,
    UnsupportedModeError,
)
from .options import DEFAULT_MAX_MEMORY, DEFAULT_MAX_PIXELS

__all__ = ["ImageSource", "LoadedImage", "load_image", "FORMATS", "DECODER_ERRORS",
           "decode_bytes"]

ImageSource = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]

#: Input formats, by Pillow's names, decoded in process: the formats people quantize (photos,
#: screenshots, sprites, icons), each with a decoder that is a library Pillow links or its own C
#: code, all covered by Pillow's fuzzing. JPEG includes MPO (multi-picture JPEGs from cameras),
#: PPM includes PGM and PBM. AVIF only where Pillow was built with it. Left out on purpose: EPS and
#: PDF (Ghostscript, an interpreter: a file can hang it or worse), and the rarely used or
#: scientific formats (DDS, PSD, FITS, SGI, …), whose decoders raise what the fuzzing found.
FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "TIFF", "BMP", "TGA", "PPM", "QOI", "ICO", "AVIF")
_READABLE = "PNG, JPEG, GIF, WebP, TIFF, BMP, TGA, PPM/PGM/PBM, QOI, ICO or AVIF"

#: Every exception a Pillow decoder raises on bad data, as Pillow's own fuzzing allows them:
#: each becomes :class:`TruncatedImageError` (an unidentified file: :class:`NotAnImageError`).
#: MemoryError is here because a corrupt length field (an IDAT of 0xFFFFFFFF bytes) asks for it;
#: images that are really too big are refused from their header before.
DECODER_ERRORS: tuple[type[BaseException], ...] = (
    OSError, SyntaxError, ValueError, EOFError, struct.error, NotImplementedError, RuntimeError,
    TypeError, MemoryError, IndexError, KeyError, ZeroDivisionError, OverflowError, zlib.error,
)

_PILLOW_LIMIT_LOCK = threading.Lock()
_ALPHA_MODES = {"RGBA", "LA", "PA", "La", "RGBa"}
_ORIENTATION = 0x0112  # the EXIF tag
_STRIP_BYTES = 1 << 22  # pixels copied out of Pillow 4 MB at a time


@dataclass(frozen=True)
class LoadedImage:
    """A decoded image.

    Attributes
    ----------
    pixels : (H, W, C) uint8 ndarray
        C is 1 (grey), 3 (RGB) or 4 (RGBA).
    format : str or None
        Pillow's name of the source format (``"PNG"``, ``"JPEG"``…), None for arrays.
    source_mode : str
        Pillow mode of the source (``"array"`` for arrays).
    path : Path or None
        Where it came from, if a file.
    notes : tuple of str
        What the conversion to 8 bits did that a reader of the report should know (e.g. 32-bit
        samples scaled from their range, a profile converted, frames left out).
    icc_profile : bytes or None
        The image's embedded ICC profile (None when it had none, or its pixels were converted
        to sRGB): the output should carry it.
    """

    pixels: NDArray[np.uint8]
    format: str | None
    source_mode: str
    path: Path | None = None
    notes: tuple[str, ...] = ()
    icc_profile: bytes | None = None

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[2])


def load_image(
    source: ImageSource,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_memory: int | None = DEFAULT_MAX_MEMORY,
    allow_truncated: bool = False,
    srgb: bool = False,
    name: str | None = None,
) -> LoadedImage:
    """Decode a path, bytes, PIL image or array into a :class:`LoadedImage`.

    Parameters
    ----------
    source : str, PathLike, bytes, PIL.Image.Image or (H, W) / (H, W, 1|3|4) uint8 ndarray
        The image. Arrays must be uint8.
    max_pixels : int or None
        Refuse images whose width × height exceeds this (``None``: no limit).
    max_memory : int or None
        Refuse, before decoding, images that would need more bytes than this to decode and
        quantize (:func:`decode_bytes`; ``None``: no limit).
    allow_truncated : bool
        Accept files whose data ends early (the decoder fills the rest).
    srgb : bool
        Convert the pixels of an image with an ICC profile to sRGB (its profile is then not
        kept); by default the profile is kept for the output and the pixels left as they are.
    name : str, optional
        What error messages call bytes (a URL, ``<stdin>``); default "the given bytes".

    Returns
    -------
    LoadedImage

    Raises
    ------
    InputNotFoundError, NotAnImageError, TruncatedImageError, UnsupportedModeError,
    ImageTooLargeError, InvalidOptionError
    """
    if isinstance(source, np.ndarray):
        pixels = _from_array(source)
        _check_size(pixels.shape[1], pixels.shape[0], max_pixels, "the array")
        return LoadedImage(_normalise(pixels), None, "array")
    if isinstance(source, Image.Image):
        _check_size(source.width, source.height, max_pixels, "the image")
        pixels, notes = _to_array(_oriented(source))
        return LoadedImage(_normalise(pixels), source.format, source.mode, None, notes)
    limits = _Limits(max_pixels, max_memory, bool(allow_truncated), bool(srgb))
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _open(io.BytesIO(bytes(source)), name or "the given bytes", limits, None)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise InputNotFoundError(f"{path}: no such file; check the path")
        if not path.is_file():
            raise InputNotFoundError(f"{path}: not a file; give the path of an image file")
        return _open(path, str(path), limits, path)
    raise InvalidOptionError(
        f"image must be a path, bytes, a PIL image or a uint8 array, got {type(source).__name__}"
    )


@dataclass(frozen=True)
class _Limits:
    max_pixels: int | None
    max_memory: int | None
    allow_truncated: bool
    srgb: bool = False


def _open(fp: IO[bytes] | Path, name: str, limits: _Limits, path: Path | None) -> LoadedImage:
    try:
        with _pillow_guard(limits), _stderr_silenced():
            try:
                im = Image.open(fp, formats=_formats())  # reads the header only
            except UnidentifiedImageError:
                claimed = _claimed_format(fp)
                if claimed is not None:  # a known format's signature, then nonsense
                    raise TruncatedImageError(
                        f"{name}: starts like {claimed} file but its header is corrupt; "
                        "re-export or re-download it") from None
                raise NotAnImageError(
                    f"{name}: not an image in a format kmquant reads ({_READABLE}); convert it "
                    "to PNG first") from None
            with im:
                _check_size(im.width, im.height, limits.max_pixels, name)
                _check_memory(im, limits.max_memory, name)
                fmt, mode = im.format, im.mode
                im.load()
                # a sub-image (an ICO's PNG, a GIF frame larger than its screen) may be larger
                # than the header said
                _check_size(im.width, im.height, limits.max_pixels, name)
                if fmt == "PNG" and not limits.allow_truncated:
                    _check_png_data(fp, im, name)
                frames = getattr(im, "n_frames", 1)
                shown, icc, colour_notes = _profiled(im, limits.srgb)
                pixels, notes = _to_array(_oriented(shown))
                pixels = _normalise(pixels)
                notes = notes + colour_notes
                if frames > 1:
                    notes += (f"the file holds {frames} frames (an animation or pages); only "
                              "the first was quantized",)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(_bomb_message(name, exc, limits)) from None
    except DECODER_ERRORS as exc:
        if isinstance(exc, FileNotFoundError):
            raise InputNotFoundError(f"{name}: no such file; check the path") from None
        if isinstance(exc, PermissionError):
            raise InputNotFoundError(f"{name}: cannot be read (permission denied)") from None
        raise TruncatedImageError(
            f"{name}: the image data is truncated or corrupt ({_cause(exc)}); re-export or "
            "re-download it"
        ) from None
    return LoadedImage(pixels, fmt, mode, path, notes, icc)


def _profiled(im: Image.Image, srgb: bool) -> tuple[Image.Image, bytes | None, tuple[str, ...]]:
    """``im`` with its ICC profile: kept as it is (the output embeds it), or with ``srgb`` its
    pixels converted to sRGB (the profile then dropped); a note says which."""
    icc = im.info.get("icc_profile")
    if not icc:
        return im, None, ()
    description = _profile_name(icc)
    if not srgb:
        return im, icc, (f"ICC profile ({description}) kept in the output",)
    if im.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return im, icc, (f"ICC profile ({description}) kept: --srgb cannot convert {im.mode} "
                         "pixels",)
    from PIL import ImageCms

    try:
        converted = ImageCms.profileToProfile(
            im, ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"),
            outputMode="RGBA" if im.mode == "RGBA" else "RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return im, None, (f"the ICC profile ({description}) could not be read: pixels left as "
                          "they are, profile dropped",)
    assert converted is not None
    return converted, None, (f"pixels converted from {description} to sRGB",)


def _profile_name(icc: bytes) -> str:
    try:
        from PIL import ImageCms

        text = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip()
        return " ".join(text.split())[:60] or "unnamed"
    except Exception:  # a broken profile must not stop the pixels from loading
        return "unreadable"


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null while a decoder runs.

    libtiff (and a few C decoders) print their complaints about a broken file straight to the
    process's stderr ("ZIPDecode: Decoding error at scanline 0"), around the one line kmquant
    prints; the decoder's error itself still reaches Python and is reported. Runs under the
    decode lock, so concurrent decodes do not restore each other's descriptor.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no descriptor 2 (embedded, closed): nothing to do
        yield
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
        finally:
            os.close(null)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


#: File signatures of the formats of :data:`FORMATS` (TGA has none): a file that starts with one
#: but that Pillow cannot identify is a corrupt file of that format, not "not an image".
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"), (b"\xff\xd8\xff", 0, "JPEG"), (b"GIF8", 0, "GIF"),
    (b"WEBP", 8, "WebP"), (b"II*\x00", 0, "TIFF"), (b"MM\x00*", 0, "TIFF"), (b"BM", 0, "BMP"),
    (b"qoif", 0, "QOI"), (b"\x00\x00\x01\x00", 0, "an ICO"), (b"ftypavif", 4, "an AVIF"),
    (b"ftypavis", 4, "an AVIF"),
)


def _claimed_format(fp: IO[bytes] | Path) -> str | None:
    """The format whose signature the file starts with, if any."""
    try:
        if isinstance(fp, Path):
            with open(fp, "rb") as handle:
                head = handle.read(16)
        else:
            fp.seek(0)
            head = fp.read(16)
    except OSError:
        return None
    for signature, at, name in _SIGNATURES:
        if head[at:at + len(signature)] == signature:
            return name if name.startswith("an ") else f"a {name}"
    return None


def _formats() -> list[str]:
    """:data:`FORMATS` that this Pillow has (AVIF needs a Pillow built with libavif)."""
    Image.init()
    return [name for name in FORMATS if name in Image.OPEN]


def _cause(exc: BaseException) -> str:
    """A decoder's exception as a short phrase on one line."""
    if isinstance(exc, MemoryError):
        return "a size field asks for more memory than the file can hold"
    return (" ".join(str(exc).split()) or type(exc).__name__)[:200]


def _bomb_message(name: str, exc: BaseException, limits: _Limits) -> str:
    found = re.search(r"\((\d+) pixels\)", str(exc))
    pixels = int(found.group(1)) if found else None
    over_pixels = limits.max_pixels is not None and (pixels is None or pixels > limits.max_pixels)
    if over_pixels or limits.max_memory is None:
        size = f"{pixels:,} pixels" if pixels is not None else "more pixels than the limit"
        limit = f" of {limits.max_pixels:,}" if limits.max_pixels is not None else ""
        return (f"{name}: declares {size}, over the limit{limit}; raise --max-pixels if you "
                "trust this file")
    need = f"at least {_size(pixels * _LEAST_BYTES)}" if pixels is not None else "more"
    return (f"{name}: declares {pixels or 0:,} pixels, which would need {need} to decode and "
            f"quantize, over the memory budget of {_size(limits.max_memory)}; raise --max-memory "
            "if this machine has the memory")


def _pixel_cap(limits: _Limits) -> int | None:
    """The pixel count Pillow's bomb check enforces: ``max_pixels``, or fewer when the memory
    budget cannot hold that many (so that ``--max-pixels none`` still has a bound)."""
    caps = [limits.max_pixels] if limits.max_pixels is not None else []
    if limits.max_memory is not None:
        caps.append(max(1, limits.max_memory // _LEAST_BYTES))
    return min(caps) if caps else None


@contextlib.contextmanager
def _pillow_guard(limits: _Limits) -> Iterator[None]:
    """Pillow's process-wide settings for one decode, restored afterwards.

    - ``Image.MAX_IMAGE_PIXELS`` = ``max_pixels`` (or fewer, for the memory budget), its warning
      made an error: Pillow's bomb check then refuses anything over the limit wherever it runs
      (in ``open``, in sub-images).
    - ``ImageFile.LOAD_TRUNCATED_IMAGES`` = ``allow_truncated``.
    - Text and ICC chunks too large to decompress within Pillow's bounds are skipped instead of
      failing the image (Pillow raises unless truncated images are allowed, which would also let
      truncated pixel data through).
    - Other warnings (broken EXIF blocks) are not printed: the pixels are what matter here.

    The lock keeps threads that decode at the same time from restoring each other's values.
    """
    with _PILLOW_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        previous = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
        handlers = {kind: getattr(PngImagePlugin.PngStream, kind, None)
                    for kind in _METADATA_CHUNKS}
        Image.MAX_IMAGE_PIXELS = _pixel_cap(limits)
        ImageFile.LOAD_TRUNCATED_IMAGES = limits.allow_truncated
        for kind, handler in handlers.items():
            if handler is not None:
                setattr(PngImagePlugin.PngStream, kind, _skipping_oversized(handler))
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = previous
            for kind, handler in handlers.items():
                if handler is not None:
                    setattr(PngImagePlugin.PngStream, kind, handler)


#: PNG chunk handlers of Pillow whose decompression can fail on size alone.
_METADATA_CHUNKS = ("chunk_iCCP", "chunk_zTXt", "chunk_iTXt")


def _skipping_oversized(handler):
    """``handler`` (a PngStream chunk method) that skips its chunk when Pillow refuses to
    decompress it for its size ("Decompressed Data Too Large", "Too much memory used in text
    chunks") instead of failing the whole image."""

    def skipping(stream, pos: int, length: int) -> bytes:
        try:
            return handler(stream, pos, length)
        except ValueError as exc:
            text = str(exc).lower()
            if "too large" not in text and "too much" not in text:
                raise
            # the chunk's own bytes, for Pillow's CRC check; nothing of it is kept
            stream.fp.seek(pos)
            return ImageFile._safe_read(stream.fp, length)

    return skipping


#: Bytes a pixel takes in Pillow's memory, by mode (multi-band modes use 4).
_PILLOW_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
#: Bytes a pixel takes in kmquant's own arrays while it quantizes: the (H, W, C ≤ 4) pixels, the
#: indices, the PNG rows (C + 2) and, at worst, a converted copy in Pillow (4); the colour
#: histogram and the engine's state are checked once the colours are counted.
_WORKING_BYTES = 10
#: The fewest bytes a pixel can need (a one-byte mode): the memory budget's bound on pixels.
_LEAST_BYTES = 1 + _WORKING_BYTES


def decode_bytes(width: int, height: int, mode: str) -> int:
    """Bytes decoding and quantizing a ``width`` × ``height`` image of Pillow ``mode`` will need
    at most, before its colours are known (an estimate from the header: Pillow's decoded image
    plus kmquant's working arrays)."""
    return width * height * (_PILLOW_BYTES.get(mode, 4) + _WORKING_BYTES)


def _check_memory(im: Image.Image, max_memory: int | None, name: str) -> None:
    if max_memory is None:
        return
    need = decode_bytes(im.width, im.height, im.mode)
    if need > max_memory:
        raise ImageTooLargeError(
            f"{name}: {im.width}×{im.height} would need about {_size(need)} to decode and "
            f"quantize, over the memory budget of {_size(max_memory)}; raise --max-memory if "
            "this machine has the memory"
        )


def _size(n: int) -> str:
    for unit, scale in (("GB", 2**30), ("MB", 2**20)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by colour type
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))  # (x0, y0, dx, dy) of the seven interlace passes


def _check_png_data(fp: IO[bytes] | Path, im: Image.Image, name: str) -> None:
    """Refuse a PNG whose compressed image data ends before its last row.

    Pillow stops at the end of the zlib stream and leaves the missing rows zero, without an
    error: a 13 KB file can claim 64 megapixels that way. The IDAT data are inflated again here,
    counting the bytes without keeping them (about 0.1 s for 12 megapixels).
    """
    handle = open(fp, "rb") if isinstance(fp, Path) else fp
    try:
        handle.seek(8)
        header = handle.read(8 + 13)
        if len(header) < 21 or header[4:8] != b"IHDR":
            return
        width, height, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", header[8:])
        if color_type not in _PNG_CHANNELS:
            return
        bits = depth * _PNG_CHANNELS[color_type]
        handle.seek(4, os.SEEK_CUR)  # IHDR's CRC
        expected = _png_raw_size(width, height, bits, interlace == 1)
        got = _inflated_idat_bytes(handle, expected)
    finally:
        if handle is not fp:
            handle.close()
    if got < expected:
        raise TruncatedImageError(
            f"{name}: the image data ends early ({got:,} of {expected:,} bytes: "
            f"{got * 100 // max(expected, 1)} % of the rows); re-export it, or pass "
            "--allow-truncated to accept the rows it has"
        )


def _png_raw_size(width: int, height: int, bits: int, interlaced: bool) -> int:
    """Bytes of filtered scanlines (a filter byte each) a PNG's zlib stream must hold."""
    passes = _ADAM7 if interlaced else ((0, 0, 1, 1),)
    total = 0
    for x0, y0, dx, dy in passes:
        cols = (width - x0 + dx - 1) // dx if width > x0 else 0
        rows = (height - y0 + dy - 1) // dy if height > y0 else 0
        if cols and rows:
            total += rows * (1 + (cols * bits + 7) // 8)
    return total


def _inflated_idat_bytes(handle: IO[bytes], enough: int) -> int:
    """Inflate the IDAT chunks from the current position (just after IHDR), counting the
    output; stops at the end of the stream, at IEND, or once ``enough`` bytes came out."""
    inflater = zlib.decompressobj()
    got = 0
    while got < enough and not inflater.eof:
        head = handle.read(8)
        if len(head) < 8:
            break
        length, kind = struct.unpack(">I4s", head)
        if kind == b"IEND":
            break
        if kind != b"IDAT":
            handle.seek(length + 4, os.SEEK_CUR)
            continue
        remaining = length
        while remaining and got < enough and not inflater.eof:
            data = handle.read(min(remaining, 1 << 20))
            if not data:
                return got
            remaining -= len(data)
            while data and got < enough and not inflater.eof:
                got += len(inflater.decompress(data, 1 << 22))
                data = inflater.unconsumed_tail
        handle.seek(remaining + 4, os.SEEK_CUR)
    return got


def _check_size(width: int, height: int, max_pixels: int | None, name: str) -> None:
    if width < 1 or height < 1:
        raise NotAnImageError(f"{name}: the image is empty ({width}×{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"{name}: {width}×{height} = {width * height:,} pixels is over the limit of "
            f"{max_pixels:,}; raise --max-pixels if you trust this file"
        )


def _oriented(im: Image.Image) -> Image.Image:
    """``im`` turned upright by its EXIF orientation; ``im`` itself when it is upright already
    (``exif_transpose`` would return a copy: 50 MB for a 12.6 MP photo)."""
    try:
        if im.getexif().get(_ORIENTATION, 1) in (None, 1):
            return im
        return ImageOps.exif_transpose(im) or im
    except Exception:  # a broken EXIF block must not stop the pixels from loading
        return im


def _to_array(im: Image.Image) -> tuple[NDArray[np.uint8], tuple[str, ...]]:
    """Convert any Pillow mode to an (H, W, 1|3|4) uint8 array, with notes on the scaling."""
    try:
        return _convert(im)
    except ValueError as exc:  # Pillow: "conversion from X to Y not supported"
        raise UnsupportedModeError(
            f"pixel mode {im.mode!r} cannot be converted to RGB ({exc}); "
            "convert the image to RGB or RGBA first"
        ) from None


def _convert(im: Image.Image) -> tuple[NDArray[np.uint8], tuple[str, ...]]:
    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        data = np.asarray(im)
        if mode == "F":
            scale = 255.0 if float(np.nanmax(data, initial=0.0)) <= 1.0 else 1.0
            data = np.nan_to_num(data.astype(np.float64) * scale)
            return np.clip(np.rint(data), 0, 255).astype(np.uint8)[:, :, None], ()
        low, high = int(data.min(initial=0)), int(data.max(initial=0))
        if mode == "I" and 0 <= low and high <= 255:
            return data.astype(np.uint8)[:, :, None], ()
        if 0 <= low and high <= 65535:
            # 16-bit samples: 0..65535 → 0..255, rounded, in integers (no float copy of the
            # image): x / 257 is never halfway between integers, so (x + 128) // 257 rounds it
            wide = data.astype(np.uint32)
            wide += 128
            wide //= 257
            return wide.astype(np.uint8)[:, :, None], ()
        # 32-bit samples beyond 16 bits (or negative): clipping would flatten most of the
        # picture, so the range the image uses is scaled onto 0..255, and the report says so
        low = min(low, 0)
        out = np.empty(data.shape, dtype=np.uint8)
        span = float(high - low) or 1.0
        rows = max(1, _STRIP_BYTES // max(1, 8 * data.shape[1]))
        for top in range(0, data.shape[0], rows):  # float64 in strips, not for the whole image
            strip = (data[top:top + rows].astype(np.float64) - low) * (255.0 / span)
            out[top:top + rows] = np.rint(strip)
        note = (f"32-bit samples from {low:,} to {high:,} were scaled onto 0–255 (the quality "
                "is measured against that 8-bit picture)")
        return out[:, :, None], (note,)
    if mode in ("1", "L"):
        return _pixels(im, "L"), ()
    if mode == "P":
        has_alpha = "transparency" in im.info or (im.palette is not None and im.palette.mode == "RGBA")
        return _pixels(im, "RGBA" if has_alpha else "RGB"), ()
    if mode in _ALPHA_MODES:
        return _pixels(im, "RGBA"), ()
    if mode in ("RGB", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        return _pixels(im, "RGB"), ()
    raise UnsupportedModeError(
        f"pixel mode {mode!r} cannot be converted to RGB; convert the image to RGB or RGBA first"
    )


def _pixels(im: Image.Image, mode: str) -> NDArray[np.uint8]:
    """The pixels of ``im`` in ``mode`` (L, RGB or RGBA) as an (H, W, C) array.

    Converted only when the mode differs (``convert`` to the same mode copies the whole image),
    and copied out a strip of rows at a time: ``np.asarray(im)`` goes through ``tobytes``, which
    holds the encoded chunks and their join at once (a 12.6 MP RGB image: 76 MB on top of the 38 MB
    array and Pillow's own 50 MB).
    """
    if im.mode != mode:
        im = im.convert(mode)
    channels = len(mode) if mode != "L" else 1
    out = np.empty((im.height, im.width, channels), dtype=np.uint8)
    rows = max(1, _STRIP_BYTES // (im.width * channels))
    for top in range(0, im.height, rows):
        bottom = min(im.height, top + rows)
        strip = im.crop((0, top, im.width, bottom)).tobytes()
        out[top:bottom] = np.frombuffer(strip, dtype=np.uint8).reshape(bottom - top, im.width,
                                                                       channels)
    return out


def _from_array(arr: np.ndarray) -> NDArray[np.uint8]:
    if arr.dtype != np.uint8:
        raise InvalidOptionError(
            f"image arrays must be uint8, got {arr.dtype}; scale to 0..255 and use .astype(np.uint8)"
        )
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise InvalidOptionError(
            f"image arrays must have shape (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}"
        )
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InvalidOptionError(f"the image array is empty: shape {arr.shape}")
    return np.ascontiguousarray(arr)


def _normalise(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Drop channels that carry nothing.

    An alpha channel that is 255 everywhere is dropped, and RGB with R == G == B everywhere
    becomes one grey channel, so grey pictures stay grey and opaque ones need no tRNS.
    """
    if pixels.shape[2] == 4 and bool((pixels[:, :, 3] == 255).all()):
        pixels = np.ascontiguousarray(pixels[:, :, :3])
    if pixels.shape[2] == 3:
        r = pixels[:, :, 0]
        if np.array_equal(r, pixels[:, :, 1]) and np.array_equal(r, pixels[:, :, 2]):
            return np.ascontiguousarray(pixels[:, :, :1])
    return pixels
