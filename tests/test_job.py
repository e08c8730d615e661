"""The file-to-file job, ``kmquant.compress``: paths, formats, overwrite rules, the report."""

import numpy as np
import pytest
from PIL import Image

import kmquant
from kmquant import metrics
from kmquant.errors import OutputExistsError


def test_compress_writes_beside_the_input_and_reports(photo):
    report = kmquant.compress(photo, n_colors=16)
    out = photo.with_name("photo.k16.png")
    assert report.output == str(out) and out.exists()
    assert report.compressed_bytes == out.stat().st_size < report.original_bytes
    assert report.colors_used == 16 and report.k_requested == 16
    assert report.psnr == pytest.approx(
        metrics.psnr(kmquant.load_image(photo).pixels, kmquant.load_image(out).pixels))
    assert 0 < report.ssim < 1 and report.ratio > 1


def test_compress_never_overwrites_the_input_unless_forced(photo):
    before = photo.read_bytes()
    with pytest.raises(OutputExistsError, match="is the input"):
        kmquant.compress(photo, photo, n_colors=8)
    assert photo.read_bytes() == before
    kmquant.compress(photo, photo, n_colors=8, force=True)
    with Image.open(photo) as im:
        assert im.mode == "P"


def test_compress_in_the_input_format(photo, tmp_path):
    jpeg = tmp_path / "photo.jpg"
    Image.open(photo).save(jpeg, quality=95)
    report = kmquant.compress(jpeg, n_colors=16, output_format="input")
    assert report.output.endswith("photo.k16.jpg") and report.format == "JPEG"
    png = kmquant.compress(jpeg, n_colors=16)
    # the point of the palette PNG: a JPEG of the same quantized picture is far bigger
    assert png.compressed_bytes * 2 < report.compressed_bytes
    # and the JPEG's quality is measured on the file as written (lossy), not on the palette image
    written = kmquant.load_image(report.output).pixels
    assert report.psnr == pytest.approx(metrics.psnr(kmquant.load_image(jpeg).pixels, written))
    assert report.psnr != png.psnr


def test_compress_rgba_measures_what_is_visible(tmp_path, crop_pixels):
    rgba = np.dstack([crop_pixels, np.full(crop_pixels.shape[:2], 255, np.uint8)])
    rgba[:20, :, 3] = 0  # the photo's colours stay under the transparent rows
    src = tmp_path / "alpha.png"
    Image.fromarray(rgba).save(src)
    report = kmquant.compress(src, n_colors=32)
    assert report.psnr > 25  # the invisible colours do not count against the result
    with Image.open(report.output) as im:
        assert "transparency" in im.info


def test_lab_space_lowers_delta_e_and_the_report_shows_it(photo):
    rgb = kmquant.compress(photo, photo.with_name("rgb.png"), n_colors=16)
    lab = kmquant.compress(photo, photo.with_name("lab.png"), n_colors=16, space="lab")
    assert lab.delta_e < rgb.delta_e and rgb.psnr > lab.psnr
    assert "ΔE2000" in rgb.to_text()


def test_nothing_is_written_when_measuring_fails(photo, monkeypatch):
    """The report's measurements run before the write: an out-of-memory there leaves nothing."""

    def out_of_memory(*args, **kwargs):
        raise MemoryError("simulated")

    monkeypatch.setattr(metrics, "measure", out_of_memory)
    monkeypatch.setattr(metrics, "measure_arrays", out_of_memory)
    before = sorted(photo.parent.iterdir())
    for fmt in ("png", "webp"):
        with pytest.raises(MemoryError):
            kmquant.compress(photo, n_colors=8, output_format=fmt)
    existing = photo.with_name("existing.png")
    existing.write_bytes(b"old")
    with pytest.raises(MemoryError):
        kmquant.compress(photo, existing, n_colors=8, force=True)
    assert existing.read_bytes() == b"old"  # not replaced either
    assert sorted(photo.parent.iterdir()) == sorted(before + [existing])


def test_the_extension_of_dst_sets_the_format(photo, tmp_path):
    report = kmquant.compress(photo, tmp_path / "photo.jpg", n_colors=8)
    assert (tmp_path / "photo.jpg").read_bytes()[:2] == b"\xff\xd8" and report.format == "JPEG"
    report = kmquant.compress(photo, tmp_path / "photo.webp", n_colors=8)
    with Image.open(tmp_path / "photo.webp") as im:
        assert im.format == "WEBP" and report.format == "RGB lossless WebP"
    with pytest.raises(kmquant.InvalidOptionError, match="cannot tell the output format"):
        kmquant.compress(photo, tmp_path / "photo.data", n_colors=8)
    with pytest.raises(kmquant.InvalidOptionError, match="disagree"):
        kmquant.compress(photo, tmp_path / "photo.gif", n_colors=8, output_format="tiff")
    assert not (tmp_path / "photo.data").exists() and not (tmp_path / "photo.gif").exists()


