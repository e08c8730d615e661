"""Hostile and broken input: each case is refused in one line with the right error, quickly and
without the memory it claims, or decoded right. The files are crafted here, byte by byte."""

from __future__ import annotations

import io
import os
import resource
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from kmquant.errors import (
    ImageTooLargeError,
    NotAnImageError,
    TruncatedImageError,
)
from kmquant.load import FORMATS, decode_bytes, load_image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, raw: bytes, *, color_type: int = 2, depth: int = 8,
         interlace: int = 0, extra: bytes = b"") -> bytes:
    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, interlace)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + extra
            + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))


def _rows(width: int, height: int, channels: int = 3) -> bytes:
    """Unfiltered scanlines of a gradient."""
    return b"".join(b"\x00" + bytes((x * 7 + y * 3) % 256 for x in range(width * channels))
                    for y in range(height))


def _gif_bomb(frame_w: int, frame_h: int) -> bytes:
    """43 bytes: a 16×16 screen holding one frame of frame_w × frame_h (disposal 2)."""
    header = b"GIF89a" + struct.pack("<HH", 16, 16) + bytes([0, 0, 0])
    control = b"\x21\xf9\x04" + bytes([2 << 2, 0, 0, 0]) + b"\x00"
    frame = (b"\x2c" + struct.pack("<HHHH", 0, 0, frame_w, frame_h) + b"\x80"
             + b"\x00\x00\x00\xff\xff\xff")
    return header + control + frame + b"\x02\x02\x4c\x01\x00" + b"\x3b"


def _ico_holding(png: bytes) -> bytes:
    """An ICO whose directory says 16×16 but whose one image is ``png``."""
    return (struct.pack("<HHH", 0, 1, 1)
            + struct.pack("<BBBBHHII", 16, 16, 0, 0, 1, 32, len(png), 6 + 16) + png)


def test_formats_never_include_an_interpreter():
    assert "EPS" not in FORMATS and "PDF" not in FORMATS
    assert {"PNG", "JPEG", "GIF", "WEBP", "TIFF", "BMP"} <= set(FORMATS)


def test_eps_is_refused_without_running_ghostscript():
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n{ } loop\n"
    clock = time.perf_counter()
    with pytest.raises(NotAnImageError, match="not an image in a format kmquant reads"):
        load_image(eps)
    assert time.perf_counter() - clock < 5  # Ghostscript would loop for ever


@pytest.mark.parametrize("fmt", ["DDS", "PCX", "SGI"])
def test_formats_outside_the_list_are_refused_as_not_readable(fmt):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, fmt)
    with pytest.raises(NotAnImageError, match="PNG, JPEG"):
        load_image(buffer.getvalue())


@pytest.mark.parametrize("size", [(40000, 40000), (65535, 65535)])
def test_gif_frame_larger_than_its_screen_is_refused_before_allocating(size):
    with pytest.raises(ImageTooLargeError, match="over the limit of 89,478,485"):
        load_image(_gif_bomb(*size))


def test_ico_holding_a_huge_png_is_refused_before_allocating():
    huge = _png(40000, 40000, b"", color_type=0, depth=1)
    with pytest.raises(ImageTooLargeError, match="declares 1,600,000,000 pixels"):
        load_image(_ico_holding(huge))


#: Runs a command from a small process and prints its exit code and peak RSS (KiB): a child
#: forked from the test process would count the test process's own pages in its peak.
_SPAWNER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def test_bombs_cost_neither_memory_nor_time_in_a_fresh_process(tmp_path):
    """The whole command on the 43-byte GIF and the ICO: exit 7 within seconds, and far from
    the gigabytes the files claim (they allocated 1.7 GB before)."""
    cases = {"bomb.gif": _gif_bomb(40000, 40000),
             "bomb.ico": _ico_holding(_png(60000, 60000, b"", color_type=0, depth=1))}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        clock = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-S", "-c", _SPAWNER, sys.executable, "-m", "kmquant", "compress",
             str(path), "-k", "8", "-q", "-o", str(tmp_path / "out.png")],
            capture_output=True, text=True)
        seconds = time.perf_counter() - clock
        code, peak_kib = map(int, done.stdout.split())
        assert code == 7, done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert peak_kib < 200 * 1024, f"{name}: {peak_kib // 1024} MiB"
        assert seconds < 10
        assert not (tmp_path / "out.png").exists()


def test_png_with_fewer_rows_than_its_header_is_refused():
    """Pillow fills the missing rows with zeros and says nothing: 218 bytes for 16 megapixels."""
    data = _png(4000, 4000, _rows(4000, 10))
    assert len(data) < 1000
    with pytest.raises(TruncatedImageError, match=r"ends early .* --allow-truncated"):
        load_image(data)
    loaded = load_image(data, allow_truncated=True)
    assert loaded.pixels.shape[:2] == (4000, 4000)


