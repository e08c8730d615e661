import math

import numpy as np
import pytest

from kmquant import metrics
from kmquant.choose import (
    Target,
    choose_k,
    mse_to_quality,
    parse_bytes,
    parse_quality,
    quality_to_mse,
)
from kmquant.engines import get_engine
from kmquant.errors import InvalidOptionError, QualityTooLowError, TargetUnreachableError
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


# --------------------------------------------------------------------------------------------
# pngquant's quality scale and the perceptual target


def test_quality_scale_runs_from_anything_to_lossless_and_inverts():
    assert quality_to_mse(0) == math.inf and quality_to_mse(100) == 0.0
    values = [quality_to_mse(q) for q in range(1, 100)]
    assert all(a > b for a, b in zip(values, values[1:]))  # higher quality, smaller error
    for q in (1, 7.5, 40, 76, 99):
        assert mse_to_quality(quality_to_mse(q)) == pytest.approx(q, abs=1e-6)
    # pngquant -v on Kodak: "MSE=21.698 (Q=40)", "MSE=7.313 (Q=76)" in its units, half ours
    assert quality_to_mse(40) == pytest.approx(2 * 21.698, rel=0.02)
    assert quality_to_mse(76) == pytest.approx(2 * 7.313, rel=0.03)


@pytest.mark.parametrize("text, pair", [("65-80", (65, 80)), ("80", (0, 80)), ("-80", (0, 80)),
                                        (" 0-100 ", (0, 100)), ("50-50", (50, 50))])
def test_parse_quality(text, pair):
    assert parse_quality(text) == pair


@pytest.mark.parametrize("text", ["80-65", "101", "0-101", "a-b", "1-2-3", "", "70-"])
def test_parse_quality_rejects(text):
    with pytest.raises(InvalidOptionError, match="--quality"):
        parse_quality(text)


def _quality(pixels, result):
    return mse_to_quality(metrics.mse(pixels, result.to_array()))


def test_fewest_colours_for_a_quality(case):
    prepared, pixels, options, engine = case
    choice, result = choose_k(prepared, pixels, Target("quality", 60, minimum=30), options,
                              engine)
    assert choice.met and _quality(pixels, result) >= 60
    assert _quality(pixels, _at(case, choice.k - 1)) < 60
    assert "quality ≥ 60" in choice.reason


def test_quality_between_min_and_max_takes_256_and_below_min_raises():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)  # 2304 colours: no K is lossless
    prepared, engine = prepare(noise), get_engine("native")
    choice, result = choose_k(prepared, noise, Target("quality", 100, minimum=1), Options(),
                              engine)
    assert choice.k == 256 and choice.met and "short of 100" in choice.reason
    with pytest.raises(QualityTooLowError, match="below the minimum 99"):
        choose_k(prepared, noise, Target("quality", 100, minimum=99), Options(), engine)


def test_smallest_file_for_a_perceptual_target_tries_both_ditherings(case):
    prepared, pixels, options, engine = case
    target = Target("ssimulacra2", 50.0, dithers=("none", "on"))
    choice, result = choose_k(prepared, pixels, target, options, engine)
    assert choice.met and choice.dither in ("none", "on")
    assert metrics.ssimulacra2(pixels, result.to_array()) >= 50.0
    rdo = options.rdo if choice.rdo is None else choice.rdo
    smaller, _ = quantize_prepared(
        prepared, options.replace(n_colors=choice.k - 1, dither=choice.dither, rdo=rdo), engine)
    assert metrics.ssimulacra2(pixels, smaller.to_array()) < 50.0
    other = "on" if choice.dither == "none" else "none"
    assert f"dither {other}: K=" in choice.reason  # the other one was measured too
    assert "with dither" in choice.reason and choice.to_dict()["dither"] == choice.dither


