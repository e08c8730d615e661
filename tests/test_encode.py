import io
import os
import struct

import numpy as np
import pytest
from PIL import Image

from kmquant.encode import (
    check_output,
    describe_encoding,
    encode_as,
    encode_png,
    flatten,
    format_for_extension,
    order_palette,
    palette_order,
    png_bit_depth,
    write_atomic,
)
from kmquant.errors import OutputExistsError, OutputNotWritableError


def _chunks(data: bytes) -> dict[str, bytes]:
    """PNG chunk type → payload (first of each type)."""
    chunks, pos = {}, 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8].decode()
        chunks.setdefault(kind, data[pos + 8 : pos + 8 + length])
        pos += 12 + length
    return chunks


def _indexed(k: int, channels: int = 3, shape=(40, 60)):
    rng = np.random.default_rng(k)
    packed = rng.choice(1 << 24, size=k, replace=False)  # k distinct colours
    palette = np.stack([(packed >> s) & 255 for s in (0, 8, 16, 4)[:channels]], 1).astype(np.uint8)
    indices = rng.integers(0, k, shape).astype(np.uint8)
    indices.flat[:k] = np.arange(k)  # every entry used
    return palette, indices


@pytest.mark.parametrize("k, bits", [(1, 1), (2, 1), (3, 2), (4, 2), (5, 4), (16, 4), (17, 8), (256, 8)])
def test_smallest_bit_depth_and_exact_round_trip(k, bits):
    palette, indices = _indexed(k)
    data = encode_png(palette, indices)
    ihdr = _chunks(data)["IHDR"]
    assert ihdr[8] == bits and ihdr[9] == 3  # bit depth, colour type 3 = palette
    assert len(_chunks(data)["PLTE"]) == 3 * k
    decoded = Image.open(io.BytesIO(data))
    assert np.array_equal(np.asarray(decoded.convert("RGB")), palette[indices])
    assert png_bit_depth(k) == bits


def test_translucent_entries_go_to_trns():
    palette, indices = _indexed(6, channels=4)
    palette[:, 3] = [0, 128, 255, 255, 255, 255]
    data = encode_png(palette, indices)
    assert _chunks(data)["tRNS"] == bytes([0, 128])
    rgba = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))
    assert np.array_equal(rgba, palette[indices])


def test_grey_palette_writes_grey_pixels():
    palette = np.array([[0], [90], [200]], dtype=np.uint8)
    indices = np.tile(np.arange(3, dtype=np.uint8), (20, 10))
    decoded = Image.open(io.BytesIO(encode_png(palette, indices)))
    assert np.array_equal(np.asarray(decoded.convert("L")), palette[indices, 0])


def test_grey_chooses_the_smaller_encoding():
    rng = np.random.default_rng(0)
    palette = np.arange(0, 256, dtype=np.uint8)[:, None]
    indices = np.sort(rng.integers(0, 256, (64, 64)).astype(np.uint8), axis=1)
    data = encode_png(palette, indices)
    assert _chunks(data)["IHDR"][9] in (0, 3)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("L")), indices)


def test_order_palette_sorts_drops_unused_and_keeps_the_picture():
    palette = np.array([[250, 250, 250], [10, 10, 10], [128, 0, 0], [5, 200, 5]], dtype=np.uint8)
    indices = np.array([[0, 1], [2, 0]], dtype=np.uint8)  # entry 3 unused
    ordered, new_indices = order_palette(palette, indices)
    assert ordered.tolist() == [[10, 10, 10], [128, 0, 0], [250, 250, 250]]
    assert np.array_equal(ordered[new_indices], palette[indices])


def test_order_palette_puts_translucent_first():
    palette = np.array([[9, 9, 9, 255], [1, 1, 1, 0], [200, 0, 0, 100]], dtype=np.uint8)
    indices = np.array([[0, 1, 2]], dtype=np.uint8)
    ordered, _ = order_palette(palette, indices)
    assert ordered[:, 3].tolist() == [0, 100, 255]


