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
    Random swap (Fränti 2018) with exact local repartition: ``--trials`` swaps (a centre moved onto
    a colour drawn by its error, two Lloyd iterations, kept if the error dropped) from each of
    ``--starts`` k-means++ seeds, then Lloyd to tol 0; the best result. A lower bound on what any
    quantizer can reach without dithering, and, where the starts agree, close to the optimum.

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

import numba
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
from kmquant.engines import get_engine  # noqa: E402
from kmquant.pipeline import prepare  # noqa: E402
from kmquant.refine import refine  # noqa: E402
from kmquant.seeding import kmeans_plusplus, seeding_colours  # noqa: E402

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
# Random swap (the ceiling)


@numba.njit(cache=True)
def _nearest(X, C, i):  # pragma: no cover - compiled
    best, best_d = -1, np.inf
    for j in range(C.shape[0]):
        d = 0.0
        for c in range(X.shape[1]):
            t = X[i, c] - C[j, c]
            d += t * t
        if d < best_d:
            best, best_d = j, d
    return best, best_d


@numba.njit(cache=True)
def _distance(X, i, C, j):  # pragma: no cover - compiled
    d = 0.0
    for c in range(X.shape[1]):
        t = X[i, c] - C[j, c]
        d += t * t
    return d


@numba.njit(cache=True)
def _local_lloyd(X, w, C, labels, dist, sums, mass, moved, n_moved, iterations):  # pragma: no cover
    """Exact Lloyd iterations after the centres ``moved[:n_moved]`` changed.

    Only a moved centre can take a colour from an unmoved one, and only a colour whose own centre
    moved can need a full search, so an iteration costs n × (moved centres) instead of n × K.
    Returns the error after the last centroid update.
    """
    n, k, channels = X.shape[0], C.shape[0], X.shape[1]
    is_moved = np.zeros(k, dtype=np.bool_)
    changed = np.zeros(k, dtype=np.bool_)
    for _ in range(iterations):
        is_moved[:] = False
        for q in range(n_moved):
            is_moved[moved[q]] = True
        changed[:] = False
        for i in range(n):
            own = labels[i]
            if is_moved[own]:
                best, best_d = _nearest(X, C, i)
            else:
                best, best_d = own, dist[i]
                for q in range(n_moved):
                    d = _distance(X, i, C, moved[q])
                    if d < best_d:
                        best, best_d = moved[q], d
            dist[i] = best_d
            if best != own:
                mass[own] -= w[i]
                mass[best] += w[i]
                for c in range(channels):
                    sums[own, c] -= w[i] * X[i, c]
                    sums[best, c] += w[i] * X[i, c]
                labels[i] = best
                changed[own] = changed[best] = True
        n_moved = 0
        for j in range(k):
            if changed[j]:
                if mass[j] > 0:
                    for c in range(channels):
                        C[j, c] = sums[j, c] / mass[j]
                moved[n_moved] = j
                n_moved += 1
        if n_moved == 0:
            break
    error = 0.0
    for i in range(n):
        dist[i] = _distance(X, i, C, labels[i])
        error += w[i] * dist[i]
    return error


@numba.njit(cache=True)
def random_swap(X, w, C, trials, seed):  # pragma: no cover - compiled
    """Fränti's random swap from centres C (K, 3), in place: ``trials`` swaps, two Lloyd
    iterations each, kept when the error drops. Returns the final error."""
    np.random.seed(seed)
    n, k, channels = X.shape[0], C.shape[0], X.shape[1]
    labels = np.empty(n, dtype=np.int64)
    dist = np.empty(n)
    sums = np.zeros((k, channels))
    mass = np.zeros(k)
    error = 0.0
    for i in range(n):
        labels[i], dist[i] = _nearest(X, C, i)
        mass[labels[i]] += w[i]
        for c in range(channels):
            sums[labels[i], c] += w[i] * X[i, c]
        error += w[i] * dist[i]
    moved = np.empty(k, dtype=np.int64)
    cumulative = np.empty(n)
    for _ in range(trials):
        saved_c, saved_labels, saved_dist = C.copy(), labels.copy(), dist.copy()
        saved_sums, saved_mass = sums.copy(), mass.copy()
        total = 0.0
        for i in range(n):  # the new place: a colour drawn by its share of the error
            total += w[i] * dist[i]
            cumulative[i] = total
        row = min(np.searchsorted(cumulative, np.random.random() * total), n - 1)
        j = np.random.randint(k)
        for c in range(channels):
            C[j, c] = X[row, c]
        moved[0] = j
        trial = _local_lloyd(X, w, C, labels, dist, sums, mass, moved, 1, 2)
        if trial < error:
            error = trial
        else:
            C[:] = saved_c
            labels[:] = saved_labels
            dist[:] = saved_dist
            sums[:] = saved_sums
            mass[:] = saved_mass
    return error


# --------------------------------------------------------------------------------------------
# Methods: each returns the fitted centres (K, 3) on the prepared histogram


def psnr_of(pixels: NDArray[np.uint8], prepared, centers: NDArray[np.float64]) -> float:
    """PSNR of the picture made by rounding ``centers`` and mapping every colour to the nearest."""
    palette = np.unique(np.clip(np.rint(centers), 0, 255), axis=0)
    labels, _ = get_engine("numba").assign(prepared.X, palette)
    out = palette[prepared.histogram.spread(labels)].reshape(pixels.shape)
    return kmquant.metrics.psnr(pixels, out.astype(np.uint8))


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
    if name == "split-seeds":
        start = split_seeds(*seeding_colours(X, w, k), k)
        centers = refine(X, w, start, get_engine("numba")).centers
    elif name == "restarts-3":
        fits = [refine(X, w, kmeans_plusplus(*seeding_colours(X, w, k), k, np.random.default_rng(s)),
                       get_engine("numba")) for s in range(3)]
        centers = min(fits, key=lambda f: f.inertia).centers
    elif name == CEILING:
        best = None
        for s in range(args.starts):
            engine = get_engine("numba")
            start = refine(X, w, kmeans_plusplus(*seeding_colours(X, w, k), k, np.random.default_rng(s)),
                           engine, tol=0.0).centers.copy()
            random_swap(X, w, start, args.trials, s)
            fit = refine(X, w, start, engine, tol=0.0)
            if best is None or fit.inertia < best.inertia:
                best = fit
        centers = best.centers
    else:
        raise SystemExit(f"unknown method {name}")
    seconds = time.perf_counter() - clock
    return psnr_of(pixels, prepared, centers), seconds


# --------------------------------------------------------------------------------------------
# Report


def markdown(rows: list[dict], ks: list[int], methods: list[str], command: str, images) -> str:
    import sklearn

    lines = [
        "# How close to the optimum: search levers and the ceiling",
        "",
        f"- Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- Machine: {platform.platform()}; {os.cpu_count()} CPUs; {cpu_model()}",
        f"- Versions: kmquant {kmquant.__version__}, numpy {np.__version__}, numba "
        f"{numba.__version__}, scikit-learn {sklearn.__version__}",
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
    warm = load_rgb(paths[0])[:64, :64]
    kmquant.quantize(warm, 8, swaps=1)  # compile / load numba's cache outside the timings
    prepared = prepare(warm)
    random_swap(prepared.X, prepared.counts, prepared.X[:4].copy(), 2, 0)
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
