"""What dithering buys and costs: none / Floyd–Steinberg / ordered on Kodak photos at K = 16 and 64.

For every image and K, one palette is fitted (``kmquant.quantize(pixels, K, seed=0)``, untimed)
and every method of :mod:`kmquant.dither` maps the same pixels onto it. Only that mapping is
timed (median of ``--repeat`` runs after an untimed warm-up run).
Each result then goes through the same :func:`kmquant.encode.order_palette` +
:func:`kmquant.encode.encode_png`, so the byte counts compare the index patterns, nothing else.

Columns
-------
PSNR (dB), SSIM
    ``kmquant.metrics.psnr`` / ``ssim``: pixel-by-pixel fidelity, higher is better.
PNG (KB)
    Size of the indexed PNG, smaller is better.
ms
    Median time of the mapping (nearest colour or dithering) alone.
SSIMULACRA2
    Perceptual score of the ``ssimulacra2`` package (a Python port of Cloudinary's metric, as in
    libjxl): 100 = identical, about 90 = visually lossless, 70 = high, 50 = medium quality, below
    30 low; it can go negative. Higher is better. It blurs at several scales and looks for
    banding-like and blocky structure, which is what dithering removes.
FLIP
    Mean of NVIDIA's ꟻLIP error map (``flip-evaluator``, LDR, 67 pixels per degree): 0 =
    identical, lower is better; it models how differences look at a normal viewing distance.

How to read it
--------------
Dithering replaces flat bands by a fine mix of palette colours. That mix is further from the
original pixel by pixel, so **PSNR drops** (by 3 to 4.5 dB with Floyd–Steinberg on Kodak photos)
and **SSIM drops sharply** (its 7×7 windows read the dither noise as false structure), and it is
noise to the PNG compressor, so **the file grows** (Floyd–Steinberg: about 1.5 to 2.5 times at
K = 16 to 64). What it buys is the look: seen from a distance the mix averages to the right
colour and smooth gradients stop banding, so the **perceptual scores should improve
(SSIMULACRA2 up, FLIP down)**, most at small K where the bands are widest. Where the perceptual
gain is small (large K, busy photos) the extra bytes buy little; a bigger K without dithering may
then be the better trade (compare rows at equal PNG size, not at equal K). Ordered dithering sits
between the two: a regular pattern that compresses better than error diffusion but hides banding
less well.

Usage::

    python bench/bench_dither.py                                  # kodim03,05,23 x K=16,64
    python bench/bench_dither.py --images kodim23 --k 16 --repeat 1 --out /tmp/dithertest

``--data`` defaults to ``../shared/data/kodak`` (relative to the repo root) when that folder
exists, else the packaged sample image (``sample``). Writes ``OUT/dither.csv`` (one row per
image x K x method) and ``OUT/dither.md`` (header and the table of means over the images), and
prints the table. ``OUT`` defaults to ``bench/results``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import math
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np
from numpy.typing import NDArray
from PIL import Image

import kmquant
from kmquant.dither import DITHER_METHODS, dither
from kmquant.encode import encode_png, order_palette
from kmquant.metrics import psnr, ssim

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import (  # noqa: E402  (the bench folder is not a package)
    comma_ints,
    comma_list,
    load_rgb,
    resolve_images,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "kodak"
DEFAULT_IMAGES = ("kodim03", "kodim05", "kodim23")
DEFAULT_OUT = REPO_ROOT / "bench" / "results"
SAMPLE_NAME = "sample"
SEED = 0
PERCEPTUAL = ("ssimulacra2", "flip")

Metric = Callable[[NDArray[np.uint8], NDArray[np.uint8]], float]


@dataclass(frozen=True)
class Row:
    """One image x K x method."""

    image: str
    k: int
    method: str
    ms: float
    psnr_db: float
    ssim: float
    png_bytes: int
    ssimulacra2: float  # nan when the metric is unavailable
    flip: float  # nan when the metric is unavailable


# --------------------------------------------------------------------------------------------
# Perceptual metrics


def _png_stream(pixels: NDArray[np.uint8]) -> io.BytesIO:
    """Lossless PNG in memory: ``ssimulacra2`` only takes paths or file objects."""
    stream = io.BytesIO()
    Image.fromarray(pixels).save(stream, format="PNG", compress_level=1)
    stream.seek(0)
    return stream


def ssimulacra2_metric() -> Metric:
    """SSIMULACRA2 score (higher is better) from the ``ssimulacra2`` package."""
    from ssimulacra2 import compute_ssimulacra2

    def score(original: NDArray[np.uint8], test: NDArray[np.uint8]) -> float:
        return float(compute_ssimulacra2(_png_stream(original), _png_stream(test)))

    return score


def flip_metric() -> Metric:
    """Mean ꟻLIP error (lower is better) from ``flip-evaluator``, LDR sRGB inputs in 0..1."""
    import flip_evaluator

    def score(original: NDArray[np.uint8], test: NDArray[np.uint8]) -> float:
        _, mean, _ = flip_evaluator.evaluate(
            original.astype(np.float32) / 255.0, test.astype(np.float32) / 255.0, "LDR",
            applyMagma=False,
        )
        return float(mean)

    return score


def perceptual_metrics(names: list[str]) -> dict[str, Metric]:
    """The requested metrics that import and run; each failure is logged with its reason."""
    makers = {"ssimulacra2": ssimulacra2_metric, "flip": flip_metric}
    probe = np.zeros((16, 16, 3), dtype=np.uint8)
    probe[4:12, 4:12] = 200
    metrics = {}
    for name in names:
        try:
            metric = makers[name]()
            metric(probe, probe)  # fails early, not halfway through the run
        except Exception as exc:  # noqa: BLE001 - any failure just drops the column
            log(f"{name}: not used ({type(exc).__name__}: {exc})")
            continue
        metrics[name] = metric
    return metrics


# --------------------------------------------------------------------------------------------
# Measuring


def measure(
    name: str, pixels: NDArray[np.uint8], k: int, methods: list[str], repeat: int,
    metrics: dict[str, Metric],
) -> list[Row]:
    """Fit one palette, then time, encode and score every method on it."""
    palette = kmquant.quantize(pixels, k, seed=SEED).palette
    rows = []
    for method in methods:
        seconds = []
        for _ in range(repeat):
            start = time.perf_counter()
            indices = dither(pixels, palette, method)
            seconds.append(time.perf_counter() - start)
        used_palette, used_indices = order_palette(palette, indices)
        shown = palette[indices]
        scores = {m: metrics[m](pixels, shown) if m in metrics else math.nan for m in PERCEPTUAL}
        rows.append(Row(
            image=name, k=k, method=method, ms=1000 * statistics.median(seconds),
            psnr_db=psnr(pixels, shown), ssim=ssim(pixels, shown),
            png_bytes=len(encode_png(used_palette, used_indices)), **scores,
        ))
        r = rows[-1]
        log(f"{name:10s} K={k:<3d} {method:8s} {r.ms:7.1f} ms {r.psnr_db:6.2f} dB "
            f"SSIM {r.ssim:.4f} {r.png_bytes / 1024:7.1f} KB SSIMULACRA2 {r.ssimulacra2:6.2f} "
            f"FLIP {r.flip:.4f}")
    return rows


def warm_up(methods: list[str]) -> None:
    """Run every method once on a tiny image, untimed (warm-up)."""
    pixels = np.random.default_rng(SEED).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    palette = pixels[0, :4].copy()
    for method in methods:
        dither(pixels, palette, method)


# --------------------------------------------------------------------------------------------
# Inputs


# --------------------------------------------------------------------------------------------
# Reporting


def log(message: str) -> None:
    """A progress line on stderr."""
    print(message, file=sys.stderr, flush=True)


def _mean(values: list[float], digits: int) -> str:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return f"{statistics.mean(finite):.{digits}f}" if finite else "-"


def summary_table(rows: list[Row], methods: list[str]) -> str:
    """Markdown: per K and method, means over images (median for time); PNG size vs ``none``."""
    lines = [
        "| K | dither | images | PSNR (dB) | SSIM | PNG (KB) | PNG vs none | ms | SSIMULACRA2 ↑ "
        "| FLIP ↓ |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for k in sorted({r.k for r in rows}):
        at_k = [r for r in rows if r.k == k]
        plain = {r.image: r.png_bytes for r in at_k if r.method == "none"}
        for method in methods:
            group = [r for r in at_k if r.method == method]
            if not group:
                continue
            ratios = [r.png_bytes / plain[r.image] for r in group if r.image in plain]
            vs_none = f"{statistics.mean(ratios):.2f}x" if ratios else "-"
            lines.append(
                f"| {k} | {method} | {len(group)} | {_mean([r.psnr_db for r in group], 2)} "
                f"| {_mean([r.ssim for r in group], 4)} "
                f"| {statistics.mean(r.png_bytes for r in group) / 1024:.1f} | {vs_none} "
                f"| {statistics.median(r.ms for r in group):.1f} "
                f"| {_mean([r.ssimulacra2 for r in group], 2)} "
                f"| {_mean([r.flip for r in group], 4)} |"
            )
    return "\n".join(lines)


def header(command: str, args: argparse.Namespace, images: dict[str, Path],
           metrics: dict[str, Metric]) -> str:
    """Markdown header: machine, versions, date, command line and settings."""
    return "\n".join([
        "# kmquant dithering benchmark",
        "",
        f"- Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- Machine: {platform.platform()}; {os.cpu_count()} CPUs",
        f"- Versions: Python {platform.python_version()}, numpy {np.__version__}, "
        f"kmquant {kmquant.__version__}",
        f"- Command: `{command}`",
        f"- Images: {', '.join(f'{n} ({p})' for n, p in images.items())}",
        f"- Palette: `kmquant.quantize(pixels, K, seed={SEED})`, shared by the methods; "
        f"time: median of {args.repeat} run(s) of the mapping alone.",
        f"- Perceptual metrics used: {', '.join(metrics) or 'none'}.",
    ])


def write_csv(rows: list[Row], path: Path) -> None:
    """One row per image x K x method."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f.name for f in fields(Row)])
        for row in rows:
            writer.writerow(asdict(row).values())


