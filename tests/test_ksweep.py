import json
import math

import numpy as np
import pytest

import kmquant
from kmquant import metrics
from kmquant.errors import InvalidOptionError
from kmquant.ksweep import DEFAULT_K_VALUES, find_knee, parse_k_values, sweep


@pytest.mark.parametrize("spec, expected", [
    (None, list(DEFAULT_K_VALUES)),
    ("", list(DEFAULT_K_VALUES)),
    ("2:256", list(DEFAULT_K_VALUES)),
    ("5:40", [5, 6, 8, 12, 16, 24, 32, 40]),
    ("2:10:4", [2, 6, 10]),
    ("16, 4,8", [4, 8, 16]),
    ("7", [7]),
])
def test_k_specifications(spec, expected):
    assert parse_k_values(spec) == expected


@pytest.mark.parametrize("spec, words", [
    ("300:2", "between 1 and 256"),
    ("64:2", "runs backwards"),
    ("0", "between 1 and 256"),
    ("2:257", "between 1 and 256"),
    ("2:64:0", "step must be at least 1"),
    ("a:b", "cannot read K values"),
    ("1:2:3:4", "cannot read K values"),
    (",", "cannot read K values"),
])
def test_bad_k_specifications(spec, words):
    with pytest.raises(InvalidOptionError, match=words):
        parse_k_values(spec)


@pytest.fixture(scope="module")
def crop_sweep(crop_pixels):
    return sweep(crop_pixels, [2, 4, 8, 16, 32, 64], silhouette_sample=500)


def test_sweep_rows_measure_each_k(crop_sweep, crop_pixels):
    rows = crop_sweep.rows
    assert [r.k for r in rows] == [2, 4, 8, 16, 32, 64]
    inertia = [r.inertia for r in rows]
    assert inertia == sorted(inertia, reverse=True)  # more colours, less distortion
    assert rows[-1].psnr > rows[0].psnr + 10
    assert all(0 < r.ssim < 1 and -1 <= r.silhouette <= 1 for r in rows)
    assert [r.png_bytes for r in rows] == sorted(r.png_bytes for r in rows)
    for r in rows:
        assert r.bits_per_pixel == pytest.approx(8 * r.png_bytes / (96 * 64))
        assert r.psnr == pytest.approx(10 * math.log10(255**2 / r.mse))
    assert crop_sweep.silhouette_sample == 500


def test_sweep_matches_a_plain_quantize(crop_pixels):
    """Warm starts find the same quality as separate runs (within a few hundredths of a dB)."""
    result = sweep(crop_pixels, [8, 16, 32], silhouette_sample=0, rdo=0)
    for row in result.rows:
        alone = kmquant.quantize(crop_pixels, row.k, rdo=0)
        assert row.psnr == pytest.approx(metrics.psnr(crop_pixels, alone.to_array()), abs=0.3)
        assert row.silhouette is None  # skipped


def test_sweep_outputs(crop_sweep):
    records = json.loads(crop_sweep.to_json())
    assert records["knee"] == crop_sweep.knee and len(records["rows"]) == 6
    lines = crop_sweep.to_csv().splitlines()
    assert lines[0].split(",")[:3] == ["k", "colors_used", "inertia"] and len(lines) == 7
    text = crop_sweep.to_text()
    assert "silhouette on a seeded sample of 500 pixels" in text
    if crop_sweep.knee is not None:
        assert "← knee" in text


def test_fewer_colours_than_k_stops_the_sweep_with_a_note():
    pixels = np.zeros((10, 10, 3), np.uint8)
    pixels[:, 5:] = 200
    pixels[5:, :, 1] = 90
    result = sweep(pixels, [2, 4, 8, 16])
    assert [r.k for r in result.rows] == [2, 4]  # 4 colours: black, grey, green, purple
    assert math.isinf(result.rows[-1].psnr) and result.rows[-1].mse == 0
    assert "only 4 colours" in result.notes[0]


def test_one_pixel_image():
    result = sweep(np.array([[[10, 20, 30]]], np.uint8))
    assert [r.k for r in result.rows] == [1]
    row = result.rows[0]
    assert row.silhouette is None and math.isinf(row.psnr) and row.ssim == 1.0
    assert result.knee is None and any("no knee" in note for note in result.notes)


def test_find_knee_on_a_textbook_curve():
    ks = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    inertia = [100, 40, 20, 15, 12, 10, 9, 8, 7.5, 7]
    assert find_knee(ks, inertia) == 3
    assert find_knee([1, 2], [5, 1]) is None
    assert find_knee([1, 2, 3], [5, 5, 5]) is None


def test_sweep_progress_and_same_seed_same_rows(crop_pixels):
    seen = []
    a = sweep(crop_pixels, [4, 8], progress=lambda *args: seen.append(args), silhouette_sample=100)
    b = sweep(crop_pixels, [4, 8], silhouette_sample=100)
    assert seen == [("sweep", 1, 2), ("sweep", 2, 2)]
    assert [(r.inertia, r.png_bytes, r.silhouette) for r in a.rows] == \
        [(r.inertia, r.png_bytes, r.silhouette) for r in b.rows]
