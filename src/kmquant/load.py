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

Animations (GIF, APNG, animated WebP) are read whole by :func:`load_frames`: every frame composited
on the full canvas, with its duration and the loop count, refused before any frame is decoded when
all of them would not fit the memory budget. :func:`load_image` reads their first frame, and the
first page or picture of other multi-image files (TIFF pages, MPO pictures), with a note saying so.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar, Union

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFile, ImageOps, PngImagePlugin, UnidentifiedImageError

from .errors import (
    ImageTooLargeError,
    InputNotFoundError,
    InvalidOptionError,
    KmquantError,
    NotAnImageError,
    TruncatedImageError,
    UnsupportedModeError,
)
from .options import DEFAULT_MAX_MEMORY, DEFAULT_MAX_PIXELS

_T = TypeVar("_T")

__all__ = ["ImageSource", "LoadedImage", "LoadedFrames", "load_image", "load_frames", "FORMATS",
           "ANIMATED_FORMATS", "DECODER_ERRORS", "decode_bytes", "animation_bytes"]

ImageSource = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]

#: Input formats, by Pillow's names, decoded in process: the formats people quantize (photos,
#: screenshots, sprites, icons), each with a decoder that is a library Pillow links or its own C
#: code, all covered by Pillow's fuzzing. JPEG includes MPO (multi-picture JPEGs from cameras),
#: PPM includes PGM and PBM. AVIF only where Pillow was built with it. Left out on purpose: EPS and
#: PDF (Ghostscript, an interpreter: a file can hang it or worse), and the rarely used or
#: scientific formats (DDS, PSD, FITS, SGI, …), whose decoders raise what the fuzzing found.
FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "TIFF", "BMP", "TGA", "PPM", "QOI", "ICO", "AVIF")
_READABLE = "PNG, JPEG, GIF, WebP, TIFF, BMP, TGA, PPM/PGM/PBM, QOI, ICO or AVIF"
#: Formats whose frames are an animation (timed frames on one canvas), which :func:`load_frames`
#: reads whole. The frames of other formats are pages or separate pictures (a TIFF's pages, an
#: MPO's views, an animated AVIF is not read as one yet): their first is read, with a note.
ANIMATED_FORMATS = ("GIF", "PNG", "WEBP")
#: What the images of a multi-image file are called in notes, by format.
_IMAGE_WORDS = {"TIFF": "pages", "MPO": "pictures", "ICO": "images"}

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


@dataclass(frozen=True)
class LoadedFrames:
    """The decoded frames of an animation, or of a still as its one frame.

    Attributes
    ----------
    frames : (F, H, W, C) uint8 ndarray
        Every frame composited on the full canvas, as a viewer shows it; C is 1, 3 or 4 for
        all of them (alpha only when some frame is translucent somewhere, one grey channel
        only when every frame is grey).
    durations : tuple of float
        How long each frame shows, in milliseconds (F values; ``(0.0,)`` for a still).
    loop : int or None
        How many times the animation plays, as browsers play it: 0 forever, N > 0 that many
        times; None when the file says nothing (it plays once). A GIF's NETSCAPE count is the
        number of repeats after the first play (loop 1 plays twice), so it is N − 1 there;
        APNG's num_plays and WebP's loop count are the plays themselves.
    format, source_mode, path, notes, icc_profile
        As in :class:`LoadedImage`, for the whole file.
    """

    frames: NDArray[np.uint8]
    durations: tuple[float, ...]
    loop: int | None
    format: str | None
    source_mode: str
    path: Path | None = None
    notes: tuple[str, ...] = ()
    icc_profile: bytes | None = None

    @classmethod
    def still(cls, image: LoadedImage) -> LoadedFrames:
        """A still image as one frame (its pixels not copied)."""
        return cls(image.pixels[None], (0.0,), None, image.format, image.source_mode,
                   image.path, image.notes, image.icc_profile)

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def is_animated(self) -> bool:
        return self.n_frames > 1

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def channels(self) -> int:
        return int(self.frames.shape[3])

    def stacked(self) -> NDArray[np.uint8]:
        """The frames one below the other, as one (F·H, W, C) picture (a view, not a copy)."""
        return self.frames.reshape(self.n_frames * self.height, self.width, self.channels)

    def first(self) -> LoadedImage:
        """The first frame as a still :class:`LoadedImage`, as :func:`load_image` reads it: for
        an animation its channels are reduced again on its own, and a note says that only it is
        kept."""
        if not self.is_animated:
            return LoadedImage(self.frames[0], self.format, self.source_mode, self.path,
                               self.notes, self.icc_profile)
        what = _FORMAT_WORDS.get(self.format or "", self.format or "file")
        note = (f"the {what} is an animation of {self.n_frames} frames; only the first was "
                "quantized (kmquant compress keeps them all in a .png or .gif)")
        return LoadedImage(_normalise(self.frames[0]), self.format, self.source_mode, self.path,
                           self.notes + (note,), self.icc_profile)


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
    return _from_file(source, name, limits, _open)


