import io
import itertools

import numpy as np
import pytest
from matplotlib.patches import Rectangle
from PIL import Image

import kmquant
from kmquant import metrics
from kmquant.plots.compare import compare_figure, largest_error_region


def rms_error(a, b):
    """Per-pixel RMS over channels, computed here independently of the module."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    return np.sqrt((diff ** 2).mean(axis=2))


def brute_force_region(a, b, size):
    """Every window's MSE by loops; first maximum in row-major order."""
    h, w = min(size, a.shape[0]), min(size, a.shape[1])
    err = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    best, where = -1.0, None
    for top, left in itertools.product(range(a.shape[0] - h + 1), range(a.shape[1] - w + 1)):
        value = err[top:top + h, left:left + w].mean()
        if value > best:
            best, where = value, (top, left, h, w)
    return where


@pytest.fixture(scope="module")
def quantized(crop_pixels):
    return kmquant.quantize(crop_pixels, 8).to_array()


def test_region_finds_a_planted_block_exactly(crop_pixels):
    damaged = crop_pixels.copy()
    damaged[20:36, 50:66] = 255 - damaged[20:36, 50:66]  # every pixel changes (255 is odd)
    assert largest_error_region(crop_pixels, damaged, size=16) == (20, 50, 16, 16)
    # a bigger window still contains the whole block; the first such window in row-major order
    assert largest_error_region(crop_pixels, damaged, size=24) == (12, 42, 24, 24)


def test_region_matches_brute_force_on_random_images():
    rng = np.random.default_rng(3)
    for shape, size in (((12, 15, 3), 5), ((9, 7, 1), 4), ((6, 11, 4), 6), ((5, 5, 3), 1)):
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        b = rng.integers(0, 256, shape, dtype=np.uint8)
        assert largest_error_region(a, b, size=size) == brute_force_region(a, b, size)


def test_region_ties_clipping_and_whole_image(crop_pixels):
    assert largest_error_region(crop_pixels, crop_pixels, size=16) == (0, 0, 16, 16)
    assert largest_error_region(crop_pixels, crop_pixels, size=500) == (0, 0, 64, 96)
    damaged = crop_pixels.copy()
    damaged[:, 90:] = 255 - damaged[:, 90:]
    # 80 is taller than the image (64 rows): clipped to 64×80, pushed to the damaged right edge
    assert largest_error_region(crop_pixels, damaged, size=80) == (0, 16, 64, 80)
    with pytest.raises(ValueError, match="size"):
        largest_error_region(crop_pixels, damaged, size=0)


def test_titles_give_sizes_ratio_and_quality(crop_pixels, quantized):
    fig = compare_figure(crop_pixels, quantized, original_bytes=20_000, compressed_bytes=2_500,
                         original_name="kodim05_crop.png", compressed_name="crop.k8.png",
                         crop_size=32)
    top_left, top_right = fig.axes[:2]
    assert top_left.get_title() == "kodim05_crop.png — 19.5 KB"
    title = top_right.get_title()
    assert title.startswith("crop.k8.png — 2.4 KB (8.0× smaller)")
    assert f"PSNR {metrics.psnr(crop_pixels, quantized):.2f} dB" in title
    assert f"SSIM {metrics.ssim(crop_pixels, quantized):.3f}" in title
    assert np.array_equal(top_left.images[0].get_array(), crop_pixels)
    assert np.array_equal(top_right.images[0].get_array(), quantized)
    bigger = compare_figure(crop_pixels, quantized, original_bytes=20_000, compressed_bytes=30_000)
    assert "(1.5× larger)" in bigger.axes[1].get_title()


