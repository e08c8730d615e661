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
    start = refine(X, w, X[:: max(1, X.shape[0] // 12)][:12].copy(), get_engine("numpy"), tol=0.0)
    centers = start.centers.copy()
    error = bench_search.random_swap(X, w, centers, 200, 0)
    _, sq_dist = get_engine("numpy").assign(X, centers)
    assert error <= start.inertia * (1 + 1e-12)  # swaps are only kept when they help
    assert float(w @ sq_dist) <= error * (1 + 1e-9)  # the labels it kept are no better than nearest


def test_split_seeds_are_distinct_means_that_lower_the_error(crop_pixels):
    prepared = prepare(crop_pixels)
    X, w = prepared.X, prepared.counts
    seeds = bench_search.split_seeds(X, w, 16)
    assert seeds.shape == (16, 3)
    assert len(np.unique(seeds, axis=0)) == 16
    error_16 = float(w @ get_engine("numpy").assign(X, seeds)[1])
    error_4 = float(w @ get_engine("numpy").assign(X, bench_search.split_seeds(X, w, 4))[1])
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
