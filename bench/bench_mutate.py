"""Mutation campaign against ``kmquant compress``: hostile files must get a clean error or a right
answer, in bounded time and memory.

From the seed corpus (``tests/fuzz/corpus``: one small valid file per accepted format) it makes
``--count`` mutated files, deterministically from ``--seed`` (file ``i`` depends only on the seed
and ``i``, never on ``--jobs`` or the time budget), and runs each through the command line:

generic
    bit flips, bytes set to edge values (0, 0x7F, 0x80, 0xFF), 16/32-bit fields set to 0, 0xFFFF,
    0x7FFFFFFF, 0xFFFFFFFF…, random byte runs written, inserted or deleted, truncation at a random
    point, a block copied elsewhere, a splice with another seed.
structured
    format-aware tweaks with valid checksums where the format has them: huge or zero width and
    height (PNG IHDR, GIF logical screen and frame, BMP, TIFF tags, JPEG SOF, WebP VP8X, QOI, TGA,
    ICO, PPM, AVIF ``ispe``), chunk/segment/box lengths set to 0xFFFFFFFF, duplicated or dropped
    chunks, odd bit depths, colour types, compressions and LZW code sizes, TIFF IFD loops,
    many-frame GIFs, APNG frame counts of 2^31.
bomb
    small files that claim or decode to many pixels: zlib streams of zeros in PNG and TIFF, QOI
    and TGA runs, BMP RLE with an immediate end, a huge GIF canvas around a 1×1 frame, lossless
    WebP and JPEG of black; sized under 2 MP, at 16 MP, or over ``--max-pixels``.

Each file runs in a child forked from this process, which has already imported the command line
and everything one compress run imports (so a run costs no interpreter start-up): the child sets
``RLIMIT_AS`` (``--rlimit-as``, 3 GiB), sends stdout and stderr to files, calls
``kmquant.cli.main(["compress", FILE, "-o", OUT, "-k", "8", "-q", …])`` and ``os._exit``\\ s with its
code. The parent kills a child after ``--timeout`` seconds (20) and records the time ``main``
took, peak RSS (``os.wait4``'s ``ru_maxrss``; it starts at what the child inherits, the "floor" in
the report), the exit code or signal, stderr, and what was left in the output folder. The size
the file's header claims is read beforehand by ``PIL.Image.open`` (no pixels decoded) in a child
of its own, so that it costs the run nothing.

Reported (markdown on stdout and ``OUT/mutate.md``, ``OUT`` = ``--out``, default ``bench/results``;
every run in ``OUT/mutate-runs.csv``):

- runs per exit code;
- findings: exits outside the documented codes 0-12 (70 = internal error, signals, timeouts),
  tracebacks on stderr, stderr that is not one ``kmquant: …`` line (or not empty after success),
  output on stdout despite ``-q``, outputs left after an error, exit 0 without a valid PNG, runs
  over 10 s or 1 GB for inputs under 1 MB that decode to under 2 MP (by the header's size; a
  file whose header cannot be read counts as small), and files that claim more pixels than
  ``--max-pixels`` but are not refused within 1 s and 200 MB;
- each finding's file is kept under ``--keep`` (``OUT/mutate-findings``; up to
  ``--keep-per-signature`` files per kind of finding and message), beside a ``.txt`` with its
  command, stderr and, for internal errors, the traceback of a rerun with ``KMQUANT_DEBUG=1``;
- the heaviest runs by peak RSS and by time, findings or not (where the limits bite).

Usage::

    python bench/bench_mutate.py --count 2000 --seconds 300 --out /tmp/mutate
    python bench/bench_mutate.py --seed 1 --only 17,1234 --out /tmp/one   # rerun some files

It reports and never fails: the exit status is 0 when the campaign ran, findings or not (1 when
there were findings and ``--strict`` is given).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib
import io
import json
import os
import platform
import random
import re
import resource
import shlex
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

# The command line keeps BLAS on one thread; set it before numpy loads, as the command line would.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "fuzz" / "corpus"
DOCUMENTED = set(range(13))  # kmquant --help: 0 success, 1-12 the KmquantError classes
ESCAPED = 98  # the child's own code: an exception escaped kmquant.cli.main
PROBE_TIMEOUT = 5.0  # seconds for Image.open to read a header
MB = 2**20

# Edge values for integer fields, by width in bytes.
EDGE = {
    1: [0, 1, 0x7F, 0x80, 0xFE, 0xFF],
    2: [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF],
    4: [0, 1, 0xFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF],
}
#: Claimed sizes for structured tweaks of width and height: empty, thin, big and absurd.
SIZES = [(0, 12), (16, 0), (0, 0), (1, 1), (65535, 1), (1, 65535), (4000, 4000), (10000, 10000),
         (65535, 65535), (100000, 100000), (2**31 - 1, 1), (2**31 - 1, 2**31 - 1),
         (2**32 - 1, 2**32 - 1), (0x80000000, 2)]


# --------------------------------------------------------------------------------------------
# mutations


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One generated file."""

    index: int
    seed_name: str  # the corpus file it came from, or "bomb"
    mutation: str  # what was done, e.g. "png:ihdr-size 65535x65535"
    ext: str
    data: bytes


def _u(value: int, width: int, big: bool) -> bytes:
    return (value & ((1 << 8 * width) - 1)).to_bytes(width, "big" if big else "little")


def _put(data: bytearray, offset: int, value: int, width: int, big: bool) -> None:
    if 0 <= offset and offset + width <= len(data):
        data[offset:offset + width] = _u(value, width, big)