def test_complete_pngs_pass_the_row_count_including_interlaced_and_low_bit_depths():
    width, height = 37, 23
    for color_type, depth, channels in ((2, 8, 3), (0, 1, 1), (0, 4, 1), (6, 16, 4), (4, 8, 2)):
        bits = depth * channels
        raw = b""
        for _ in range(height):
            raw += b"\x00" + bytes(i % 256 for i in range((width * bits + 7) // 8))
        assert load_image(_png(width, height, raw, color_type=color_type, depth=depth)) is not None
    # Adam7: seven passes of sub-images, each row with its filter byte
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
              (0, 1, 1, 2))
    raw = b""
    for x0, y0, dx, dy in passes:
        cols, rows = len(range(x0, width, dx)), len(range(y0, height, dy))
        if cols and rows:
            raw += (b"\x00" + bytes((3 * c) % 256 for c in range(cols * 3))) * rows
    interlaced = _png(width, height, raw, interlace=1)
    assert load_image(interlaced).pixels.shape == (height, width, 3)
    with pytest.raises(TruncatedImageError):
        load_image(_png(width, height, raw[: len(raw) // 2], interlace=1))


def test_cut_files_are_truncated_errors():
    data = _png(64, 48, _rows(64, 48))
    for cut in (len(data) // 2, len(data) // 3):
        with pytest.raises(TruncatedImageError):
            load_image(data[:cut])
    with pytest.raises(TruncatedImageError, match="starts like a PNG"):  # not a whole header
        load_image(data[:40])


def test_chunk_lengths_of_four_gigabytes_neither_crash_nor_allocate():
    """An IDAT whose length field says 0xFFFFFFFF still holds the whole picture: it decodes to
    the right pixels. A text chunk saying so before the image data is corrupt."""
    good = _png(16, 16, _rows(16, 16))
    at = good.index(b"IDAT") - 4
    idat = good[:at] + struct.pack(">I", 0xFFFFFFFF) + good[at + 4:]
    assert np.array_equal(load_image(idat).pixels, load_image(good).pixels)
    text = _chunk(b"tEXt", b"Comment\x00hello")
    text = struct.pack(">I", 0xFFFFFFFF) + text[4:]
    with_text = _png(16, 16, _rows(16, 16), extra=text)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises((TruncatedImageError, NotAnImageError)):
        load_image(with_text)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024


def _tiff_with_strip_offsets_of_type(type_code: int) -> bytes:
    """A little-endian TIFF whose StripOffsets entry is retyped (11 float, 5 rational, 2 ASCII)."""
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 99).save(buffer, "TIFF")
    data = bytearray(buffer.getvalue())
    assert data[:2] == b"II"
    ifd = struct.unpack_from("<I", data, 4)[0]
    for i in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * i
        if struct.unpack_from("<H", data, entry)[0] == 273:
            struct.pack_into("<H", data, entry + 2, type_code)
            return bytes(data)
    raise AssertionError("no StripOffsets entry")


@pytest.mark.parametrize("type_code", [11, 5, 2, 12])
def test_tiff_with_a_strip_offset_of_the_wrong_type_is_corrupt(type_code):
    with pytest.raises((TruncatedImageError, NotAnImageError)):
        load_image(_tiff_with_strip_offsets_of_type(type_code))


def test_the_memory_budget_refuses_before_decoding():
    data = _png(4000, 3000, b"")  # only the header matters here
    need = decode_bytes(4000, 3000, "RGB")
    with pytest.raises(ImageTooLargeError, match="over the memory budget of 64.0 MB"):
        load_image(data, max_memory=64 << 20, allow_truncated=True)
    assert need > 64 << 20


def test_oversized_text_and_icc_chunks_are_skipped_not_fatal():
    """A zTXt or iCCP that decompresses past Pillow's bound must not sink a good image."""
    big = zlib.compress(bytes(8 << 20))  # 8 MB of zeros: 8 KB compressed
    text = _chunk(b"zTXt", b"Comment\x00\x00" + big)
    icc = _chunk(b"iCCP", b"icc\x00\x00" + big)
    for extra in (text, icc):
        loaded = load_image(_png(16, 8, _rows(16, 8), extra=extra))
        assert loaded.pixels.shape == (8, 16, 3)


def test_broken_exif_prints_no_warning(tmp_path):
    """An eXIf IFD that points at itself: Pillow warns; the command prints nothing but its
    result."""
    ifd = b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01" + struct.pack(">HHII", 0x0112, 3, 1, 0) \
        + struct.pack(">I", 8)
    path = tmp_path / "exif.png"
    path.write_bytes(_png(16, 8, _rows(16, 8), extra=_chunk(b"eXIf", ifd)))
    done = subprocess.run([sys.executable, "-m", "kmquant", "compress", str(path), "-k", "4",
                           "-q", "-o", str(tmp_path / "out.png")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_32_bit_samples_are_scaled_from_their_range_with_a_note():
    ramp = (np.arange(64 * 32, dtype=np.int64).reshape(32, 64) * 4000).astype(np.int32)
    im = Image.fromarray(ramp, mode="I")
    buffer = io.BytesIO()
    im.save(buffer, "TIFF")
    loaded = load_image(buffer.getvalue())
    pixels = loaded.pixels[:, :, 0]
    assert (pixels == 255).mean() < 0.01  # clipping made 86 % of such an image white
    assert pixels[0, 0] == 0 and pixels[-1, -1] == 255
    assert np.all(np.diff(pixels.astype(int).ravel()) >= 0)
    assert loaded.notes and "scaled" in loaded.notes[0]


def test_decoding_leaves_pillow_settings_as_they_were():
    from PIL import ImageFile

    before = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    with pytest.raises(ImageTooLargeError):
        load_image(_gif_bomb(40000, 40000))
    load_image(_png(4000, 4000, _rows(4000, 2)), allow_truncated=True, max_pixels=None)
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES) == before


def test_rss_of_this_process_is_untouched_by_a_refused_bomb():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ImageTooLargeError):
        load_image(_gif_bomb(65535, 65535), max_pixels=None, max_memory=1 << 30)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024


def test_the_memory_budget_refuses_k_means_on_too_many_colours_before_it_starts():
    """Checked again once the colours are counted: a million distinct colours need ~90 MB of
    k-means state, which a 40 MB budget refuses (the pixels alone fit)."""
    import kmquant

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
    with pytest.raises(ImageTooLargeError, match="distinct colours at K = 16 would need about"):
        kmquant.quantize(noise, 16, max_memory=40 << 20)


def test_a_file_name_with_a_newline_still_gives_one_line(tmp_path):
    path = tmp_path / "two\nlines.png"
    path.write_bytes(b"not an image at all")
    done = subprocess.run([sys.executable, "-m", "kmquant", "compress", str(path), "-k", "4",
                           "-q", "-o", str(tmp_path / "out.png")], capture_output=True, text=True)
    assert done.returncode == 4
    assert done.stderr.count("\n") == 1 and "two\\nlines.png" in done.stderr


@pytest.mark.parametrize("name, data, code", [
    ("eps.png", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n{ } loop\n", 4),
    ("gif-frame-bomb.gif", _gif_bomb(40000, 40000), 7),
    ("short-rows.png", _png(4000, 4000, _rows(4000, 10)), 5),
    ("idat-4gb.png", None, 0),
])
def test_each_hostile_case_has_its_exit_code_from_the_command_line(tmp_path, name, data, code):
    if data is None:  # the IDAT claiming 0xFFFFFFFF bytes still holds the whole picture
        good = _png(16, 16, _rows(16, 16))
        at = good.index(b"IDAT") - 4
        data = good[:at] + struct.pack(">I", 0xFFFFFFFF) + good[at + 4:]
    path = tmp_path / name
    path.write_bytes(data)
    out = tmp_path / "out.png"
    done = subprocess.run([sys.executable, "-m", "kmquant", "compress", str(path), "-k", "4",
                           "-q", "-o", str(out)], capture_output=True, text=True, timeout=60)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    assert out.exists() == (code == 0)
    if code:
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("kmquant: ")


def test_the_report_says_when_32_bit_samples_were_scaled(tmp_path):
    from kmquant.job import compress

    ramp = (np.arange(64 * 32, dtype=np.int64).reshape(32, 64) * 4000).astype(np.int32)
    src = tmp_path / "deep.tif"
    Image.fromarray(ramp, mode="I").save(src)
    report = compress(src, tmp_path / "out.png", n_colors=8)
    assert any("32-bit samples" in note for note in report.notes)
    assert report.psnr is not None and report.psnr > 25  # clipped, it was against a white image


def test_a_known_signature_with_a_broken_header_is_corrupt_not_unknown():
    for data, claimed in ((b"\x89PNG\r\n\x1a\n" + bytes(40), "a PNG"),
                          (b"\x00\x00\x00\x1cftypavif" + bytes(40), "an AVIF"),
                          (b"II*\x00" + bytes(40), "a TIFF")):
        with pytest.raises(TruncatedImageError, match=f"starts like {claimed} file"):
            load_image(data)


def test_decoders_printing_to_stderr_are_silenced_and_stderr_restored(capfd):
    """libtiff prints its complaints to descriptor 2; the one line kmquant prints is the error.
    After the decode, descriptor 2 works again."""
    from pathlib import Path

    broken = (Path(__file__).parent / "fuzz" / "regressions"
              / "tiff-deflate-bad-check-libtiff-stderr.exit5.tif").read_bytes()
    with pytest.raises(TruncatedImageError):
        load_image(broken)
    os.write(2, b"still here\n")
    assert capfd.readouterr().err == "still here\n"
