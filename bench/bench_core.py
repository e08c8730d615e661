"""Side-by-side benchmark of kmquant against anchors: speed, PSNR and indexed-PNG size.

Every method turns an RGB image into a palette of at most K colours and one palette index per
pixel. Only that (quantization + mapping pixels to indices) is timed. Every result then goes
through the same encoding path -- :func:`kmquant.encode.order_palette` (drop unused entries, sort
by luma) and :func:`kmquant.encode.encode_png` (indexed PNG, smallest bit depth, max deflate) -- so
the byte counts compare the quantizers, not the encoders.

Methods
-------
kmquant-native, kmquant-numpy, kmquant-sklearn
    ``kmquant.quantize(pixels, K, engine=...)`` (weighted k-means on the colour histogram).
sklearn-all-pixels
    scikit-learn ``KMeans(K, init="k-means++", n_init=1, random_state=0)`` fitted on all pixels.
naive-numpy
    The tutorial approach: K random pixels as centres, 10 Lloyd iterations with a full
    (pixels x K x 3) float64 difference array. Only run for K <= ``--naive-max-k``.
pillow-mediancut, pillow-fastoctree, pillow-libimagequant
    ``Image.quantize(colors=K, method=..., dither=NONE)``; libimagequant only when Pillow has it.

Usage::

    python bench/bench_core.py --images kodim23 --k 16 --repeat 1 --out /tmp/benchtest

Writes ``OUT/core.csv`` (one row per method x image x K) and ``OUT/core.md`` (aggregated over
images per K and method), and prints the markdown table.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import PIL
import sklearn
from numpy.typing import NDArray
from PIL import Image, features
from sklearn.cluster import KMeans

import kmquant
from kmquant.encode import encode_png, order_palette
from kmquant.metrics import psnr

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "kodak"
DEFAULT_IMAGES = ("kodim01", "kodim05", "kodim23")
DEFAULT_OUT = REPO_ROOT / "bench" / "results"
SAMPLE_NAME = "sample"
BASELINE = "sklearn-all-pixels"
NAIVE_ITERATIONS = 10
SEED = 0

CSV_FIELDS = (
    "method", "image", "width", "height", "k", "seconds", "runs", "psnr_db", "png_bytes",
    "colors_used", "n_iter",
)


@dataclass(frozen=True)
class Quantized:
    """What a method returns: a palette, an index per pixel, and k-means iterations if known."""

    palette: NDArray[np.uint8]  # (K', 3)
    indices: NDArray[np.uint8]  # (H, W)
    n_iter: int | None = None


@dataclass(frozen=True)
class Method:
    """A named quantizer and whether it counts as slow (timed ``--slow-repeat`` times)."""

    name: str
    run: Callable[[NDArray[np.uint8], int], Quantized]
    slow: bool = False


@dataclass(frozen=True)
class Measurement:
    """One row of the CSV."""

    method: str
    image: str
    width: int
    height: int
    k: int
    seconds: float
    runs: int
    psnr_db: float
    png_bytes: int
    colors_used: int
    n_iter: int | None


# --------------------------------------------------------------------------------------------
# Methods


def kmquant_method(engine: str) -> Callable[[NDArray[np.uint8], int], Quantized]:
    """Quantizer running ``kmquant.quantize`` with the given engine."""

    def run(pixels: NDArray[np.uint8], k: int) -> Quantized:
        result = kmquant.quantize(pixels, k, engine=engine, seed=SEED)
        return Quantized(result.palette, result.indices, result.n_iter)

    return run


def round_centers(centers: NDArray[np.float64]) -> NDArray[np.uint8]:
    """Float RGB centres to the nearest 8-bit colours."""
    return np.clip(np.rint(centers), 0, 255).astype(np.uint8)


def sklearn_all_pixels(pixels: NDArray[np.uint8], k: int) -> Quantized:
    """scikit-learn KMeans (k-means++, one init) on every pixel; labels_ map the pixels."""
    height, width, _ = pixels.shape
    X = pixels.reshape(-1, 3).astype(np.float64)
    model = KMeans(n_clusters=k, init="k-means++", n_init=1, random_state=SEED).fit(X)
    indices = model.labels_.astype(np.uint8).reshape(height, width)
    return Quantized(round_centers(model.cluster_centers_), indices, int(model.n_iter_))


def naive_numpy(pixels: NDArray[np.uint8], k: int) -> Quantized:
    """Textbook k-means: random pixels as centres, 10 brute-force Lloyd iterations.

    Each iteration builds the full (pixels x K x 3) float64 difference array. A final assignment
    to the last centres gives the indices, so that palette and indices agree.
    """
    height, width, _ = pixels.shape
    X = pixels.reshape(-1, 3).astype(np.float64)
    rng = np.random.default_rng(SEED)
    centers = X[rng.choice(X.shape[0], size=k, replace=False)].copy()
    for _ in range(NAIVE_ITERATIONS):
        labels = naive_assign(X, centers)
        for j in range(k):
            members = X[labels == j]
            if members.shape[0]:  # an empty cluster keeps its old centre
                centers[j] = members.mean(axis=0)
    labels = naive_assign(X, centers)
    indices = labels.astype(np.uint8).reshape(height, width)
    return Quantized(round_centers(centers), indices, NAIVE_ITERATIONS)


def naive_assign(X: NDArray[np.float64], centers: NDArray[np.float64]) -> NDArray[np.intp]:
    """Nearest centre of every row via the full broadcast difference array."""
    distances = ((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    return np.argmin(distances, axis=1)


def pillow_method(method: Image.Quantize) -> Callable[[NDArray[np.uint8], int], Quantized]:
    """Quantizer running Pillow's ``Image.quantize`` with ``method`` and no dithering."""

    def run(pixels: NDArray[np.uint8], k: int) -> Quantized:
        im = Image.fromarray(pixels).quantize(
            colors=k, method=method, dither=Image.Dither.NONE
        )
        indices = np.asarray(im, dtype=np.uint8)
        palette = np.asarray(im.getpalette("RGB"), dtype=np.uint8).reshape(-1, 3)
        return Quantized(palette, indices)

    return run


