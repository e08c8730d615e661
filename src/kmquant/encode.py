"""Write quantized images: indexed PNG (the real compressed form) or any Pillow format, atomically.

An indexed PNG stores 1, 2, 4 or 8 bits per pixel plus a palette of K colours; the bit depth is the
smallest that holds K. Translucent palette entries come first so the tRNS chunk stays short.
"""

from __future__ import annotations

import io
import math
import os
import stat
import struct
import tempfile
import zlib
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import deflate
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from .errors import InvalidOptionError, OutputExistsError, OutputNotWritableError

__all__ = [
    "order_palette",
    "palette_order",
    "png_bit_depth",
    "encode_png",
    "encode_as",
    "encode_apng",
    "encode_gif",
    "gif_palette",
    "GIF_ALPHA_THRESHOLD",
    "write_atomic",
    "check_output",
    "default_level",
    "describe_encoding",
    "flatten",
    "format_for_extension",
    "FORMAT_EXTENSIONS",
    "EXTENSION_FORMATS",
    "NO_ALPHA_FORMATS",
]

#: Pillow format name → file extension used for default output names.
FORMAT_EXTENSIONS = {
    "PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp", "GIF": ".gif",
}
#: Output file extension → the ``output_format`` it means (``.png``: the indexed PNG).
EXTENSION_FORMATS = {
    ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp", ".tif": "tiff",
    ".tiff": "tiff", ".bmp": "bmp", ".gif": "gif",
}
#: Pillow formats kmquant writes without an alpha channel: translucent pictures are flattened.
NO_ALPHA_FORMATS = ("JPEG", "BMP")
#: The background translucent pixels are flattened onto for :data:`NO_ALPHA_FORMATS`.
BACKGROUND = (255, 255, 255)


def format_for_extension(path: str | os.PathLike) -> str | None:
    """The ``output_format`` an output name's extension asks for (``photo.JPG`` → ``"jpeg"``),
    or None for an extension kmquant does not write (or none)."""
    return EXTENSION_FORMATS.get(Path(path).suffix.lower())


#: Pixels per chunk where NumPy would turn a uint8 index array into an intp copy (8 bytes a pixel:
#: 100 MB for 12.6 MP); 2^20 pixels keep that copy at 8 MB.
_CHUNK = 1 << 20


