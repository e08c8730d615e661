"""Write the fuzzing seed corpus: one small valid file per format the loader accepts.

Every file is made from the same 16×12 picture (a colour gradient with a few flat blocks, and an
alpha ramp where the format has alpha), so each is a few hundred bytes to a few KB: small seeds
let the fuzzers mutate the headers and chunk structure rather than spend their time in pixel data.
The output is deterministic (no timestamps, no random state): running this again rewrites the same
bytes, so a changed file in ``git status`` means Pillow's encoders changed.

Usage::

    python tests/fuzz/make_corpus.py            # rewrites tests/fuzz/corpus/
    python tests/fuzz/make_corpus.py --out DIR
"""

from __future__ import annotations

import argparse
import io
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

from PIL import Image, features

CORPUS = Path(__file__).parent / "corpus"
WIDTH, HEIGHT = 16, 12


def picture() -> Image.Image:
    """The 16×12 RGB picture every seed shows: a gradient crossed by three flat colour blocks."""
    im = Image.new("RGB", (WIDTH, HEIGHT))
    im.putdata([(x * 16, y * 21, 128 + (x - y) * 4) for y in range(HEIGHT) for x in range(WIDTH)])
    for box, colour in (((1, 1, 5, 4), (255, 0, 0)), ((9, 2, 14, 6), (0, 160, 40)),
                        ((3, 7, 12, 11), (250, 220, 30))):
        im.paste(colour, box)
    return im


def with_alpha(im: Image.Image) -> Image.Image:
    """``im`` with an alpha ramp from transparent (left) to opaque (right)."""
    rgba = im.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").rotate(90).resize(im.size).transpose(
        Image.Transpose.FLIP_LEFT_RIGHT))
    return rgba


def palette_with_trns(im: Image.Image) -> Image.Image:
    """A 16-colour palette image whose first entry is transparent (PNG ``tRNS``)."""
    pal = im.quantize(16, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    pal.info["transparency"] = 0
    return pal


def grey16(im: Image.Image) -> Image.Image:
    """16-bit greyscale (``I;16``): the grey levels spread over 0..65535."""
    grey = im.convert("L")
    wide = Image.new("I;16", im.size)
    wide.putdata([value * 257 for value in grey.tobytes()])
    return wide


def png_rgb16(im: Image.Image) -> bytes:
    """A 16-bit-per-sample RGB PNG, written by hand (Pillow has no 16-bit RGB mode to save)."""
    rows = b"".join(
        b"\0" + b"".join(struct.pack(">HHH", *(c * 257 for c in im.getpixel((x, y))))
                         for x in range(im.width))
        for y in range(im.height)
    )
    header = struct.pack(">IIBBBBB", im.width, im.height, 16, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(rows, 9)) + _png_chunk(b"IEND", b""))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def animated_gif(im: Image.Image) -> bytes:
    """Two frames: the picture, then the picture mirrored."""
    out = io.BytesIO()
    second = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    im.save(out, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    return out.getvalue()


def saved(im: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def seeds() -> dict[str, Callable[[], bytes]]:
    """File name → a function making its bytes (AVIF only when this Pillow can write it)."""
    im = picture()
    made: dict[str, Callable[[], bytes]] = {
        "png_rgb.png": lambda: saved(im, "PNG", optimize=False),
        "png_rgba.png": lambda: saved(with_alpha(im), "PNG"),
        "png_grey.png": lambda: saved(im.convert("L"), "PNG"),
        "png_palette_trns.png": lambda: saved(palette_with_trns(im), "PNG"),
        "png_grey16.png": lambda: saved(grey16(im), "PNG"),
        "png_rgb16.png": lambda: png_rgb16(im),
        "jpeg.jpg": lambda: saved(im, "JPEG", quality=85),
        "jpeg_grey.jpg": lambda: saved(im.convert("L"), "JPEG", quality=85),
        "gif.gif": lambda: saved(im, "GIF"),
        "gif_animated.gif": lambda: animated_gif(im),
        "webp_lossy.webp": lambda: saved(im, "WEBP", quality=80),
        "webp_lossless_rgba.webp": lambda: saved(with_alpha(im), "WEBP", lossless=True),
        "tiff.tif": lambda: saved(im, "TIFF"),
        "tiff_deflate_rgba.tif": lambda: saved(with_alpha(im), "TIFF", compression="tiff_adobe_deflate"),
        "bmp.bmp": lambda: saved(im, "BMP"),
        "bmp_palette.bmp": lambda: saved(im.convert("P"), "BMP"),
        "tga.tga": lambda: saved(im, "TGA"),
        "tga_rle_rgba.tga": lambda: saved(with_alpha(im), "TGA", compression="tga_rle"),
        "ppm.ppm": lambda: saved(im, "PPM"),
        "pgm.pgm": lambda: saved(im.convert("L"), "PPM"),
        "pbm.pbm": lambda: saved(im.convert("1"), "PPM"),
        "qoi_rgba.qoi": lambda: saved(with_alpha(im), "QOI"),
        "ico.ico": lambda: saved(with_alpha(im), "ICO", sizes=[im.size]),
        "ico_bmp.ico": lambda: saved(im, "ICO", sizes=[im.size], bitmap_format="bmp"),
    }
    if features.check("avif"):
        made["avif.avif"] = lambda: saved(im, "AVIF", quality=60)
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=CORPUS, help=f"folder (default {CORPUS})")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, make in seeds().items():
        data = make()
        with Image.open(io.BytesIO(data)) as check:  # every seed must decode as it is
            check.load()
        (args.out / name).write_bytes(data)
        print(f"{name:28} {len(data):6} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
