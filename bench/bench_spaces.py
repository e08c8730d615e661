"""Which working colour space gives the best pictures per byte: rgb, linear, oklab or lab.

For every image, K and space, the image is quantized by the library's own pipeline pieces --
``prepare(pixels, space)`` then ``quantize_prepared`` (k-means++ seeding, the refine driver, the
remap, all in that space) -- and the result is scored in sRGB: PSNR, SSIM, mean and 95th-percentile
CIEDE2000, indexed-PNG bytes, k-means iterations and seconds (prepare + quantize, after an untimed
warm-up run). Every space sees the same seed and options.

Usage::

    python bench/bench_spaces.py                                  # kodim01,05,23 x K=16,64,256
    python bench/bench_spaces.py --images kodim23 --k 16 --spaces rgb oklab

Writes ``OUT/spaces.csv`` (one row per image x K x space) and ``OUT/spaces.md`` (averages over
the images per K and space; best value of each column in bold), and prints the markdown.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from kmquant import metrics
from kmquant.colorspace import SPACE_NAMES
from kmquant.engines import get_engine
from kmquant.load import load_image
from kmquant.options import Options
from kmquant.pipeline import prepare, quantize_prepared

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "kodak"
DEFAULT_IMAGES = ("kodim01", "kodim05", "kodim23")
DEFAULT_OUT = REPO_ROOT / "bench" / "results"

#: column → (label, format, higher is better)
COLUMNS = {
    "psnr": ("PSNR dB", "{:.2f}", True),
    "ssim": ("SSIM", "{:.4f}", True),
    "de_mean": ("ΔE00 mean", "{:.3f}", False),
    "de_p95": ("ΔE00 p95", "{:.2f}", False),
    "png_bytes": ("PNG bytes", "{:,.0f}", False),
    "n_iter": ("iterations", "{:.0f}", False),
    "seconds": ("seconds", "{:.3f}", False),
}


def measure(pixels: np.ndarray, k: int, space: str, engine_name: str, seed: int) -> dict:
    """Quantize ``pixels`` with K colours in ``space`` and score the result in sRGB."""
    engine = get_engine(engine_name)
    # Options.space is not read by quantize_prepared: the space is the prepared histogram's.
    options = Options(n_colors=k, engine=engine_name, seed=seed)
    clock = time.perf_counter()
    prepared = prepare(pixels, space)
    result, _ = quantize_prepared(prepared, options, engine)
    seconds = time.perf_counter() - clock
    quantized = result.to_array()
    return {
        "psnr": metrics.psnr(pixels, quantized),
        "ssim": metrics.ssim(pixels, quantized),
        "de_mean": metrics.delta_e(pixels, quantized),
        "de_p95": metrics.delta_e(pixels, quantized, percentile=95),
        "png_bytes": len(result.to_png()),
        "n_iter": result.n_iter,
        "seconds": seconds,
    }


def markdown(rows: list[dict], ks: list[int], spaces: list[str]) -> str:
    """One table per K: the mean over images of each column, per space."""
    lines = []
    for k in ks:
        labels = " | ".join(label for label, _, _ in COLUMNS.values())
        lines += [f"### K = {k}", "", f"| space | {labels} |", "|---|" + "---:|" * len(COLUMNS)]
        means = {
            space: {
                col: statistics.fmean(r[col] for r in rows if r["k"] == k and r["space"] == space)
                for col in COLUMNS
            }
            for space in spaces
        }
        for space in spaces:
            cells = []
            for col, (_, fmt, higher) in COLUMNS.items():
                values = [means[s][col] for s in spaces]
                best = max(values) if higher else min(values)
                text = fmt.format(means[space][col])
                bold = fmt.format(best) == text and len(spaces) > 1
                cells.append(f"**{text}**" if bold else text)
            lines.append(f"| {space} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--images", nargs="+", default=list(DEFAULT_IMAGES))
    parser.add_argument("--k", nargs="+", type=int, default=[16, 64, 256])
    parser.add_argument("--spaces", nargs="+", default=list(SPACE_NAMES), choices=SPACE_NAMES)
    parser.add_argument("--engine", default="native")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    images = {name: load_image(args.data / f"{name}.png").pixels for name in args.images}
    first = next(iter(images.values()))
    measure(first[:64, :64], 4, args.spaces[0], args.engine, args.seed)  # warm-up

    rows = []
    for name, pixels in images.items():
        for k in args.k:
            for space in args.spaces:
                row = {"image": name, "k": k, "space": space,
                       **measure(pixels, k, space, args.engine, args.seed)}
                rows.append(row)
                print(f"{name} K={k:3d} {space:6s} PSNR {row['psnr']:.2f} "
                      f"ΔE {row['de_mean']:.3f} {row['png_bytes']} B", file=sys.stderr)

    table = markdown(rows, args.k, args.spaces)
    header = (
        f"Working spaces, {', '.join(args.images)}, engine {args.engine}, seed {args.seed}; "
        f"means over the images. {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, {datetime.date.today()}.\n\n"
        f"`{shlex.join(['python', 'bench/bench_spaces.py', *sys.argv[1:]])}`\n\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "spaces.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (args.out / "spaces.md").write_text(header + table)
    print(header + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