def load_frames(
    source: ImageSource,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_memory: int | None = DEFAULT_MAX_MEMORY,
    allow_truncated: bool = False,
    srgb: bool = False,
    name: str | None = None,
) -> LoadedFrames:
    """Decode every frame of an animation (GIF, APNG, animated WebP), or a still as one frame.

    The frames are composited as a viewer shows them (each frame's disposal and blending
    applied by Pillow), so each is the full canvas. Before any frame is decoded, all of them
    together are checked against ``max_memory`` (:func:`animation_bytes`): a file claiming
    100,000 frames is refused from its header. ``max_pixels`` bounds each frame, as it bounds a
    still. Other files, multi-page ones included (TIFF, MPO), are read as :func:`load_image`
    reads them.

    Parameters
    ----------
    source : str, PathLike, bytes, PIL.Image.Image or uint8 ndarray
        As for :func:`load_image` (a PIL image or an array is one frame).
    max_pixels, max_memory, allow_truncated, srgb, name
        As for :func:`load_image`; with ``allow_truncated``, an animation that breaks off keeps
        the frames before the break.

    Returns
    -------
    LoadedFrames

    Raises
    ------
    InputNotFoundError, NotAnImageError, TruncatedImageError, UnsupportedModeError,
    ImageTooLargeError, InvalidOptionError
    """
    if isinstance(source, (np.ndarray, Image.Image)):
        return LoadedFrames.still(load_image(source, max_pixels=max_pixels))
    limits = _Limits(max_pixels, max_memory, bool(allow_truncated), bool(srgb))
    return _from_file(source, name, limits, _open_frames)


def _from_file(source: Any, name: str | None, limits: _Limits, opener: Callable[..., _T]) -> _T:
    """``opener(fp, name, limits, path)`` on the bytes or the file ``source`` names."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return opener(io.BytesIO(bytes(source)), name or "the given bytes", limits, None)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise InputNotFoundError(f"{path}: no such file; check the path")
        if not path.is_file():
            raise InputNotFoundError(f"{path}: not a file; give the path of an image file")
        return opener(path, str(path), limits, path)
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
    with _decoding(name, limits):
        with _identified(fp, name) as im:
            return _still(im, fp, name, limits, path)


def _open_frames(
    fp: IO[bytes] | Path, name: str, limits: _Limits, path: Path | None
) -> LoadedFrames:
    with _decoding(name, limits):
        with _identified(fp, name) as im:
            _check_size(im.width, im.height, limits.max_pixels, name)
            if im.format in ANIMATED_FORMATS and _frame_count(im) > 1:
                return _animation(im, fp, name, limits, path)
            return LoadedFrames.still(_still(im, fp, name, limits, path))


@contextlib.contextmanager
def _decoding(name: str, limits: _Limits) -> Iterator[None]:
    """Decode under :func:`_pillow_guard`, with libtiff's chatter silenced, and turn every
    exception a decoder raises on bad data into kmquant's error for it."""
    try:
        with _pillow_guard(limits), _stderr_silenced():
            yield
    except KmquantError:
        raise
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


