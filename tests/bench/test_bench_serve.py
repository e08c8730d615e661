"""The web server's benchmarks on a tiny load: a real server, real clients, their tables."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="kmquant serve needs the web extra")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import bench_serve  # noqa: E402  (the bench folder is not a package)
import bench_slider  # noqa: E402


def test_load_benchmark_answers_every_request_and_writes_its_table(tmp_path):
    assert bench_serve.main(["--images", "sample", "--concurrency", "6", "--seconds", "1",
                             "--workers", "1", "--settle", "2", "--out", str(tmp_path)]) == 0
    report = (tmp_path / "serve.md").read_text()
    assert "Checks: all passed" in report
    row = next(line for line in report.splitlines() if "| 1 | 6 | 1 |" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    requests, ok, busy, other = (int(c) for c in cells[4:8])
    assert requests == ok + busy and other == 0 and ok >= 1
    rows = (tmp_path / "serve_requests.csv").read_text().splitlines()
    assert len(rows) == requests + 1  # header + one row per request


def test_slider_benchmark_compares_kept_and_sent_again(tmp_path):
    assert bench_slider.main(["--images", "sample", "--rounds", "1", "--ks", "8,16",
                              "--out", str(tmp_path)]) == 0
    report = (tmp_path / "slider.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| sample"))
    kept, again, ratio, histogram_kept, histogram_again = (
        float(c) for c in row.strip("|").split("|")[1:])
    assert kept > 0 and again > 0 and ratio == pytest.approx(kept / again, rel=0.02, abs=0.01)
    assert histogram_kept == 0.0 and histogram_again > 0  # the kept upload is not counted again
