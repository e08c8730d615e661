import io

import numpy as np
import pytest
from PIL import Image

import kmquant
from kmquant import metrics
from kmquant.errors import InvalidOptionError, OutputExistsError


def test_quantize_returns_palette_and_indices(crop_pixels):
    result = kmquant.quantize(crop_pixels, 16)
    assert result.palette.shape == (16, 3) and result.palette.dtype == np.uint8
    assert result.indices.shape == crop_pixels.shape[:2] and result.indices.dtype == np.uint8
    assert result.engine == "native" and result.n_iter >= 1 and result.inertia > 0
    assert set(result.timings) >= {"histogram", "seed", "refine", "remap"}
    assert result.to_array().shape == crop_pixels.shape
    assert len(np.unique(result.to_array().reshape(-1, 3), axis=0)) == 16


def test_every_input_kind_gives_the_same_result(crop_path, crop_pixels):
    reference = kmquant.quantize(crop_pixels, 8).to_png()
    for source in (crop_path, str(crop_path), crop_path.read_bytes(), Image.open(crop_path)):
        assert kmquant.quantize(source, 8).to_png() == reference


def test_same_seed_gives_byte_identical_png_and_other_seed_may_differ(crop_pixels):
    a = kmquant.quantize(crop_pixels, 12, seed=5).to_png()
    assert kmquant.quantize(crop_pixels, 12, seed=5).to_png() == a
    assert kmquant.quantize(crop_pixels, 12, seed=6).to_png() != a


def test_more_colours_better_picture(crop_pixels):
    psnr = [metrics.psnr(crop_pixels, kmquant.quantize(crop_pixels, k).to_array()) for k in (2, 8, 32, 128)]
    assert psnr == sorted(psnr) and psnr[-1] - psnr[0] > 10


def test_quality_close_to_scikit_learn_on_every_pixel(crop_pixels):
    """The weighted histogram reaches the optimum of k-means on all pixels (within 0.15 dB)."""
    from sklearn.cluster import KMeans

    pixels = crop_pixels.reshape(-1, 3).astype(np.float64)
    km = KMeans(16, n_init=1, random_state=0).fit(pixels)
    sk = np.clip(np.rint(km.cluster_centers_), 0, 255).astype(np.uint8)[km.labels_]
    sk_psnr = metrics.psnr(crop_pixels, sk.reshape(crop_pixels.shape))
    ours = metrics.psnr(crop_pixels, kmquant.quantize(crop_pixels, 16, rdo=0).to_array())
    assert ours > sk_psnr - 0.15


def test_fewer_colours_than_k_is_lossless():
    pixels = np.zeros((10, 10, 3), np.uint8)
    pixels[:, 5:] = [200, 30, 10]
    pixels[5:, :] = [0, 90, 255]
    result = kmquant.quantize(pixels, 16)
    assert result.colors_used == 3 and result.n_iter == 0
    assert np.array_equal(result.to_array(), pixels)
    assert "lossless" in result.notes[0]


def test_k_of_one_and_two():
    pixels = np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    one = kmquant.quantize(pixels, 1)
    assert one.colors_used == 1
    np.testing.assert_allclose(one.palette[0], pixels.reshape(-1, 3).mean(axis=0), atol=0.5)
    two = kmquant.quantize(pixels, 2)
    assert two.colors_used == 2 and two.to_png()[24] == 1  # 1 bit per pixel


@pytest.mark.parametrize("k", [0, 257, -3, 2.5, True])
def test_invalid_k(crop_pixels, k):
    with pytest.raises(InvalidOptionError, match="K must be between 1 and 256"):
        kmquant.quantize(crop_pixels, k)


@pytest.mark.parametrize("option, value, message", [
    ("engine", "cuda9", "engine must be one of"), ("max_iter", 0, "max_iter"),
    ("tol", -1.0, "tol"), ("tol", float("nan"), "tol"), ("seed", -1, "seed"),
    ("space", "hsv", "space"), ("max_pixels", 0, "max_pixels"),
])
def test_invalid_options(crop_pixels, option, value, message):
    with pytest.raises(InvalidOptionError, match=message):
        kmquant.quantize(crop_pixels, 8, **{option: value})


def test_transparent_pixels_share_one_transparent_entry(crop_pixels):
    rgba = np.dstack([crop_pixels, np.full(crop_pixels.shape[:2], 255, np.uint8)])
    rgba[:, :30, 3] = 0
    rgba[:, :30, :3] = np.random.default_rng(0).integers(0, 256, (64, 30, 3))  # hidden junk colours
    rgba[:, 30:40, 3] = 128
    result = kmquant.quantize(rgba, 8)
    assert result.palette.shape[1] == 4 and result.colors_used == 8
    assert result.palette[0].tolist() == [0, 0, 0, 0]
    assert (result.indices[:, :30] == 0).all() and (result.indices[:, 30:] != 0).all()
    decoded = np.asarray(Image.open(io.BytesIO(result.to_png())).convert("RGBA"))
    assert (decoded[:, :30, 3] == 0).all() and (decoded[:, 45:, 3] == 255).all()
    assert abs(int(decoded[:, 30:40, 3].mean()) - 128) <= 2


