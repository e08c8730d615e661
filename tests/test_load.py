import io

import numpy as np
import pytest
from PIL import Image

from kmquant.errors import (
    ImageTooLargeError,
    InputNotFoundError,
    InvalidOptionError,
    NotAnImageError,
    TruncatedImageError,
    UnsupportedModeError,
)
from kmquant.load import load_image


def _png(im: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, "PNG", **options)
    return buffer.getvalue()


def test_rgb_png_loads_as_uint8_rgb(crop_path):
    loaded = load_image(crop_path)
    assert loaded.pixels.dtype == np.uint8
    assert loaded.pixels.shape == (64, 96, 3)
    assert loaded.format == "PNG" and loaded.source_mode == "RGB"
    assert np.array_equal(loaded.pixels, np.asarray(Image.open(crop_path)))


def test_path_bytes_pil_and_array_give_the_same_pixels(crop_path):
    from_path = load_image(crop_path).pixels
    assert np.array_equal(load_image(str(crop_path)).pixels, from_path)
    assert np.array_equal(load_image(crop_path.read_bytes()).pixels, from_path)
    assert np.array_equal(load_image(Image.open(crop_path)).pixels, from_path)
    assert np.array_equal(load_image(from_path.copy()).pixels, from_path)


def test_grey_stays_one_channel(crop_pixels):
    grey = Image.fromarray(crop_pixels).convert("L")
    assert load_image(_png(grey)).pixels.shape == (64, 96, 1)
    # RGB whose three channels are equal is grey too
    rgb = np.repeat(np.asarray(grey)[:, :, None], 3, axis=2)
    assert load_image(rgb).pixels.shape == (64, 96, 1)


def test_opaque_alpha_is_dropped_and_real_alpha_kept(crop_pixels):
    rgba = np.dstack([crop_pixels, np.full(crop_pixels.shape[:2], 255, np.uint8)])
    assert load_image(rgba).pixels.shape[2] == 3
    rgba[:10, :10, 3] = 0
    loaded = load_image(_png(Image.fromarray(rgba)))
    assert loaded.pixels.shape[2] == 4
    assert (loaded.pixels[:10, :10, 3] == 0).all()


def test_sixteen_bit_grey_is_scaled_not_clipped():
    ramp = (np.arange(256 * 4, dtype=np.uint32).reshape(4, 256) * 64).astype(np.uint16)
    im = Image.fromarray(ramp)
    assert im.mode == "I;16"
    pixels = load_image(_png(im)).pixels[:, :, 0]
    expected = np.rint(ramp / 257.0).astype(np.uint8)
    assert np.array_equal(pixels, expected)
    assert pixels.max() > 200  # clipping would give 255 almost everywhere


def test_palette_with_transparency_becomes_rgba():
    im = Image.new("P", (8, 8), 1)
    im.putpalette([0, 0, 0, 255, 0, 0])
    im.paste(0, (0, 0, 4, 8))
    loaded = load_image(_png(im, transparency=0))
    assert loaded.pixels.shape == (8, 8, 4)
    assert (loaded.pixels[:, :4, 3] == 0).all() and (loaded.pixels[:, 4:, :] == [255, 0, 0, 255]).all()


@pytest.mark.parametrize("mode", ["1", "CMYK", "YCbCr", "LA", "PA", "I", "F", "LAB"])
def test_every_common_mode_converts(crop_pixels, mode):
    im = Image.fromarray(crop_pixels)
    if mode in ("1", "I", "F", "LA"):
        im = im.convert("L").convert(mode)
    elif mode == "PA":
        im = im.convert("P").convert("PA")
    else:
        im = im.convert(mode)
    loaded = load_image(im)
    assert loaded.pixels.dtype == np.uint8 and loaded.pixels.shape[:2] == (64, 96)


def test_float_image_in_unit_range_is_scaled():
    im = Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32))
    assert (load_image(im).pixels == 128).all()