def all_methods() -> dict[str, Method]:
    """Every method this Pillow supports, by name, in report order."""
    methods = [
        Method("kmquant-native", kmquant_method("native")),
        Method("kmquant-numpy", kmquant_method("numpy")),
        Method("kmquant-sklearn", kmquant_method("sklearn")),
        Method(BASELINE, sklearn_all_pixels, slow=True),
        Method("naive-numpy", naive_numpy, slow=True),
        Method("pillow-mediancut", pillow_method(Image.Quantize.MEDIANCUT)),
        Method("pillow-fastoctree", pillow_method(Image.Quantize.FASTOCTREE)),
    ]
    if features.check_feature("libimagequant"):
        methods.append(Method("pillow-libimagequant", pillow_method(Image.Quantize.LIBIMAGEQUANT)))
    return {m.name: m for m in methods}


# --------------------------------------------------------------------------------------------
# Measuring


def time_method(method: Method, pixels: NDArray[np.uint8], k: int, runs: int) -> tuple[float, Quantized]:
    """Median seconds of ``runs`` calls, and the last call's result."""
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        result = method.run(pixels, k)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def measure(
    method: Method, name: str, pixels: NDArray[np.uint8], k: int, runs: int
) -> Measurement:
    """Time one method on one image at one K, then score and encode its result (untimed)."""
    seconds, result = time_method(method, pixels, k, runs)
    palette, indices = order_palette(result.palette, result.indices)
    quantized = palette[indices]
    height, width, _ = pixels.shape
    return Measurement(
        method=method.name,
        image=name,
        width=width,
        height=height,
        k=k,
        seconds=seconds,
        runs=runs,
        psnr_db=psnr(pixels, quantized),
        png_bytes=len(encode_png(palette, indices)),
        colors_used=int(np.unique(palette, axis=0).shape[0]),
        n_iter=result.n_iter,
    )


