"""Animations in, animations out: every frame decoded, one palette over all frames (or one per
frame in a GIF), timing and loop kept, later APNG/GIF frames cut to what changed; multi-page files
give their first page, with a note; hostile frame counts are refused before decoding."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kmquant.cli import exit_code_for, main
from kmquant.encode import encode_apng, encode_gif, encode_png, gif_palette
from kmquant.errors import (
    ImageTooLargeError,
    InvalidOptionError,
    TruncatedImageError,
)
from kmquant.job import compress
from kmquant.load import animation_bytes, load_frames, load_image
from kmquant.report import Report

DURATIONS = [100, 50, 70, 120]
SQUARE = 8  # side of the moving square


def _frames(n: int = 4, width: int = 32, height: int = 24) -> np.ndarray:
    """(n, H, W, 3): a still two-way gradient (192 colours: a GIF holds them exactly) with a
    yellow square moving right."""
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x // 2 * 16, y // 2 * 20, np.full_like(x, 90)], axis=2).astype(np.uint8)
    frames = np.repeat(base[None], n, axis=0)
    for i in range(n):
        frames[i, 4:4 + SQUARE, 2 + 6 * i:2 + 6 * i + SQUARE] = (250, 200, 20)
    return frames


def _save(frames: np.ndarray, path: Path, fmt: str, **options) -> Path:
    images = [Image.fromarray(frame) for frame in frames]
    extra = {"lossless": True} if fmt == "WEBP" else {}
    images[0].save(path, fmt, save_all=True, append_images=images[1:], duration=DURATIONS,
                   **extra, **options)
    return path


@pytest.fixture(params=[("GIF", ".gif", 2), ("PNG", ".png", 2), ("WEBP", ".webp", 0)],
                ids=["gif", "apng", "webp"])
def animation(request, tmp_path):
    """(path, frames, plays) of a 4-frame animation in each input format (plays: how many
    times it plays; a GIF's loop count is the repeats after the first play)."""
    fmt, ext, loop = request.param
    frames = _frames()
    plays = loop + 1 if fmt == "GIF" and loop else loop
    return _save(frames, tmp_path / f"in{ext}", fmt, loop=loop), frames, plays


def _read(path_or_bytes) -> tuple[list[np.ndarray], list[float], object, list[str]]:
    """Every frame of a file as RGBA, read forwards (Pillow loses an APNG's palette when it
    seeks back), with the durations, the plays (a GIF's loop count + 1: browsers play it
    once, then repeat it that many times) and each frame's mode."""
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    frames, durations, modes = [], [], []
    with Image.open(source) as im:
        loop = im.info.get("loop")
        if im.format == "GIF" and loop:
            loop += 1
        for i in range(im.n_frames):
            im.seek(i)
            im.load()
            modes.append(im.mode)
            durations.append(im.info.get("duration"))
            frames.append(np.asarray(im.convert("RGBA")))
    return frames, durations, loop, modes


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk, each CRC checked."""
    chunks, at = [], 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        payload = data[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length:at + 12 + length])
        assert crc == zlib.crc32(kind + payload), kind
        chunks.append((kind, payload))
        at += 12 + length
    return chunks


def _gif_frames(data: bytes) -> list[dict]:
    """Each image of a GIF: offset, size, local colour table or not, GCE disposal and delay."""
    at = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    images, control = [], {}
    while data[at] != 0x3B:
        if data[at] == 0x21:
            label = data[at + 1]
            if label == 0xF9:
                flags, delay, index = struct.unpack("<BHB", data[at + 3:at + 7])
                control = {"disposal": flags >> 2 & 7, "delay": delay,
                           "transparent": index if flags & 1 else None}
            at += 2
            while data[at]:
                at += data[at] + 1
            at += 1
            continue
        x, y, w, h, flags = struct.unpack("<HHHHB", data[at + 1:at + 10])
        at += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1  # + LZW code size
        while data[at]:
            at += data[at] + 1
        at += 1
        images.append(dict(control, box=(x, y, x + w, y + h), local=bool(flags & 0x80)))
        control = {}
    return images


# --- loading


def test_load_frames_reads_every_frame_with_its_duration_and_the_loop(animation):
    path, frames, loop = animation
    loaded = load_frames(path)
    assert loaded.n_frames == 4 and loaded.is_animated
    assert np.array_equal(loaded.frames, frames)  # composited full canvases, exact (lossless)
    assert loaded.durations == tuple(DURATIONS) and loaded.loop == loop
    assert loaded.stacked().shape == (4 * 24, 32, 3)


def test_load_frames_reads_bytes_as_it_reads_files(animation):
    path, frames, loop = animation
    loaded = load_frames(path.read_bytes(), name="<stdin>")
    assert np.array_equal(loaded.frames, frames) and loaded.loop == loop


def test_a_gif_frame_larger_than_its_screen_is_cut_to_it():
    from kmquant.encode import _lzw

    head = b"GIF89a" + struct.pack("<HHBBB", 8, 8, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    small = b"," + struct.pack("<HHHHB", 0, 0, 8, 8, 0) + _lzw(np.zeros((8, 8), np.uint8))
    large = b"," + struct.pack("<HHHHB", 0, 0, 12, 12, 0) + _lzw(np.ones((12, 12), np.uint8))
    loaded = load_frames(head + small + large + b";")
    assert loaded.frames.shape == (2, 8, 8, 1)
    assert loaded.frames[0].max() == 0 and loaded.frames[1].min() == 255
    assert any("larger than the canvas (8×8) was cut to it" in n for n in loaded.notes)


def test_load_image_reads_the_first_frame_and_says_so(animation):
    path, frames, _ = animation
    loaded = load_image(path)
    assert np.array_equal(loaded.pixels, frames[0])
    assert any("animation of 4 frames; only the first" in note for note in loaded.notes)


def test_a_gif_without_a_loop_block_plays_once(tmp_path):
    path = _save(_frames(), tmp_path / "once.gif", "GIF")  # no loop= : no NETSCAPE block
    loaded = load_frames(path)
    assert loaded.loop is None
    out = tmp_path / "once.png"
    report = compress(path, out, n_colors=64)
    assert _read(out)[2] == 1  # acTL: played once
    assert any("plays once" in note for note in report.notes)


def test_a_still_loads_as_one_frame_exactly_as_load_image(tmp_path, crop_path):
    still = load_image(crop_path)
    frames = load_frames(crop_path)
    assert frames.n_frames == 1 and not frames.is_animated
    first = frames.first()
    assert np.array_equal(first.pixels, still.pixels) and first.notes == still.notes


def test_each_frame_is_held_to_max_pixels(animation):
    path, _, _ = animation
    with pytest.raises(ImageTooLargeError, match="--max-pixels"):
        load_frames(path, max_pixels=500)


def _many_frames_gif(n: int, width: int = 100, height: int = 100) -> bytes:
    """A GIF of ``n`` image blocks of garbage LZW data: cheap to count, fails to decode."""
    head = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    frame = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x08\x05\xff\xff\xff\xff\xff\0"
    return head + frame * n + b";"


def test_a_gif_claiming_many_frames_is_refused_before_any_is_decoded(tmp_path, capsys):
    path = tmp_path / "many.gif"
    path.write_bytes(_many_frames_gif(20_000))
    out = tmp_path / "out.png"
    code = main(["compress", str(path), "-o", str(out), "--max-memory", "64M"])
    err = capsys.readouterr().err
    assert code == exit_code_for(ImageTooLargeError("")) == 7
    assert "20,000 frames of 100×100" in err and "--max-memory" in err and not out.exists()
    # the frames themselves do not decode: only a check from the header could give exit 7
    code = main(["compress", str(path), "-o", str(out), "--max-memory", "none"])
    assert code == exit_code_for(TruncatedImageError("")) and not out.exists()
    assert animation_bytes(100, 100, 20_000) > 64 * 2**20


def test_an_apng_claiming_more_frames_than_it_holds(tmp_path):
    data = bytearray(encode_apng(np.array([[0, 0, 0], [255, 255, 255]], np.uint8),
                                 np.zeros((2, 8, 8), np.uint8), [100, 100]))
    at = data.index(b"acTL")
    data[at + 4:at + 8] = struct.pack(">I", 100_000)
    data[at + 12:at + 16] = struct.pack(">I", zlib.crc32(bytes(data[at:at + 12])))
    with pytest.raises(ImageTooLargeError, match="100,000 frames"):
        load_frames(bytes(data), max_memory=64 * 2**20)
    with pytest.raises(TruncatedImageError):  # within the budget: the missing frames are found
        load_frames(bytes(data), max_memory=None)


def test_an_apng_frame_whose_data_ends_early_is_refused(tmp_path):
    palette = np.array([[0, 0, 0], [255, 255, 255]], np.uint8)
    frames = np.zeros((3, 16, 16), np.uint8)
    frames[1] = 1  # a whole-canvas change: frame 2's fdAT holds every row
    frames[2, :8] = 1
    data = encode_apng(palette, frames, [100] * 3, level=1)
    chunks = _png_chunks(data)
    cut = [(kind, payload[:-6] if kind == b"fdAT" and i == [k for k, _ in chunks].index(b"fdAT")
            else payload) for i, (kind, payload) in enumerate(chunks)]
    broken = b"\x89PNG\r\n\x1a\n" + b"".join(
        struct.pack(">I", len(p)) + k + p + struct.pack(">I", zlib.crc32(k + p)) for k, p in cut)
    with pytest.raises(TruncatedImageError, match="frame 2 ends early"):
        load_frames(broken)
    assert load_frames(broken, allow_truncated=True).n_frames >= 1


def test_an_apng_default_image_is_not_a_frame():
    images = [Image.new("RGB", (8, 6), colour) for colour in ("red", "green", "blue")]
    buffer = io.BytesIO()
    images[0].save(buffer, "PNG", save_all=True, append_images=images[1:], default_image=True,
                   duration=[10, 20, 30], loop=0)
    loaded = load_frames(buffer.getvalue())
    assert loaded.frames[:, 0, 0].tolist() == [[0, 128, 0], [0, 0, 255]]
    with Image.open(buffer) as im:  # what the file says of frames 1 and 2
        expected = [(im.seek(i), im.info["duration"])[1] for i in (1, 2)]
    assert loaded.durations == tuple(expected) == (10.0, 20.0)
    assert any("only its default image" in note for note in load_image(buffer.getvalue()).notes)


def test_an_animation_keeps_or_converts_its_icc_profile(tmp_path):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = _save(_frames(n=2), tmp_path / "in.png", "PNG", loop=0, icc_profile=icc)
    report = compress(path, tmp_path / "kept.png", n_colors=64)
    with Image.open(tmp_path / "kept.png") as im:
        assert im.info.get("icc_profile") == icc
    assert any(note.startswith("ICC profile (") for note in report.notes)
    converted = compress(path, tmp_path / "srgb.png", n_colors=64, srgb=True)
    assert any("pixels converted from" in note for note in converted.notes)
    with Image.open(tmp_path / "srgb.png") as im:
        assert "icc_profile" not in im.info
    gif = compress(path, tmp_path / "out.gif", n_colors=64)
    assert any("GIF has no place for the ICC profile" in note for note in gif.notes)
    assert not any(note.startswith("ICC profile (") for note in gif.notes)


def test_a_multipage_tiff_gives_its_first_page_and_says_so(tmp_path):
    pages = [Image.new("RGB", (16, 12), colour) for colour in ("red", "green", "blue")]
    path = tmp_path / "pages.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    report = compress(path, tmp_path / "pages.png", n_colors=8)
    note = "the TIFF holds 3 pages; only the first was quantized (kmquant writes one picture per file)"
    assert note in report.notes and report.frames == 1
    with Image.open(tmp_path / "pages.png") as im:
        assert getattr(im, "n_frames", 1) == 1
        assert im.convert("RGB").getcolors() == [(16 * 12, (255, 0, 0))]


# --- compressing


def test_an_animation_becomes_an_indexed_apng_with_one_palette(animation, tmp_path):
    path, frames, loop = animation
    out = tmp_path / "out.png"
    report = compress(path, out, n_colors=64)
    got, durations, got_loop, modes = _read(out)
    assert len(got) == 4 and durations == DURATIONS and got_loop == loop
    assert modes == ["P"] * 4
    for source, written in zip(frames, got):
        assert _psnr(source, written[:, :, :3]) > 30
    kinds = [kind for kind, _ in _png_chunks(out.read_bytes())]
    assert kinds.count(b"PLTE") == 1 and kinds.count(b"acTL") == 1
    assert kinds.count(b"fcTL") == 4 and kinds.count(b"IDAT") == 1 and kinds.count(b"fdAT") == 3
    assert report.frames == 4 and report.width == 32 and report.height == 24
    assert "animation: 4 frames, one palette over all frames; timing and loop kept" in \
        report.notes[0]
    assert report.psnr is not None and report.psnr > 30
    assert report.format.startswith("indexed PNG")


def test_later_apng_frames_hold_only_the_pixels_that_changed(tmp_path):
    path = _save(_frames(), tmp_path / "in.gif", "GIF", loop=0)
    out = tmp_path / "out.png"
    compress(path, out, n_colors=64)
    chunks = _png_chunks(out.read_bytes())
    controls = [struct.unpack(">IIIII", payload[:20]) for kind, payload in chunks
                if kind == b"fcTL"]
    sequence = [struct.unpack(">I", payload[:4])[0] for kind, payload in chunks
                if kind in (b"fcTL", b"fdAT")]
    assert sequence == list(range(len(sequence)))
    assert controls[0][1:] == (32, 24, 0, 0)
    # the square moves 6 pixels right: its old and new place, 14 × 8 at (2 + 6(i-1), 4)
    assert controls[1][1:] == (SQUARE + 6, SQUARE, 2, 4)
    assert controls[2][1:] == (SQUARE + 6, SQUARE, 8, 4)
    assert controls[3][1:] == (SQUARE + 6, SQUARE, 14, 4)


def test_a_frame_that_changes_nothing_is_one_pixel():
    palette = np.array([[0, 0, 0], [255, 255, 255]], np.uint8)
    frames = np.zeros((3, 64, 64), np.uint8)
    frames[:, 10:20, 10:20] = 1  # the same three times
    cropped = encode_apng(palette, frames, [100] * 3)
    controls = [struct.unpack(">IIIII", payload[:20]) for kind, payload in
                _png_chunks(cropped) if kind == b"fcTL"]
    assert [c[1:] for c in controls] == [(64, 64, 0, 0), (1, 1, 0, 0), (1, 1, 0, 0)]
    for got in _read(cropped)[0]:
        assert np.array_equal(got[:, :, 0], frames[0] * 255)
    # beyond the still PNG: acTL, an fcTL per frame, and two fdAT of one pixel each (a zlib
    # stream of 13 bytes: its header, a one-byte row and the filter byte, its checksum)
    overhead = 20 + 3 * 38 + 2 * (12 + 4 + 13)
    assert len(cropped) <= len(encode_png(palette, frames[0])) + overhead


def test_encode_apng_round_trips_every_frame_exactly():
    rng = np.random.default_rng(0)
    palette = np.array([[0, 0, 0, 0], [10, 20, 30, 128], [200, 100, 0, 255],
                        [255, 255, 255, 255], [0, 90, 0, 255]], np.uint8)
    frames = rng.integers(0, 5, (3, 10, 13), dtype=np.uint8)
    frames[1, :5] = frames[0, :5]
    durations = [1000 / 30, 0, 1001]
    data = encode_apng(palette, frames, durations, loop=3)
    got, got_durations, loop, modes = _read(data)
    assert loop == 3 and modes == ["P"] * 3
    assert got_durations == pytest.approx(durations)
    for i in range(3):
        assert np.array_equal(got[i], palette[frames[i]])


def test_an_animation_becomes_a_gif_with_one_global_palette(animation, tmp_path, capsys):
    path, frames, loop = animation
    out = tmp_path / "out.gif"
    code = main(["compress", str(path), "-o", str(out), "-k", "64", "--json"])
    record = json.loads(capsys.readouterr().out)
    assert code == 0 and record["frames"] == 4 and record["animated"]
    got, durations, got_loop, _ = _read(out)
    assert len(got) == 4 and durations == DURATIONS and got_loop == loop
    for source, written in zip(frames, got):
        assert _psnr(source, written[:, :, :3]) > 30
    images = _gif_frames(out.read_bytes())
    assert len(images) == 4 and not any(image["local"] for image in images)
    assert [image["delay"] for image in images] == [d // 10 for d in DURATIONS]
    assert images[0]["box"] == (0, 0, 32, 24) and images[1]["box"] == (2, 4, 16, 12)


def test_per_frame_gives_each_gif_frame_its_own_palette(tmp_path, capsys):
    frames = _frames()
    for i in range(4):  # each frame its own tint: a palette per frame fits better
        frames[i, :, :, 2] = 40 * i
    path = _save(frames, tmp_path / "in.png", "PNG", loop=2)
    shared, per_frame = tmp_path / "shared.gif", tmp_path / "per_frame.gif"
    assert main(["compress", str(path), "-o", str(shared), "-k", "16", "-q"]) == 0
    code = main(["compress", str(path), "-o", str(per_frame), "-k", "16", "--per-frame",
                 "--json"])
    record = json.loads(capsys.readouterr().out)
    assert code == 0 and record["frames"] == 4
    assert any("a palette per frame" in note for note in record["notes"])
    images = _gif_frames(per_frame.read_bytes())
    assert [image["local"] for image in images] == [False, True, True, True]
    got, durations, loop, _ = _read(per_frame)
    assert durations == DURATIONS and loop == 2
    psnr = [_psnr(source, written[:, :, :3]) for source, written in zip(frames, got)]
    shared_psnr = [_psnr(s, w[:, :, :3]) for s, w in zip(frames, _read(shared)[0])]
    assert min(psnr) > 25 and np.mean(psnr) > np.mean(shared_psnr)
    assert record["psnr"] == pytest.approx(
        10 * np.log10(255**2 / np.mean([(255**2) / 10 ** (p / 10) for p in psnr])), abs=0.01)


def test_per_frame_with_a_png_output_is_refused(animation, tmp_path, capsys):
    path, _, _ = animation
    out = tmp_path / "out.png"
    code = main(["compress", str(path), "-o", str(out), "--per-frame"])
    err = capsys.readouterr().err
    assert code == exit_code_for(InvalidOptionError("")) == 2
    assert ("--per-frame needs GIF output (--format gif or a .gif name): an indexed APNG holds "
            "one palette") in err
    assert not out.exists()
    with pytest.raises(InvalidOptionError, match="--per-frame needs GIF output"):
        compress(path, tmp_path / "out.jpg", per_frame=True)


def test_format_input_keeps_a_gif_animated(tmp_path):
    path = _save(_frames(), tmp_path / "in.gif", "GIF", loop=0)
    report = compress(path, n_colors=32, output_format="input", per_frame=True)
    assert Path(report.output).name == "in.k32.gif" and report.frames == 4
    assert len(_read(Path(report.output))[0]) == 4


def test_a_jpeg_output_holds_the_first_frame_and_says_so(animation, tmp_path):
    path, frames, _ = animation
    out = tmp_path / "out.jpg"
    report = compress(path, out, n_colors=64)
    assert report.frames == 1
    assert any("animation of 4 frames; only the first was quantized" in n for n in report.notes)
    with Image.open(out) as im:
        assert im.format == "JPEG" and getattr(im, "n_frames", 1) == 1
        assert _psnr(frames[0], np.asarray(im.convert("RGB"))) > 25


def test_a_given_palette_and_kept_colours_hold_for_every_frame(tmp_path):
    path = _save(_frames(), tmp_path / "in.gif", "GIF", loop=0)
    colours = "#000000,#ffffff,#fac814,#406080"
    report = compress(path, tmp_path / "given.png", palette=colours)
    given = {(0, 0, 0), (255, 255, 255), (250, 200, 20), (64, 96, 128)}
    for frame in _read(tmp_path / "given.png")[0]:
        assert {tuple(c) for c in frame[:, :, :3].reshape(-1, 3)} <= given
    assert report.frames == 4
    compress(path, tmp_path / "kept.png", n_colors=8, keep_colors="#123456")
    with Image.open(tmp_path / "kept.png") as im:
        assert (0x12, 0x34, 0x56) in {tuple(im.getpalette()[i:i + 3])
                                      for i in range(0, len(im.getpalette()), 3)}


def test_dithered_frames_keep_a_still_background_still(tmp_path):
    path = _save(_frames(), tmp_path / "in.gif", "GIF", loop=0)
    out = tmp_path / "out.png"
    compress(path, out, n_colors=8, dither="ordered")
    controls = [struct.unpack(">IIIII", payload[:20]) for kind, payload in
                _png_chunks(out.read_bytes()) if kind == b"fcTL"]
    # each frame dithered on its own: the still gradient gets the same indices in every frame
    assert controls[1][1:] == (SQUARE + 6, SQUARE, 2, 4)


def test_transparency_that_comes_and_goes_survives_apng_and_gif(tmp_path):
    frames = np.zeros((3, 12, 16, 4), np.uint8)  # transparent canvas
    for i in range(3):
        frames[i, 2:6, 2 + 4 * i:6 + 4 * i] = (200, 30, 30, 255)  # a square moving away
    frames[1, 8:, :] = (30, 30, 200, 255)  # a band that shows in frame 2 only
    images = [Image.fromarray(frame, "RGBA") for frame in frames]
    path = tmp_path / "in.png"
    images[0].save(path, save_all=True, append_images=images[1:], duration=[100, 100, 100],
                   loop=0)
    for name in ("out.png", "out.gif"):
        report = compress(path, tmp_path / name, n_colors=8)
        got = _read(tmp_path / name)[0]
        for source, written in zip(frames, got):
            assert np.array_equal(written[:, :, 3], source[:, :, 3]), name
            opaque = source[:, :, 3] == 255
            assert np.array_equal(written[opaque], source[opaque]), name
        assert report.psnr == float("inf")
    disposal = [image["disposal"] for image in _gif_frames((tmp_path / "out.gif").read_bytes())]
    assert disposal[1] == 2  # frame 3 clears the band: frame 2 is cleared after it shows


def test_encode_gif_writes_indices_and_palettes_as_given():
    palettes = [np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0]], np.uint8),
                np.array([[0, 0, 255], [255, 255, 255]], np.uint8)]
    frames = np.array([[[0, 1], [2, 0]], [[1, 1], [0, 1]]], np.uint8)
    data = encode_gif(palettes, frames, [40, 60], loop=None)
    got, durations, loop, _ = _read(data)
    assert loop is None and durations == [40, 60]
    for i in range(2):
        assert np.array_equal(got[i][:, :, :3], palettes[i][frames[i]])
    assert np.array_equal(gif_palette(np.array([[1, 2, 3, 100], [4, 5, 6, 200]], np.uint8)),
                          [[0, 0, 0, 0], [4, 5, 6, 255]])


def test_gif_output_says_when_durations_are_rounded(tmp_path):
    frames = _frames(n=2)
    images = [Image.fromarray(frame) for frame in frames]
    path = tmp_path / "in.png"
    images[0].save(path, save_all=True, append_images=images[1:], duration=[1000 / 30] * 2,
                   loop=0)
    report = compress(path, tmp_path / "out.gif", n_colors=64)
    assert any("hundredths of a second" in note for note in report.notes)
    assert _read(tmp_path / "out.gif")[1] == [30, 30]
    apng = compress(path, tmp_path / "out.png", n_colors=64)
    assert not any("hundredths" in note for note in apng.notes)
    assert _read(tmp_path / "out.png")[1] == pytest.approx([1000 / 30] * 2)


def test_the_report_counts_frames():
    fields = dict(input="a.gif", output="a.png", width=10, height=10, original_bytes=800,
                  compressed_bytes=100, k_requested=8, colors_used=8, psnr=30.0, ssim=0.9,
                  engine="native", n_iter=3, seconds=0.1)
    animated, still = Report(**fields, frames=4), Report(**fields)
    assert animated.bits_per_pixel == 2.0 and still.bits_per_pixel == 8.0
    assert "10×10 × 4 frames (animation)" in animated.to_text()
    assert "frames" not in still.to_text()
    assert animated.to_dict()["frames"] == 4 and animated.to_dict()["animated"]
    assert still.to_dict()["frames"] == 1 and not still.to_dict()["animated"]


def test_a_translucent_given_palette_is_measured_on_an_opaque_still(tmp_path, crop_path):
    """Found while sharing the measurement with animations: a given palette with alpha on an
    opaque picture made the measurement fail (palette (K, 4) against (H, W, 3) pixels)."""
    report = compress(crop_path, tmp_path / "out.png", palette="#ff000080,#00ff00,#0000ff")
    assert report.psnr is not None and 0 < report.psnr < 20 and report.frames == 1


def test_a_gif_loop_count_means_repeats_and_converts_to_apng_plays(tmp_path):
    """GIF's NETSCAPE count is repeats after the first play (browsers play loop=1 twice);
    APNG's num_plays is the plays: loop=1 → num_plays 2, and back."""
    path = _save(_frames(), tmp_path / "in.gif", "GIF", loop=1)
    compress(path, tmp_path / "out.png", n_colors=16)
    with Image.open(tmp_path / "out.png") as im:
        assert im.info.get("loop") == 2
    compress(tmp_path / "out.png", tmp_path / "back.gif", n_colors=16)
    with Image.open(tmp_path / "back.gif") as im:
        assert im.info.get("loop") == 1
    once = _save(_frames(), tmp_path / "once.png", "PNG", loop=1)
    compress(once, tmp_path / "once.gif", n_colors=16)
    assert b"NETSCAPE2.0" not in (tmp_path / "once.gif").read_bytes()  # one play: no block
