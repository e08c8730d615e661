import numpy as np
from PIL import Image

import kmquant
from kmquant.plots import save_figure, side_by_side


def test_side_by_side_titles_and_pictures(tmp_path, crop_pixels):
    result = kmquant.quantize(crop_pixels, 6)
    fig = side_by_side(crop_pixels, result.to_array(), original_bytes=20_000,
                       compressed_bytes=2_000, psnr=28.5, ssim=0.81, n_colors=6)
    left, right = fig.axes
    assert "19.5 KB" in left.get_title()
    assert "6 colours" in right.get_title() and "10.0× smaller" in right.get_title()
    assert "PSNR 28.50 dB" in right.get_title() and "SSIM 0.810" in right.get_title()
    assert np.array_equal(right.images[0].get_array(), result.to_array())
    path = save_figure(fig, tmp_path / "fig.png")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width == 1200


def test_grey_pictures_and_lossless_title(crop_pixels):
    grey = crop_pixels[:, :, :1]
    fig = side_by_side(grey, grey, original_bytes=10, compressed_bytes=5, psnr=float("inf"))
    assert "lossless" in fig.axes[1].get_title()
    assert fig.axes[0].images[0].get_cmap().name == "gray"
