import math

import numpy as np
import pytest

from kmquant import metrics
from kmquant.choose import Target, choose_k, parse_bytes
from kmquant.engines import get_engine
from kmquant.errors import InvalidOptionError, TargetUnreachableError
from kmquant.options import Options
from kmquant.pipeline import prepare, quantize_prepared


@pytest.fixture(scope="module")
def case(crop_pixels):
    return prepare(crop_pixels), crop_pixels, Options(), get_engine("native")


def _at(case, k):
    prepared, pixels, options, engine = case
    result, _ = quantize_prepared(prepared, options.replace(n_colors=k), engine)
    return result


def test_smallest_k_for_a_psnr_target(case):
    prepared, pixels, options, engine = case
    choice, result = choose_k(prepared, pixels, Target("psnr", 30.0), options, engine)
    k = choice.k
    assert choice.met and result.k_requested == k
    assert metrics.psnr(pixels, result.to_array()) >= 30.0
    assert metrics.psnr(pixels, _at(case, k - 1).to_array()) < 30.0  # the smallest
    assert len(choice.trials) <= 10  # a search, not every K
    assert f"K={k} is the smallest K with PSNR ≥ 30 dB" in choice.reason


def test_smallest_k_for_an_ssim_target(case):
    prepared, pixels, options, engine = case
    choice, result = choose_k(prepared, pixels, Target("ssim", 0.9), options, engine)
    assert metrics.ssim(pixels, result.to_array()) >= 0.9
    assert metrics.ssim(pixels, _at(case, choice.k - 1).to_array()) < 0.9


def test_largest_k_for_a_size(case):
    prepared, pixels, options, engine = case
    choice, result = choose_k(prepared, pixels, Target("max_bytes", 4000), options, engine)
    assert len(result.to_png()) <= 4000 < len(_at(case, choice.k + 1).to_png())
    assert "largest K whose PNG fits in 4,000 bytes" in choice.reason


def test_unreachable_targets(case):
    prepared, pixels, options, engine = case
    with pytest.raises(TargetUnreachableError, match="PSNR ≥ 80 dB.*--best-effort"):
        choose_k(prepared, pixels, Target("psnr", 80.0), options, engine)
    with pytest.raises(TargetUnreachableError, match="even one colour takes"):
        choose_k(prepared, pixels, Target("max_bytes", 10), options, engine)
    choice, result = choose_k(prepared, pixels, Target("psnr", 80.0), options, engine,
                              best_effort=True)
    assert choice.k == 256 and not choice.met and "best effort" in choice.reason
    choice, _ = choose_k(prepared, pixels, Target("max_bytes", 10), options, engine,
                         best_effort=True)
    assert choice.k == 1 and not choice.met


def test_knee_by_default(case):
    prepared, pixels, options, engine = case
    choice, result = choose_k(prepared, pixels, Target(), options, engine)
    assert 2 <= choice.k <= 256 and "knee" in choice.reason
    assert [k for k, _ in choice.trials][:3] == [2, 3, 4]


def test_a_picture_with_few_colours_meets_any_quality_target():
    pixels = np.zeros((8, 8, 3), np.uint8)
    pixels[4:] = [250, 10, 10]
    choice, result = choose_k(prepare(pixels), pixels, Target("psnr", 99.0), Options(),
                              get_engine("numpy"))
    assert choice.k == 2 and math.isinf(choice.achieved)
    assert choice.to_dict()["achieved"] is None  # JSON has no infinity


@pytest.mark.parametrize("text, value", [("50000", 50000), ("50k", 51200), ("1.5M", 1572864),
                                         ("2 KB", 2048), ("10KiB", 10240)])
def test_parse_bytes(text, value):
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "fifty", "-5k", "0", "5 T"])
def test_parse_bytes_rejects(text):
    with pytest.raises(InvalidOptionError):
        parse_bytes(text)


@pytest.mark.parametrize("kind, value", [("psnr", -1), ("ssim", 1.5), ("ssim", 0), ("psnr", None),
                                         ("max_bytes", 0), ("speed", 3)])
def test_bad_targets(kind, value):
    with pytest.raises(InvalidOptionError):
        Target(kind, value)