def test_zoom_rectangles_and_heat_map_show_the_error(crop_pixels, quantized):
    fig = compare_figure(crop_pixels, quantized, original_bytes=1000, compressed_bytes=100,
                         crop_size=24)
    top, left, h, w = largest_error_region(crop_pixels, quantized, size=24)
    for ax in fig.axes[:2]:
        (patch,) = ax.patches
        assert isinstance(patch, Rectangle)
        assert patch.get_xy() == (left - 0.5, top - 0.5)
        assert (patch.get_width(), patch.get_height()) == (w, h)

    zoom = fig.axes[2]
    window = (slice(top, top + h), slice(left, left + w))
    gap = np.full((h, 2, 3), 255, np.uint8)
    expected = np.concatenate([crop_pixels[window], gap, quantized[window]], axis=1)
    assert np.array_equal(zoom.images[0].get_array(), expected)
    assert zoom.images[0].get_interpolation() == "nearest"
    assert f"rows {top}–{top + h - 1}, columns {left}–{left + w - 1}" in zoom.get_title()

    heat, colorbar = fig.axes[3], fig.axes[4]
    error = rms_error(crop_pixels, quantized)
    assert np.allclose(heat.images[0].get_array(), error, rtol=0, atol=1e-12)
    assert heat.images[0].get_cmap().name == "magma"
    assert heat.images[0].get_clim() == (0.0, pytest.approx(error.max()))
    assert colorbar.get_ylabel() == "RMS error (0–255)"
    # the marked window really is where the error concentrates: no other window has more
    window_mse = (error[window] ** 2).mean()
    assert window_mse == pytest.approx(brute_force_mse_max(error ** 2, h, w))


def brute_force_mse_max(squared, h, w):
    sums = np.lib.stride_tricks.sliding_window_view(squared, (h, w)).mean(axis=(2, 3))
    return sums.max()


def test_renders_to_png(crop_pixels, quantized):
    fig = compare_figure(crop_pixels, quantized, original_bytes=1000, compressed_bytes=100,
                         width_inches=8.0)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=50)
    with Image.open(io.BytesIO(buffer.getvalue())) as im:
        assert im.format == "PNG" and im.width == 400


def test_grey_lossless(crop_pixels):
    grey = crop_pixels[:, :, :1]
    fig = compare_figure(grey, grey.copy(), original_bytes=5000, compressed_bytes=5000)
    assert "lossless" in fig.axes[1].get_title() and "1.0× smaller" in fig.axes[1].get_title()
    for ax in fig.axes[:3]:
        assert ax.images[0].get_cmap().name == "gray"
    assert fig.axes[2].images[0].get_array().shape == (64, 2 * 64 + 2)
    assert not fig.axes[3].images[0].get_array().any()


def test_grey_quantized(crop_pixels):
    grey = crop_pixels[:, :, :1]
    small = kmquant.quantize(grey, 4).to_array()
    assert small.shape == grey.shape
    fig = compare_figure(grey, small, original_bytes=5000, compressed_bytes=900)
    assert f"PSNR {metrics.psnr(grey, small):.2f} dB" in fig.axes[1].get_title()
    assert np.allclose(fig.axes[3].images[0].get_array(), rms_error(grey, small))


def test_rgba_measured_as_seen(crop_pixels):
    rgba = np.dstack([crop_pixels, np.full(crop_pixels.shape[:2], 255, np.uint8)])
    rgba[40:, 60:, 3] = 0  # transparent corner: its colour is invisible
    rgba[:10, :, 3] = 100  # translucent band
    hidden = rgba.copy()
    hidden[40:, 60:] = 0  # a different colour under full transparency
    fig = compare_figure(rgba, hidden, original_bytes=100, compressed_bytes=50)
    assert "lossless" in fig.axes[1].get_title()
    assert np.array_equal(fig.axes[0].images[0].get_array(), rgba)  # shown with its alpha

    small = kmquant.quantize(rgba, 8).to_array()
    fig = compare_figure(rgba, small, original_bytes=100, compressed_bytes=50, crop_size=16)
    seen, seen_small = metrics.visible(rgba), metrics.visible(small)
    assert f"PSNR {metrics.psnr(seen, seen_small):.2f} dB" in fig.axes[1].get_title()
    assert np.allclose(fig.axes[3].images[0].get_array(), rms_error(seen, seen_small))
    assert fig.axes[2].images[0].get_array().shape == (16, 34, 4)


def test_mismatched_images_are_refused(crop_pixels):
    with pytest.raises(ValueError, match=r"same size.*96×64.*95×64"):
        compare_figure(crop_pixels, crop_pixels[:, :95], original_bytes=1, compressed_bytes=1)
    with pytest.raises(ValueError, match="same size"):
        largest_error_region(crop_pixels, crop_pixels[:, :, :1])
    with pytest.raises(ValueError, match="uint8"):
        compare_figure(crop_pixels.astype(np.float32), crop_pixels, original_bytes=1,
                       compressed_bytes=1)
    with pytest.raises(ValueError, match="compressed_bytes"):
        compare_figure(crop_pixels, crop_pixels, original_bytes=1, compressed_bytes=0)