def order_palette(
    palette: NDArray[np.uint8], indices: NDArray[np.uint8]
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Drop unused entries and sort the palette: translucent first (by alpha), then by luma.

    Neighbouring indices then hold similar colours, which keeps filtered PNG rows small, and the
    tRNS chunk only needs the leading translucent entries.

    Parameters
    ----------
    palette : (K, C) uint8 ndarray
    indices : (H, W) uint8 ndarray

    Returns
    -------
    palette : (K', C) uint8 ndarray
        K' ≤ K used entries.
    indices : (H, W) uint8 ndarray
        Rewritten to the new order.
    """
    flat = np.ascontiguousarray(indices).reshape(-1)
    counts = np.zeros(palette.shape[0], dtype=np.int64)
    for start in range(0, flat.size, _CHUNK):  # bincount makes an intp copy: chunk by chunk
        counts += np.bincount(flat[start:start + _CHUNK], minlength=palette.shape[0])
    ordered, lookup = palette_order(palette, counts)
    out = np.empty(flat.size, dtype=np.uint8)
    for start in range(0, flat.size, _CHUNK):  # likewise for the fancy index
        out[start:start + _CHUNK] = lookup[flat[start:start + _CHUNK]]
    return ordered, out.reshape(indices.shape)


def palette_order(
    palette: NDArray[np.uint8], counts: NDArray[np.integer] | NDArray[np.floating]
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """The order of :func:`order_palette`, from how many pixels use each entry.

    When the pixels' entries are known per distinct colour (a histogram), the new index of each
    colour is ``lookup[entry]``, and the pixels need one pass instead of a count and a rewrite.

    Parameters
    ----------
    palette : (K, C) uint8 ndarray
    counts : (K,) ndarray
        Pixels of each entry; entries with 0 are dropped.

    Returns
    -------
    palette : (K', C) uint8 ndarray
        The used entries, translucent first (by alpha), then by luma.
    lookup : (K,) uint8 ndarray
        New index of each old entry (0 for dropped ones).
    """
    used = np.flatnonzero(counts)
    entries = palette[used].astype(np.int64)
    if palette.shape[1] >= 3:
        luma = 299 * entries[:, 0] + 587 * entries[:, 1] + 114 * entries[:, 2]
    else:
        luma = entries[:, 0]
    alpha = entries[:, 3] if palette.shape[1] == 4 else np.full(used.size, 255)
    order = np.lexsort((luma, alpha))  # last key first: alpha, then luma
    lookup = np.zeros(palette.shape[0], dtype=np.uint8)
    lookup[used[order]] = np.arange(used.size, dtype=np.uint8)
    return np.ascontiguousarray(palette[used[order]]), lookup


def png_bit_depth(n_colors: int) -> int:
    """Smallest PNG palette bit depth (1, 2, 4 or 8) that holds ``n_colors`` entries."""
    for bits in (1, 2, 4):
        if n_colors <= 1 << bits:
            return bits
    return 8


#: libdeflate's level by default. 10 is the first of its near-optimal parsing levels: on Kodak
#: photos it is 5–11 % smaller than zlib level 9, faster at K ≤ 64 and about as fast at 256, and
#: within 0.2 % of oxipng's level 1 in a fraction of its time. 12, the maximum, saves another
#: 0.1–0.5 % for about twice the time. Measured by ``bench/bench_png.py`` (README, "PNG bytes").
DEFLATE_LEVEL = 10
#: From this many pixels on, the default level is :data:`LARGE_DEFLATE_LEVEL`. Level 10's parsing
#: costs 2–3× the time of levels 6–9 for 2–5 % fewer bytes: 80 ms on a 768×512 photo, but on a
#: 12.6 MP mosaic at K = 256 it was 1.7 s against 0.6–0.8 s (7.85 vs 8.20–8.22 MB), the
#: largest single cost of the whole command. Above 4 MP the second counts for more than the bytes.
LARGE_FROM = 4_000_000
#: The level for large images: 8 was as small as 6, 7 and 9 (within 0.2 %) and among the fastest.
LARGE_DEFLATE_LEVEL = 8


def default_level(n_pixels: int) -> int:
    """libdeflate level for an image of ``n_pixels``: :data:`DEFLATE_LEVEL`, or
    :data:`LARGE_DEFLATE_LEVEL` from :data:`LARGE_FROM` pixels on."""
    return DEFLATE_LEVEL if n_pixels < LARGE_FROM else LARGE_DEFLATE_LEVEL


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PALETTE, _GREY = 3, 0  # PNG colour types


def encode_png(
    palette: NDArray[np.uint8],
    indices: NDArray[np.uint8],
    *,
    level: int | None = None,
    icc_profile: bytes | None = None,
) -> bytes:
    """Encode an indexed PNG as small as we can make it.

    Rows are stored unfiltered (the usual best for palette images, and what pngquant writes) and
    deflated by libdeflate, whose high levels beat zlib's best; Pillow can only use zlib.

    Parameters
    ----------
    palette : (K, C) uint8 ndarray
        C = 1 (grey), 3 (RGB) or 4 (RGBA); K ≤ 256.
    indices : (H, W) uint8 ndarray
    level : int, optional
        libdeflate compression level, 1 (fastest) to 12 (smallest); default
        :func:`default_level` for the image's size.
    icc_profile : bytes, optional
        An ICC profile to embed (iCCP chunk), so that viewers show the colours as meant.

    Returns
    -------
    bytes
        A palette PNG of the smallest bit depth for K, with tRNS when any entry is translucent.
        For grey palettes, an 8-bit greyscale PNG of the same pixels is written instead when it
        is smaller.
    """
    k, channels = palette.shape
    if level is None:
        level = default_level(indices.size)
    if k > 256:
        raise InvalidOptionError(f"a PNG palette holds at most 256 colours, got {k}")
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 12:
        raise InvalidOptionError(f"deflate level must be an integer from 1 to 12, got {level!r}")
    indices = np.ascontiguousarray(indices, dtype=np.uint8)
    profile = _profile_chunks(icc_profile)
    chunks = profile + _palette_chunks(palette)
    bits = png_bit_depth(k)
    candidates = [_png(indices, bits, _PALETTE, chunks, level)]
    if channels == 1:
        candidates.append(_png(palette[:, 0][indices], 8, _GREY, profile, level))
    return min(candidates, key=len)


def _profile_chunks(icc_profile: bytes | None) -> list[tuple[bytes, bytes]]:
    """The iCCP chunk of an ICC profile (none without one): it comes before the palette, and
    viewers then show the colours as meant."""
    if not icc_profile:
        return []
    return [(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc_profile, 9))]


def _palette_chunks(palette: NDArray[np.uint8]) -> list[tuple[bytes, bytes]]:
    """PLTE of a (K, C) palette, and tRNS up to its last translucent entry when it has one."""
    rgb = np.repeat(palette, 3, axis=1) if palette.shape[1] == 1 else palette[:, :3]
    chunks = [(b"PLTE", np.ascontiguousarray(rgb, dtype=np.uint8).tobytes())]
    if palette.shape[1] == 4:
        translucent = np.flatnonzero(palette[:, 3] < 255)
        if translucent.size:
            chunks.append((b"tRNS", palette[: translucent[-1] + 1, 3].tobytes()))
    return chunks


def _png(
    pixels: NDArray[np.uint8], bits: int, color_type: int, chunks: list[tuple[bytes, bytes]],
    level: int,
) -> bytes:
    """A PNG of one-channel ``pixels`` (H, W) at ``bits`` per pixel (values below 2**bits), with
    the extra ``chunks`` (type, payload) between IHDR and IDAT; rows unfiltered."""
    height, width = pixels.shape
    header = struct.pack(">IIBBBBB", width, height, bits, color_type, 0, 0, 0)
    parts = [_PNG_SIGNATURE, _chunk(b"IHDR", header)]
    parts += [_chunk(kind, payload) for kind, payload in chunks]
    parts += [_chunk(b"IDAT", deflate.zlib_compress(_scanlines(pixels, bits), level)),
              _chunk(b"IEND", b"")]
    return b"".join(parts)


def _scanlines(pixels: NDArray[np.uint8], bits: int) -> NDArray[np.uint8]:
    """The PNG rows of one-channel ``pixels`` (H, W) at ``bits`` per pixel, before deflate:
    (H, 1 + ceil(W·bits / 8)), each row its filter byte (0: none) and its packed pixels."""
    height, width = pixels.shape
    if bits < 8:  # pack 8 // bits pixels a byte, leftmost in the high bits, rows padded
        per_byte = 8 // bits
        padded = np.zeros((height, -(-width // per_byte) * per_byte), dtype=np.uint8)
        padded[:, :width] = pixels
        groups = padded.reshape(height, -1, per_byte)
        shifts = (bits * np.arange(per_byte - 1, -1, -1)).astype(np.uint8)
        pixels = np.bitwise_or.reduce(groups << shifts, axis=2).astype(np.uint8)
    rows = np.zeros((height, pixels.shape[1] + 1), dtype=np.uint8)  # filter byte 0: none
    rows[:, 1:] = pixels
    return rows


def _chunk(kind: bytes, payload: bytes | bytearray) -> bytes:
    """One PNG chunk: length, type, payload, CRC-32 of type and payload."""
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload)))


def encode_apng(
    palette: NDArray[np.uint8],
    frames: NDArray[np.uint8],
    durations: Sequence[float],
    *,
    loop: int | None = None,
    level: int | None = None,
    icc_profile: bytes | None = None,
) -> bytes:
    """Encode an indexed animated PNG (APNG): one palette for every frame.

    The first frame is the PNG's image (IDAT), so viewers without APNG support show it; each
    later frame (fdAT) holds only the rectangle around the pixels whose index changed from the
    frame before (1×1 when none did), drawn over it unchanged otherwise (dispose none, blend
    source). With one palette that is exact, and a still background costs nothing.

    Parameters
    ----------
    palette : (K, C) uint8 ndarray
        C = 1, 3 or 4; K ≤ 256. Translucent entries get a tRNS chunk.
    frames : (F, H, W) uint8 ndarray
        Palette indices of every frame on the full canvas.
    durations : sequence of F floats
        Milliseconds each frame shows (kept to the 1/65535 s, as fcTL's fraction holds it).
    loop : int or None
        Times the animation plays (acTL num_plays): 0 forever; None once.
    level : int, optional
        libdeflate level, 1 to 12; default :func:`default_level` for the pixels written.
    icc_profile : bytes, optional
        Embedded as iCCP.

    Returns
    -------
    bytes
        A PNG of the smallest palette bit depth for K, with acTL and an fcTL per frame.
    """
    n, height, width = _check_frames(palette, frames, durations)
    if level is not None and (isinstance(level, bool) or not isinstance(level, int)
                              or not 1 <= level <= 12):
        raise InvalidOptionError(f"deflate level must be an integer from 1 to 12, got {level!r}")
    boxes = [(0, 0, width, height)] + [
        _changed_box(frames[i - 1] != frames[i]) for i in range(1, n)]
    if level is None:
        level = default_level(sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes))
    bits = png_bit_depth(palette.shape[0])
    header = struct.pack(">IIBBBBB", width, height, bits, _PALETTE, 0, 0, 0)
    plays = 1 if loop is None else min(max(int(loop), 0), 2**31 - 1)
    parts = [_PNG_SIGNATURE, _chunk(b"IHDR", header)]
    parts += [_chunk(kind, payload) for kind, payload in _profile_chunks(icc_profile)]
    parts += [_chunk(b"acTL", struct.pack(">II", n, plays))]
    parts += [_chunk(kind, payload) for kind, payload in _palette_chunks(palette)]
    sequence = 0
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        num, den = _apng_delay(durations[i])
        control = struct.pack(">IIIIIHHBB", sequence, x1 - x0, y1 - y0, x0, y0, num, den, 0, 0)
        data = deflate.zlib_compress(_scanlines(frames[i, y0:y1, x0:x1], bits), level)
        parts.append(_chunk(b"fcTL", control))
        if i == 0:
            parts.append(_chunk(b"IDAT", data))
            sequence += 1
        else:
            parts.append(_chunk(b"fdAT", struct.pack(">I", sequence + 1) + data))
            sequence += 2
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)


def _check_frames(
    palette: NDArray[np.uint8], frames: NDArray[np.uint8], durations: Sequence[float]
) -> tuple[int, int, int]:
    """(F, H, W) of indexed ``frames``, checked against the palette and the durations."""
    if frames.ndim != 3 or frames.dtype != np.uint8 or 0 in frames.shape:
        raise InvalidOptionError(
            f"frames must be a non-empty (F, H, W) uint8 array, got {frames.dtype} {frames.shape}")
    if palette.ndim != 2 or not 1 <= palette.shape[0] <= 256:
        raise InvalidOptionError(f"a palette holds 1 to 256 colours, got shape {palette.shape}")
    if len(durations) != frames.shape[0]:
        raise InvalidOptionError(
            f"{frames.shape[0]} frames need as many durations, got {len(durations)}")
    if any(not math.isfinite(d) or d < 0 for d in durations):
        raise InvalidOptionError("frame durations must be finite and ≥ 0 milliseconds")
    return frames.shape  # type: ignore[return-value]


def _changed_box(changed: NDArray[np.bool_]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) around the True pixels of an (H, W) mask; (0, 0, 1, 1) when none are."""
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    if rows.size == 0:
        return 0, 0, 1, 1
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _apng_delay(ms: float) -> tuple[int, int]:
    """A duration in milliseconds as fcTL's fraction of a second (numerator, denominator), both
    below 2¹⁶: exact for whole milliseconds and for frame rates such as 1/30 s."""
    delay = Fraction(ms / 1000).limit_denominator(65535)
    if delay.numerator <= 65535:
        return delay.numerator, delay.denominator
    seconds = ms / 1000
    den = max(1, min(65535, int(65535 // max(seconds, 1))))
    return min(65535, round(seconds * den)), den


#: GIF keeps a pixel at an alpha of at least this, and drops it (transparent) below.
GIF_ALPHA_THRESHOLD = 128


def gif_palette(palette: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """A palette as a GIF shows it: alpha is on or off (:data:`GIF_ALPHA_THRESHOLD`), the
    colour of a transparent entry does not show.

    Parameters
    ----------
    palette : (K, C) uint8 ndarray

    Returns
    -------
    (K, C) uint8 ndarray
        With C = 4, every alpha 0 or 255, and the transparent entries (0, 0, 0, 0).
    """
    if palette.shape[1] != 4:
        return palette
    shown = palette.copy()
    clear = shown[:, 3] < GIF_ALPHA_THRESHOLD
    shown[:, 3] = 255
    shown[clear] = 0
    return shown


def encode_gif(
    palettes: NDArray[np.uint8] | Sequence[NDArray[np.uint8]],
    frames: NDArray[np.uint8],
    durations: Sequence[float],
    *,
    loop: int | None = None,
) -> bytes:
    """Encode an animated GIF from palette indices, written as given (no colour is re-chosen).

    With one palette it is the GIF's global colour table; with one per frame, the first is
    global and every other frame that differs has its own (a local colour table). A palette's
    entries below :data:`GIF_ALPHA_THRESHOLD` alpha are the frame's one transparent index.
    Each later frame holds only the rectangle around the pixels that changed (drawn over the
    frame before: "do not dispose"); where a pixel turns transparent, which a GIF frame cannot
    draw, the frame before is cleared instead ("restore to background") and the frame is whole.

    Parameters
    ----------
    palettes : (K, C) uint8 ndarray, or a sequence of F of them
        C = 1, 3 or 4; K ≤ 256.
    frames : (F, H, W) uint8 ndarray
        Indices into the frame's palette, on the full canvas.
    durations : sequence of F floats
        Milliseconds; GIF keeps hundredths of a second (rounded).
    loop : int or None
        Times the animation plays (0 forever; None or 1 once): written as the NETSCAPE
        block's count of repeats after the first play, loop − 1 (none for one play).

    Returns
    -------
    bytes
    """
    shared = isinstance(palettes, np.ndarray)
    tables = [palettes] if isinstance(palettes, np.ndarray) else [np.asarray(p) for p in palettes]
    if not shared and len(tables) != frames.shape[0]:
        raise InvalidOptionError(f"{frames.shape[0]} frames need as many palettes, got "
                                 f"{len(tables)}")
    n, height, width = _check_frames(tables[0], frames, durations)
    if width > 65535 or height > 65535:
        raise InvalidOptionError(f"a GIF is at most 65535×65535 pixels, got {width}×{height}")
    colours: list[bytes] = []
    lookups: list[NDArray[np.uint8]] = []  # (K,): palette entry → its index in the GIF
    clear: list[int | None] = []
    for table in tables:
        _check_frames(table, frames[:1], durations[:1])
        rgb, lookup, transparent = _gif_table(table)
        colours.append(rgb)
        lookups.append(lookup)
        clear.append(transparent)
    if shared:
        tables, colours, lookups, clear = tables * n, colours * n, lookups * n, clear * n
    indices = [lookups[i][frames[i]] for i in range(n)]
    boxes, disposal = _gif_boxes(indices, None if shared else tables, clear)
    parts = [b"GIF89a", struct.pack("<HHBBB", width, height, 0x80 | 0x70 | _gif_bits(colours[0]),
                                    0, 0), _gif_colours(colours[0])]
    if loop is not None and loop != 1:  # one play needs no block
        repeats = 0 if loop <= 0 else min(loop - 1, 65535)
        parts.append(b"!\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", repeats) + b"\x00")
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        delay = min(65535, max(0, round(durations[i] / 10)))
        flags = disposal[i] << 2 | (clear[i] is not None)
        parts.append(b"!\xf9\x04" + struct.pack("<BHB", flags, delay, clear[i] or 0) + b"\x00")
        local = colours[i] != colours[0]
        parts.append(b"," + struct.pack("<HHHHB", x0, y0, x1 - x0, y1 - y0,
                                        0x80 | _gif_bits(colours[i]) if local else 0))
        if local:
            parts.append(_gif_colours(colours[i]))
        parts.append(_lzw(indices[i][y0:y1, x0:x1]))
    parts.append(b";")
    return b"".join(parts)


def _gif_table(palette: NDArray[np.uint8]) -> tuple[bytes, NDArray[np.uint8], int | None]:
    """A palette's GIF colour table (RGB bytes), the lookup from its entries to the table's
    indices (every entry below the alpha threshold → the first of them), and that transparent
    index (None when every entry is opaque enough)."""
    rgb = np.repeat(palette, 3, axis=1) if palette.shape[1] == 1 else palette[:, :3]
    lookup = np.arange(palette.shape[0], dtype=np.uint8)
    transparent = None
    if palette.shape[1] == 4:
        clear = np.flatnonzero(palette[:, 3] < GIF_ALPHA_THRESHOLD)
        if clear.size:
            transparent = int(clear[0])
            lookup[clear] = transparent
    return np.ascontiguousarray(rgb, dtype=np.uint8).tobytes(), lookup, transparent


def _gif_boxes(
    indices: list[NDArray[np.uint8]],
    tables: list[NDArray[np.uint8]] | None,
    clear: list[int | None],
) -> tuple[list[tuple[int, int, int, int]], list[int]]:
    """The rectangle each frame draws and its disposal (1: keep, 2: clear to transparent).

    Frames are compared by index with one palette, by the colour shown with one per frame
    (``tables``). A frame where some pixel turns transparent clears the frame before (whole)
    and is drawn whole.
    """
    n, (height, width) = len(indices), indices[0].shape
    full = (0, 0, width, height)
    boxes, disposal = [full], [1] * n
    shown = None if tables is None else [_shown(t, c) for t, c in zip(tables, clear)]
    for i in range(1, n):
        if shown is None:
            changed = indices[i] != indices[i - 1]
        else:
            changed = (shown[i][indices[i]] != shown[i - 1][indices[i - 1]]).any(axis=2)
        now, before = clear[i], clear[i - 1]
        turns_clear = now is not None and bool(
            ((indices[i] == now) & ((indices[i - 1] != before) if before is not None else True)
             ).any())
        if turns_clear:
            boxes[i - 1], disposal[i - 1] = full, 2
            boxes.append(full)
        else:
            boxes.append(_changed_box(changed))
    return boxes, disposal


def _shown(table: NDArray[np.uint8], clear: int | None) -> NDArray[np.int16]:
    """(256, 3) the colour each GIF index shows, -1 for the transparent one: comparable
    between frames of different palettes."""
    shown = np.zeros((256, 3), np.int16)
    shown[:len(table)] = np.repeat(table, 3, axis=1) if table.shape[1] == 1 else table[:, :3]
    if clear is not None:
        shown[clear] = -1
    return shown


def _gif_bits(table: bytes) -> int:
    """The colour-table size field: the table holds 2 ** (field + 1) entries."""
    entries = max(2, len(table) // 3)
    return (entries - 1).bit_length() - 1


def _gif_colours(table: bytes) -> bytes:
    """A colour table padded with black to its power-of-two size."""
    return table + bytes(3 * (2 << _gif_bits(table)) - len(table))


def _lzw(indices: NDArray[np.uint8]) -> bytes:
    """The LZW image data of (h, w) indices (minimum code size, sub-blocks, terminator), as
    Pillow's GIF encoder writes them: the one part of a GIF not assembled here."""
    height, width = indices.shape
    im = Image.frombytes("P", (width, height), np.ascontiguousarray(indices).tobytes())
    im.putpalette(bytes(range(256)) * 3)  # any palette: only the coded indices are taken
    buffer = io.BytesIO()
    im.save(buffer, "GIF", optimize=False, interlace=False)
    gif = buffer.getvalue()
    position = 13 + (3 << ((gif[10] & 7) + 1) if gif[10] & 0x80 else 0)
    while gif[position] == 0x21:  # extensions: label, then sub-blocks up to a zero length
        position += 2
        while gif[position]:
            position += gif[position] + 1
        position += 1
    if gif[position] != 0x2C:
        raise AssertionError("Pillow's GIF has no image descriptor where expected")
    flags = gif[position + 9]
    position += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    return gif[position:-1]  # up to the trailer


def encode_as(
    pixels: NDArray[np.uint8], fmt: str, *, quality: int = 95, icc_profile: bytes | None = None
) -> bytes:
    """Encode full-colour pixels in a Pillow format (JPEG, WebP, TIFF, BMP, GIF, PNG).

    WebP is written losslessly: a quantized picture of ≤ 256 colours is then a palette and
    indices (libwebp's colour-indexing transform), smaller than the indexed PNG.

    Parameters
    ----------
    pixels : (H, W, C) uint8 ndarray
    fmt : str
        Pillow format name, e.g. ``"JPEG"``. Formats without alpha (:data:`NO_ALPHA_FORMATS`)
        get RGBA pixels flattened onto white (:func:`flatten`).
    quality : int
        For JPEG.
    icc_profile : bytes, optional
        Embedded where the format has a place for it (JPEG, WebP, PNG, TIFF; BMP and GIF
        have none).
    """
    fmt = fmt.upper()
    if fmt == "JPG":
        fmt = "JPEG"
    if fmt not in FORMAT_EXTENSIONS:
        raise InvalidOptionError(
            f"format must be one of {', '.join(sorted(FORMAT_EXTENSIONS))}; got {fmt!r}"
        )
    channels = pixels.shape[2]
    if fmt in NO_ALPHA_FORMATS and channels == 4:
        pixels = flatten(pixels)
        channels = 3
    im = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels)
    profile: dict[str, object] = {"icc_profile": icc_profile} if icc_profile else {}
    if fmt == "TIFF":
        return _save(im, fmt, **profile)
    if fmt == "JPEG":
        return _save(im, fmt, quality=quality, **profile)
    if fmt == "WEBP":
        # lossless: libwebp's colour-indexing transform stores a ≤ 256-colour picture as a
        # palette and indices. Effort 4 of 6 at quality (compression effort) 100: on the sample
        # at K = 32, 42.9 KB in 0.13 s against 50.7 KB of indexed PNG and 72.6 KB of lossy
        # WebP q90; effort 6 saved 0.4 % more for 5 s
        return _save(im, fmt, lossless=True, quality=100, method=4, exact=True, **profile)
    if fmt == "PNG":
        return _save(im, fmt, compress_level=9, **profile)
    return _save(im, fmt)


def flatten(
    pixels: NDArray[np.uint8], background: tuple[int, int, int] = BACKGROUND
) -> NDArray[np.uint8]:
    """RGBA pixels composited over an opaque ``background`` colour (default white), as RGB.

    What a viewer shows a translucent picture on, and what a format without alpha (JPEG, BMP)
    can hold of it; dropping the alpha instead would show the colour stored under transparent
    pixels (black for kmquant's transparent entry).

    Parameters
    ----------
    pixels : (H, W, 4) uint8 ndarray
    background : (3,) ints 0..255

    Returns
    -------
    (H, W, 3) uint8 ndarray
        ``round((c * a + b * (255 - a)) / 255)`` per channel; opaque pixels unchanged.
    """
    alpha = pixels[:, :, 3:].astype(np.uint32)
    mixed = pixels[:, :, :3] * alpha + np.asarray(background, np.uint32) * (255 - alpha)
    return ((mixed + 127) // 255).astype(np.uint8)


def describe_encoding(data: bytes) -> str:
    """What an encoded image is, in words for a report: ``"indexed PNG, 4-bit palette"``,
    ``"8-bit greyscale PNG"``, ``"JPEG"``, ``"RGBA WebP"``...

    PNGs are described from their header (bit depth and colour type), other formats from the
    format and mode Pillow reads from theirs (nothing is decoded).
    """
    if data[:8] == _PNG_SIGNATURE and len(data) >= 26:
        bits, color_type = data[24], data[25]
        if color_type == _PALETTE:
            return f"indexed PNG, {bits}-bit palette"
        kind = {_GREY: "greyscale", 2: "RGB", 4: "greyscale + alpha", 6: "RGBA"}.get(
            color_type, f"colour type {color_type}")
        return f"{bits}-bit {kind} PNG"
    with Image.open(io.BytesIO(data)) as im:
        name = {"WEBP": "WebP"}.get(im.format or "", im.format or "image")
        if im.format == "WEBP" and _webp_lossless(data):
            name = "lossless WebP"
        kind = {"L": "greyscale", "P": "palette", "LA": "greyscale + alpha"}.get(im.mode, im.mode)
    return name if (name, kind) == ("JPEG", "RGB") else f"{kind} {name}"


def _webp_lossless(data: bytes) -> bool:
    """Whether a WebP file's image is VP8L (lossless), from its RIFF chunks."""
    offset = 12
    while offset + 8 <= len(data):
        kind, size = data[offset:offset + 4], struct.unpack("<I", data[offset + 4:offset + 8])[0]
        if kind in (b"VP8 ", b"VP8L"):
            return kind == b"VP8L"
        offset += 8 + size + (size & 1)
    return False


def _save(im: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, fmt, **options)
    return buffer.getvalue()


#: What an existing output path is, when it is not a regular file, by :mod:`stat` test.
_NOT_A_FILE = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
)


def check_output(
    path: str | os.PathLike, *, overwrite: bool = False, alternative: str = ""
) -> Path:
    """Refuse an output path that is not a new or existing regular file, or that exists
    without ``overwrite``.

    Outputs are written to a temporary file and renamed over the path, which would replace a
    device (``/dev/null`` as root), a FIFO or a symbolic link itself by a regular file: such paths
    are refused whatever ``overwrite`` says. :func:`write_atomic` checks this itself; callers check
    it early too, before the work.

    Parameters
    ----------
    path : str or PathLike
    overwrite : bool
        Accept an existing regular file.
    alternative : str
        Added to the message for a path that is not a file, e.g. ``"or -o - for standard
        output"``.

    Raises
    ------
    OutputExistsError
    """
    path = Path(path)
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return path
    except OSError:  # e.g. a parent that is not a directory: write_atomic says what is wrong
        return path
    if stat.S_ISLNK(mode):
        raise OutputExistsError(
            f"{path}: is a symbolic link; give the path of a regular file (kmquant replaces "
            "files whole, which would replace the link, not write through it)")
    if stat.S_ISDIR(mode):
        raise OutputExistsError(f"{path}: is a directory; give a file name for the output")
    for test, what in _NOT_A_FILE:
        if test(mode):
            raise OutputExistsError(f"{path}: is {what}, not a file; give a file path"
                                    + (f" ({alternative})" if alternative else ""))
    if not overwrite:
        raise OutputExistsError(f"{path}: already exists; pass --force to overwrite it")
    return path


def write_atomic(path: str | os.PathLike, data: bytes, *, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` so that it appears whole or not at all.

    The bytes go to a temporary file in the same directory, which is flushed, synced and renamed
    over ``path`` with :func:`os.replace`; on any failure (or Ctrl-C) the temporary file is removed.

    Parameters
    ----------
    path : str or PathLike
    data : bytes
    overwrite : bool
        Replace an existing file; otherwise an existing ``path`` raises.

    Raises
    ------
    OutputExistsError, OutputNotWritableError
    """
    path = check_output(path, overwrite=overwrite)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise OutputNotWritableError(
            f"{directory}: output directory does not exist; create it or choose another output"
        )
    try:
        # .NAME.PID.RANDOM.tmp: a later run removes it if this process is killed before it can
        # (kmquant.batch.clean_stale_temporaries)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.{os.getpid()}.",
                                   suffix=".tmp")
    except OSError as exc:
        raise OutputNotWritableError(
            f"{directory}: cannot write here ({exc.strerror}); choose another output directory"
        ) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputNotWritableError(
                f"{path}: could not be written ({exc.strerror}); check the disk and permissions"
            ) from None
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