# --------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None,
                        help=f"folder of <name>.png images (default {DEFAULT_DATA} if it exists, "
                             "else the packaged sample)")
    parser.add_argument("--images", type=comma_list, default=None,
                        help=f"comma list of image names (default {','.join(DEFAULT_IMAGES)}; "
                             f"'{SAMPLE_NAME}' is the packaged sample)")
    parser.add_argument("--k", type=comma_ints, default=[16, 64], help="comma list of K")
    parser.add_argument("--methods", type=comma_list, default=list(DITHER_METHODS),
                        help=f"comma list from {','.join(DITHER_METHODS)}")
    parser.add_argument("--metrics", type=comma_list, default=list(PERCEPTUAL),
                        help=f"perceptual metrics from {','.join(PERCEPTUAL)} (each about 0.2 to "
                             "0.5 s per image)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    for option, chosen, allowed in (("--methods", args.methods, DITHER_METHODS),
                                    ("--metrics", args.metrics, PERCEPTUAL)):
        unknown = [name for name in chosen if name not in allowed]
        if unknown:
            parser.error(f"{option}: unknown {', '.join(unknown)}; choose from "
                         f"{', '.join(allowed)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, write OUT/dither.csv and OUT/dither.md, print the table."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = shlex.join([Path(sys.executable).name, sys.argv[0], *argv])
    images = resolve_images(args.data, args.images, DEFAULT_IMAGES)
    metrics = perceptual_metrics(args.metrics)
    warm_up(args.methods)
    rows: list[Row] = []
    for name, path in images.items():
        pixels = load_rgb(path)
        for k in args.k:
            rows.extend(measure(name, pixels, k, args.methods, args.repeat, metrics))

    table = summary_table(rows, args.methods)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, args.out / "dither.csv")
    (args.out / "dither.md").write_text(header(command, args, images, metrics) + "\n\n" + table
                                        + "\n")
    print(table)
    log(f"wrote {args.out / 'dither.csv'} and {args.out / 'dither.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