def test_grey_image_stays_grey_and_small(crop_pixels):
    grey = np.asarray(Image.fromarray(crop_pixels).convert("L"))
    result = kmquant.quantize(grey, 8)
    assert result.palette.shape == (8, 1)
    data = result.to_png()
    decoded = Image.open(io.BytesIO(data))
    assert np.array_equal(np.asarray(decoded.convert("L")), result.to_array()[:, :, 0])
    as_grey_png = io.BytesIO()
    Image.fromarray(result.to_array()[:, :, 0]).save(as_grey_png, "PNG", compress_level=9)
    assert len(data) <= len(as_grey_png.getvalue())  # never bigger than a plain grey PNG


def test_save_is_atomic_and_refuses_overwrite(tmp_path, crop_pixels):
    result = kmquant.quantize(crop_pixels, 4)
    path = result.save(tmp_path / "q.png")
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), result.to_array())
    with pytest.raises(OutputExistsError):
        result.save(path)


def test_the_shipped_sample(sample_path):
    result = kmquant.quantize(sample_path, 64)
    assert result.colors_used == 64 and result.indices.shape == (512, 768)
    assert metrics.psnr(kmquant.load_image(sample_path).pixels, result.to_array()) > 30


@pytest.mark.parametrize("method", ["fs", "ordered"])
def test_dithering_through_the_pipeline(crop_pixels, method):
    from kmquant.dither import dither

    plain = kmquant.quantize(crop_pixels, 8, rdo=0)
    dithered = kmquant.quantize(crop_pixels, 8, dither=method)
    assert dithered.colors_used <= 8
    # the same palette, indices chosen by the ditherer instead of the nearest colour
    assert np.array_equal(dithered.palette, plain.palette)
    expected = dither(crop_pixels, plain.palette, method)
    assert np.array_equal(dithered.indices, expected)
    assert not np.array_equal(dithered.indices, plain.indices)


def test_rate_aware_entries_by_default_make_smaller_files_for_a_little_psnr(sample_pixels):
    exact = kmquant.quantize(sample_pixels, 32, rdo=0)
    default = kmquant.quantize(sample_pixels, 32)
    assert len(default.to_png()) < 0.85 * len(exact.to_png())
    loss = metrics.psnr(sample_pixels, exact.to_array()) - metrics.psnr(sample_pixels,
                                                                          default.to_array())
    assert 0 < loss < 0.8
    # the palette was refitted to the entries the pixels got: no entry is off its pixels' mean
    pixels = sample_pixels.reshape(-1, 3).astype(np.float64)
    flat = default.indices.reshape(-1)
    for entry in range(default.palette.shape[0]):
        mean = pixels[flat == entry].mean(axis=0)
        assert np.abs(mean - default.palette[entry]).max() <= 0.5 + 1e-9


def test_adaptive_dithering_through_the_pipeline(sample_pixels):
    from kmquant.dither import adaptive, nearest

    plain = kmquant.quantize(sample_pixels, 16, rdo=0)
    on = kmquant.quantize(sample_pixels, 16, dither="on", rdo=0)
    # the k-means palette (not refitted), indices from the adaptive ditherer
    assert sorted(map(tuple, on.palette)) == sorted(map(tuple, plain.palette))
    expected = plain.palette[adaptive(sample_pixels, plain.palette)]
    # the pipeline's map starts from the engine's nearest entries, which may break a near-tie
    # the other way than the kernel's search: a few pixels may differ, no more
    assert (expected == on.to_array()).all(axis=2).mean() > 0.97
    assert (plain.palette[nearest(sample_pixels, plain.palette)] != expected).any(axis=2).mean() > 0.02
    fs = kmquant.quantize(sample_pixels, 16, dither="fs")
    assert len(on.to_png()) < len(fs.to_png())  # dithers less: fewer bytes


@pytest.mark.parametrize("space", ["linear", "oklab", "lab"])
def test_other_working_spaces(crop_pixels, space):
    from kmquant.colorspace import to_working

    result = kmquant.quantize(crop_pixels, 12, space=space, rdo=0)
    assert result.colors_used <= 12
    # the remap is exact in the working space: every pixel has its nearest palette colour there
    px = to_working(crop_pixels.reshape(-1, 3), space)
    pal = to_working(result.palette, space)
    nearest = ((px[:, None, :] - pal[None]) ** 2).sum(axis=2).argmin(axis=1)
    assert np.array_equal(result.indices.reshape(-1), nearest)


@pytest.mark.parametrize("option, value", [("dither", "random"), ("dither_strength", 1.5),
                                           ("dither_strength", True), ("rdo", -1), ("rdo", 101),
                                           ("rdo", float("nan")), ("rdo", "2")])
def test_invalid_dither_options(crop_pixels, option, value):
    with pytest.raises(InvalidOptionError, match=option.split("_")[0]):
        kmquant.quantize(crop_pixels, 8, **{option: value})
