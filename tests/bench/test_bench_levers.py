"""The levers benchmark: real quantize calls per lever, alternating, and the table of ratios."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import bench_levers  # noqa: E402  (the bench folder is not a package)


def test_every_lever_runs_and_the_table_has_the_baseline_at_one(crop_pixels):
    levers = {name: bench_levers.LEVERS[name] for name in ("baseline (rdo 0)", "default",
                                                             "speed 10")}
    timed = bench_levers.time_levers(crop_pixels, 16, levers, 2)
    assert set(timed) == set(levers)
    for seconds, size in timed.values():
        assert len(seconds) == 2 and all(s > 0 for s in seconds) and size > 100
    rows = [("crop", 16, name, seconds, size) for name, (seconds, size) in timed.items()]
    table = bench_levers.table(rows, list(levers))
    baseline = next(line for line in table.splitlines() if line.startswith("| baseline"))
    assert "| 1.00 | +0.0 % |" in baseline
    default = next(line for line in table.splitlines() if line.startswith("| default"))
    assert float(default.split("|")[5].strip().rstrip(" %")) < 0  # rate-aware: fewer bytes


def test_main_writes_the_report(tmp_path, crop_path):
    assert bench_levers.main(["--data", str(crop_path.parent), "--images", crop_path.stem,
                              "--k", "8", "--repeat", "1", "--levers", "default",
                              "--out", str(tmp_path)]) == 0
    report = (tmp_path / "levers.md").read_text()
    assert "| baseline (rdo 0) |" in report and "| default |" in report
    assert len((tmp_path / "levers.csv").read_text().splitlines()) == 3  # header + 2 levers


def test_unknown_lever_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="unknown lever"):
        bench_levers.main(["--levers", "warp 9", "--out", str(tmp_path)])


def test_levers_are_valid_options():
    import kmquant

    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    for options in bench_levers.LEVERS.values():
        assert kmquant.quantize(pixels, 4, **options).to_png()
