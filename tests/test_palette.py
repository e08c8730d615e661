"""One palette for many images: Quantizer.fit / remap, kmquant.remap, palette files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import kmquant
from kmquant.errors import InputNotFoundError, InvalidOptionError
from kmquant.palette import parse_colors, read_palette


@pytest.fixture
def two_images(crop_pixels):
    """Two different halves of the crop (busy photo pixels)."""
    return (np.ascontiguousarray(crop_pixels[:, :48]),
            np.ascontiguousarray(crop_pixels[:, 48:]))


def test_remap_is_the_function_not_a_module():
    assert callable(kmquant.remap) and callable(kmquant.Quantizer)


def test_one_palette_for_all_images_in_the_same_order(two_images):
    quantizer = kmquant.Quantizer(n_colors=16, rdo=0).fit(*two_images)
    palette = quantizer.palette_
    assert palette.shape == (16, 3)
    for image in two_images:
        result = quantizer.remap(image)
        assert np.array_equal(result.palette, palette)  # index i is one colour in every file
        assert result.indices.shape == image.shape[:2]
        # every pixel takes its exact nearest entry
        d = ((image[:, :, None, :].astype(int) - palette[None, None].astype(int)) ** 2).sum(-1)
        assert np.array_equal(d.min(-1), np.take_along_axis(
            d, result.indices[:, :, None].astype(int), -1)[:, :, 0])


def test_fitting_many_images_is_fitting_their_merged_histogram(two_images):
    """Weighted histograms merged: the same palette as one image holding both."""
    stacked = np.concatenate(two_images, axis=1)
    together = kmquant.Quantizer(n_colors=12).fit(*two_images).palette_
    alone = kmquant.Quantizer(n_colors=12).fit(stacked).palette_
    assert np.array_equal(together, alone)
    assert {tuple(c) for c in together} == {
        tuple(c) for c in kmquant.quantize(stacked, 12, rdo=0).palette}


def test_rate_aware_remap_keeps_the_palette_and_makes_smaller_files(sample_pixels):
    exact = kmquant.Quantizer(n_colors=32, rdo=0).fit(sample_pixels)
    rate = kmquant.Quantizer(n_colors=32).fit(sample_pixels)
    assert np.array_equal(exact.palette_, rate.palette_)  # the same fit
    a, b = exact.remap(sample_pixels), rate.remap(sample_pixels)
    assert np.array_equal(b.palette, rate.palette_)  # a given palette is never refitted
    assert not np.array_equal(a.indices, b.indices)
    assert len(b.to_png()) < 0.9 * len(a.to_png())


def test_kept_colours_are_exact_and_their_pixels_map_to_them(two_images):
    a, b = (image.copy() for image in two_images)
    a[:8, :8] = (255, 0, 0)  # a brand colour that must survive
    quantizer = kmquant.Quantizer(n_colors=8, keep_colors="#ff0000, #00ff00").fit(a, b)
    rows = [tuple(c) for c in quantizer.palette_]
    assert (255, 0, 0) in rows and (0, 255, 0) in rows
    result = quantizer.remap(a)
    assert (result.palette[result.indices[:8, :8]] == (255, 0, 0)).all()


def test_kept_colours_need_room_and_a_step_engine(two_images):
    with pytest.raises(InvalidOptionError, match="leave no room"):
        kmquant.Quantizer(n_colors=2, keep_colors="#000 #fff")
    with pytest.raises(InvalidOptionError, match="step engine"):
        kmquant.Quantizer(n_colors=8, keep_colors="#000", engine="sklearn").fit(*two_images)
    with pytest.raises(InvalidOptionError, match="before remap"):
        kmquant.Quantizer(n_colors=8).remap(two_images[0])


def test_few_colours_are_kept_exactly():
    image = np.zeros((4, 6, 3), np.uint8)
    image[:, 3:] = (10, 200, 30)
    quantizer = kmquant.Quantizer(n_colors=16).fit(image)
    assert sorted(map(tuple, quantizer.palette_)) == [(0, 0, 0), (10, 200, 30)]
    assert np.array_equal(quantizer.remap(image).to_array(), image)


def test_remap_widens_grey_palettes_and_notes_lost_transparency(crop_pixels):
    result = kmquant.remap(crop_pixels, np.array([[0], [128], [255]], np.uint8))
    assert result.palette.shape == (3, 3) and set(np.unique(result.indices)) <= {0, 1, 2}
    rgba = np.dstack([crop_pixels, np.full(crop_pixels.shape[:2], 255, np.uint8)])
    rgba[:5, :5, 3] = 0
    noted = kmquant.remap(rgba, "#000000 #ffffff")
    assert any("transparent" in note for note in noted.notes)


def test_remap_can_dither(crop_pixels):
    plain = kmquant.remap(crop_pixels, "#000 #fff #f00 #00f")
    dithered = kmquant.remap(crop_pixels, "#000 #fff #f00 #00f", dither="fs")
    assert dithered.indices.max() < 4 and not np.array_equal(plain.indices, dithered.indices)


def test_hex_lists_with_comments_and_alpha():
    colors = parse_colors("#ff0000, 00ff00 ; brand\n#00f #ffffff80 # the last one is translucent")
    assert colors.tolist() == [[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255],
                               [255, 255, 255, 128]]
    with pytest.raises(InvalidOptionError, match="'zz00ff' is not a hex colour"):
        parse_colors("#ff0000 zz00ff")


def test_palette_files(tmp_path, crop_pixels):
    gpl = tmp_path / "brand.gpl"
    gpl.write_text("GIMP Palette\nName: brand\nColumns: 2\n#\n255   0   0 red\n  0 128 255 sky\n")
    assert read_palette(gpl).tolist() == [[255, 0, 0], [0, 128, 255]]
    hexes = tmp_path / "colours.txt"
    hexes.write_text("#102030\n#405060\n")
    assert read_palette(hexes).tolist() == [[16, 32, 48], [64, 80, 96]]
    # an indexed PNG: its palette in its order, alpha from tRNS
    indexed = Image.new("P", (4, 4), 2)
    indexed.putpalette([9, 9, 9, 200, 0, 0, 0, 0, 200])
    indexed.save(tmp_path / "p.png", transparency=bytes([0, 255, 255]))
    assert read_palette(tmp_path / "p.png").tolist() == [[9, 9, 9, 0], [200, 0, 0, 255],
                                                         [0, 0, 200, 255]]
    # a photo has more colours than a palette holds
    Image.fromarray(crop_pixels).save(tmp_path / "photo.png")
    with pytest.raises(InvalidOptionError, match="more than a palette holds"):
        read_palette(tmp_path / "photo.png")
    with pytest.raises(InputNotFoundError):
        read_palette(tmp_path / "missing.gpl")
    result = kmquant.remap(crop_pixels, gpl)
    assert result.palette.tolist() == [[255, 0, 0], [0, 128, 255]]


def _run(*args: str):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "kmquant", *args], capture_output=True,
                          text=True)


def test_cli_shared_palette_gives_every_output_the_same_palette(tmp_path, two_images):
    paths = []
    for i, image in enumerate(two_images):
        paths.append(tmp_path / f"tile{i}.png")
        Image.fromarray(image).save(paths[-1])
    out = tmp_path / "out"
    out.mkdir()
    done = _run("compress", *map(str, paths), "-k", "12", "--shared-palette", "--out-dir",
                str(out), "-q", "-j", "1")
    assert done.returncode == 0, done.stderr
    palettes = []
    for i in range(2):
        with Image.open(out / f"tile{i}.k12.png") as written:
            palettes.append(written.getpalette())
    assert palettes[0] == palettes[1] and len(palettes[0]) == 12 * 3


def test_cli_palette_file_and_kept_colours(tmp_path, crop_pixels):
    src = tmp_path / "photo.png"
    Image.fromarray(crop_pixels).save(src)
    gpl = tmp_path / "brand.gpl"
    gpl.write_text("GIMP Palette\n255 0 0 red\n0 0 0 black\n255 255 255 white\n")
    done = _run("compress", str(src), "--palette", str(gpl), "-o", str(tmp_path / "a.png"), "-q")
    assert done.returncode == 0, done.stderr
    with Image.open(tmp_path / "a.png") as written:
        assert written.mode == "P"
        assert written.getpalette()[:9] == [255, 0, 0, 0, 0, 0, 255, 255, 255]
    done = _run("compress", str(src), "-k", "8", "--keep-colors", "#ff00ff,#00ffff",
                "-o", str(tmp_path / "b.png"), "-q")
    assert done.returncode == 0, done.stderr
    with Image.open(tmp_path / "b.png") as written:
        colours = {tuple(c) for c in np.asarray(written.convert("RGB")).reshape(-1, 3)}
        palette = np.asarray(written.getpalette(), np.uint8).reshape(-1, 3)
    assert {(255, 0, 255), (0, 255, 255)} <= {tuple(c) for c in palette}
    assert len(colours) <= 8
    for bad, message in ((("--palette", str(gpl), "-k", "8"), "drop -k"),
                         (("--palette", str(gpl), "--keep-colors", "#fff"), "--keep-colors"),
                         (("--shared-palette", "-k", "auto"), "fixed K")):
        done = _run("compress", str(src), *bad, "-q", "-o", str(tmp_path / "c.png"))
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert not (tmp_path / "c.png").exists()