def test_palette_order_from_counts_is_order_palette_from_indices():
    """The pipeline orders the palette from the histogram's counts per entry; the result must be
    the order the indices themselves give."""
    rng = np.random.default_rng(3)
    palette = rng.integers(0, 256, (40, 4)).astype(np.uint8)
    palette[::3, 3] = 255
    indices = rng.integers(0, 37, (30, 50)).astype(np.uint8)  # entries 37..39 unused
    ordered, new_indices = order_palette(palette, indices)
    counts = np.bincount(indices.ravel(), minlength=40).astype(np.float64)
    from_counts, lookup = palette_order(palette, counts)
    assert np.array_equal(from_counts, ordered)
    assert np.array_equal(lookup[indices], new_indices)


@pytest.mark.parametrize("fmt, magic", [("JPEG", b"\xff\xd8"), ("WEBP", b"RIFF"), ("GIF", b"GIF8"),
                                        ("BMP", b"BM"), ("TIFF", b"II"), ("png", b"\x89PNG")])
def test_encode_as_other_formats(fmt, magic, crop_pixels):
    assert encode_as(crop_pixels, fmt)[:len(magic)] == magic


def test_write_atomic_writes_and_refuses_to_overwrite(tmp_path):
    target = tmp_path / "out.png"
    write_atomic(target, b"one")
    assert target.read_bytes() == b"one"
    with pytest.raises(OutputExistsError, match="--force"):
        write_atomic(target, b"two")
    write_atomic(target, b"two", overwrite=True)
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no temp files left


def test_write_atomic_into_a_missing_directory(tmp_path):
    with pytest.raises(OutputNotWritableError, match="does not exist"):
        write_atomic(tmp_path / "missing" / "out.png", b"x")


def test_write_atomic_where_the_directory_is_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputNotWritableError):
        write_atomic(blocker / "out.png", b"x")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_write_atomic_into_a_read_only_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(OutputNotWritableError, match="cannot write here"):
        write_atomic(locked / "out.png", b"x")


def test_read_only_filesystem_is_not_writable():
    with pytest.raises(OutputNotWritableError):
        write_atomic("/proc/kmquant-test.png", b"x")


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "out.png"

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, b"data")
    assert list(tmp_path.iterdir()) == []


def test_libdeflate_beats_zlib_level_9_and_the_maximum_level_beats_the_default(crop_pixels):
    import kmquant

    result = kmquant.quantize(crop_pixels, 64)
    default = encode_png(result.palette, result.indices)
    best = encode_png(result.palette, result.indices, level=12)
    im = Image.fromarray(result.indices, mode="P")
    im.putpalette(result.palette.tobytes())
    buffer = io.BytesIO()
    im.save(buffer, "PNG", compress_level=9)  # Pillow: zlib at its best
    assert len(best) <= len(default) < len(buffer.getvalue())
    for data in (default, best):
        decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        assert np.array_equal(decoded, result.to_array())


@pytest.mark.parametrize("level", [0, 13, 9.5, True])
def test_deflate_level_out_of_range_is_refused(level):
    from kmquant.errors import InvalidOptionError

    palette, indices = _indexed(3)
    with pytest.raises(InvalidOptionError, match="1 to 12"):
        encode_png(palette, indices, level=level)


@pytest.mark.parametrize("k", [2, 4, 16])
def test_packed_rows_of_odd_widths_round_trip(k):
    palette, indices = _indexed(k, shape=(7, 13))  # 13 pixels: the last byte of a row is padded
    data = encode_png(palette, indices)
    Image.open(io.BytesIO(data)).verify()  # chunk CRCs
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), indices)  # mode P: indices