def _identified(fp: IO[bytes] | Path, name: str) -> Image.Image:
    """The file opened by Pillow (its header read), restricted to :data:`FORMATS`."""
    try:
        return Image.open(fp, formats=_formats())  # reads the header only
    except UnidentifiedImageError:
        claimed = _claimed_format(fp)
        if claimed is not None:  # a known format's signature, then nonsense
            raise TruncatedImageError(
                f"{name}: starts like {claimed} file but its header is corrupt; "
                "re-export or re-download it") from None
        raise NotAnImageError(
            f"{name}: not an image in a format kmquant reads ({_READABLE}); convert it "
            "to PNG first") from None


def _still(
    im: Image.Image, fp: IO[bytes] | Path, name: str, limits: _Limits, path: Path | None
) -> LoadedImage:
    """Decode the (first) picture of an opened file."""
    _check_size(im.width, im.height, limits.max_pixels, name)
    _check_memory(im, limits.max_memory, name)
    fmt, mode = im.format, im.mode
    im.load()
    # a sub-image (an ICO's PNG, a GIF frame larger than its screen) may be larger
    # than the header said
    _check_size(im.width, im.height, limits.max_pixels, name)
    if fmt == "PNG" and not limits.allow_truncated:
        _check_png_data(fp, im, name)
    count = _frame_count(im)
    shown, icc, colour_notes = _profiled(im, limits.srgb)
    pixels, notes = _to_array(_oriented(shown))
    pixels = _normalise(pixels)
    notes = notes + colour_notes + _more_images(im, fmt, count)
    return LoadedImage(pixels, fmt, mode, path, notes, icc)


def _frame_count(im: Image.Image) -> int:
    """Frames of an opened file, an APNG's default image (shown only by viewers without APNG
    support) not counted."""
    count = int(getattr(im, "n_frames", 1))
    return count - 1 if im.format == "PNG" and im.info.get("default_image") else count


#: How notes name a format.
_FORMAT_WORDS = {"WEBP": "WebP", "PNG": "PNG (APNG)"}


def _more_images(im: Image.Image, fmt: str | None, count: int) -> tuple[str, ...]:
    """A note saying which image of a file holding several was read, if it holds several."""
    what = _FORMAT_WORDS.get(fmt or "", fmt or "file")
    if fmt == "ICO":
        entries = len(getattr(getattr(im, "ico", None), "entry", ()))
        if entries > 1:
            return (f"the ICO holds {entries} images; only the largest ({im.width}×{im.height}) "
                    "was quantized (kmquant writes one picture per file)",)
    if count <= 1:
        return ()
    if fmt in ANIMATED_FORMATS:
        which = ("its default image (shown where APNG is not)" if im.info.get("default_image")
                 else "the first")
        return (f"the {what} is an animation of {count} frames; only {which} was quantized "
                "(kmquant compress keeps them all in a .png or .gif)",)
    return (f"the {what} holds {count} {_IMAGE_WORDS.get(fmt or '', 'frames')}; only the first "
            "was quantized (kmquant writes one picture per file)",)