def generic(data: bytes, rng: random.Random, seeds: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    """One to three byte-level mutations (the format is not looked at)."""
    out = bytearray(data)
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        op = rng.choice(("flip", "flip", "edge-byte", "edge-int", "edge-int", "run", "insert",
                         "delete", "truncate", "truncate", "copy-block", "splice"))
        n = len(out)
        if n == 0:
            out += bytes([rng.randrange(256)])
            done.append("grow")
            continue
        at = rng.randrange(n)
        if op == "flip":
            for _ in range(rng.randint(1, 8)):
                out[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif op == "edge-byte":
            out[at] = rng.choice(EDGE[1])
        elif op == "edge-int":
            width = rng.choice((2, 4))
            _put(out, min(at, max(0, n - width)), rng.choice(EDGE[width]), width, rng.random() < 0.5)
        elif op == "run":
            length = rng.randint(1, 64)
            out[at:at + length] = _run(rng, length)
        elif op == "insert":
            out[at:at] = _run(rng, rng.choice((1, 4, 16, 256, 4096)))
        elif op == "delete":
            del out[at:at + rng.randint(1, 64)]
        elif op == "truncate":
            del out[rng.randrange(n):]
        elif op == "copy-block":
            length = rng.randint(4, 256)
            out[rng.randrange(n):rng.randrange(n)] = out[at:at + length]
        else:  # splice: our head, another seed's tail
            other = rng.choice(seeds)[1]
            out = out[:at] + other[rng.randrange(len(other)):]
        done.append(op)
    return bytes(out), "generic:" + "+".join(done)


def _run(rng: random.Random, length: int) -> bytes:
    kind = rng.randrange(3)
    if kind == 0:
        return bytes(rng.getrandbits(8) for _ in range(length))
    return bytes([0 if kind == 1 else 0xFF]) * length


# ---- PNG


def png_chunks(data: bytes) -> list[list] | None:
    """``[[type, body, crc_ok], …]`` of a PNG, None if it does not parse."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    chunks, at = [], 8
    while at + 12 <= len(data):
        length = struct.unpack(">I", data[at:at + 4])[0]
        if at + 12 + length > len(data):
            return None
        chunks.append([data[at + 4:at + 8], data[at + 8:at + 8 + length], True])
        at += 12 + length
    return chunks or None


def png_bytes(chunks: list[list], lengths: dict[int, int] | None = None) -> bytes:
    """A PNG from chunks, CRCs recomputed (but for chunks marked bad); ``lengths``: chunk index →
    a length field to write instead of the true one."""
    out = bytearray(b"\x89PNG\r\n\x1a\n")
    for i, (kind, body, crc_ok) in enumerate(chunks):
        crc = zlib.crc32(kind + body) ^ (0 if crc_ok else 0xDEADBEEF)
        out += struct.pack(">I", (lengths or {}).get(i, len(body))) + kind + body
        out += struct.pack(">I", crc)
    return bytes(out)


def mutate_png(data: bytes, rng: random.Random) -> tuple[bytes, str] | None:
    chunks = png_chunks(data)
    if not chunks or chunks[0][0] != b"IHDR" or len(chunks[0][1]) != 13:
        return None
    ihdr = bytearray(chunks[0][1])
    op = rng.choice(("size", "size", "depth-type", "interlace", "length", "dup", "dup-many", "drop",
                     "bad-crc", "idat-zeros", "text-bomb", "apng", "reorder", "split-idat"))
    lengths = None
    what = op
    if op == "size":
        w, h = rng.choice(SIZES)
        ihdr[0:8] = struct.pack(">II", w & 0xFFFFFFFF, h & 0xFFFFFFFF)
        chunks[0][1] = bytes(ihdr)
        what = f"size {w}x{h}"
    elif op == "depth-type":
        ihdr[8] = rng.choice((0, 1, 2, 3, 4, 5, 7, 8, 16, 32, 255))
        ihdr[9] = rng.choice((0, 1, 2, 3, 4, 5, 6, 7, 8, 255))
        chunks[0][1] = bytes(ihdr)
        what = f"depth {ihdr[8]} type {ihdr[9]}"
    elif op == "interlace":
        ihdr[10 + rng.randrange(3)] = rng.choice((1, 2, 255))
        chunks[0][1] = bytes(ihdr)
    elif op == "length":
        i = rng.randrange(len(chunks))
        lengths = {i: rng.choice(EDGE[4])}
        what = f"length {chunks[i][0].decode('latin-1')}={lengths[i]:#x}"
    elif op in ("dup", "dup-many"):
        i = rng.randrange(len(chunks))
        times = 1 if op == "dup" else max(1, min(10_000, 500_000 // (len(chunks[i][1]) + 12)))
        chunks[i + 1:i + 1] = [list(chunks[i]) for _ in range(times)]
        what = f"{op} {chunks[i][0].decode('latin-1')} x{times}"
    elif op == "drop":
        i = rng.randrange(len(chunks))
        what = f"drop {chunks.pop(i)[0].decode('latin-1')}"
    elif op == "bad-crc":
        i = rng.randrange(len(chunks))
        chunks[i][2] = False
        what = f"bad-crc {chunks[i][0].decode('latin-1')}"
    elif op == "idat-zeros":  # the picture's IDAT replaced by zeros for a claimed size
        w, h = rng.choice(((1400, 1400), (4000, 4000), (1, 1_990_000), (10000, 10000)))
        ihdr[0:8] = struct.pack(">II", w, h)
        chunks = [[b"IHDR", bytes(ihdr), True]] + [c for c in chunks[1:] if c[0] != b"IDAT"]
        raw = min(_png_row_bytes(ihdr, w) * h, 64 * MB)
        chunks.insert(len(chunks) - 1, [b"IDAT", _zeros_zlib(raw), True])
        what = f"idat-zeros {w}x{h}"
    elif op == "text-bomb":  # a compressed text / ICC profile that inflates to 64-256 MB
        kind = rng.choice((b"zTXt", b"iTXt", b"iCCP"))
        body = _zeros_zlib(rng.choice((1, 64, 256)) * MB)
        head = {b"zTXt": b"Comment\0\0", b"iTXt": b"Comment\0\1\0\0\0", b"iCCP": b"icc\0\0"}[kind]
        chunks.insert(1, [kind, head + body, True])
        what = f"text-bomb {kind.decode()}"
    elif op == "apng":
        frames = rng.choice((0, 2, 2**31 - 1, 2**32 - 1))
        chunks.insert(1, [b"acTL", struct.pack(">II", frames, 0), True])
        fw, fh = rng.choice(((16, 12), (65535, 65535), (0, 0)))
        fctl = struct.pack(">IIIIIHHBB", 0, fw, fh, rng.choice((0, 2**31)), 0, 1, 10, 0, 0)
        chunks.insert(2, [b"fcTL", fctl, True])
        what = f"apng frames={frames} fctl {fw}x{fh}"
    elif op == "reorder":
        rng.shuffle(chunks)
    else:  # split-idat: the data in many 1-byte IDAT chunks
        idat = b"".join(c[1] for c in chunks if c[0] == b"IDAT")
        rest = [c for c in chunks if c[0] != b"IDAT"]
        chunks = rest[:-1] + [[b"IDAT", idat[i:i + 1], True] for i in range(len(idat))] + rest[-1:]
    return png_bytes(chunks, lengths), f"png:{what}"


def _png_row_bytes(ihdr: bytes, width: int) -> int:
    depth, colour = ihdr[8], ihdr[9]
    samples = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 1)
    return 1 + (width * samples * max(depth, 1) + 7) // 8


_ZEROS_CACHE: dict[int, bytes] = {}


def _zeros_zlib(size: int) -> bytes:
    """zlib stream of ``size`` zero bytes (about size / 1000 bytes), made in 1 MB pieces."""
    if size not in _ZEROS_CACHE:
        comp = zlib.compressobj(9)
        piece = bytes(MB)
        parts = [comp.compress(piece) for _ in range(size // MB)]
        parts += [comp.compress(bytes(size % MB)), comp.flush()]
        _ZEROS_CACHE[size] = b"".join(parts)
    return _ZEROS_CACHE[size]


# ---- GIF


def gif_blocks(data: bytes) -> tuple[int, list[tuple[int, int]]] | None:
    """(end of the header and global colour table, [(start, end) of each block]) or None."""
    if not data.startswith((b"GIF87a", b"GIF89a")) or len(data) < 13:
        return None
    at = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    header_end, blocks = at, []
    while at < len(data) and data[at] != 0x3B:
        start = at
        if data[at] == 0x21:
            at += 2
        elif data[at] == 0x2C and at + 10 <= len(data):
            flags = data[at + 9]
            at += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1  # + LZW code size
        else:
            return None
        while at < len(data) and data[at]:
            at += data[at] + 1
        at += 1
        blocks.append((start, min(at, len(data))))
    return header_end, blocks


def mutate_gif(data: bytes, rng: random.Random) -> tuple[bytes, str] | None:
    parsed = gif_blocks(data)
    if parsed is None:
        return None
    header_end, blocks = parsed
    frames = [b for b in blocks if data[b[0]] == 0x2C]
    out = bytearray(data)
    op = rng.choice(("screen", "screen", "frame", "frame", "lzw", "gct", "many-frames", "no-trailer",
                     "sub-block"))
    if op == "screen":
        w, h = rng.choice(((0, 0), (65535, 65535), (65535, 1), (4000, 4000), (1, 1)))
        out[6:10] = struct.pack("<HH", w, h)
        return bytes(out), f"gif:screen {w}x{h}"
    if not frames:
        return None
    start, end = rng.choice(frames)
    if op == "frame":
        field = rng.choice(("left", "top", "width", "height"))
        value = rng.choice(EDGE[2])
        _put(out, start + 1 + 2 * ("left", "top", "width", "height").index(field), value, 2, False)
        return bytes(out), f"gif:frame {field}={value}"
    flags = data[start + 9]
    lzw_at = start + 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    if op == "lzw" and lzw_at < len(out):
        out[lzw_at] = rng.choice((0, 1, 9, 11, 12, 13, 255))
        return bytes(out), f"gif:lzw-code-size {out[lzw_at]}"
    if op == "gct":
        out[10] ^= rng.choice((0x80, 0x07, 0x87))
        return bytes(out), "gif:gct-flags"
    if op == "many-frames":
        times = rng.choice((100, 5000, 50_000))
        block = data[start:end]
        times = min(times, 900_000 // max(len(block), 1))
        return data[:end] + block * times + data[end:], f"gif:many-frames x{times}"
    if op == "no-trailer":
        return data.rstrip(b";"), "gif:no-trailer"
    # sub-block: a data sub-block's length set to an edge value
    at = lzw_at + 1
    if at < len(out):
        out[at] = rng.choice((0, 1, 0xFF))
    return bytes(out), "gif:sub-block-length"


# ---- BMP, TGA, QOI, ICO, PPM, JPEG, WebP, TIFF, AVIF


def mutate_bmp(data: bytes, rng: random.Random) -> tuple[bytes, str] | None:
    if not data.startswith(b"BM") or len(data) < 54:
        return None
    out = bytearray(data)
    field, offset, width = rng.choice((
        ("width", 18, 4), ("height", 22, 4), ("width", 18, 4), ("height", 22, 4), ("bpp", 28, 2),
        ("compression", 30, 4), ("size-image", 34, 4), ("colours-used", 46, 4),
        ("off-bits", 10, 4), ("header-size", 14, 4), ("planes", 26, 2)))
    if field in ("width", "height"):
        value = rng.choice((0, 1, -1, -12, 65535, 100000, 2**31 - 1, -(2**31)))
    elif field == "bpp":
        value = rng.choice((0, 1, 2, 4, 8, 15, 16, 24, 32, 64, 255))
    elif field == "compression":
        value = rng.choice((0, 1, 2, 3, 4, 5, 6, 11, 0xFFFFFFFF))
    else:
        value = rng.choice(EDGE[width])
    _put(out, offset, value, width, False)
    return bytes(out), f"bmp:{field}={value}"


def mutate_tga(data: bytes, rng: random.Random) -> tuple[bytes, str] | None:
    if len(data) < 18:
        return None
    out = bytearray(data)
    field, offset, width = rng.choice((
        ("width", 12, 2), ("height", 14, 2), ("width", 12, 2), ("depth", 16, 1), ("type", 2, 1),
        ("id-length", 0, 1), ("colour-map-type", 1, 1), ("colour-map-length", 5, 2),
        ("colour-map-depth", 7, 1), ("descriptor", 17, 1)))
    value = rng.choice({"depth": [0, 1, 8, 15, 16, 24, 32, 255], "type": [0, 1, 2, 3, 9, 10, 11, 255]}
                       .get(field, EDGE[width]))
    _put(out, offset, value, width, False)
    return bytes(out), f"tga:{field}={value}"


def mutate_qoi(data: bytes, rng: random.Random) -> tuple[bytes, str] | None:
    if not data.startswith(b"qoif") or len(data) < 14:
        return None
    out = bytearray(data)
    op = rng.choice(("size", "size", "channels", "colourspace", "no-end", "runs"))
    if op == "size":
        w, h = rng.choice(SIZES)
        out[4:12] = struct.pack(">II", w & 0xFFFFFFFF, h & 0xFFFFFFFF)
        return bytes(out), f"qoi:size {w}x{h}"
    if op == "channels":
        out[12] = rng.choice((0, 1, 2, 5, 255))
        return bytes(out), f"qoi:channels={out[12]}"
    if op == "colourspace":
        out[13] = rng.choice((2, 255))
        return bytes(out), f"qoi:colourspace={out[13]}"
    if op == "no-end":
        return bytes(out[:-8]), "qoi:no-end-marker"
    return bytes(out[:14]) + b"\xfd" * rng.choice((1, 1000, 100_000)) + bytes(7) + b"\1", "qoi:runs"


def mutate_ico(data: bytes, rng: random.Random) -> tuple[bytes, str] | None:
    if not data.startswith(b"\0\0\1\0") or len(data) < 22:
        return None
    out = bytearray(data)
    op = rng.choice(("count", "entry-size", "entry-offset", "entry-dims", "entry-bpp", "inner"))
    if op == "count":
        value = rng.choice((0, 2, 255, 65535))
        _put(out, 4, value, 2, False)
    elif op == "entry-size":
        value = rng.choice(EDGE[4])
        _put(out, 14, value, 4, False)
    elif op == "entry-offset":
        value = rng.choice(EDGE[4])
        _put(out, 18, value, 4, False)
    elif op == "entry-dims":
        value = rng.choice((0, 1, 255))
        out[6] = out[7] = value
    elif op == "entry-bpp":
        value = rng.choice(EDGE[2])
        _put(out, 12, value, 2, False)
    else:  # the embedded image mutated with its own format's tweaks, the directory fixed up
        offset = struct.unpack("<I", data[18:22])[0]
        inner = data[offset:]
        mutated = (mutate_png(inner, rng) if inner.startswith(b"\x89PNG") else None) or \
            generic(inner, rng, [("ico", inner)])
        out = bytearray(data[:offset]) + mutated[0]
        _put(out, 14, len(mutated[0]), 4, False)
        return bytes(out), f"ico:inner {mutated[1]}"
    return bytes(out), f"ico:{op}={value}"


def mutate_ppm(data: bytes, rng: random.Random) -> tuple[bytes, str] | None:
    match = re.match(rb"(P[1-7])(\s+)(\d+)(\s+)(\d+)(\s+)(\d+\s)?", data)
    if not match:
        return None
    magic, w, h = match.group(1), int(match.group(3)), int(match.group(5))
    maxval = match.group(7).strip() if match.group(7) else b""
    op = rng.choice(("size", "size", "maxval", "magic", "comment", "long-token"))
    rest = data[match.end():]
    if op == "size":
        w, h = rng.choice(SIZES + [(99999999999, 99999999999)])
    elif op == "maxval" and maxval:
        maxval = str(rng.choice((0, 1, 255, 256, 65535, 65536, 2**31, 10**30))).encode()
    elif op == "magic":
        magic = rng.choice((b"P1", b"P2", b"P3", b"P4", b"P5", b"P6", b"P7", b"Pf", b"PF"))
    elif op == "comment":
        magic += b"\n#" + b"x" * rng.choice((10, 10_000, 900_000)) + b"\n"
    else:
        w = int("9" * rng.choice((20, 1000)))
    head = magic + b"\n" + f"{w} {h}".encode() + b"\n" + (maxval + b"\n" if maxval else b"")
    return head + rest, f"ppm:{op}"


def mutate_jpeg(data: bytes, rng: random.Random) -> tuple[bytes, str] | None:
    if not data.startswith(b"\xff\xd8"):
        return None
    segments, at = [], 2  # (marker offset, length-field offset, length)
    while at + 4 <= len(data) and data[at] == 0xFF and data[at + 1] not in (0xD9, 0xDA):
        length = struct.unpack(">H", data[at + 2:at + 4])[0]
        segments.append((at, data[at + 1], length))
        at += 2 + length
    if not segments:
        return None
    out = bytearray(data)
    sofs = [s for s in segments if 0xC0 <= s[1] <= 0xCF and s[1] not in (0xC4, 0xC8, 0xCC)]
    op = rng.choice(("size", "size", "components", "precision", "length", "dup-segment",
                     "many-app", "no-eoi", "marker-type"))
    if op in ("size", "components", "precision") and sofs:
        at = sofs[0][0]
        if op == "size":
            w, h = rng.choice(((0, 0), (0, 16), (65535, 65535), (65535, 1), (10000, 10000), (4000, 4000)))
            out[at + 5:at + 9] = struct.pack(">HH", h, w)
            return bytes(out), f"jpeg:sof-size {w}x{h}"
        if op == "components":
            out[at + 9] = rng.choice((0, 2, 4, 5, 255))
            return bytes(out), f"jpeg:components={out[at + 9]}"
        out[at + 4] = rng.choice((0, 1, 12, 16, 255))
        return bytes(out), f"jpeg:precision={out[at + 4]}"
    at, marker, length = rng.choice(segments)
    if op == "length":
        value = rng.choice((0, 1, 2, 0xFFFF))
        _put(out, at + 2, value, 2, True)
        return bytes(out), f"jpeg:length {marker:#x}={value}"
    if op == "dup-segment":
        seg = data[at:at + 2 + length]
        return data[:at] + seg * rng.choice((2, 1000)) + data[at:], f"jpeg:dup {marker:#x}"
    if op == "many-app":
        app = b"\xff\xe1" + struct.pack(">H", 65535) + b"Exif\0\0" + bytes(65527)
        times = rng.choice((1, 10))
        return data[:2] + app * times + data[2:], f"jpeg:app1 x{times}"
    if op == "no-eoi":
        return data[:rng.randrange(at, len(data))], "jpeg:truncated-after-headers"
    out[at + 1] = rng.choice((0xC1, 0xC2, 0xC3, 0xC5, 0xCB, 0xCF, 0xC8, 0xDC, 0xDD, 0xF7))
    return bytes(out), f"jpeg:marker {marker:#x}->{out[at + 1]:#x}"


def mutate_webp(data: bytes, rng: random.Random) -> tuple[bytes, str] | None:
    if not (data.startswith(b"RIFF") and data[8:12] == b"WEBP") or len(data) < 30:
        return None
    out = bytearray(data)
    kind = data[12:16]
    op = rng.choice(("riff-size", "chunk-size", "dims", "dims", "vp8x"))
    if op == "riff-size":
        value = rng.choice(EDGE[4])
        _put(out, 4, value, 4, False)
        return bytes(out), f"webp:riff-size={value:#x}"
    if op == "chunk-size":
        value = rng.choice(EDGE[4])
        _put(out, 16, value, 4, False)
        return bytes(out), f"webp:chunk-size={value:#x}"
    if op == "vp8x" or kind == b"VP8X":
        # a VP8X header claiming a canvas up to 2^24 × 2^24 in front of the picture's chunk
        w, h = rng.choice(((16, 12), (16384, 16384), (2**24, 2**24), (4000, 4000), (1, 1)))
        vp8x = b"VP8X" + struct.pack("<I", 10) + bytes([rng.choice((0, 0x10, 0x02, 0xFF))]) + bytes(3)
        vp8x += _u(w - 1, 3, False) + _u(h - 1, 3, False)
        body = vp8x + (data[12:] if kind != b"VP8X" else data[30:])
        return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body, f"webp:vp8x {w}x{h}"
    if kind == b"VP8L" and len(out) > 25:  # 14-bit width-1 and height-1 after the 0x2F signature
        w, h = rng.choice(((16384, 16384), (1, 16384), (4000, 4000)))
        bits = (w - 1) | ((h - 1) << 14) | (int.from_bytes(out[21:25], "little") & ~((1 << 28) - 1))
        out[21:25] = bits.to_bytes(4, "little")
        return bytes(out), f"webp:vp8l {w}x{h}"
    if kind == b"VP8 " and len(out) > 30:  # 14-bit width and height after the start code
        w, h = rng.choice(((16383, 16383), (0, 0), (4000, 4000)))
        out[26:30] = struct.pack("<HH", w, h)
        return bytes(out), f"webp:vp8 {w}x{h}"
    return None


TIFF_TAGS = {256: "width", 257: "height", 258: "bits", 259: "compression", 262: "photometric",
             273: "strip-offsets", 277: "samples", 278: "rows-per-strip", 279: "strip-bytes",
             284: "planar", 317: "predictor", 320: "colour-map", 322: "tile-width",
             323: "tile-length", 338: "extra-samples", 339: "sample-format"}


def mutate_tiff(data: bytes, rng: random.Random) -> tuple[bytes, str] | None:
    if data[:4] not in (b"II*\0", b"MM\0*") or len(data) < 16:
        return None
    big = data[:2] == b"MM"
    end = ">" if big else "<"
    ifd = struct.unpack(end + "I", data[4:8])[0]
    if ifd + 2 > len(data):
        return None
    count = struct.unpack(end + "H", data[ifd:ifd + 2])[0]
    entries = [ifd + 2 + 12 * i for i in range(count) if ifd + 14 + 12 * i <= len(data)]
    out = bytearray(data)
    op = rng.choice(("tag", "tag", "tag", "type", "count", "entries", "loop", "add-tag"))
    if op in ("tag", "type", "count") and entries:
        known = [e for e in entries if struct.unpack(end + "H", data[e:e + 2])[0] in TIFF_TAGS]
        at = rng.choice(known or entries)
        tag = struct.unpack(end + "H", data[at:at + 2])[0]
        name = TIFF_TAGS.get(tag, str(tag))
        if op == "type":
            value = rng.choice((0, 1, 2, 3, 4, 5, 7, 11, 12, 13, 16, 17, 255))
            _put(out, at + 2, value, 2, big)
        elif op == "count":
            value = rng.choice(EDGE[4])
            _put(out, at + 4, value, 4, big)
        else:
            value = rng.choice(EDGE[4] + [2, 3, 4, 5, 7, 8, 16, 32, 65535, 100000])
            kind = struct.unpack(end + "H", data[at + 2:at + 4])[0]
            _put(out, at + 8, value, 2 if kind == 3 else 4, big)
        return bytes(out), f"tiff:{op} {name}={value}"
    if op == "entries":
        value = rng.choice((0, 1, 0xFF, 0xFFFF))
        _put(out, ifd, value, 2, big)
        return bytes(out), f"tiff:entry-count={value}"
    if op == "loop":  # the next-IFD offset pointing back at this IFD, or past the end
        value = rng.choice((ifd, 8, 0xFFFFFFFF))
        _put(out, ifd + 2 + 12 * count, value, 4, big)
        return bytes(out), f"tiff:next-ifd={value:#x}"
    # add-tag: one more entry (the count bumped), e.g. a huge tile size or an ICC profile length
    tag = rng.choice((322, 323, 34675, 700, 33723, 330))
    entry = struct.pack(end + "HHII", tag, 4, rng.choice((1, 0xFFFFFFF)), rng.choice(EDGE[4]))
    head = ifd + 2
    out = bytearray(data[:head]) + entry + data[head:]
    _put(out, ifd, count + 1, 2, big)
    return bytes(out), f"tiff:add-tag {tag}"


def mutate_avif(data: bytes, rng: random.Random) -> tuple[bytes, str] | None:
    if data[4:8] != b"ftyp":
        return None
    out = bytearray(data)
    op = rng.choice(("ispe", "ispe", "box-size"))
    at = data.find(b"ispe")
    if op == "ispe" and at > 0 and at + 16 <= len(data):
        w, h = rng.choice(SIZES)
        out[at + 8:at + 16] = struct.pack(">II", w & 0xFFFFFFFF, h & 0xFFFFFFFF)
        return bytes(out), f"avif:ispe {w}x{h}"
    boxes = [m.start() - 4 for m in re.finditer(rb"ftyp|meta|hdlr|pitm|iloc|iinf|iprp|ipco|ispe|"
                                                rb"pixi|av1C|ipma|mdat|colr", data) if m.start() >= 4]
    if not boxes:
        return None
    at = rng.choice(boxes)
    value = rng.choice((0, 1, 7, 0xFFFFFFFF, 0x7FFFFFFF))
    _put(out, at, value, 4, True)
    return bytes(out), f"avif:box-size {data[at + 4:at + 8].decode('latin-1')}={value:#x}"


STRUCTURED: dict[str, Callable[[bytes, random.Random], tuple[bytes, str] | None]] = {
    ".png": mutate_png, ".gif": mutate_gif, ".bmp": mutate_bmp, ".tga": mutate_tga,
    ".qoi": mutate_qoi, ".ico": mutate_ico, ".ppm": mutate_ppm, ".pgm": mutate_ppm,
    ".pbm": mutate_ppm, ".jpg": mutate_jpeg, ".webp": mutate_webp, ".tif": mutate_tiff,
    ".avif": mutate_avif,
}


# ---- bombs: small files that claim or decode to many pixels

#: (width, height) by class: decodes to under 2 MP, to 16 MP, or claims more than any limit
BOMB_SIZES = {
    "under-2mp": [(1400, 1400), (1, 1_990_000), (1_990_000, 1), (1000, 1000)],
    "16mp": [(4000, 4000)],
    "over-limit": [(10000, 10000), (65535, 65535), (100000, 1000), (2**31 - 1, 2**31 - 1)],
}
_BOMB_CACHE: dict[tuple[str, int, int], tuple[bytes, str]] = {}
_FULL_DATA_LIMIT = 64 * MB  # raw bytes past which a bomb carries only the first MB (truncated)


def bomb_png(w: int, h: int, rng: random.Random) -> tuple[bytes, str]:
    depth, colour, plte = rng.choice(((8, 0, False), (8, 2, False), (8, 6, False), (1, 3, True),
                                      (16, 2, False)))
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0)
    raw = _png_row_bytes(ihdr, w) * h
    idat = _zeros_zlib(raw if raw <= _FULL_DATA_LIMIT else MB)
    chunks = [[b"IHDR", ihdr, True]] + ([[b"PLTE", bytes(6), True]] if plte else [])
    chunks += [[b"IDAT", idat, True], [b"IEND", b"", True]]
    return png_bytes(chunks), f"png depth {depth} type {colour}"


def bomb_qoi(w: int, h: int, rng: random.Random) -> tuple[bytes, str]:
    runs = -(-w * h // 62) if w * h <= _FULL_DATA_LIMIT else 1000
    return (b"qoif" + struct.pack(">IIBB", w & 0xFFFFFFFF, h & 0xFFFFFFFF, rng.choice((3, 4)), 0)
            + b"\xfd" * runs + bytes(7) + b"\1"), "qoi runs"


def bomb_tga(w: int, h: int, rng: random.Random) -> tuple[bytes, str]:
    w, h = min(w, 65535), min(h, 65535)
    packets = -(-w * h // 128) if w * h <= _FULL_DATA_LIMIT else 1000
    header = struct.pack("<BBBHHBHHHHBB", 0, 0, 11, 0, 0, 0, 0, 0, w, h, 8, 0x20)
    return header + b"\xff\0" * packets, "tga rle grey"


def bomb_bmp(w: int, h: int, rng: random.Random) -> tuple[bytes, str]:
    w, h = min(w, 2**31 - 1), min(h, 2**31 - 1)
    palette = bytes(1024)
    data = b"\0\1"  # RLE8: end of bitmap at once
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 1, len(data), 2835, 2835, 256, 0)
    head = struct.pack("<2sIHHI", b"BM", 14 + 40 + 1024 + len(data), 0, 0, 14 + 40 + 1024)
    return head + info + palette + data, "bmp rle8 end-at-once"


def bomb_gif(w: int, h: int, rng: random.Random) -> tuple[bytes, str]:
    w, h = min(w, 65535), min(h, 65535)
    head = b"GIF89a" + struct.pack("<HHBBB", w, h, 0x80, 0, 0) + bytes(6)
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return head + frame + b";", "gif canvas around a 1x1 frame"


def bomb_tiff(w: int, h: int, rng: random.Random) -> tuple[bytes, str]:
    w, h = min(w, 2**32 - 1), min(h, 2**32 - 1)
    strip = _zeros_zlib(w * h if w * h <= _FULL_DATA_LIMIT else MB)
    tags = [(256, 4, w), (257, 4, h), (258, 3, 8), (259, 3, 8), (262, 3, 1), (273, 4, 0),
            (277, 3, 1), (278, 4, h), (279, 4, len(strip))]
    data_at = 8 + 2 + 12 * len(tags) + 4
    ifd = struct.pack("<H", len(tags)) + b"".join(
        struct.pack("<HHI", tag, kind, 1) + struct.pack("<I" if kind == 4 else "<HH",
                                                        *((data_at if tag == 273 else v),)
                                                        + (() if kind == 4 else (0,)))
        for tag, kind, v in tags) + bytes(4)
    return b"II*\0" + struct.pack("<I", 8) + ifd + strip, "tiff deflate zeros"


def bomb_pillow(fmt: str) -> Callable[[int, int, random.Random], tuple[bytes, str]]:
    """Black pictures Pillow encodes small (lossless WebP, JPEG), for sizes it can hold."""
    def make(w: int, h: int, rng: random.Random) -> tuple[bytes, str]:
        from PIL import Image

        w, h = min(w, 16383), min(h, 16383)
        if w * h > 16 * MB:  # over the limit: a 1×1 picture with the header patched
            out = bytearray(_pillow_bytes(Image.new("L", (1, 1)), fmt))
            if fmt == "JPEG":
                at = out.find(b"\xff\xc0")
                out[at + 5:at + 9] = struct.pack(">HH", min(h, 65535), min(w, 65535))
            else:  # lossless WebP: width-1 and height-1 in 14 bits after the signature
                bits = (w - 1) | ((h - 1) << 14) | (int.from_bytes(out[21:25], "little") & ~(2**28 - 1))
                out[21:25] = bits.to_bytes(4, "little")
            return bytes(out), f"{fmt.lower()} header patched"
        return _pillow_bytes(Image.new("L", (w, h)), fmt), f"{fmt.lower()} black"
    return make


def _pillow_bytes(im, fmt: str) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **({"lossless": True} if fmt == "WEBP" else {"quality": 1}))
    return out.getvalue()


BOMBS: dict[str, tuple[str, Callable[[int, int, random.Random], tuple[bytes, str]]]] = {
    "png": (".png", bomb_png), "qoi": (".qoi", bomb_qoi), "tga": (".tga", bomb_tga),
    "bmp": (".bmp", bomb_bmp), "gif": (".gif", bomb_gif), "tiff": (".tif", bomb_tiff),
    "webp": (".webp", bomb_pillow("WEBP")), "jpeg": (".jpg", bomb_pillow("JPEG")),
}


def bomb(rng: random.Random) -> tuple[str, bytes, str]:
    kind = rng.choice(sorted(BOMBS))
    size_class = rng.choices(sorted(BOMB_SIZES), weights=(1, 4, 4))[0]  # 16mp, over-limit, under
    w, h = rng.choice(BOMB_SIZES[size_class])
    ext, make = BOMBS[kind]
    if (kind, w, h) not in _BOMB_CACHE:  # the same file for the same kind and size
        _BOMB_CACHE[kind, w, h] = make(w, h, random.Random(f"{kind}/{w}/{h}"))
    data, what = _BOMB_CACHE[kind, w, h]
    return ext, data, f"bomb:{kind} {w}x{h} {size_class} ({what})"


def make_mutant(index: int, seed: int, seeds: list[tuple[str, bytes]]) -> Mutant:
    """File ``index`` of the campaign: depends only on ``seed`` and ``index``."""
    rng = random.Random(f"{seed}:{index}")
    name, data = rng.choice(seeds)
    ext = Path(name).suffix
    roll = rng.random()
    if roll < 0.06:
        ext, data, what = bomb(rng)
        if rng.random() < 0.25:  # and sometimes broken on top
            data, more = generic(data, rng, seeds)
            what += f" + {more}"
        return Mutant(index, "bomb", what, ext, data)
    if roll < 0.50:
        structured = STRUCTURED.get(ext)
        done = structured(data, rng) if structured else None
        if done is not None:
            return Mutant(index, name, done[1], ext, done[0])
    data, what = generic(data, rng, seeds)
    return Mutant(index, name, what, ext, data)


# --------------------------------------------------------------------------------------------
# running


@dataclasses.dataclass
class Run:
    """One file's run and what it showed."""

    index: int
    seed_name: str
    mutation: str
    input_bytes: int
    ext: str
    format: str = ""
    width: int = -1  # the header's size, -1 when Pillow could not read one
    height: int = -1
    exit: int | None = None
    signal: str = ""
    timed_out: bool = False
    wall_s: float = 0.0
    probe_s: float = 0.0
    peak_mb: float = 0.0
    stderr_lines: int = 0
    traceback: bool = False
    stderr_first: str = ""
    stdout_bytes: int = 0
    left: str = ""  # files left in the output folder after an error
    valid_output: bool | None = None  # after exit 0: the output opens as a PNG
    findings: str = ""
    kept: str = ""

    @property
    def claimed_pixels(self) -> int:
        return self.width * self.height if self.width >= 0 and self.height >= 0 else -1

    @property
    def outcome(self) -> str:
        if self.timed_out:
            return "timeout"
        return self.signal or str(self.exit)


@dataclasses.dataclass
class Job:
    mutant: Mutant
    dir: Path
    header: dict
    start: float
    pid: int
    pipe: int


def _limit(rlimit_as: int) -> None:
    """In a child: its own process group (so a kill reaches all of it), no core dumps, and the
    address-space limit."""
    os.setpgid(0, 0)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if rlimit_as:
        resource.setrlimit(resource.RLIMIT_AS, (rlimit_as, rlimit_as))


def child(job_dir: Path, argv: list[str], rlimit_as: int, report_fd: int, debug: bool) -> None:
    """In the forked child: limits, redirections, then the command line; writes to
    ``report_fd`` the seconds ``main`` took (the parent's clock would also count the time it
    spent on other children)."""
    code = ESCAPED
    try:
        _limit(rlimit_as)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        for fd, name in ((1, "stdout"), (2, "stderr")):
            os.dup2(os.open(job_dir / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
        if debug:
            os.environ["KMQUANT_DEBUG"] = "1"
        from kmquant.cli import main

        started = time.perf_counter()
        code = main(argv)
        os.write(report_fd, f"\n{time.perf_counter() - started:.6f}".encode())
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else ESCAPED
    except BaseException:  # noqa: B036  (anything at all escaping main is the finding)
        import traceback

        traceback.print_exc()
        code = ESCAPED
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:  # noqa: B036  (the child is going away regardless)
                pass
        os._exit(code)


def probe(path: Path, rlimit_as: int, timeout: float) -> dict:
    """The header's format and size as ``PIL.Image.open`` reads them with Pillow's own pixel
    limit lifted, in a child of its own: opening some files allocates (an ICO opens its
    embedded PNG), and that must count neither in the run's peak RSS nor in this process.
    ``{}`` when Pillow cannot read a size; ``{"probe": "timeout"}`` when it hangs."""
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            _limit(rlimit_as)
            for fd in (1, 2):  # libtiff's chatter
                os.dup2(os.open(os.devnull, os.O_WRONLY), fd)
            os.write(write_end, json.dumps(_header(path)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    deadline = time.perf_counter() + timeout
    while not os.waitpid(pid, os.WNOHANG)[0]:
        if time.perf_counter() > deadline:
            _kill(pid)
            os.waitpid(pid, 0)
            os.close(read_end)
            return {"probe": "timeout"}
        time.sleep(0.001)
    found, _ = _read_report(read_end)
    return found


def _header(path: Path) -> dict:
    import warnings

    from PIL import Image

    started = time.perf_counter()
    try:
        Image.MAX_IMAGE_PIXELS = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                found = {"format": im.format or "", "width": im.width, "height": im.height}
    except BaseException:  # noqa: B036  (any failure just means "no size known")
        found = {}
    found["probe_s"] = time.perf_counter() - started
    return found


class Campaign:
    """Runs the mutants ``jobs`` at a time, each in a forked child; judges each run as it ends,
    keeps the files of findings, and deletes the rest."""

    def __init__(self, args: argparse.Namespace, work: Path, cli_extra: list[str],
                 max_pixels: int) -> None:
        self.args = args
        self.work = work
        self.cli_extra = cli_extra
        self.max_pixels = max_pixels
        self.runs: list[Run] = []
        self.kinds: dict[int, list[str]] = {}
        self.kept: Counter = Counter()  # files kept per (kind, signature)
        self.to_debug: list[tuple[Mutant, Path]] = []  # internal errors: rerun for a traceback

    def argv(self, input_path: Path | str, out: Path | str) -> list[str]:
        return ["compress", str(input_path), "-o", str(out), "-k", "8", "-q", *self.cli_extra]

    def start(self, mutant: Mutant, debug: bool = False) -> Job:
        job_dir = self.work / f"{mutant.index}{'-debug' if debug else ''}"
        shutil.rmtree(job_dir, ignore_errors=True)
        (job_dir / "out").mkdir(parents=True)
        src = job_dir / f"in{mutant.ext}"
        src.write_bytes(mutant.data)
        header = {} if debug else probe(src, self.args.rlimit_as, PROBE_TIMEOUT)
        read_end, write_end = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            child(job_dir, self.argv(src, job_dir / "out" / "out.png"), self.args.rlimit_as,
                  write_end, debug)
        os.close(write_end)
        try:
            os.setpgid(pid, pid)  # also done by the child; whichever runs first wins the race
        except OSError:
            pass
        return Job(mutant, job_dir, header, time.perf_counter(), pid, read_end)

    def run_all(self, mutants: Iterator[Mutant], deadline: float | None,
                progress: Callable[[int], None]) -> None:
        running: dict[int, Job] = {}
        exhausted = False
        try:
            while running or not exhausted:
                while not exhausted and len(running) < self.args.jobs:
                    mutant = None
                    if deadline is None or time.monotonic() < deadline:
                        mutant = next(mutants, None)
                    if mutant is None:
                        exhausted = True
                        break
                    job = self.start(mutant)
                    running[job.pid] = job
                if not running:
                    break
                pid, status, usage = os.wait4(-1, os.WNOHANG)
                if pid == 0:
                    self.kill_overdue(running)
                    time.sleep(0.002)
                    continue
                job = running.pop(pid)
                self.finish(job, status, usage, time.perf_counter() - job.start)
                progress(len(self.runs))
        finally:  # interrupted: leave no child behind
            for job in running.values():
                _kill(job.pid)
                os.waitpid(job.pid, 0)

    def kill_overdue(self, running: dict[int, Job]) -> None:
        now = time.perf_counter()
        for job in running.values():
            if now - job.start > self.args.timeout:
                _kill(job.pid)

    def finish(self, job: Job, status: int, usage, wall: float) -> None:
        m = job.mutant
        run = Run(m.index, m.seed_name, m.mutation, len(m.data), m.ext)
        _, seconds = _read_report(job.pipe)
        found = job.header
        run.format = found.get("format", found.get("probe", ""))
        run.width, run.height = found.get("width", -1), found.get("height", -1)
        run.probe_s = found.get("probe_s", PROBE_TIMEOUT if found.get("probe") else 0.0)
        run.wall_s = seconds if seconds is not None else wall
        run.peak_mb = usage.ru_maxrss / 1024
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            run.timed_out = sig == signal.SIGKILL and wall >= self.args.timeout
            run.signal = signal.Signals(sig).name
        else:
            run.exit = os.WEXITSTATUS(status)
        err = (job.dir / "stderr").read_text(errors="replace")
        lines = err.splitlines()
        run.stderr_lines = len(lines)
        run.traceback = "Traceback (most recent call last)" in err
        run.stderr_first = lines[0][:300] if lines else ""
        run.stdout_bytes = (job.dir / "stdout").stat().st_size
        if run.exit == 0:
            run.valid_output = _is_png(job.dir / "out" / "out.png")
        else:
            run.left = " ".join(sorted(p.name for p in (job.dir / "out").iterdir()))
        kinds = judge(run, self.max_pixels)
        run.findings = " ".join(kinds)
        if kinds:
            run.kept = self.keep(run, kinds, m, err)
        self.kinds[run.index] = kinds
        self.runs.append(run)
        shutil.rmtree(job.dir, ignore_errors=True)

    def keep(self, run: Run, kinds: list[str], mutant: Mutant, err: str) -> str:
        """Save the file under --keep (up to --keep-per-signature per kind and message), with a
        note; return where, or ''."""
        key = (kinds[0], signature(run))
        if self.kept[key] >= self.args.keep_per_signature:
            return ""
        self.kept[key] += 1
        folder = self.args.keep / kinds[0]
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{run.index:07d}-{re.sub(r'[^A-Za-z0-9]+', '-', mutant.mutation)[:60].strip('-')}"
        path = folder / f"{stem}{mutant.ext}"
        path.write_bytes(mutant.data)
        note = [f"findings: {', '.join(kinds)}",
                f"mutation: {mutant.mutation} (seed file {mutant.seed_name})",
                f"exit: {run.outcome}  wall: {run.wall_s:.2f} s  peak RSS: {run.peak_mb:.0f} MB",
                f"header: {run.format or '?'} {run.width}x{run.height}, {run.input_bytes} bytes",
                "command: kmquant " + shlex.join(self.argv(path, "OUT.png")),
                f"regenerate: python bench/bench_mutate.py --seed {self.args.seed} --only {run.index}",
                f"left after the error: {run.left}" if run.left else "",
                "stderr:", err[:20_000]]
        note_path = path.with_name(path.name + ".txt")
        note_path.write_text("\n".join(line for line in note if line) + "\n")
        if run.exit in (70, ESCAPED):
            self.to_debug.append((mutant, note_path))
        return str(path)

    def add_tracebacks(self) -> None:
        """Rerun each kept internal error with ``KMQUANT_DEBUG=1``; append its traceback to the
        note (after the campaign, so that no other run's timing suffers)."""
        for mutant, note_path in self.to_debug:
            job = self.start(mutant, debug=True)
            deadline = time.perf_counter() + self.args.timeout
            while not os.waitpid(job.pid, os.WNOHANG)[0]:
                if time.perf_counter() > deadline:
                    _kill(job.pid)
                time.sleep(0.01)
            _read_report(job.pipe)
            text = (job.dir / "stderr").read_text(errors="replace")[-20_000:]
            with note_path.open("a") as note:
                note.write("traceback (the same run with KMQUANT_DEBUG=1):\n" + text)
            shutil.rmtree(job.dir, ignore_errors=True)


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)  # the child's own group: it and anything it started
    except ProcessLookupError:
        pass


def _read_report(fd: int) -> tuple[dict, float | None]:
    """What a child wrote: a JSON line (the probe's), then a number (the seconds ``main`` took;
    None when it never returned)."""
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    head, _, tail = b"".join(chunks).partition(b"\n")
    try:
        found = json.loads(head) if head else {}
    except ValueError:
        found = {}
    try:
        seconds = float(tail) if tail else None
    except ValueError:
        seconds = None
    return found, seconds


def _is_png(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            return im.format == "PNG"
    except Exception:
        return False


# --------------------------------------------------------------------------------------------
# judging and reporting


def judge(run: Run, max_pixels: int) -> list[str]:
    """The kinds of finding a run shows, the gravest first (empty: a clean run)."""
    kinds = []
    if run.timed_out:
        kinds.append("timeout")
    elif run.signal:
        kinds.append("signal")
    elif run.exit not in DOCUMENTED:
        kinds.append(f"exit-{run.exit}")
    if run.traceback:
        kinds.append("traceback")
    if run.exit == 0 and run.stderr_lines:
        kinds.append("stderr-on-success")
    elif run.exit not in (0, None) and (run.stderr_lines != 1
                                        or not run.stderr_first.startswith("kmquant: ")):
        kinds.append("not-one-line")
    if run.stdout_bytes:
        kinds.append("stdout-despite-q")
    if run.left:
        kinds.append("output-left")
    if run.exit == 0 and not run.valid_output:
        kinds.append("no-valid-output")
    if is_small(run) and (run.timed_out or run.wall_s > 10 or run.peak_mb > 1024):
        kinds.append("slow-or-big")
    if run.claimed_pixels > max_pixels and not refused_fast(run):
        kinds.append("over-limit-not-refused")
    return kinds


def is_small(run: Run) -> bool:
    """Under 1 MB and under 2 MP by its header (a header Pillow cannot read claims nothing)."""
    return run.input_bytes < MB and run.claimed_pixels < 2_000_000


def refused_fast(run: Run) -> bool:
    return (run.exit in DOCUMENTED and run.exit != 0 and not run.timed_out and run.wall_s <= 1.0
            and run.peak_mb <= 200)


KIND_TEXT = {
    "timeout": "killed after --timeout seconds",
    "signal": "died of a signal",
    "traceback": "traceback on stderr",
    "stderr-on-success": "exit 0 but something on stderr",
    "not-one-line": "error exit without exactly one `kmquant: ` line on stderr",
    "stdout-despite-q": "output on stdout despite -q",
    "output-left": "output file(s) left after an error",
    "no-valid-output": "exit 0 without a valid PNG",
    "slow-or-big": "over 10 s or 1 GB on an input under 1 MB that decodes to under 2 MP",
    "over-limit-not-refused": "claims more pixels than the limit; not refused within 1 s and 200 MB",
}


def signature(run: Run) -> str:
    """A finding's message with numbers and paths blurred, so alike findings group together."""
    text = re.sub(r"/\S*/\d+(-debug)?/in\.\w+", "FILE", run.stderr_first)
    text = re.sub(r"\d[\d,_.]*", "N", text)
    return f"{run.outcome}: {text[:160]}"


def report(campaign: Campaign, meta: dict) -> str:
    args, runs, max_pixels = campaign.args, campaign.runs, campaign.max_pixels
    lines = ["# kmquant mutation campaign", "",
             f"Reproduce: `{meta['command']}`", "",
             f"kmquant {meta['kmquant']} ({meta['git']}), Pillow {meta['pillow']}, Python "
             f"{platform.python_version()}, {meta['machine']}; {len(runs)} runs in "
             f"{meta['elapsed']:.0f} s on {args.jobs} processes.",
             f"Each run: `kmquant {' '.join(meta['argv'])}` in a child forked from a warm parent, "
             f"RLIMIT_AS {args.rlimit_as / 2**30:.1f} GiB, killed after {args.timeout:g} s. "
             f"Peak RSS floor (a forked child doing nothing): {meta['floor_mb']:.0f} MB. "
             f"Pixel limit for the claims below: {max_pixels:,}.", ""]
    lines += _exit_table(runs, meta["meanings"])
    lines += _targets(campaign)
    lines += _heaviest(runs)
    lines += ["## Findings", ""]
    count = Counter(k for ks in campaign.kinds.values() for k in ks)
    if not count:
        lines.append("None.")
    for kind in sorted(count, key=lambda k: -count[k]):
        lines += _finding_table(kind, [r for r in runs if kind in campaign.kinds[r.index]])
    return "\n".join(lines)


def _exit_table(runs: list[Run], meanings: dict[str, str]) -> list[str]:
    lines = ["## Exit codes", "", "| exit | meaning | runs | share | median s | max s | max MB |",
             "|---|---|---:|---:|---:|---:|---:|"]
    by_outcome: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_outcome[run.outcome].append(run)
    for outcome in sorted(by_outcome, key=lambda o: (not o.isdigit(), int(o) if o.isdigit() else 0, o)):
        group = by_outcome[outcome]
        lines.append(f"| {outcome} | {meanings.get(outcome, 'UNDOCUMENTED')} | {len(group)} | "
                     f"{100 * len(group) / len(runs):.1f} % | "
                     f"{statistics.median(r.wall_s for r in group):.2f} | "
                     f"{max(r.wall_s for r in group):.2f} | {max(r.peak_mb for r in group):.0f} |")
    return lines + [""]


def _targets(campaign: Campaign) -> list[str]:
    runs, max_pixels = campaign.runs, campaign.max_pixels
    count = Counter(k for ks in campaign.kinds.values() for k in ks)
    undocumented = sum(1 for ks in campaign.kinds.values()
                       if any(k.startswith("exit-") or k in ("timeout", "signal") for k in ks))
    over = [r for r in runs if r.claimed_pixels > max_pixels]
    small = [r for r in runs if is_small(r)]
    rows = [
        ("every exit a documented code (0-12)", f"{len(runs) - undocumented} of {len(runs)}",
         undocumented),
        ("no traceback on stderr", f"{count['traceback']} with one", count["traceback"]),
        ("an error is one `kmquant: ` line", f"{count['not-one-line']} not", count["not-one-line"]),
        ("nothing on stderr or stdout after success (-q)",
         f"{count['stderr-on-success']} with stderr, {count['stdout-despite-q']} with stdout",
         count["stderr-on-success"] + count["stdout-despite-q"]),
        ("no output left after an error", f"{count['output-left']} left", count["output-left"]),
        ("exit 0 means a valid PNG", f"{count['no-valid-output']} without", count["no-valid-output"]),
        ("input < 1 MB, < 2 MP: under 10 s and 1 GB",
         f"{len(small) - count['slow-or-big']} of {len(small)}; slowest "
         f"{max((r.wall_s for r in small), default=0):.2f} s, biggest "
         f"{max((r.peak_mb for r in small), default=0):.0f} MB", count["slow-or-big"]),
        (f"claims over {max_pixels:,} px refused in 1 s and 200 MB",
         f"{len(over) - count['over-limit-not-refused']} of {len(over)}; slowest "
         f"{max((r.wall_s for r in over), default=0):.2f} s, biggest "
         f"{max((r.peak_mb for r in over), default=0):.0f} MB", count["over-limit-not-refused"]),
    ]
    return (["## Targets", "", "| target | result | met |", "|---|---|---|"]
            + [f"| {name} | {result} | {'**no**' if bad else 'yes'} |" for name, result, bad in rows]
            + [""])


def _heaviest(runs: list[Run], top: int = 6) -> list[str]:
    """The runs that took the most memory and time, findings or not: where the limits bite."""
    lines = ["## Heaviest runs", "", "| by | index | mutation | bytes | header | exit | s | MB |",
             "|---|---:|---|---:|---|---|---:|---:|"]
    for by, key in (("RSS", lambda r: r.peak_mb), ("time", lambda r: r.wall_s)):
        for r in sorted(runs, key=key, reverse=True)[:top]:
            header = f"{r.format} {r.width}×{r.height}" if r.width >= 0 else r.format or "?"
            lines.append(f"| {by} | {r.index} | {r.mutation.replace('|', '/')} | {r.input_bytes:,} | "
                         f"{header} | {r.outcome} | {r.wall_s:.2f} | {r.peak_mb:.0f} |")
    return lines + [""]


def _finding_table(kind: str, hits: list[Run]) -> list[str]:
    lines = [f"### {kind}: {len(hits)} runs ({KIND_TEXT.get(kind, 'undocumented exit code')})", "",
             "| runs | signature (exit: first line of stderr) | example | mutation; time, RSS |",
             "|---:|---|---|---|"]
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in hits:
        groups[signature(run)].append(run)
    for sig, group in sorted(groups.items(), key=lambda g: -len(g[1]))[:30]:
        example = next((r for r in group if r.kept), group[0])
        detail = f"{example.mutation}; {example.wall_s:.1f} s, {example.peak_mb:.0f} MB"
        if example.left:
            detail += f"; left: {example.left}"
        where = example.kept or f"--only {example.index}"
        lines.append(f"| {len(group)} | `{sig.replace('|', '/')}` | {where} | {detail.replace('|', '/')} |")
    if len(groups) > 30:
        lines.append(f"| … | {len(groups) - 30} more signatures in the CSV | | |")
    return lines + [""]


CSV_FIELDS = [f.name for f in dataclasses.fields(Run)] + ["claimed_pixels"]


# --------------------------------------------------------------------------------------------
# set-up


def warm_up(corpus: list[tuple[str, bytes]], work: Path, argv_extra: list[str]) -> float:
    """Import in this parent what one real compress run imports (so no child pays for it) and
    return the peak-RSS floor: ``ru_maxrss`` of a forked child that does nothing, in MB."""
    import kmquant.cli  # noqa: F401

    before = set(sys.modules)
    name, data = next(((n, d) for n, d in corpus if n.endswith(".png")), corpus[0])
    read_end, write_end = os.pipe()
    src = work / f"warm{Path(name).suffix}"
    src.write_bytes(data)
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            kmquant.cli.main(["compress", str(src), "-o", str(work / "warm-out.png"), "-k", "8", "-q",
                              *argv_extra])
            os.write(write_end, "\n".join(sorted(set(sys.modules) - before)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    for module in b"".join(chunks).decode().split():
        try:
            importlib.import_module(module)
        except Exception:  # an optional module that imports only in its own context: skip it
            pass
    from PIL import Image

    Image.init()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    _, _, usage = os.wait4(pid, 0)
    return usage.ru_maxrss / 1024


def cli_extra(args: argparse.Namespace) -> list[str]:
    """Options passed to every run: the limits asked for, where this kmquant has them."""
    from kmquant.options import Options

    fields = {f.name for f in dataclasses.fields(Options)}
    extra = []
    if args.max_pixels is not None:
        extra += ["--max-pixels", str(args.max_pixels)]
    if args.max_memory and "max_memory" in fields:
        extra += ["--max-memory", args.max_memory]
    return extra


def load_corpus(folder: Path) -> list[tuple[str, bytes]]:
    seeds = sorted((p.name, p.read_bytes()) for p in folder.iterdir() if p.is_file())
    if not seeds:
        raise SystemExit(f"{folder}: no seed files")
    return seeds


def meta_of(args: argparse.Namespace, argv: list[str]) -> dict:
    import PIL

    import kmquant
    from kmquant.cli._common import EXIT_CODES, EXIT_INTERNAL

    try:
        git = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10).stdout.strip() or "no git"
    except (OSError, subprocess.SubprocessError):
        git = "no git"
    meanings = {str(code): text for _, code, text in EXIT_CODES}
    meanings.update({"0": "success", str(EXIT_INTERNAL): "internal error (a bug)",
                     str(ESCAPED): "exception escaped kmquant.cli.main",
                     "timeout": "killed after --timeout"})
    return {"kmquant": kmquant.__version__, "git": f"git {git}", "pillow": PIL.__version__,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores", "meanings": meanings,
            "argv": ["compress", "FILE", "-o", "OUT", "-k", "8", "-q", *cli_extra(args)],
            "command": " ".join(["python", "bench/bench_mutate.py", *map(shlex.quote, argv)])}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=CORPUS, help=f"seed files (default {CORPUS})")
    parser.add_argument("--count", type=int, default=100_000, help="files to make and run (100000)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="runs at once (cores)")
    parser.add_argument("--seed", type=int, default=1, help="the campaign's seed (1)")
    parser.add_argument("--seconds", type=float, help="start no run after this many seconds")
    parser.add_argument("--only", help="run only these file indices (comma-separated)")
    parser.add_argument("--timeout", type=float, default=20.0, help="kill a run after this (20 s)")
    parser.add_argument("--rlimit-as", type=lambda s: int(float(s) * 2**30), default=3 * 2**30,
                        metavar="GIB", help="address-space limit of each run in GiB (3; 0: none)")
    parser.add_argument("--max-pixels", type=int, help="pass --max-pixels N (default: kmquant's)")
    parser.add_argument("--max-memory", default="1G",
                        help="pass --max-memory SIZE where kmquant has it (1G: under --rlimit-as)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results",
                        help="where mutate.md and mutate-runs.csv go (default bench/results)")
    parser.add_argument("--keep", type=Path, help="findings' files (default OUT/mutate-findings)")
    parser.add_argument("--keep-per-signature", type=int, default=5,
                        help="files kept per kind of finding and message (5)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when there are findings")
    args = parser.parse_args(argv)
    args.keep = args.keep or args.out / "mutate-findings"
    args.jobs = max(1, args.jobs)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    os.environ.pop("KMQUANT_DEBUG", None)
    seeds = load_corpus(args.corpus)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="kmquant-mutate-"))
    try:
        return campaign(args, argv, seeds, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def campaign(args: argparse.Namespace, argv: list[str], seeds: list[tuple[str, bytes]], work: Path) -> int:
    from kmquant.options import DEFAULT_MAX_PIXELS

    extra = cli_extra(args)
    floor = warm_up(seeds, work, extra)
    meta = meta_of(args, argv)
    indices = [int(i) for i in args.only.split(",")] if args.only else range(args.count)
    mutants = (make_mutant(i, args.seed, seeds) for i in indices)
    runner = Campaign(args, work, extra, args.max_pixels or DEFAULT_MAX_PIXELS)
    started = time.monotonic()
    last = [started]

    def progress(done: int) -> None:
        if time.monotonic() - last[0] > 15:
            last[0] = time.monotonic()
            bad = sum(1 for kinds in runner.kinds.values() if kinds)
            print(f"  {done} runs, {time.monotonic() - started:.0f} s, {bad} with findings",
                  file=sys.stderr, flush=True)

    try:
        runner.run_all(mutants, started + args.seconds if args.seconds else None, progress)
    except KeyboardInterrupt:
        print("interrupted: reporting the runs so far", file=sys.stderr)
    meta["elapsed"] = time.monotonic() - started
    meta["floor_mb"] = floor
    if not runner.runs:
        raise SystemExit("no run finished")
    runner.runs.sort(key=lambda r: r.index)
    runner.add_tracebacks()
    text = report(runner, meta)
    (args.out / "mutate.md").write_text(text + "\n")
    with (args.out / "mutate-runs.csv").open("w", newline="") as sink:
        writer = csv.DictWriter(sink, CSV_FIELDS)
        writer.writeheader()
        for r in runner.runs:
            writer.writerow({**dataclasses.asdict(r), "claimed_pixels": r.claimed_pixels})
    print(text)
    print(f"\nwritten: {args.out / 'mutate.md'}, {args.out / 'mutate-runs.csv'}; findings' files "
          f"under {args.keep}", file=sys.stderr)
    return 1 if args.strict and any(runner.kinds.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
