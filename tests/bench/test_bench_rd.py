"""The rate–distortion benchmark: BD-rate arithmetic, a tiny real run, and reuse of earlier rows."""

from __future__ import annotations

import argparse
import csv
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import bench_rd  # noqa: E402  (the bench folder is not a package)

DATA = Path(__file__).resolve().parents[1] / "data"
RATES = [1000.0, 1800.0, 3000.0, 5200.0, 9000.0]
PSNRS = [24.0, 27.5, 30.0, 33.0, 35.5]


# --------------------------------------------------------------------------------------------
# BD-rate


def test_rates_times_0_8_at_the_same_qualities_is_minus_20_percent():
    smaller = [r * 0.8 for r in RATES]
    assert bd_rate_value(RATES, PSNRS, smaller, PSNRS) == pytest.approx(-20.0, abs=1e-6)
    assert bd_rate_value(smaller, PSNRS, RATES, PSNRS) == pytest.approx(25.0, abs=1e-6)


def test_identical_curves_give_zero():
    assert bd_rate_value(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-9)


def test_two_point_curves_match_the_hand_computed_integral():
    # log(rate) is linear in quality: q/10 for A, 3q/10 for B; mean difference over 0..10 is 1
    a_rates, b_rates = [1.0, math.e], [1.0, math.e ** 3]
    assert bd_rate_value(a_rates, [0, 10], b_rates, [0, 10]) == pytest.approx(
        (math.e - 1) * 100, rel=1e-9)


def test_no_overlap_or_too_few_points_is_nan():
    assert math.isnan(bench_rd.bd_rate(RATES, PSNRS, RATES, [q + 20 for q in PSNRS]))
    assert math.isnan(bench_rd.bd_rate([1, 2], [10, 20], [1, 2], [20, 30]))  # one shared point
    assert math.isnan(bench_rd.bd_rate([1000], [30], RATES, PSNRS))
    assert math.isnan(bench_rd.bd_rate([1, 2], [math.inf, math.inf], RATES, PSNRS))


def test_a_wobbly_curve_keeps_only_its_efficient_points():
    rates = [1000, 1800, 3000, 3000, 5200, 9000]
    scores = [20.0, 35.0, 33.0, 36.0, 36.0, 50.0]  # 3000 B at 33 and 5200 B at 36: no gain
    kept_rates, kept_scores = bench_rd.rd_curve(rates, scores)
    assert kept_rates.tolist() == [1000, 1800, 3000, 9000]
    assert kept_scores.tolist() == [20.0, 35.0, 36.0, 50.0]
    cleaned = bench_rd.bd_rate(rates, scores, kept_rates, kept_scores)
    assert cleaned == pytest.approx(0.0, abs=1e-9)
    scaled = bench_rd.bd_rate(rates, scores, [r * 0.8 for r in rates], scores)
    assert scaled == pytest.approx(-20.0, abs=1e-6)
    # the order points come in does not matter
    order = [5, 2, 0, 4, 1, 3]
    shuffled = bench_rd.bd_rate([rates[i] for i in order], [scores[i] for i in order],
                                [r * 0.8 for r in rates], scores)
    assert shuffled == pytest.approx(-20.0, abs=1e-6)


def bd_rate_value(rate_a, quality_a, rate_b, quality_b) -> float:
    value = bench_rd.bd_rate(rate_a, quality_a, rate_b, quality_b)
    assert math.isfinite(value)
    return value


# --------------------------------------------------------------------------------------------
# Mode definitions


def test_definitions_parse_ints_then_floats_then_strings():
    assert bench_rd.parse_definition("rdo:0.5; dither:on;speed:3") == {
        "rdo": 0.5, "dither": "on", "speed": 3}
    assert bench_rd.parse_definition("") == {}
    assert bench_rd.kmquant_arg("mine=swaps:2") == ("mine", "swaps:2")
    with pytest.raises(argparse.ArgumentTypeError, match="not key:value"):
        bench_rd.kmquant_arg("mine=dither")
    with pytest.raises(argparse.ArgumentTypeError, match="pngquant mode"):
        bench_rd.kmquant_arg("pngquant=dither:fs")


def test_an_unknown_kmquant_option_stops_the_run_in_one_line(tmp_path):
    folder = crop_folder(tmp_path)
    with pytest.raises(SystemExit, match="--kmquant bad: .*no_such_option"):
        bench_rd.main(["--data", str(folder), "--k", "4", "--modes", "bad",
                       "--kmquant", "bad=no_such_option:1", "--out", str(tmp_path / "out")])