def _animation(
    im: Image.Image, fp: IO[bytes] | Path, name: str, limits: _Limits, path: Path | None
) -> LoadedFrames:
    """Decode every frame of an opened animation onto its canvas, after checking that they all
    fit the memory budget."""
    skip = 1 if im.format == "PNG" and im.info.get("default_image") else 0
    count = _frame_count(im)
    fmt, mode = im.format, im.mode
    _check_frames_memory(im.width, im.height, count, limits.max_memory, name)
    if fmt == "PNG" and not limits.allow_truncated:
        _check_apng_data(fp, name)
    loop = im.info.get("loop")
    if fmt == "GIF" and loop:  # repeats after the first play → plays
        loop = int(loop) + 1
    icc = im.info.get("icc_profile") or None
    convert = _srgb_transform(icc) if limits.srgb and icc else None
    frames: NDArray[np.uint8] | None = None
    durations: list[float] = []
    notes: list[str] = []
    cut = False
    for i in range(count):
        try:
            im.seek(skip + i)
            im.load()
        except DECODER_ERRORS as exc:
            if not limits.allow_truncated or i == 0 or isinstance(exc, MemoryError):
                raise
            notes.append(f"the animation breaks off after {i} of {count} frames "
                         f"({_cause(exc)}); those {i} were kept (--allow-truncated)")
            break
        _check_size(im.width, im.height, limits.max_pixels, name)
        pixels, scaled = _to_array(_oriented(convert(im) if convert else im))
        if frames is None:  # the canvas: the first frame's size (after its EXIF orientation)
            frames = np.zeros((count, pixels.shape[0], pixels.shape[1], 4), dtype=np.uint8)
        notes += [note for note in scaled if note not in notes]
        if pixels.shape[:2] != frames.shape[1:3] and not cut:  # a GIF frame beyond its screen
            cut = True
            notes.append(f"a frame larger than the canvas ({frames.shape[2]}×{frames.shape[1]}) "
                         "was cut to it, as viewers show it")
        _put_rgba(frames[i], pixels)
        durations.append(float(im.info.get("duration") or 0))
    assert frames is not None  # count > 1, and a first frame that fails raises
    n, height, width = len(durations), frames.shape[1], frames.shape[2]
    pixels = _normalise(frames[:n].reshape(n * height, width, 4))
    if icc:
        notes.append(_colour_note(icc, limits.srgb, convert is not None))
        if limits.srgb:  # converted to sRGB, or unreadable: dropped either way, as for a still
            icc = None
    return LoadedFrames(pixels.reshape(n, height, width, -1), tuple(durations),
                        None if loop is None else int(loop), fmt, mode, path, tuple(notes), icc)


def _put_rgba(out: NDArray[np.uint8], pixels: NDArray[np.uint8]) -> None:
    """Write (h, w, 1|3|4) ``pixels`` into the (H, W, 4) canvas ``out`` as RGBA, cut to it
    (the rest of the canvas stays transparent)."""
    h, w = min(out.shape[0], pixels.shape[0]), min(out.shape[1], pixels.shape[1])
    part = pixels[:h, :w]
    if part.shape[2] == 1:
        out[:h, :w, :3] = part
    else:
        out[:h, :w, :3] = part[:, :, :3]
    out[:h, :w, 3] = part[:, :, 3] if part.shape[2] == 4 else 255


def _srgb_transform(icc: bytes) -> Callable[[Image.Image], Image.Image] | None:
    """A function converting a frame from the ``icc`` profile to sRGB (RGB or RGBA), built once
    for all the frames of an animation; None when the profile cannot be read."""
    from PIL import ImageCms

    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        target = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
        transforms = {mode: ImageCms.buildTransform(source, target, mode, mode)
                      for mode in ("RGB", "RGBA")}
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None

    def convert(frame: Image.Image) -> Image.Image:
        mode = "RGBA" if frame.mode in _ALPHA_MODES or "transparency" in frame.info else "RGB"
        converted = ImageCms.applyTransform(frame.convert(mode), transforms[mode])
        assert converted is not None  # not in place
        return converted

    return convert


def _colour_note(icc: bytes, srgb: bool, converted: bool) -> str:
    """The note of :func:`_profiled`, for the frames of an animation."""
    description = _profile_name(icc)
    if not srgb:
        return f"ICC profile ({description}) kept in the output"
    if converted:
        return f"pixels converted from {description} to sRGB"
    return (f"the ICC profile ({description}) could not be read: pixels left as they are, "
            "profile dropped")


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


#: Bytes a frame pixel of an animation takes: the frame in RGBA (4) and kmquant's working arrays.
_FRAME_BYTES = 4 + _WORKING_BYTES


