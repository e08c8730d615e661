"""Decode an image once into an ``(H, W, C)`` uint8 array.

Every mode Pillow reads becomes RGB (C=3), RGBA (C=4) or greyscale (C=1); EXIF orientation is
applied; 16-bit and float data are scaled, not clipped; the pixel count is checked against a limit
from the header, before any pixel is decoded.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import (
    ImageTooLargeError,
    InputNotFoundError,
    InvalidOptionError,
    NotAnImageError,
    TruncatedImageError,
    UnsupportedModeError,
)
from .options import DEFAULT_MAX_PIXELS

__all__ = ["ImageSource", "LoadedImage", "load_image"]

ImageSource = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]

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
    """

    pixels: NDArray[np.uint8]
    format: str | None
    source_mode: str
    path: Path | None = None

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[2])


def load_image(source: ImageSource, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decode a path, bytes, PIL image or array into a :class:`LoadedImage`.

    Parameters
    ----------
    source : str, PathLike, bytes, PIL.Image.Image or (H, W) / (H, W, 1|3|4) uint8 ndarray
        The image. Arrays must be uint8.
    max_pixels : int or None
        Refuse images whose width × height exceeds this (``None``: no limit).

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
        return LoadedImage(_normalise(_to_array(_oriented(source))), source.format, source.mode)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _open(io.BytesIO(bytes(source)), "the given bytes", max_pixels, None)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise InputNotFoundError(f"{path}: no such file; check the path")
        if not path.is_file():
            raise InputNotFoundError(f"{path}: not a file; give the path of an image file")
        return _open(path, str(path), max_pixels, path)
    raise InvalidOptionError(
        f"image must be a path, bytes, a PIL image or a uint8 array, got {type(source).__name__}"
    )


def _open(fp, name: str, max_pixels: int | None, path: Path | None) -> LoadedImage:
    try:
        with _own_pixel_limit():
            im = Image.open(fp)  # reads the header only
        with im:
            _check_size(im.width, im.height, max_pixels, name)
            fmt, mode = im.format, im.mode
            im.load()
            pixels = _normalise(_to_array(_oriented(im)))
    except UnidentifiedImageError:
        raise NotAnImageError(
            f"{name}: not an image Pillow can read; give a PNG, JPEG, WebP, TIFF, BMP or GIF"
        ) from None
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{name}: {exc}; raise --max-pixels if you trust it") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise InputNotFoundError(f"{name}: no such file; check the path") from None
        if isinstance(exc, PermissionError):
            raise InputNotFoundError(f"{name}: cannot be read (permission denied)") from None
        raise TruncatedImageError(
            f"{name}: the image data is truncated or corrupt ({exc}); re-export or re-download it"
        ) from None
    return LoadedImage(pixels, fmt, mode, path)


@contextlib.contextmanager
def _own_pixel_limit():
    """Let ``max_pixels`` rule instead of Pillow's global bomb guard while a header is read.

    Pillow checks ``Image.MAX_IMAGE_PIXELS`` inside ``Image.open``, before our own check could run;
    our check (from the same header, before decoding) replaces it. The lock keeps threads that
    open files at the same time from restoring each other's value.
    """
    with _PILLOW_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        previous = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = previous


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


def _to_array(im: Image.Image) -> NDArray[np.uint8]:
    """Convert any Pillow mode to an (H, W, 1|3|4) uint8 array."""
    try:
        return _convert(im)
    except ValueError as exc:  # Pillow: "conversion from X to Y not supported"
        raise UnsupportedModeError(
            f"pixel mode {im.mode!r} cannot be converted to RGB ({exc}); "
            "convert the image to RGB or RGBA first"
        ) from None


def _convert(im: Image.Image) -> NDArray[np.uint8]:
    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        data = np.asarray(im)
        if mode == "F":
            scale = 255.0 if float(np.nanmax(data, initial=0.0)) <= 1.0 else 1.0
            data = np.nan_to_num(data.astype(np.float64) * scale)
            return np.clip(np.rint(data), 0, 255).astype(np.uint8)[:, :, None]
        if mode == "I" and int(data.max(initial=0)) <= 255:
            return np.clip(data, 0, 255).astype(np.uint8)[:, :, None]
        # 16-bit samples: 0..65535 → 0..255, rounded, in integers (no float copy of the image):
        # x / 257 is never halfway between integers, so (x + 128) // 257 is its rounding
        wide = np.clip(data, 0, 65535).astype(np.uint32)
        wide += 128
        wide //= 257
        return wide.astype(np.uint8)[:, :, None]
    if mode in ("1", "L"):
        return _pixels(im, "L")
    if mode == "P":
        has_alpha = "transparency" in im.info or (im.palette is not None and im.palette.mode == "RGBA")
        return _pixels(im, "RGBA" if has_alpha else "RGB")
    if mode in _ALPHA_MODES:
        return _pixels(im, "RGBA")
    if mode in ("RGB", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        return _pixels(im, "RGB")
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
