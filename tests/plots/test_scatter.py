import io

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from PIL import Image

import kmquant
from kmquant.plots.scatter import palette_shares, scatter_figure


@pytest.fixture(scope="module")
def photo8(sample_pixels):
    """The 768×512 Kodak photo at K = 8, each pixel on its nearest entry."""
    return kmquant.quantize(sample_pixels, 8, rdo=0)


def points_of(fig):
    """(N, 3) coordinates and (N, 4) face colours of the sampled pixels, and the palette markers.

    mplot3d keeps the data coordinates in ``_offsets3d`` (it has no public getter), and its own
    ``get_facecolor`` returns the colours in drawing (depth) order, so the base class' getter
    gives them in data order.
    """
    pixels, centres = fig.axes[0].collections
    return np.column_stack(pixels._offsets3d), PathCollection.get_facecolor(pixels), centres


def index_of_colour(pixels, indices):
    """Map each distinct RGB colour of the image to its one palette index."""
    packed = pixels[:, :, :3].astype(np.int64) @ np.array([1 << 16, 1 << 8, 1])
    colours, first = np.unique(packed.ravel(), return_index=True)
    lookup = dict(zip(colours.tolist(), indices.ravel()[first].tolist()))
    # the remap is per distinct colour, so every pixel of a colour has the same index
    assert np.array_equal(np.vectorize(lookup.get)(packed), indices)
    return lookup


def test_palette_shares():
    indices = np.array([[0, 0, 2], [0, 3, 2]], np.uint8)
    assert np.array_equal(palette_shares(indices, 4), [0.5, 0.0, 2 / 6, 1 / 6])
    assert palette_shares(indices, 4).dtype == np.float64
    with pytest.raises(ValueError, match="0..2"):
        palette_shares(indices, 3)
    with pytest.raises(ValueError, match="non-empty"):
        palette_shares(np.zeros((0, 3), np.uint8), 3)


def test_points_are_a_sample_coloured_by_their_cluster(sample_pixels, photo8):
    fig = scatter_figure(sample_pixels, photo8.palette, photo8.indices)
    coords, faces, centres = points_of(fig)
    assert coords.shape == (5000, 3) and faces.shape == (5000, 4)
    lookup = index_of_colour(sample_pixels, photo8.indices)
    packed = coords.astype(np.int64) @ np.array([1 << 16, 1 << 8, 1])
    expected = photo8.palette[[lookup[c] for c in packed.tolist()]] / 255.0  # KeyError: not a pixel
    assert np.allclose(faces[:, :3], expected, atol=1e-12) and np.all(faces[:, 3] == 1)
    assert not fig.axes[0].collections[0].get_depthshade()  # shown in exactly those colours
    assert np.array_equal(np.column_stack(centres._offsets3d), photo8.palette)
    assert np.allclose(PathCollection.get_facecolor(centres)[:, :3], photo8.palette / 255.0)
    assert np.allclose(PathCollection.get_edgecolor(centres), [[0, 0, 0, 1]])

    ax = fig.axes[0]
    assert ax.name == "3d"
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_zlabel()) == ("R", "G", "B")
    assert ax.get_xlim() == ax.get_ylim() == ax.get_zlim() == (0, 255)
    assert ax.get_title().startswith("5,000 of 393,216 pixels (seed 0)")


def test_sample_is_without_replacement_and_capped(crop_pixels):
    result = kmquant.quantize(crop_pixels, 6)
    fig = scatter_figure(crop_pixels, result.palette, result.indices, sample_size=10_000)
    coords, _, _ = points_of(fig)
    # all 6,144 pixels, each once: the same multiset of colours as the image
    every = crop_pixels.reshape(-1, 3)
    assert coords.shape == every.shape
    assert np.array_equal(np.unique(coords, axis=0, return_counts=True)[1],
                          np.unique(every, axis=0, return_counts=True)[1])
    assert fig.axes[0].get_title().startswith("6,144 of 6,144 pixels")


def test_same_seed_same_figure(crop_pixels):
    result = kmquant.quantize(crop_pixels, 6)
    args = (crop_pixels, result.palette, result.indices)
    first, again, other = (points_of(scatter_figure(*args, sample_size=500, seed=s))
                           for s in (7, 7, 8))
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[0].shape == (500, 3) and not np.array_equal(first[0], other[0])
    strips = [scatter_figure(*args, seed=s).axes[1].images[0].get_array() for s in (7, 8)]
    assert np.array_equal(*strips)  # the strip does not depend on the sample