def test_png_chunks_carry_valid_crcs():
    import zlib

    palette, indices = _indexed(5, channels=4)
    palette[0, 3] = 0
    data = encode_png(palette, indices)
    pos, kinds = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        body = data[pos + 4 : pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(body)
        kinds.append(body[:4])
        pos += 12 + length
    assert kinds == [b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"]


def test_large_images_deflate_at_the_faster_level():
    from kmquant.encode import LARGE_DEFLATE_LEVEL, LARGE_FROM, default_level

    assert default_level(768 * 512) == 10
    assert default_level(LARGE_FROM) == LARGE_DEFLATE_LEVEL < 10
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (16, 3), dtype=np.uint8)
    indices = (np.arange(LARGE_FROM, dtype=np.int64) // 997 % 16).astype(np.uint8).reshape(2000, -1)
    data = encode_png(palette, indices)
    assert data == encode_png(palette, indices, level=LARGE_DEFLATE_LEVEL)
    with Image.open(io.BytesIO(data)) as im:
        assert np.array_equal(np.asarray(im), indices)


def test_order_palette_in_chunks_equals_the_whole(monkeypatch):
    import kmquant.encode as encode

    rng = np.random.default_rng(5)
    palette = rng.integers(0, 256, (40, 3), dtype=np.uint8)
    indices = rng.integers(0, 30, (37, 23), dtype=np.uint8)  # entries 30..39 unused
    whole = order_palette(palette, indices)
    monkeypatch.setattr(encode, "_CHUNK", 7)  # chunks that cut rows anywhere
    chunked = order_palette(palette, indices)
    assert np.array_equal(whole[0], chunked[0]) and np.array_equal(whole[1], chunked[1])
    assert whole[0].shape == (30, 3)
    assert np.array_equal(whole[0][whole[1]], palette[indices])  # the same picture


# --------------------------------------------------------------------------------------------
# outputs are regular files; what was written, in words


def test_write_atomic_never_replaces_a_device_fifo_or_link(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    target = tmp_path / "target"
    target.write_bytes(b"keep")
    link = tmp_path / "link"
    link.symlink_to(target)
    for path, words in (("/dev/null", "is a character device, not a file"),
                        (fifo, r"is a named pipe \(FIFO\), not a file"),
                        (link, "is a symbolic link")):
        with pytest.raises(OutputExistsError, match=words):
            write_atomic(path, b"x", overwrite=True)
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
    assert link.is_symlink() and target.read_bytes() == b"keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "link", "target"]
    with pytest.raises(OutputExistsError, match=r"not a file; give a file path \(or -o -\)"):
        check_output("/dev/null", overwrite=True, alternative="or -o -")
    assert check_output(tmp_path / "new.png") == tmp_path / "new.png"
    assert check_output(target, overwrite=True) == target  # a regular file, with overwrite


def test_format_for_extension():
    assert [format_for_extension(n) for n in ("a.png", "a.JPG", "b.jpeg", "c.tif", "c.TIFF",
                                              "d.webp", "e.bmp", "f.gif")] == [
        "png", "jpeg", "jpeg", "tiff", "tiff", "webp", "bmp", "gif"]
    assert format_for_extension("a.jp2") is None and format_for_extension("noext") is None


def test_flatten_composites_over_white_exactly():
    pixels = np.array([[[10, 20, 30, 255], [10, 20, 30, 0], [0, 0, 0, 0], [200, 100, 0, 128]]],
                      dtype=np.uint8)
    flat = flatten(pixels)
    assert flat.shape == (1, 4, 3) and flat.dtype == np.uint8
    assert flat[0, 0].tolist() == [10, 20, 30] and flat[0, 1].tolist() == [255, 255, 255]
    assert flat[0, 2].tolist() == [255, 255, 255]
    expected = np.rint((np.array([200, 100, 0]) * 128 + 255 * 127) / 255)
    assert flat[0, 3].tolist() == expected.astype(int).tolist()
    assert flatten(pixels, (0, 0, 0))[0, 1].tolist() == [0, 0, 0]
    # and JPEG/BMP get it: white where the picture was transparent
    decoded = np.asarray(Image.open(io.BytesIO(encode_as(pixels, "BMP"))).convert("RGB"))
    assert np.array_equal(decoded, flat)


def test_describe_encoding_reads_the_header():
    palette, indices = _indexed(16)
    assert describe_encoding(encode_png(palette, indices)) == "indexed PNG, 4-bit palette"
    palette, indices = _indexed(2)
    assert describe_encoding(encode_png(palette, indices)) == "indexed PNG, 1-bit palette"
    grey = np.arange(256, dtype=np.uint8)[:, None]
    ramp = np.tile(np.arange(256, dtype=np.uint8), (16, 1))
    data = encode_png(grey, ramp)
    assert _chunks(data)["IHDR"][9] == 0  # the grey encoding was the smaller
    assert describe_encoding(data) == "8-bit greyscale PNG"
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert describe_encoding(encode_as(rgb, "PNG")) == "8-bit RGB PNG"
    assert describe_encoding(encode_as(rgb, "JPEG")) == "JPEG"
    assert describe_encoding(encode_as(rgb[:, :, :1], "JPEG")) == "greyscale JPEG"
    assert describe_encoding(encode_as(rgb, "GIF")) == "palette GIF"
