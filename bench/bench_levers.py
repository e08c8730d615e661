"""What each lever of kmquant costs in time, in process: rate-aware entries, dithering, --speed.

Every lever is one set of :func:`kmquant.quantize` options; a run is ``quantize(pixels, K,
**options).to_png()`` on pixels already decoded (what the library user pays), timed with
``time.perf_counter``. The levers run in turn on each image and K (A, B, C, …, then again), after
one untimed warm-up run of each, ``--repeat`` times; the table gives, per lever, the median over
images × K of its median seconds, the ratio of the medians to the ``baseline`` lever (today's
default before rate-aware entries: ``rdo=0``), and the mean PNG bytes against the baseline's.

Bytes alone say little (a lever may trade quality for them); ``bench/bench_rd.py`` gives the
Bjøntegaard delta rate of the same levers. This one answers "how much slower".

Usage::

    python bench/bench_levers.py                          # kodim03,05,13,23 x K=16,64,256
    python bench/bench_levers.py --images kodim23 --k 64 --repeat 3 --out /tmp/levers

Writes ``OUT/levers.csv`` (image, K, lever, seconds of each run, bytes) and ``OUT/levers.md``
(header and table), and prints the table. ``OUT`` defaults to ``bench/results``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import kmquant

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import (  # noqa: E402  (the bench folder is not a package)
    DEFAULT_OUT,
    comma_ints,
    comma_list,
    cpu_model,
    load_rgb,
    resolve_images,
)

DEFAULT_IMAGES = ("kodim03", "kodim05", "kodim13", "kodim23")
#: name → quantize options; the first is the baseline of the ratios.
LEVERS: dict[str, dict[str, object]] = {
    "baseline (rdo 0)": {"rdo": 0.0},
    "default": {},
    "rdo 4": {"rdo": 4.0},
    "dither on": {"dither": "on"},
    "dither fs": {"dither": "fs"},
    "speed 1": {"speed": 1},
    "speed 3": {"speed": 3},
    "speed 7": {"speed": 7},
    "speed 10": {"speed": 10},
}


def time_levers(
    pixels: np.ndarray, k: int, levers: dict[str, dict[str, object]], repeat: int
) -> dict[str, tuple[list[float], int]]:
    """Seconds of each run and PNG bytes of each lever, levers alternating, after a warm-up."""
    runs: dict[str, list[float]] = {name: [] for name in levers}
    sizes: dict[str, int] = {}
    for name, options in levers.items():  # warm-up, untimed
        sizes[name] = len(kmquant.quantize(pixels, k, seed=0, **options).to_png())
    for _ in range(repeat):
        for name, options in levers.items():
            start = time.perf_counter()
            kmquant.quantize(pixels, k, seed=0, **options).to_png()
            runs[name].append(time.perf_counter() - start)
    return {name: (runs[name], sizes[name]) for name in levers}


def table(rows: list[tuple[str, int, str, list[float], int]], levers: list[str]) -> str:
    """Markdown: per lever, median seconds, ratio to the baseline, bytes against it."""
    base = levers[0]
    lines = ["| lever | options | median s | × baseline time | bytes vs baseline |",
             "|---|---|---:|---:|---:|"]
    by = {(image, k, lever): (statistics.median(s), b) for image, k, lever, s, b in rows}
    cases = sorted({(image, k) for image, k, *_ in rows})
    for lever in levers:
        seconds = [by[c + (lever,)][0] for c in cases]
        ratios = [by[c + (lever,)][0] / by[c + (base,)][0] for c in cases]
        size = [by[c + (lever,)][1] / by[c + (base,)][1] for c in cases]
        options = "; ".join(f"{k}={v}" for k, v in LEVERS.get(lever, {}).items()) or "-"
        lines.append(f"| {lever} | {options} | {statistics.median(seconds):.3f} | "
                     f"{statistics.median(ratios):.2f} | {100 * (statistics.mean(size) - 1):+.1f} % |")
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of <name>.png images (default ../shared/data/kodak)")
    parser.add_argument("--images", type=comma_list, default=None,
                        help=f"comma list of image names (default {','.join(DEFAULT_IMAGES)})")
    parser.add_argument("--k", type=comma_ints, default=[16, 64, 256], help="comma list of K")
    parser.add_argument("--levers", type=comma_list, default=None,
                        help=f"comma list of levers (default all: {', '.join(LEVERS)})")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each lever")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    names = args.levers or list(LEVERS)
    unknown = [n for n in names if n not in LEVERS]
    if unknown:
        raise SystemExit(f"unknown lever(s) {', '.join(unknown)}; the levers are "
                         f"{', '.join(LEVERS)}")
    if LEVERS and names[0] != next(iter(LEVERS)):
        names.insert(0, next(iter(LEVERS)))
    levers = {n: LEVERS[n] for n in names}
    images = resolve_images(args.data, args.images, DEFAULT_IMAGES)
    rows: list[tuple[str, int, str, list[float], int]] = []
    for image, path in images.items():
        pixels = load_rgb(path)
        for k in args.k:
            for lever, (seconds, size) in time_levers(pixels, k, levers, args.repeat).items():
                rows.append((image, k, lever, seconds, size))
                print(f"{image:10s} K={k:<3d} {lever:18s} {statistics.median(seconds):7.3f} s "
                      f"{size / 1024:8.1f} KB", file=sys.stderr, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "levers.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "k", "lever", "seconds", "bytes"])
        for image, k, lever, seconds, size in rows:
            writer.writerow([image, k, lever, " ".join(f"{s:.4f}" for s in seconds), size])
    command = shlex.join([Path(sys.executable).name, *sys.argv]) if argv is None else shlex.join(
        ["bench_levers.py", *argv])
    report = "\n".join([
        "# kmquant levers: time in process",
        "",
        f"- Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- Machine: {platform.platform()}; {os.cpu_count()} CPUs; {cpu_model()}",
        f"- kmquant {kmquant.__version__}, numpy {np.__version__}",
        f"- Command: `{command}`",
        f"- Images: {', '.join(images)}; K: {', '.join(map(str, args.k))}; "
        f"{args.repeat} timed runs per lever, levers alternating",
        "",
        table(rows, names),
        "",
    ])
    (args.out / "levers.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