def test_perceptual_target_turns_rate_aware_entries_off_when_it_must():
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    prepared, engine = prepare(noise), get_engine("native")
    def score(rdo):
        result, _ = quantize_prepared(prepared, Options(n_colors=256, rdo=rdo), engine)
        return metrics.ssimulacra2(noise, result.to_array())

    high = max(score(8.0), score(4.0))  # the strength given, and half of it
    low_bar = score(0.0)
    assert high < low_bar  # rate-aware entries cap the score 256 colours reach
    goal = (high + low_bar) / 2
    choice, result = choose_k(prepared, noise, Target("ssimulacra2", goal), Options(rdo=8.0),
                              engine)
    assert choice.rdo == 0.0 and "rate-aware entries off" in choice.reason
    assert metrics.ssimulacra2(noise, result.to_array()) >= goal


def test_scorer_is_the_package_s_own_score(crop_pixels):
    import io

    from PIL import Image
    from ssimulacra2 import compute_ssimulacra2

    def png(a):
        stream = io.BytesIO()
        Image.fromarray(a).save(stream, format="PNG")
        stream.seek(0)
        return stream

    scorer = metrics.Ssimulacra2(crop_pixels)
    for k in (4, 16):
        picture = kmquant_quantize(crop_pixels, k)
        assert scorer.score(picture) == compute_ssimulacra2(png(crop_pixels), png(picture))
    with pytest.raises(ValueError, match="the original's shape"):
        scorer.score(crop_pixels[:10])


def kmquant_quantize(pixels, k):
    import kmquant

    return kmquant.quantize(pixels, k).to_array()


def test_half_the_rate_strength_is_tried_for_the_smallest_file(case):
    prepared, pixels, options, engine = case
    target = Target("ssimulacra2", 55.0, dithers=("none", "on"))
    choice, result = choose_k(prepared, pixels, target, options, engine)
    assert choice.met
    # four candidates were searched: two ditherings at the strength given and at half of it
    assert choice.reason.count("K=") == 4, choice.reason
    assert f"rdo {options.rdo / 2:g}" in choice.reason


def test_ssimulacra2_of_identical_pictures_is_100(crop_pixels):
    assert metrics.ssimulacra2(crop_pixels, crop_pixels) == pytest.approx(100.0)
    worse = (crop_pixels // 64 * 64).astype(np.uint8)
    assert metrics.ssimulacra2(crop_pixels, worse) < 60


@pytest.mark.parametrize("kind, value, minimum, message", [
    ("ssimulacra2", 101.0, None, "goes up to 100"),
    ("quality", 80, 90, "MIN <= MAX"),
    ("quality", 120, 0, "MIN <= MAX"),
])
def test_bad_quality_targets(kind, value, minimum, message):
    with pytest.raises(InvalidOptionError, match=message):
        Target(kind, value, minimum=minimum)


def test_out_of_reach_perceptual_target_keeps_the_highest_score_at_256(case):
    prepared, pixels, options, engine = case
    target = Target("ssimulacra2", 99.9, dithers=("none", "on"))
    choice, result = choose_k(prepared, pixels, target, options, engine, best_effort=True)
    assert not choice.met and choice.k == 256
    scorer = metrics.Ssimulacra2(pixels)
    candidates = [dict(dither=d, rdo=r) for d in ("none", "on")
                  for r in (options.rdo, options.rdo / 2, 0.0)]
    candidates.append(dict(dither="fs", rdo=0.0, dither_strength=0.8))  # the last try
    scores = [scorer.score(quantize_prepared(prepared, options.replace(n_colors=256, **c),
                                             engine)[0].to_array()) for c in candidates]
    assert choice.achieved == pytest.approx(max(scores))
    assert scorer.score(result.to_array()) == pytest.approx(max(scores))
    best = candidates[scores.index(max(scores))]
    assert choice.dither == best["dither"]
    assert choice.dither_strength == best.get("dither_strength")  # None: the options' own
    with pytest.raises(TargetUnreachableError, match="SSIMULACRA2 ≥ 99.9"):
        choose_k(prepared, pixels, target, options, engine)
