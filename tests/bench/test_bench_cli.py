"""The whole-process benchmark's measurement: real child processes, sane medians, ratios and RSS."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import bench_cli  # noqa: E402  (the bench folder is not a package)

TRUE = shutil.which("true") or "/bin/true"


def test_paired_runs_give_sane_medians_ratios_and_peaks():
    runs = bench_cli.measure({"python": [sys.executable, "-c", "pass"], "true": [TRUE]}, 2)
    python, true = runs["python"], runs["true"]
    for r in (python, true):
        assert len(r.seconds) == len(r.rss) == 2
        assert all(0 < s < 5 for s in r.seconds)
        assert all(rss > 0 for rss in r.rss)
        assert min(r.seconds) <= r.wall <= max(r.seconds)
    wall_ratio, rss_ratio = python.ratios(true)
    assert wall_ratio == pytest.approx(python.wall / true.wall)
    assert wall_ratio > 1  # an interpreter starts slower than /bin/true
    assert rss_ratio > 1  # and holds more memory: the floor does not hide it
    assert 1 * bench_cli.MIB < python.peak < 200 * bench_cli.MIB


def test_a_failing_command_raises_with_its_stderr():
    with pytest.raises(bench_cli.CommandError, match="exited 3: boom"):
        bench_cli.run_once([sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"])


def test_targets_pass_and_fail_on_the_ratios_and_absolute_values():
    fast = bench_cli.Runs("a", ("a",), (1.0, 1.2, 3.0), (10 * bench_cli.MIB,) * 3)
    slow = bench_cli.Runs("b", ("b",), (2.0, 2.0, 2.0), (5 * bench_cli.MIB,) * 3)
    row = bench_cli.Row("x", fast, slow, (
        bench_cli.Target("wall ≤ 0.6×", "wall_ratio", 0.6),  # 1.2 / 2.0 = 0.6
        bench_cli.Target("peak ≤ 8 MiB", "rss_mib", 8.0),  # 10 MiB
    ))
    (_, wall, wall_ok), (_, peak, peak_ok) = row.verdicts()
    assert (wall, wall_ok) == (pytest.approx(0.6), True)
    assert (peak, peak_ok) == (pytest.approx(10.0), False)
    assert not row.passed
    assert "**FAIL**" in bench_cli.table([row], floor=0)


def test_cases_parse_and_a_missing_data_folder_says_what_to_pass(tmp_path, monkeypatch):
    assert bench_cli.parse_cases("large, photo") == ["photo", "large"]
    with pytest.raises(argparse.ArgumentTypeError, match="choose from"):
        bench_cli.parse_cases("photo,nope")
    args = bench_cli.parse_args(["--cases", "photo", "--data", str(tmp_path / "absent")])
    monkeypatch.setattr(bench_cli, "PNGQUANT", "/bin/true")  # the anchor's check is not tested here
    with pytest.raises(SystemExit, match="pass --data DIR"):
        bench_cli.resolve_inputs(args)
    assert bench_cli.resolve_inputs(bench_cli.parse_args(["--cases", "help"])) == (None, None)
