"""The search benchmark's own algorithms: the ceiling it reports must be a real, consistent result."""

import sys
from pathlib import Path

import numpy as np
import pytest

from kmquant.engines import get_engine
from kmquant.pipeline import prepare
from kmquant.refine import refine

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
bench_search = pytest.importorskip("bench_search")


def test_random_swap_never_ends_worse_and_reports_a_true_error(crop_pixels):
    prepared = prepare(crop_pixels)
    X, w = prepared.X, prepared.counts
    session = get_engine("numpy").bind(X, w)
    start = refine(session, X[:: max(1, X.shape[0] // 12)][:12].copy(), tol=0.0)
    centers, error = bench_search.random_swap(X, w, start.centers, trials=200, seed=0)
    _, sq_dist = session.assign(centers)
    assert error <= start.inertia * (1 + 1e-12)  # swaps are only kept when they help
    assert error == pytest.approx(float(w @ sq_dist), rel=1e-12)  # the error of nearest assignment


def test_split_seeds_are_distinct_means_that_lower_the_error(crop_pixels):
    prepared = prepare(crop_pixels)
    X, w = prepared.X, prepared.counts
    seeds = bench_search.split_seeds(X, w, 16)
    assert seeds.shape == (16, 3)
    assert len(np.unique(seeds, axis=0)) == 16
    session = get_engine("numpy").bind(X, w)
    error_16 = float(w @ session.assign(seeds)[1])
    error_4 = float(w @ session.assign(bench_search.split_seeds(X, w, 4))[1])
    assert error_16 < error_4


def test_the_benchmark_runs_end_to_end_and_the_ceiling_is_on_top(tmp_path, crop_path):
    out = tmp_path / "out"
    code = bench_search.main(["--data", str(crop_path.parent), "--images", crop_path.stem,
                              "--k", "8", "--trials", "100", "--out", str(out),
                              "--methods", "kmquant,swaps-5,ceiling"])
    assert code == 0
    rows = (out / "search.csv").read_text().splitlines()[1:]
    psnr = {row.split(",")[2]: float(row.split(",")[3]) for row in rows}
    assert set(psnr) == {"kmquant", "swaps-5", "ceiling"}
    assert psnr["ceiling"] >= max(psnr.values()) - 0.05
    assert "| ceiling | 1 |" in (out / "search.md").read_text()