def animation_bytes(width: int, height: int, n_frames: int) -> int:
    """Bytes decoding and quantizing ``n_frames`` frames of ``width`` × ``height`` will need at
    most: every frame in RGBA with kmquant's working arrays, and Pillow's canvas, previous
    canvas and converted frame (4 bytes a pixel each) for the one being decoded."""
    return width * height * (n_frames * _FRAME_BYTES + 3 * 4)


def _check_frames_memory(
    width: int, height: int, n_frames: int, max_memory: int | None, name: str
) -> None:
    if max_memory is None:
        return
    need = animation_bytes(width, height, n_frames)
    if need > max_memory:
        raise ImageTooLargeError(
            f"{name}: {n_frames:,} frames of {width}×{height} would need about {_size(need)} to "
            f"decode and quantize, over the memory budget of {_size(max_memory)}; raise "
            "--max-memory if this machine has the memory (--max-pixels bounds each frame)"
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


def _check_apng_data(fp: IO[bytes] | Path, name: str) -> None:
    """Refuse an animated PNG whose image data, for any frame, ends before its last row.

    :func:`_check_png_data` for every frame: the IDAT stream, then each fdAT stream, is inflated
    again and counted against the rows its frame's fcTL declares (Pillow would fill the missing
    rows with zeros without an error).
    """
    handle = open(fp, "rb") if isinstance(fp, Path) else fp
    start = handle.tell()  # the file Pillow reads the frames from, when given as bytes
    try:
        handle.seek(8)
        header = handle.read(8 + 13)
        if len(header) < 21 or header[4:8] != b"IHDR":
            return
        width, height, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", header[8:])
        if color_type not in _PNG_CHANNELS:
            return
        bits, interlaced = depth * _PNG_CHANNELS[color_type], interlace == 1
        handle.seek(4, os.SEEK_CUR)  # IHDR's CRC
        size, frame = (width, height), 0
        stream: list = []  # [inflater, bytes counted, bytes expected] of the data being read
        while True:
            head = handle.read(8)
            if len(head) < 8:
                break
            length, kind = struct.unpack(">I4s", head)
            if kind in (b"IDAT", b"fdAT"):
                if not stream:
                    stream = [zlib.decompressobj(), 0, _png_raw_size(*size, bits, interlaced)]
                skip = min(4, length) if kind == b"fdAT" else 0  # fdAT: a sequence number first
                handle.seek(skip, os.SEEK_CUR)
                stream[1], left = _count_inflated(handle, stream[0], length - skip, stream[1],
                                                  stream[2])
                handle.seek(left + 4, os.SEEK_CUR)
                continue
            if stream:  # another chunk ends the frame's data
                _frame_complete(stream, frame, name)
                stream, frame = [], frame + 1
            if kind == b"IEND":
                break
            if kind == b"fcTL" and length >= 12:
                control = handle.read(12)
                size = struct.unpack(">II", control[4:12])
                handle.seek(length - 12 + 4, os.SEEK_CUR)
                continue
            handle.seek(length + 4, os.SEEK_CUR)
        if stream:
            _frame_complete(stream, frame, name)
    finally:
        if handle is not fp:
            handle.close()
        else:
            handle.seek(start)


def _count_inflated(
    handle: IO[bytes], inflater, remaining: int, got: int, enough: int
) -> tuple[int, int]:
    """Inflate up to ``remaining`` bytes of one chunk's data from ``handle``, adding what comes
    out to ``got`` until ``enough``; returns the new count and the chunk's bytes left unread."""
    while remaining and got < enough and not inflater.eof:
        data = handle.read(min(remaining, 1 << 20))
        if not data:
            return got, 0
        remaining -= len(data)
        while data and got < enough and not inflater.eof:
            got += len(inflater.decompress(data, 1 << 22))
            data = inflater.unconsumed_tail
    return got, remaining


def _frame_complete(stream: list, frame: int, name: str) -> None:
    _, got, expected = stream
    if got < expected:
        raise TruncatedImageError(
            f"{name}: the image data of frame {frame + 1} ends early ({got:,} of {expected:,} "
            f"bytes: {got * 100 // max(expected, 1)} % of its rows); re-export it, or pass "
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
