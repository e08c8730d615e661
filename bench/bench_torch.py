"""Benchmark of the PyTorch k-means engine on a 12-megapixel image, against the native engine.

The image is a 4096×3072 mosaic of the Kodak photographs (768×512 tiles, portrait ones turned on
their side, 6 × 6 tiles cropped to the width, the 24 images repeated in order; ``--vary-repeats``
rotates the channels of repeated tiles so that they add colours); without the Kodak folder, of
the packaged sample. Its colour histogram is clustered with weighted Lloyd k-means,
:func:`kmquant.refine.refine`, from one k-means++ start (K = 256, seed 0), by each engine.

Only binding the data and ``refine`` are timed (``engine.bind(X, w)`` -- for torch the copy of the
colours to the device -- the loop and its final assignment; each timed run binds a fresh session
of a fresh engine); the median of ``--repeat`` runs. Every engine runs once untimed first
(warm-up), so CUDA's start-up is left out. On CUDA the GPU is
synchronised before and after each timed run. The table also says whether each engine's labels
equal those of the first engine and how far its centres are from them.

Usage::

    python bench/bench_torch.py                          # 12 MP mosaic, K=256, torch and native
    python bench/bench_torch.py --repeat 1 --max-iter 3  # a quick check
"""

from __future__ import annotations

import argparse
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
import torch
from numpy.typing import NDArray

import kmquant
from kmquant.engines import get_engine
from kmquant.engines.torch_engine import DISTANCES, TorchEngine
from kmquant.histogram import color_histogram
from kmquant.options import DEFAULT_MAX_ITER, DEFAULT_TOL
from kmquant.refine import RefineResult, refine
from kmquant.seeding import seed_centers

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "kodak"
TILE = (512, 768)  # height, width of a landscape Kodak image
MOSAIC = (3072, 4096)  # height, width: 12.6 megapixels
SEED = 0
ENGINES = ("torch", "native", "numpy")


@dataclass(frozen=True)
class Timing:
    """One engine's row of the table."""

    engine: str
    device: str
    seconds: float
    runs: int
    result: RefineResult


# --------------------------------------------------------------------------------------------
# The image


def tile_paths(data: Path | None) -> list[Path]:
    """The Kodak PNGs in ``data`` (or the default folder), else the packaged sample."""
    folder = data if data is not None else DEFAULT_DATA
    paths = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if data is not None and not paths:
        raise SystemExit(f"{data}: no .png images there")
    return paths or [kmquant.sample_path()]