def test_compress_into_a_binary_stream(photo, tmp_path):
    import io

    stream = io.BytesIO()
    report = kmquant.compress(photo, stream, n_colors=8)
    file_report = kmquant.compress(photo, tmp_path / "same.png", n_colors=8)
    assert stream.getvalue() == (tmp_path / "same.png").read_bytes()
    assert report.output == "<stream>" and report.compressed_bytes == len(stream.getvalue())
    assert report.psnr == file_report.psnr
    assert not photo.with_name("photo.k8.png").exists()  # no default file beside the input


def test_translucent_jpeg_is_measured_on_white(tmp_path, crop_pixels):
    from kmquant.encode import flatten

    rgba = np.dstack([crop_pixels, np.full(crop_pixels.shape[:2], 255, np.uint8)])
    rgba[:20, :, 3] = 0
    src = tmp_path / "alpha.png"
    Image.fromarray(rgba).save(src)
    report = kmquant.compress(src, tmp_path / "out.jpg", n_colors=16)
    written = kmquant.load_image(tmp_path / "out.jpg").pixels
    assert report.psnr == pytest.approx(metrics.psnr(flatten(rgba), written))
    assert report.psnr > 25  # dropping the alpha instead showed the black stored under it
    assert any("flattened onto white" in note for note in report.notes)
    opaque = kmquant.compress(tmp_path / "out.jpg", tmp_path / "again.jpg", n_colors=16)
    assert not any("flattened" in note for note in opaque.notes)  # nothing to flatten


def test_translucent_gif_says_its_transparency_is_on_or_off(tmp_path, crop_pixels):
    rgba = np.dstack([crop_pixels, np.full(crop_pixels.shape[:2], 255, np.uint8)])
    rgba[:20, :, 3] = 120
    src = tmp_path / "alpha.png"
    Image.fromarray(rgba).save(src)
    report = kmquant.compress(src, tmp_path / "out.gif", n_colors=16)
    assert any("GIF has only on/off transparency" in note for note in report.notes)


def test_webp_is_written_losslessly_and_smaller_than_the_png(tmp_path):
    """A quantized picture in lossless WebP (libwebp's colour-indexing transform): the same
    pixels as the indexed PNG, in fewer bytes, measured as such."""
    png = kmquant.compress(kmquant.sample_path(), tmp_path / "s.png", n_colors=32)
    webp = kmquant.compress(kmquant.sample_path(), tmp_path / "s.webp", n_colors=32)
    with Image.open(tmp_path / "s.png") as a, Image.open(tmp_path / "s.webp") as b:
        assert np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))
    assert webp.compressed_bytes < png.compressed_bytes
    assert webp.psnr == pytest.approx(png.psnr) and webp.format == "RGB lossless WebP"


def test_decoded_input_gives_the_same_file_and_counts_colours_once(photo, tmp_path):
    import io

    from kmquant.job import decode

    decoded = decode(photo.read_bytes(), name="photo.png")
    assert decoded.label == "photo.png" and decoded.original_bytes == photo.stat().st_size
    first, again, fresh = io.BytesIO(), io.BytesIO(), io.BytesIO()
    r1 = kmquant.compress(decoded, first, n_colors=16)
    r2 = kmquant.compress(decoded, again, n_colors=16)
    r3 = kmquant.compress(photo, fresh, n_colors=16)
    assert first.getvalue() == again.getvalue() == fresh.getvalue()
    assert r1.timings["histogram"] > 0 and r2.timings["histogram"] == 0.0  # kept
    assert r1.input == "photo.png" and r1.original_bytes == r3.original_bytes
    before = decoded.nbytes
    kmquant.compress(decoded, io.BytesIO(), n_colors=16, space="oklab")
    assert decoded.nbytes > before  # a histogram in a second space is kept too


def test_decoded_input_needs_an_output(photo):
    from kmquant.errors import InvalidOptionError
    from kmquant.job import decode

    with pytest.raises(InvalidOptionError, match="give dst"):
        kmquant.compress(decode(photo), n_colors=8)
