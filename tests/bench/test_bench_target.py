"""The smallest-file-for-a-look benchmark: the Q search on its own, and a tiny real run."""

from __future__ import annotations

import csv
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import kmquant

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import bench_target  # noqa: E402  (the bench folder is not a package)

TARGET = 40.0


class Counted:
    """A made-up tool: score(q) and size(q) as pure functions, counting the evaluations."""

    def __init__(self, score, size=lambda q: 1000 + 10 * q):
        self.score, self.size, self.calls = score, size, []

    def __call__(self, q: int) -> tuple[int, float]:
        self.calls.append(q)
        return self.size(q), self.score(q)


# --------------------------------------------------------------------------------------------
# The Q search


@pytest.mark.parametrize("target", [0.5, 1, 13, 37.5, 50, 63, 98.2, 99, 100])
def test_bisection_finds_the_smallest_q_reaching_the_target_in_8_evaluations(target):
    tool = Counted(score=float)  # score(q) = q
    tuned = bench_target.tune_quality(tool, target, below=0)
    assert tuned.reached
    assert tuned.best.q == tuned.bisected == math.ceil(target)
    assert tuned.best.score >= target and tuned.best.bytes == 1000 + 10 * math.ceil(target)
    assert len(tool.calls) <= 8 and len(set(tool.calls)) == len(tool.calls)
    assert [t.q for t in tuned.trials] == tool.calls


def test_every_target_of_a_step_score_is_found_in_at_most_8_evaluations():
    for smallest in range(0, 101):
        tool = Counted(score=lambda q, s=smallest: 80.0 if q >= s else 10.0)
        tuned = bench_target.tune_quality(tool, 70.0, below=0)
        assert (tuned.reached, tuned.best.q) == (True, smallest)
        assert len(tool.calls) <= 8


def test_q_0_already_reaching_gives_q_0():
    tool = Counted(score=lambda q: 90.0 + q / 100)
    tuned = bench_target.tune_quality(tool, 70.0)  # with the default 3 tries below: none exist
    assert (tuned.reached, tuned.best.q, tuned.bisected) == (True, 0, 0)
    assert len(tool.calls) <= 8 and tool.calls[0] == 100


def test_an_unreachable_target_is_reported_after_one_evaluation_at_q_100():
    tool = Counted(score=lambda q: q / 2)
    tuned = bench_target.tune_quality(tool, 70.0)
    assert not tuned.reached and tuned.bisected is None
    assert (tuned.best.q, tuned.best.score, tool.calls) == (100, 50.0, [100])


def test_a_failed_run_never_reaches():
    tool = Counted(score=lambda q: math.nan if q == 100 else 99.0, size=lambda q: 0)
    tuned = bench_target.tune_quality(tool, 10.0)
    assert not tuned.reached and tuned.best.bytes == 0 and math.isnan(tuned.best.score)


def test_the_tries_below_the_bisection_keep_a_smaller_file_that_reaches():
    # score(q) = q except at 48, which also reaches 50 with a smaller file; the bisection
    # (100, 50, 25, 38, 44, 47, 49) ends on 50 without trying 48
    tool = Counted(score=lambda q: 55.0 if q == 48 else float(q),
                   size=lambda q: 500 if q == 48 else 1000 + q)
    plain = bench_target.tune_quality(Counted(tool.score, tool.size), 50.0, below=0)
    assert (plain.bisected, plain.best.q) == (50, 50)
    tuned = bench_target.tune_quality(tool, 50.0, below=3)
    assert (tuned.bisected, tuned.best.q, tuned.best.bytes) == (50, 48, 500)
    assert sorted(tool.calls) == [25, 38, 44, 47, 48, 49, 50, 100]  # 47, 49 not run twice


def test_the_smallest_file_wins_even_at_a_higher_q():
    tool = Counted(score=float, size=lambda q: 100 if q == 100 else 1000 + q)
    tuned = bench_target.tune_quality(tool, 30.0)
    assert (tuned.bisected, tuned.best.q, tuned.best.bytes) == (30, 100, 100)


def test_a_reversed_range_is_refused():
    with pytest.raises(ValueError, match="lowest setting is above the highest"):
        bench_target.tune_quality(Counted(score=float), 1.0, q_range=(10, 5))


# --------------------------------------------------------------------------------------------
# A real run


def crop_folder(tmp_path: Path) -> Path:
    """A folder holding a 96×64 crop of the packaged sample photograph as PNG."""
    folder = tmp_path / "data"
    folder.mkdir()
    with Image.open(kmquant.sample_path()) as image:
        pixels = np.asarray(image.convert("RGB"))[200:264, 300:396]
    Image.fromarray(pixels).save(folder / "crop.png")
    return folder


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.skipif(shutil.which("pngquant") is None, reason="pngquant is not installed")
def test_a_tiny_run_with_both_anchors_and_kmquant(tmp_path, capsys):
    folder, out = crop_folder(tmp_path), tmp_path / "out"
    status = bench_target.main(["--data", str(folder), "--target", f"{TARGET:g}", "--jobs", "2",
                                "--out", str(out), "--check"])

    rows = {r["tool"]: r for r in read_csv(out / "target.csv")}
    assert list(read_csv(out / "target.csv")[0]) == list(bench_target.CSV_FIELDS)
    assert set(rows) == {"kmquant", "pngquant", "pngquant-nofs"}
    assert all(r["image"] == "crop" for r in rows.values())
    for anchor in ("pngquant", "pngquant-nofs"):
        row = rows[anchor]
        assert row["ok"] == "1", row  # 256 colours on 6144 pixels reach 40 easily
        assert int(row["bytes"]) > 0 and float(row["ssimulacra2"]) >= TARGET
        assert 0 <= int(row["q"]) <= 100 and 2 <= int(row["runs"]) <= 8 + 3
        assert int(row["exit_code"]) == 0 and float(row["seconds"]) > 0

    km = rows["kmquant"]
    assert km["runs"] == "1"
    if km["ok"] == "1":  # kmquant has --target-ssimulacra2
        assert int(km["bytes"]) > 0 and float(km["ssimulacra2"]) >= TARGET
        assert int(km["exit_code"]) == 0 and 1 <= int(km["q"]) <= 256
    else:  # a failure keeps the exit code and kmquant's message
        assert int(km["exit_code"]) != 0 or float(km["ssimulacra2"]) < TARGET
        if int(km["exit_code"]) != 0:
            assert km["bytes"] == "0" and km["note"]

    markdown = (out / "target.md").read_text()
    assert markdown in capsys.readouterr().out
    assert "| crop |" in markdown and "kmquant / pngquant-nofs" in markdown
    passed = ": pass (ratio" in markdown
    assert ("**FAIL**" in markdown) != passed
    assert status == (0 if passed else 1)
    if km["ok"] != "1":
        assert status == 1


def test_an_unknown_anchor_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit):
        bench_target.main(["--anchors", "pngquant,zopfli"])
    assert "unknown anchor zopfli; choose from pngquant, pngquant-nofs" in capsys.readouterr().err