def fit_tile(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """An RGB image as one 512×768 tile: turned if portrait, then cropped or edge-padded."""
    if pixels.shape[0] > pixels.shape[1]:
        pixels = np.rot90(pixels)
    pixels = pixels[: TILE[0], : TILE[1]]
    pad = ((0, TILE[0] - pixels.shape[0]), (0, TILE[1] - pixels.shape[1]), (0, 0))
    return np.pad(pixels, pad, mode="edge")


def mosaic(paths: list[Path], height: int, width: int, *, vary: bool = False) -> NDArray[np.uint8]:
    """A ``height`` × ``width`` RGB mosaic of the tiles, row by row, repeating them in order.

    A repeated tile adds no new colour; with ``vary`` its channels are rotated (RGB → GBR → BRG)
    on each repeat, so the mosaic has about as many distinct colours as a photograph of its size.
    """
    tiles = []
    for path in paths:
        pixels = kmquant.load_image(path).pixels
        if pixels.shape[2] != 3:
            raise SystemExit(f"{path}: has {pixels.shape[2]} channel(s); the benchmark needs RGB")
        tiles.append(fit_tile(pixels))
    rows, cols = -(-height // TILE[0]), -(-width // TILE[1])

    def tile(i: int) -> NDArray[np.uint8]:
        shift = (i // len(tiles)) % 3 if vary else 0
        return np.roll(tiles[i % len(tiles)], -shift, axis=2)

    grid = [np.concatenate([tile(r * cols + c) for c in range(cols)], axis=1)
            for r in range(rows)]
    return np.ascontiguousarray(np.concatenate(grid, axis=0)[:height, :width])


# --------------------------------------------------------------------------------------------
# Timing


def make_engine(name: str, args: argparse.Namespace) -> Callable[[], object]:
    """A factory of fresh engines called ``name`` (torch with the command line's settings)."""
    if name == "torch":
        return lambda: TorchEngine(args.device, distances=args.distances)
    get_engine(name)  # fail early when its package is missing
    return lambda: get_engine(name)


def synchronize(engine: object) -> None:
    """Wait for the GPU, when the engine runs on one."""
    device = getattr(engine, "device", None)
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(engine: object) -> str:
    """The GPU's name, or the CPU's with the thread count the engine uses."""
    device = getattr(engine, "device", None)
    if device is not None and device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if getattr(engine, "name", "") == "torch":
        return f"CPU, {torch.get_num_threads()} torch threads"
    if getattr(engine, "name", "") == "native":
        from kmquant._core import _lloyd

        return f"CPU, {_lloyd.max_threads()} OpenMP threads"
    return "CPU"


def time_engine(
    name: str, factory: Callable[[], object], X, w, start, args: argparse.Namespace
) -> Timing:
    """Median seconds of ``args.repeat`` bind + refine runs, each on a fresh engine, after a
    warm-up."""
    engine = factory()
    began = time.perf_counter()
    refine(engine.bind(X, w), start, max_iter=min(args.max_iter, 2), tol=args.tol)  # untimed
    synchronize(engine)
    log(f"{name}: warm-up {time.perf_counter() - began:.2f} s")
    seconds = []
    for run in range(args.repeat):
        engine = factory()
        synchronize(engine)
        began = time.perf_counter()
        result = refine(engine.bind(X, w), start, max_iter=args.max_iter, tol=args.tol)
        synchronize(engine)
        seconds.append(time.perf_counter() - began)
        log(f"{name}: run {run + 1}/{args.repeat} {seconds[-1]:.3f} s, {result.n_iter} iterations")
    return Timing(name, device_name(engine), statistics.median(seconds), args.repeat, result)


# --------------------------------------------------------------------------------------------
# Reporting


def log(message: str) -> None:
    """A progress line on stderr."""
    print(message, file=sys.stderr, flush=True)


def table(rows: list[Timing], n_colors: int, k: int) -> str:
    """Markdown: one row per engine, compared with the first row's result."""
    first = rows[0].result
    lines = [
        f"| engine | device | colours | K | iterations | converged | median s | ms / iteration "
        f"| inertia | labels = {rows[0].engine} | max rel. centre diff |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---|---:|",
    ]
    for row in rows:
        r = row.result
        diff = float(np.max(np.abs(r.centers - first.centers) / np.maximum(np.abs(first.centers),
                                                                           1e-300)))
        lines.append(
            f"| {row.engine} | {row.device} | {n_colors} | {k} | {r.n_iter} | "
            f"{'yes' if r.converged else 'no'} | {row.seconds:.3f} | "
            f"{1000 * row.seconds / max(r.n_iter, 1):.1f} | {r.inertia:.6e} | "
            f"{'yes' if np.array_equal(r.labels, first.labels) else 'NO'} | {diff:.1e} |"
        )
    return "\n".join(lines)


def header(command: str, args: argparse.Namespace, paths: list[Path], shape, seconds: float,
           n_colors: int) -> str:
    """What ran where: machine, versions, image, settings."""
    cuda = (f"CUDA {torch.version.cuda}, {torch.cuda.get_device_name()}"
            if torch.cuda.is_available() else "no CUDA device")
    tiles = -(-shape[0] // TILE[0]) * -(-shape[1] // TILE[1])
    source = f"{tiles} tiles from {min(tiles, len(paths))} image(s) in {paths[0].parent}" + (
        " (channels of repeats rotated)" if args.vary_repeats else "")
    return "\n".join([
        "# kmquant torch engine benchmark",
        "",
        f"- Machine: {platform.platform()}; {os.cpu_count()} CPUs; {cuda}",
        f"- Versions: Python {platform.python_version()}, torch {torch.__version__}, "
        f"numpy {np.__version__}, kmquant {kmquant.__version__}",
        f"- Command: `{command}`",
        f"- Image: {shape[1]}×{shape[0]} mosaic ({shape[0] * shape[1] / 1e6:.1f} MP) of {source}; "
        f"histogram: {n_colors} colours in {seconds:.2f} s",
        f"- k-means: refine from k-means++ (seed {SEED}), K={args.k}, tol={args.tol}, "
        f"max_iter={args.max_iter}; RGB 0-255, float64",
        f"- Timing: median of {args.repeat} run(s) of bind + refine, each on a fresh engine "
        "(torch: includes copying the colours to the device), after one untimed warm-up run",
    ])


# --------------------------------------------------------------------------------------------
# Command line


def size(text: str) -> tuple[int, int]:
    """``"4096x3072"`` -> (height 3072, width 4096)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError("size must be WIDTHxHEIGHT, e.g. 4096x3072") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError("size must be positive")
    return height, width


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None,
                        help=f"folder of RGB PNGs (default {DEFAULT_DATA} if it exists, "
                             "else the packaged sample)")
    parser.add_argument("--size", type=size, default=MOSAIC,
                        help="mosaic WIDTHxHEIGHT (default 4096x3072)")
    parser.add_argument("--vary-repeats", action="store_true",
                        help="rotate the channels of repeated tiles, for more distinct colours")
    parser.add_argument("--k", type=int, default=256, help="number of clusters (default 256)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per engine (default 3)")
    parser.add_argument("--max-iter", type=int, default=DEFAULT_MAX_ITER,
                        help=f"Lloyd iterations at most (default {DEFAULT_MAX_ITER})")
    parser.add_argument("--tol", type=float, default=DEFAULT_TOL,
                        help=f"refine's tolerance (default {DEFAULT_TOL})")
    parser.add_argument("--engines", type=lambda t: [e.strip() for e in t.split(",") if e.strip()],
                        default=["torch", "native"],
                        help=f"comma list from {', '.join(ENGINES)} (default torch,native)")
    parser.add_argument("--device", default=None,
                        help="torch device, e.g. cuda or cpu (default: cuda when available)")
    parser.add_argument("--distances", choices=DISTANCES, default=None,
                        help="torch distance method (default: the engine's for the device)")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch.set_num_threads for the CPU (default: torch's own choice)")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.max_iter < 1 or not 1 <= args.k <= 256:
        parser.error("--repeat and --max-iter must be at least 1, --k from 1 to 256")
    unknown = [e for e in args.engines if e not in ENGINES]
    if unknown or not args.engines:
        parser.error(f"--engines: choose from {', '.join(ENGINES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Build the mosaic and its histogram, time each engine, print the markdown report."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = shlex.join([Path(sys.executable).name, sys.argv[0], *argv])
    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)
    factories = {name: make_engine(name, args) for name in args.engines}

    paths = tile_paths(args.data)
    pixels = mosaic(paths, *args.size, vary=args.vary_repeats)
    began = time.perf_counter()
    hist = color_histogram(pixels)
    hist_seconds = time.perf_counter() - began
    X, w = hist.colors.astype(np.float64), hist.counts.astype(np.float64)
    log(f"{pixels.shape[1]}x{pixels.shape[0]} mosaic: {hist.n_colors} colours "
        f"({hist_seconds:.2f} s)")
    start = seed_centers("k-means++", X, w, args.k, seed=SEED)

    rows = [time_engine(name, factory, X, w, start, args) for name, factory in factories.items()]
    print(header(command, args, paths, pixels.shape, hist_seconds, hist.n_colors))
    print()
    print(table(rows, hist.n_colors, args.k))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