def test_strip_widths_follow_the_shares(sample_pixels, photo8):
    fig = scatter_figure(sample_pixels, photo8.palette, photo8.indices)
    strip = fig.axes[1]
    array = np.asarray(strip.images[0].get_array())
    assert array.shape[0] == 1 and array.shape[2] == 3 and array.dtype == np.uint8
    shares = np.bincount(photo8.indices.ravel(), minlength=8) / photo8.indices.size
    order = np.argsort(-shares, kind="stable")
    # runs of equal colour, left to right: the palette sorted by share, widths ∝ share
    row = array[0]
    starts = np.flatnonzero(np.r_[True, np.any(row[1:] != row[:-1], axis=1)])
    assert np.array_equal(row[starts], photo8.palette[order])
    widths = np.diff(np.r_[starts, len(row)]) / len(row)
    assert np.allclose(widths, shares[order], atol=1.5 / len(row))  # within a column
    assert strip.images[0].get_interpolation() == "nearest"
    assert strip.get_title() == "palette: 8 colours, width = share of pixels"
    assert len(strip.get_xticks()) == 0 and len(strip.get_yticks()) == 0
    labels = {text.get_text() for text in strip.texts}
    assert f"{100 * shares[order[0]]:.1f}%" in labels


def test_rendered_strip_shows_exactly_the_palette(sample_pixels, photo8):
    fig = scatter_figure(sample_pixels, photo8.palette, photo8.indices, width_inches=8.0)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi)
    with Image.open(io.BytesIO(buffer.getvalue())) as im:
        rendered = np.asarray(im.convert("RGB"))
    box = fig.axes[1].get_window_extent()
    top, bottom = rendered.shape[0] - int(box.y1) + 3, rendered.shape[0] - int(box.y0) - 3
    left, right = int(box.x0) + 3, int(box.x1) - 3
    region = rendered[top:bottom, left:right]
    assert region.shape[1] > 500
    # the row just inside the top edge is clear of the labels: only palette colours, all of them
    assert set(map(tuple, region[0])) == set(map(tuple, photo8.palette))
    # the labels cover little: palette colours fill almost all of the strip
    on_palette = (region[:, :, None, :] == photo8.palette[None, None]).all(axis=3).any(axis=2)
    assert on_palette.mean() > 0.9


def test_grey(crop_pixels):
    grey = crop_pixels[:, :, :1]
    result = kmquant.quantize(grey, 4)
    assert result.palette.shape == (4, 1)
    fig = scatter_figure(grey, result.palette, result.indices, sample_size=300)
    coords, faces, centres = points_of(fig)
    assert coords.shape == (300, 3)
    assert np.all(coords[:, 0] == coords[:, 1]) and np.all(coords[:, 1] == coords[:, 2])
    assert np.isin(coords[:, 0], grey).all()
    assert np.isin(np.round(faces[:, 0] * 255), result.palette).all()
    assert np.all(faces[:, 0] == faces[:, 1]) and np.all(faces[:, 1] == faces[:, 2])
    strip = np.asarray(fig.axes[1].images[0].get_array())
    assert {tuple(c) for c in strip[0]} == {(v, v, v) for v in result.palette[:, 0]}


def test_rgba_leaves_out_transparent_pixels(crop_pixels):
    rgba = np.dstack([crop_pixels, np.full(crop_pixels.shape[:2], 255, np.uint8)])
    rgba[:32, :48, 3] = 0
    rgba[:32, :48, :3] = 7  # a colour under full transparency that is nowhere else
    assert not (crop_pixels == 7).all(axis=2).any()
    result = kmquant.quantize(rgba, 6)
    fig = scatter_figure(rgba, result.palette, result.indices, sample_size=100_000)
    coords, _, centres = points_of(fig)
    assert coords.shape == (64 * 96 - 32 * 48, 3)
    assert not (coords == 7).all(axis=1).any()
    assert fig.axes[0].get_title().startswith("4,608 of 4,608 visible pixels")
    opaque = result.palette[result.palette[:, 3] > 0]
    assert len(opaque) == len(result.palette) - 1
    assert np.array_equal(np.column_stack(centres._offsets3d), opaque[:, :3])
    shares = palette_shares(result.indices, 6)
    assert shares[np.flatnonzero(result.palette[:, 3] == 0)] == pytest.approx(0.25)


def test_bad_inputs_are_refused(crop_pixels):
    result = kmquant.quantize(crop_pixels, 4)
    with pytest.raises(ValueError, match="palette"):
        scatter_figure(crop_pixels, result.palette[:, :1], result.indices)
    with pytest.raises(ValueError, match="indices"):
        scatter_figure(crop_pixels, result.palette, result.indices[:10])
    with pytest.raises(ValueError, match="0..2"):
        scatter_figure(crop_pixels, result.palette[:3], result.indices)
    with pytest.raises(ValueError, match="sample_size"):
        scatter_figure(crop_pixels, result.palette, result.indices, sample_size=0)