def test_exif_orientation_is_applied(crop_pixels):
    im = Image.fromarray(crop_pixels)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    buffer = io.BytesIO()
    im.save(buffer, "JPEG", exif=exif, quality=95)
    loaded = load_image(buffer.getvalue())
    assert loaded.pixels.shape[:2] == (96, 64)


def test_missing_file(tmp_path):
    with pytest.raises(InputNotFoundError, match="no such file"):
        load_image(tmp_path / "nope.png")


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(InputNotFoundError, match="not a file"):
        load_image(tmp_path)


def test_text_file_named_png_is_not_an_image(tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("this is not an image\n")
    with pytest.raises(NotAnImageError, match="not an image"):
        load_image(fake)


def test_truncated_png(tmp_path, crop_path):
    data = crop_path.read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedImageError, match="truncated or corrupt"):
        load_image(cut)


def test_truncated_jpeg(tmp_path, crop_pixels):
    buffer = io.BytesIO()
    Image.fromarray(crop_pixels).save(buffer, "JPEG")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(buffer.getvalue()[:400])
    with pytest.raises(TruncatedImageError):
        load_image(cut)


def test_pixel_limit_is_checked_from_the_header(tmp_path):
    big = tmp_path / "big.png"
    Image.new("RGB", (2000, 1000)).save(big)
    with pytest.raises(ImageTooLargeError, match="2,000,000 pixels"):
        load_image(big, max_pixels=1_000_000)
    assert load_image(big, max_pixels=None).pixels.shape[:2] == (1000, 2000)


def test_pillow_bomb_guard_becomes_too_large(tmp_path, monkeypatch):
    big = tmp_path / "bomb.png"
    Image.new("L", (300, 300)).save(big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    # our limit governs, not Pillow's global one: above Pillow's, it loads
    assert load_image(big, max_pixels=200_000).pixels.shape == (300, 300, 1)
    assert load_image(big.read_bytes(), max_pixels=None).pixels.shape == (300, 300, 1)
    assert Image.MAX_IMAGE_PIXELS == 10_000
    with pytest.raises(ImageTooLargeError):
        load_image(big, max_pixels=50_000)


def test_unsupported_mode():
    with pytest.raises(UnsupportedModeError, match="'La'"):
        load_image(Image.new("La", (4, 4)))


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((4, 4, 3), dtype=np.float32), "uint8"),
        (np.zeros((4, 4, 2), dtype=np.uint8), "shape"),
        (np.zeros((0, 4, 3), dtype=np.uint8), "empty"),
    ],
)
def test_bad_arrays(array, message):
    with pytest.raises(InvalidOptionError, match=message):
        load_image(array)


def test_wrong_type():
    with pytest.raises(InvalidOptionError, match="path, bytes"):
        load_image(42)  # type: ignore[arg-type]


def test_pixels_are_copied_out_in_strips_unchanged(tmp_path, monkeypatch):
    import kmquant.load as load

    rng = np.random.default_rng(2)
    for mode, channels in (("RGB", 3), ("RGBA", 4), ("L", 1)):
        data = rng.integers(0, 256, (53, 31, channels), dtype=np.uint8)
        data[..., -1] = np.maximum(data[..., -1], 1) if mode == "RGBA" else data[..., -1]
        path = tmp_path / f"{mode}.png"
        Image.fromarray(data[:, :, 0] if channels == 1 else data, mode).save(path)
        monkeypatch.setattr(load, "_STRIP_BYTES", 100)  # a few rows a strip, a ragged last one
        pixels = load.load_image(path).pixels
        assert pixels.shape == (53, 31, channels)
        assert np.array_equal(pixels, data)


def test_16_bit_samples_round_exactly_as_the_float_formula(tmp_path):
    """Every 16-bit value maps to rint(x / 257), computed in integers (no float image copy)."""
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    path = tmp_path / "ramp16.png"
    Image.fromarray(values).save(path)  # mode I;16
    pixels = load_image(path, max_pixels=None).pixels[:, :, 0]
    assert np.array_equal(pixels, np.rint(values / 257.0).astype(np.uint8))