# --------------------------------------------------------------------------------------------
# End to end


def crop_folder(tmp_path: Path) -> Path:
    """A folder holding one 96×64 crop of a Kodak photo as PNG."""
    folder = tmp_path / "data"
    folder.mkdir()
    pixels = np.asarray(Image.open(DATA / "kodim05_crop.png").convert("RGB"))[:64, :96]
    Image.fromarray(pixels).save(folder / "crop.png")
    return folder


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_tiny_run_then_reruns_that_reuse_its_rows(tmp_path, capsys):
    folder, out = crop_folder(tmp_path), tmp_path / "out"
    modes = ["kmquant-none", "kmquant-fs"] + (["pngquant-nofs"] if shutil.which("pngquant") else [])

    def command(chosen: list[str], jobs: int, *extra: str) -> list[str]:
        return ["--data", str(folder), "--k", "4,8,16", "--modes", ",".join(chosen), "--jobs",
                str(jobs), "--compare", "kmquant-fs:kmquant-none,kmquant-none:pngquant-nofs",
                "--out", str(out), *extra]

    argv = command(modes, 1)
    assert bench_rd.main(argv) == 0

    rows = read_csv(out / "rd.csv")
    assert len(rows) == 3 * len(modes)
    assert {(r["image"], int(r["k"]), r["mode"]) for r in rows} == {
        ("crop", k, m) for k in (4, 8, 16) for m in modes}
    for mode in modes:
        curve = sorted((int(r["k"]), r) for r in rows if r["mode"] == mode)
        psnrs = [float(r["psnr_db"]) for _, r in curve]
        assert all(math.isfinite(p) and 10 < p < 60 for p in psnrs)
        assert psnrs == sorted(psnrs) and len(set(psnrs)) == 3  # more colours, higher PSNR
        assert all(int(r["bytes"]) > 0 and float(r["seconds"]) > 0 for _, r in curve)
        assert all(math.isfinite(float(r["ssimulacra2"])) for _, r in curve)
    assert {r["definition"] for r in rows if r["mode"] == "kmquant-fs"} == {
        f"kmquant {bench_rd.kmquant.__version__} dither:fs"}

    markdown = (out / "rd.md").read_text()
    assert "| kmquant-fs vs kmquant-none |" in markdown
    assert "| kmquant-none vs pngquant-nofs |" in markdown
    assert "| kmquant-none | 16 | 1 |" in markdown
    assert markdown in capsys.readouterr().out
    assert (out / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a reused row is read back, not recomputed: a planted byte count survives the rerun
    planted = [dict(r, bytes="123456") if (r["mode"], r["k"]) == ("kmquant-none", "8") else r
               for r in rows]
    write_csv(out / "rd.csv", planted)
    again = bench_rd.run(argv)
    assert (again.computed, again.reused) == (0, len(rows))
    assert read_csv(out / "rd.csv") == planted
    assert "0 computed, " in capsys.readouterr().err

    # one new mode: only its rows are computed (in a pool of 2), the others stay
    more = bench_rd.run(command([*modes, "kmquant-ord"], 2, "--kmquant",
                                "kmquant-ord=dither:ordered"))
    assert (more.computed, more.reused) == (3, len(rows))
    assert len(read_csv(out / "rd.csv")) == len(rows) + 3

    # --no-reuse recomputes: the planted byte count is gone, still one row per key
    fresh = bench_rd.run(command(["kmquant-none"], 1, "--no-reuse"))
    assert (fresh.computed, fresh.reused) == (3, 0)
    final = read_csv(out / "rd.csv")
    assert len(final) == len(rows) + 3
    assert [r["bytes"] for r in final if (r["mode"], r["k"]) == ("kmquant-none", "8")] == [
        r["bytes"] for r in rows if (r["mode"], r["k"]) == ("kmquant-none", "8")]


def test_without_pngquant_its_modes_are_skipped_and_pairs_read_na(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench_rd, "PNGQUANT", None)  # as on a machine without it
    folder, out = crop_folder(tmp_path), tmp_path / "out"
    outcome = bench_rd.run(["--data", str(folder), "--k", "4,8", "--modes",
                            "pngquant-nofs,kmquant-none", "--jobs", "1", "--out", str(out)])
    assert {r.mode for r in outcome.rows} == {"kmquant-none"}
    captured = capsys.readouterr()
    assert "pngquant: not on PATH" in captured.err
    assert "| kmquant-none vs pngquant-nofs | n/a | 0/1 |" in captured.out


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=bench_rd.CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