def warm_up(methods: list[Method], pixels: NDArray[np.uint8], k: int) -> None:
    """One untimed run of every kmquant engine (warm-up: caches, first-call costs)."""
    for method in methods:
        if method.name.startswith("kmquant-"):
            start = time.perf_counter()
            method.run(pixels, k)
            log(f"warm-up {method.name}: {time.perf_counter() - start:.2f} s")


# --------------------------------------------------------------------------------------------
# Inputs


def resolve_images(
    data: Path | None, names: list[str] | None, default_names: tuple[str, ...] = DEFAULT_IMAGES
) -> dict[str, Path]:
    """Image name -> path: ``DATA/<name>.png``, or the packaged sample as ``sample``."""
    if data is None and DEFAULT_DATA.is_dir():
        data = DEFAULT_DATA
    if names is None:
        names = list(default_names) if data is not None else [SAMPLE_NAME]
    paths = {}
    for name in names:
        if name == SAMPLE_NAME:
            paths[name] = kmquant.sample_path()
        elif data is None:
            raise SystemExit(f"no data folder (looked for {DEFAULT_DATA}); pass --data DIR")
        else:
            paths[name] = data / f"{name}.png"
        if not paths[name].is_file():
            raise SystemExit(f"{paths[name]}: no such image")
    return paths


def load_rgb(path: Path) -> NDArray[np.uint8]:
    """Decode an image with kmquant's loader; the benchmark needs (H, W, 3) RGB."""
    pixels = kmquant.load_image(path).pixels
    if pixels.shape[2] != 3:
        raise SystemExit(f"{path}: has {pixels.shape[2]} channel(s); the benchmark needs RGB")
    return pixels


