"""How close kmquant's palettes come to the best k-means can find, and what each search lever buys.

No dithering, so a quantizer's PSNR is set by its palette alone: every pixel goes to its nearest
palette colour, and the best K-colour picture is the global optimum of weighted k-means on the
colour histogram (with the centres rounded to 8 bits). This script estimates that optimum with a
long random-swap search and puts each way of searching beside it, on the same images:

kmquant
    The default: greedy weighted k-means++ on pooled colours, Lloyd to the default tolerance.
split-seeds
    Seeding lever: variance-based top-down splits (Wan et al. 1988, Wu 1991): the cluster with the
    largest error is cut across its principal axis where the two halves' error is smallest, until
    there are K; then the same Lloyd.
restarts-3
    Restart lever: the best (lowest k-means error) of three k-means++ seeds, each refined.
swaps-N
    ``kmquant.quantize(..., swaps=N)``: greedy swaps after Lloyd (:mod:`kmquant.swaps`).
sklearn-all-pixels
    The anchor of issue #4: scikit-learn ``KMeans(K, n_init=1, random_state=0)`` on every pixel.
ceiling
    Random swap (Fränti 2018) with exact local repartition, :func:`kmquant.swaps.random_swap`:
    ``--trials`` swaps (a centre moved onto a colour drawn by its error, two Lloyd iterations, kept
    if the error dropped) from each of ``--starts`` k-means++ seeds, then Lloyd to tol 0; the best
    result. A lower bound on what any quantizer can reach without dithering, and, where the starts
    agree, close to the optimum.

Usage::

    python bench/bench_search.py                        # all kodim*.png, K = 16, 64, 256 (~15 min)
    python bench/bench_search.py --images kodim03,kodim23 --k 16 --trials 300 --out /tmp/search

Writes ``OUT/search.csv`` (one row per image x K x method) and ``OUT/search.md`` (mean PSNR,
difference to scikit-learn and to the ceiling, median seconds), and prints the markdown.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import heapq
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import (  # noqa: E402
    DEFAULT_DATA,
    DEFAULT_OUT,
    comma_ints,
    comma_list,
    cpu_model,
    load_rgb,
    log,
    sklearn_all_pixels,
)

import kmquant  # noqa: E402
from kmquant.engines import Session, get_engine  # noqa: E402
from kmquant.nearest import remap  # noqa: E402
from kmquant.pipeline import prepare  # noqa: E402
from kmquant.refine import refine  # noqa: E402
from kmquant.seeding import kmeans_plusplus, seeding_colours  # noqa: E402
from kmquant.swaps import random_swap  # noqa: E402

BASELINE = "sklearn-all-pixels"
CEILING = "ceiling"


# --------------------------------------------------------------------------------------------
# Seeding by variance splits


def split_seeds(X: NDArray[np.float64], w: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    """K centres by top-down variance splits of the weighted colours.

    Parameters
    ----------
    X : (n, 3) float64 ndarray
    w : (n,) float64 ndarray
    k : int

    Returns
    -------
    (K', 3) float64 ndarray
        The weighted means of the K' ≤ K clusters (fewer only when nothing is left to split).
    """
    clusters = [np.arange(X.shape[0])]
    heap = [(-_error(X, w, clusters[0]), 0)]
    while len(clusters) < k and heap:
        _, c = heapq.heappop(heap)
        halves = _best_cut(X, w, clusters[c])
        if halves is None:
            continue
        clusters[c] = halves[0]
        clusters.append(halves[1])
        for index in (c, len(clusters) - 1):
            heapq.heappush(heap, (-_error(X, w, clusters[index]), index))
    return np.array([w[idx] @ X[idx] / w[idx].sum() for idx in clusters])


def _error(X: NDArray[np.float64], w: NDArray[np.float64], idx: NDArray[np.intp]) -> float:
    """Weighted squared error of rows ``idx`` around their mean."""
    mean = w[idx] @ X[idx] / w[idx].sum()
    return float(w[idx] @ ((X[idx] - mean) ** 2).sum(axis=1))


def _best_cut(
    X: NDArray[np.float64], w: NDArray[np.float64], idx: NDArray[np.intp]
) -> tuple[NDArray[np.intp], NDArray[np.intp]] | None:
    """Rows ``idx`` cut in two across their principal axis where the summed error is least."""
    if idx.size < 2:
        return None
    Xc, wc = X[idx], w[idx]
    centred = Xc - wc @ Xc / wc.sum()
    axis = np.linalg.eigh((centred.T * wc) @ centred)[1][:, -1]
    projection = centred @ axis
    order = np.argsort(projection, kind="stable")
    ws, xs = wc[order], Xc[order]
    cw = np.cumsum(ws)
    cx = np.cumsum(xs * ws[:, None], axis=0)
    cxx = np.cumsum(ws * (xs ** 2).sum(axis=1))
    left = cxx[:-1] - (cx[:-1] ** 2).sum(axis=1) / cw[:-1]
    right_w = cw[-1] - cw[:-1]
    right = (cxx[-1] - cxx[:-1]) - ((cx[-1] - cx[:-1]) ** 2).sum(axis=1) / right_w
    distinct = projection[order][1:] > projection[order][:-1]  # cut only between distinct values
    total = np.where(distinct, left + right, np.inf)
    j = int(np.argmin(total))
    if not np.isfinite(total[j]):
        return None
    return idx[order[: j + 1]], idx[order[j + 1:]]


# --------------------------------------------------------------------------------------------
# Methods: each returns the fitted centres (K, 3) on the prepared histogram


def psnr_of(
    pixels: NDArray[np.uint8], prepared, centers: NDArray[np.float64], session: Session
) -> float:
    """PSNR of the picture made by rounding ``centers`` (K, 3) and mapping every colour to the
    nearest; ``session`` is bound to the prepared colours."""
    palette = np.unique(np.clip(np.rint(centers), 0, 255), axis=0).astype(np.uint8)
    indices = remap(prepared.histogram, pixels, palette, session=session)
    return kmquant.metrics.psnr(pixels, palette[indices])


def run_method(name: str, pixels, prepared, k: int, args) -> tuple[float, float]:
    """(PSNR, seconds) of one method on one image; the histogram is shared and not timed."""
    X, w = prepared.X, prepared.counts
    clock = time.perf_counter()
    if name == "kmquant" or name.startswith("swaps-"):
        swaps = int(name.split("-")[1]) if name.startswith("swaps-") else 0
        result = kmquant.quantize(pixels, k, swaps=swaps)
        seconds = time.perf_counter() - clock
        return kmquant.metrics.psnr(pixels, result.to_array()), seconds
    if name == BASELINE:
        quantized = sklearn_all_pixels(pixels, k)
        seconds = time.perf_counter() - clock
        return kmquant.metrics.psnr(pixels, quantized.palette[quantized.indices]), seconds
    session = get_engine("native").bind(X, w)
    if name == "split-seeds":
        start = split_seeds(*seeding_colours(X, w, k), k)
        centers = refine(session, start).centers
    elif name == "restarts-3":
        fits = [refine(session, kmeans_plusplus(*seeding_colours(X, w, k), k, np.random.default_rng(s)))
                for s in range(3)]
        centers = min(fits, key=lambda f: f.inertia).centers
    elif name == CEILING:
        best = None
        for s in range(args.starts):
            seeds = kmeans_plusplus(*seeding_colours(X, w, k), k, np.random.default_rng(s))
            start = refine(session, seeds, tol=0.0).centers
            swapped, _ = random_swap(X, w, start, trials=args.trials, seed=s)
            fit = refine(session, swapped, tol=0.0)
            if best is None or fit.inertia < best.inertia:
                best = fit
        centers = best.centers
    else:
        raise SystemExit(f"unknown method {name}")
    seconds = time.perf_counter() - clock
    return psnr_of(pixels, prepared, centers, session), seconds


# --------------------------------------------------------------------------------------------
# Report


def markdown(rows: list[dict], ks: list[int], methods: list[str], command: str, images) -> str:
    import sklearn

    lines = [
        "# How close to the optimum: search levers and the ceiling",
        "",
        f"- Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- Machine: {platform.platform()}; {os.cpu_count()} CPUs; {cpu_model()}",
        f"- Versions: kmquant {kmquant.__version__}, numpy {np.__version__}, "
        f"scikit-learn {sklearn.__version__}",
        f"- Command: `{command}`",
        f"- Images: {len(images)}; PSNR in RGB, no dithering; seconds: one run, histogram "
        "included for kmquant and swaps-N (they run the whole `quantize`), left out for the "
        "others.",
        "",
    ]
    for k in ks:
        table = {m: [r for r in rows if r["k"] == k and r["method"] == m] for m in methods}
        mean = {m: statistics.fmean(r["psnr_db"] for r in v) for m, v in table.items() if v}
        lines += [f"## K = {k}", "",
                  "| method | images | mean PSNR (dB) | Δ vs sklearn (dB) | Δ vs ceiling (dB) "
                  "| median s |",
                  "|---|---:|---:|---:|---:|---:|"]
        for m, v in table.items():
            if not v:
                continue
            vs_base = f"{mean[m] - mean[BASELINE]:+.3f}" if BASELINE in mean else "n/a"
            vs_top = f"{mean[m] - mean[CEILING]:+.3f}" if CEILING in mean else "n/a"
            seconds = statistics.median(r["seconds"] for r in v)
            lines.append(f"| {m} | {len(v)} | {mean[m]:.3f} | {vs_base} | {vs_top} | "
                         f"{seconds:.3f} |")
        lines.append("")
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of kodim*.png")
    parser.add_argument("--images", type=comma_list, default=None,
                        help="comma list of image names (default every kodim*.png in --data)")
    parser.add_argument("--k", type=comma_ints, default=[16, 64, 256], help="comma list of K")
    parser.add_argument("--methods", type=comma_list,
                        default=["kmquant", "split-seeds", "restarts-3", "swaps-10", "swaps-30",
                                 BASELINE, CEILING])
    parser.add_argument("--trials", type=int, default=2500, help="random swaps per start")
    parser.add_argument("--starts", type=int, default=2, help="k-means++ starts of the ceiling")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = shlex.join([Path(sys.executable).name, sys.argv[0], *argv])
    if args.images is None:
        paths = sorted(args.data.glob("kodim*.png"))
    else:
        paths = [args.data / f"{name.removesuffix('.png')}.png" for name in args.images]
    missing = [p for p in paths if not p.is_file()]
    if not paths or missing:
        raise SystemExit(f"{missing[0] if missing else args.data}: no such image; pass --data DIR")
    kmquant.quantize(load_rgb(paths[0])[:64, :64], 8, swaps=1)  # the imports outside the timings
    rows = []
    for path in paths:
        pixels = load_rgb(path)
        prepared = prepare(pixels)
        for k in args.k:
            for name in args.methods:
                psnr, seconds = run_method(name, pixels, prepared, k, args)
                rows.append(dict(image=path.stem, k=k, method=name, psnr_db=round(psnr, 4),
                                 seconds=round(seconds, 4)))
                log(f"{path.stem} K={k} {name}: {psnr:.3f} dB, {seconds:.3f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "search.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    text = markdown(rows, args.k, args.methods, command, paths)
    (args.out / "search.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