def select_methods(requested: list[str] | None) -> list[Method]:
    """The methods named on the command line (all by default), skipping unavailable ones."""
    available = all_methods()
    if requested is None:
        if not features.check_feature("libimagequant"):
            log("pillow-libimagequant: skipped, this Pillow is built without libimagequant")
        return list(available.values())
    known = set(available) | {"pillow-libimagequant"}
    unknown = [name for name in requested if name not in known]
    if unknown:
        raise SystemExit(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
    chosen = []
    for name in requested:
        if name in available:
            chosen.append(available[name])
        else:
            log(f"{name}: skipped, this Pillow is built without libimagequant")
    return chosen


# --------------------------------------------------------------------------------------------
# Reporting


def log(message: str) -> None:
    """A progress line on stderr."""
    print(message, file=sys.stderr, flush=True)


def write_csv(rows: list[Measurement], path: Path) -> None:
    """One row per method x image x K."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_FIELDS)
        for r in rows:
            writer.writerow([
                r.method, r.image, r.width, r.height, r.k, f"{r.seconds:.6f}", r.runs,
                f"{r.psnr_db:.4f}", r.png_bytes, r.colors_used, "" if r.n_iter is None else r.n_iter,
            ])


def summary_table(rows: list[Measurement], method_order: list[str]) -> str:
    """Markdown table per (K, method) over images: mean PSNR, mean KB, median s, speed-up."""
    lines = [
        f"| K | method | images | mean PSNR (dB) | mean PNG (KB) | median s | speed-up vs {BASELINE} |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for k in sorted({r.k for r in rows}):
        at_k = [r for r in rows if r.k == k]
        baseline = [r.seconds for r in at_k if r.method == BASELINE]
        base_seconds = statistics.median(baseline) if baseline else None
        for name in method_order:
            group = [r for r in at_k if r.method == name]
            if not group:
                continue
            seconds = statistics.median(r.seconds for r in group)
            speedup = f"{base_seconds / seconds:.1f}x" if base_seconds and seconds > 0 else "-"
            lines.append(
                f"| {k} | {name} | {len(group)} | {statistics.mean(r.psnr_db for r in group):.2f} "
                f"| {statistics.mean(r.png_bytes for r in group) / 1024:.1f} | {seconds:.3f} "
                f"| {speedup} |"
            )
    return "\n".join(lines)


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def header(command: str, args: argparse.Namespace, images: dict[str, Path]) -> str:
    """Markdown header: machine, versions, date, command line and settings."""
    versions = (
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"scikit-learn {sklearn.__version__}, Pillow {PIL.__version__}, kmquant {kmquant.__version__}"
    )
    return "\n".join([
        "# kmquant core benchmark",
        "",
        f"- Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- Machine: {platform.platform()}; {os.cpu_count()} CPUs; {cpu_model()}",
        f"- Versions: {versions}",
        f"- Command: `{command}`",
        f"- Images: {', '.join(f'{n} ({p})' for n, p in images.items())}",
        f"- Timing: median of {args.repeat} run(s), {args.slow_repeat} for {BASELINE} and "
        f"naive-numpy; quantization + mapping only (no encoding, no PSNR); kmquant engines "
        f"warmed up once, untimed. naive-numpy only for K <= {args.naive_max_k}.",
        "- PNG bytes: every method's palette and indices go through the same "
        "`order_palette` + `encode_png` (indexed PNG, smallest bit depth, libdeflate level 10).",
        "- Aggregation per (K, method) over images: mean PSNR, mean PNG size, median seconds; "
        f"speed-up = median seconds of {BASELINE} / median seconds of the method.",
    ])


# --------------------------------------------------------------------------------------------
# Command line


def comma_list(text: str) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]``."""
    return [item.strip() for item in text.split(",") if item.strip()]


def comma_ints(text: str) -> list[int]:
    """``"16,64"`` -> ``[16, 64]``, each K from 2 to 256."""
    values = [int(item) for item in comma_list(text)]
    if not values or any(not 2 <= v <= 256 for v in values):
        raise argparse.ArgumentTypeError("K values must be integers from 2 to 256")
    return values


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None,
                        help=f"folder of <name>.png images (default {DEFAULT_DATA} if it exists, "
                             "else the packaged sample)")
    parser.add_argument("--images", type=comma_list, default=None,
                        help=f"comma list of image names (default {','.join(DEFAULT_IMAGES)}; "
                             f"'{SAMPLE_NAME}' is the packaged sample)")
    parser.add_argument("--k", type=comma_ints, default=[16, 64, 256], help="comma list of K")
    parser.add_argument("--methods", type=comma_list, default=None,
                        help="comma list of methods (default all available)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--slow-repeat", type=int, default=1,
                        help=f"timed runs for {BASELINE} and naive-numpy")
    parser.add_argument("--naive-max-k", type=int, default=64,
                        help="run naive-numpy only for K up to this (memory: pixels x K x 24 B)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.slow_repeat < 1:
        parser.error("--repeat and --slow-repeat must be at least 1")
    return args


def run_benchmark(
    args: argparse.Namespace, methods: list[Method], images: dict[str, Path]
) -> list[Measurement]:
    """Every method on every image at every K; one progress line per measurement."""
    rows: list[Measurement] = []
    warmed = False
    for name, path in images.items():
        pixels = load_rgb(path)
        if not warmed:
            warm_up(methods, pixels, min(args.k))
            warmed = True
        for k in args.k:
            for method in methods:
                if method.name == "naive-numpy" and k > args.naive_max_k:
                    continue
                runs = args.slow_repeat if method.slow else args.repeat
                row = measure(method, name, pixels, k, runs)
                rows.append(row)
                log(f"{row.method:22s} {name:10s} K={k:<3d} {row.seconds:8.3f} s "
                    f"{row.psnr_db:6.2f} dB {row.png_bytes / 1024:8.1f} KB "
                    f"{row.colors_used:3d} colours")
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, write OUT/core.csv and OUT/core.md, print the table."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = shlex.join([Path(sys.executable).name, sys.argv[0], *argv])
    images = resolve_images(args.data, args.images)
    methods = select_methods(args.methods)
    rows = run_benchmark(args, methods, images)

    table = summary_table(rows, [m.name for m in methods])
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, args.out / "core.csv")
    (args.out / "core.md").write_text(header(command, args, images) + "\n\n" + table + "\n")
    print(table)
    log(f"wrote {args.out / 'core.csv'} and {args.out / 'core.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
