"""Side-by-side benchmark of kmquant against pngquant, libimagequant, Pillow, sklearn, ImageMagick.

Three parts, all in one run (no dithering anywhere):

1. Per image x K x method: PSNR against the original, the bytes of the PNG each tool writes
   itself ("own"), the bytes of the same palette + indices through one common encoder
   (:func:`kmquant.encode.order_palette` + :func:`kmquant.encode.encode_png`, "common": compares
   the quantizers apart from the encoders), and seconds.
2. Batch: every image through the command-line tools in one process each, wall time --
   ``pngquant --nofs --speed 1 K FILES`` vs ``kmquant compress FILES -k K -q --out-dir DIR``.
3. Large: a 4096x3072 (12.6 MP) mosaic tiled from the images, at ``--large-k``: kmquant,
   pngquant and imagequant seconds, PSNR and bytes.

Methods
-------
kmquant
    ``kmquant.quantize(pixels, K)`` (default engine), in process; own PNG: ``Result.to_png()``.
kmquant-swaps10
    The same with ``swaps=10`` (``--swaps 10``): a better optimum for more time.
pngquant
    ``pngquant --nofs --speed 1 --force --output OUT K IN`` as a subprocess (wall time, including
    process start, PNG decoding and encoding); own PNG: pngquant's output file.
imagequant
    libimagequant through the ``imagequant`` PyPI bindings, in process, dithering 0, quality
    0-100; own PNG: Pillow ``optimize=True``.
sklearn-all-pixels
    scikit-learn ``KMeans(K, n_init=1, random_state=0)`` on all pixels, in process, only on
    images of at most ``--sklearn-max-pixels``; own PNG: Pillow ``optimize=True``.
pillow-mediancut, pillow-fastoctree, pillow-libimagequant
    ``Image.quantize(colors=K, method=..., dither=NONE)``, in process (libimagequant only when
    Pillow has it); own PNG: Pillow ``optimize=True``.
imagemagick
    ``convert IN -dither None -colors K PNG8:OUT`` (``/usr/bin/convert`` or ``magick``) as a
    subprocess (wall time); own PNG: its output file. Skipped with a note when absent.

Usage::

    python bench/bench_pngquant.py                  # all Kodak images, K=16,64,256, everything
    python bench/bench_pngquant.py --images kodim01,kodim23 --k 16 --repeat 1 --no-large \\
        --out /tmp/pq

Writes ``OUT/pngquant.csv`` (one row per part x image x K x method), ``OUT/pngquant.md``
(machine, versions, date, command; a table per K; the batch and large results) and
``OUT/pngquant.png`` (mean PSNR vs mean bytes), and prints the markdown.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import importlib.metadata
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from io import BytesIO
from pathlib import Path
from typing import Callable

import numpy as np
from numpy.typing import NDArray
from PIL import Image, features

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import (  # noqa: E402  (the bench folder is not a package)
    DEFAULT_DATA,
    REPO_ROOT,
    SEED,
    comma_ints,
    comma_list,
    cpu_model,
    load_rgb,
    log,
    pillow_method,
    sklearn_all_pixels,
)

import kmquant  # noqa: E402
from kmquant.encode import encode_png, order_palette  # noqa: E402
from kmquant.metrics import psnr  # noqa: E402

DEFAULT_OUT = REPO_ROOT / "bench" / "results"
PNGQUANT = "/usr/bin/pngquant"
#: Times are also given as a ratio to this method's on the same image (median over images).
TIME_ANCHOR = "imagequant"
#: Swaps of the "quality" kmquant row (``kmquant.quantize(..., swaps=N)``).
QUALITY_SWAPS = 10
LARGE_SIZE = (4096, 3072)  # width, height
LARGE_NAME = "mosaic-4096x3072"
REFERENCES = ("pngquant", "sklearn-all-pixels")
PARTS = ("batch", "large")

CSV_FIELDS = (
    "part", "method", "image", "width", "height", "k", "timing", "seconds", "runs", "psnr_db",
    "own_bytes", "common_bytes", "colors_used",
)


@dataclass(frozen=True)
class Indexed:
    """A method's result: palette, one index per pixel, and how the tool itself writes a PNG."""

    palette: NDArray[np.uint8]  # (K', 3)
    indices: NDArray[np.uint8]  # (H, W)
    own_png: Callable[[], bytes]


@dataclass(frozen=True)
class Method:
    """A quantizer: in process (``run(pixels, k) -> Indexed``) or a command line.

    A command-line method has ``command(src, k, dst) -> argv``; it is timed as a subprocess.
    """

    name: str
    run: Callable[[NDArray[np.uint8], int], Indexed] | None = None
    command: Callable[[Path, int, Path], list[str]] | None = None
    slow: bool = False

    @property
    def timing(self) -> str:
        return "in-process" if self.run is not None else "subprocess"


@dataclass(frozen=True)
class Row:
    """One row of the CSV."""

    part: str
    method: str
    image: str
    width: int
    height: int
    k: int
    timing: str
    seconds: float
    runs: int
    psnr_db: float
    own_bytes: int
    common_bytes: int
    colors_used: int


@dataclass(frozen=True)
class BatchRow:
    """One command line over all images: median wall time and the bytes it wrote."""

    tool: str
    files: int
    k: int
    seconds: float
    runs: int
    out_bytes: int
    command: str


# --------------------------------------------------------------------------------------------
# Methods


def pillow_png(palette: NDArray[np.uint8], indices: NDArray[np.uint8]) -> bytes:
    """An indexed PNG of ``palette``/``indices`` written by Pillow with ``optimize=True``."""
    im = Image.fromarray(np.ascontiguousarray(indices, dtype=np.uint8), mode="P")
    im.putpalette(np.ascontiguousarray(palette[:, :3], dtype=np.uint8).tobytes(), rawmode="RGB")
    buffer = BytesIO()
    im.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def run_kmquant(pixels: NDArray[np.uint8], k: int, swaps: int = 0) -> Indexed:
    """``kmquant.quantize`` with the default engine; own PNG is ``Result.to_png()``."""
    result = kmquant.quantize(pixels, k, seed=SEED, swaps=swaps)
    return Indexed(result.palette, result.indices, result.to_png)


def run_imagequant(pixels: NDArray[np.uint8], k: int) -> Indexed:
    """libimagequant via the ``imagequant`` bindings, no dithering, quality 0-100.

    Calls ``quantize_raw_rgba_bytes``, the function ``quantize_pil_image`` wraps: same result,
    without that wrapper's pure-Python per-pixel conversion of the input.
    """
    import imagequant

    height, width, _ = pixels.shape
    rgba = np.dstack([pixels, np.full((height, width), 255, np.uint8)])
    data, palette = imagequant.quantize_raw_rgba_bytes(
        rgba.tobytes(), width, height, dithering_level=0.0, max_colors=k,
        min_quality=0, max_quality=100,
    )
    indices = np.frombuffer(data, dtype=np.uint8).reshape(height, width)
    palette_rgb = np.asarray(palette, dtype=np.uint8).reshape(-1, 4)[:, :3]
    return Indexed(palette_rgb, indices, partial(pillow_png, palette_rgb, indices))


def via_pillow_png(quantizer: Callable) -> Callable[[NDArray[np.uint8], int], Indexed]:
    """Wrap a bench_core quantizer (palette + indices) so its own PNG is Pillow ``optimize``."""

    def run(pixels: NDArray[np.uint8], k: int) -> Indexed:
        q = quantizer(pixels, k)
        return Indexed(q.palette, q.indices, partial(pillow_png, q.palette, q.indices))

    return run


def pngquant_command(src: Path, k: int, dst: Path) -> list[str]:
    """pngquant without dithering, slowest (best) speed."""
    return [PNGQUANT, "--nofs", "--speed", "1", "--force", "--output", str(dst), str(k), str(src)]


def imagemagick_program() -> list[str] | None:
    """ImageMagick's convert (``/usr/bin/convert``, else ``magick``), or None when absent.

    ``/usr/local/bin/convert`` on the development machine is a stand-in, so PATH is not used
    for ``convert``.
    """
    if os.access("/usr/bin/convert", os.X_OK):
        return ["/usr/bin/convert"]
    magick = shutil.which("magick")
    return [magick] if magick else None


def imagemagick_command(program: list[str], src: Path, k: int, dst: Path) -> list[str]:
    """ImageMagick colour reduction without dithering, written as an 8-bit palette PNG."""
    return [*program, str(src), "-dither", "None", "-colors", str(k), f"PNG8:{dst}"]


def all_methods() -> list[Method]:
    """Every method, in report order (those whose tool is missing are left out, with a note)."""
    methods = [
        Method("kmquant", run=run_kmquant),
        Method(f"kmquant-swaps{QUALITY_SWAPS}", run=partial(run_kmquant, swaps=QUALITY_SWAPS)),
        Method("pngquant", command=pngquant_command),
        Method("imagequant", run=run_imagequant),
        Method("sklearn-all-pixels", run=via_pillow_png(sklearn_all_pixels), slow=True),
        Method("pillow-mediancut", run=via_pillow_png(pillow_method(Image.Quantize.MEDIANCUT))),
        Method("pillow-fastoctree", run=via_pillow_png(pillow_method(Image.Quantize.FASTOCTREE))),
    ]
    if features.check_feature("libimagequant"):
        methods.append(Method("pillow-libimagequant",
                              run=via_pillow_png(pillow_method(Image.Quantize.LIBIMAGEQUANT))))
    else:
        log("pillow-libimagequant: skipped, this Pillow is built without libimagequant")
    program = imagemagick_program()
    if program:
        methods.append(Method("imagemagick", command=partial(imagemagick_command, program)))
    else:
        log("imagemagick: skipped, neither /usr/bin/convert nor magick is installed")
    return methods


def method_names() -> tuple[str, ...]:
    """Every method name the script knows, whether or not its tool is here."""
    return ("kmquant", f"kmquant-swaps{QUALITY_SWAPS}", "pngquant", "imagequant",
            "sklearn-all-pixels", "pillow-mediancut",
            "pillow-fastoctree", "pillow-libimagequant", "imagemagick")


def is_skipped(name: str, skip: list[str]) -> bool:
    """``--skip`` names a method, a part, or a prefix of them (``sklearn``, ``pillow``)."""
    return any(name == s or name.startswith(s + "-") for s in skip)


# --------------------------------------------------------------------------------------------
# Measuring


def median_seconds(call: Callable[[], object], runs: int) -> tuple[float, object]:
    """Median wall seconds of ``runs`` calls, and the last call's return value."""
    seconds, value = [], None
    for _ in range(runs):
        start = time.perf_counter()
        value = call()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), value


def run_tool(argv: list[str]) -> None:
    """Run a command line, failing loudly with its stderr."""
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(argv)} exited {done.returncode}: {done.stderr.strip()}")


def as_rgb(pixels: NDArray[np.uint8], source: Path) -> NDArray[np.uint8]:
    """kmquant's decoded pixels as (H, W, 3): grey repeated, an all-opaque alpha dropped."""
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    if pixels.shape[2] == 4:
        if not (pixels[:, :, 3] == 255).all():
            raise SystemExit(f"{source}: output has transparent pixels")
        return np.ascontiguousarray(pixels[:, :, :3])
    return pixels


def index_colours(rgb: NDArray[np.uint8]) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Palette (unique colours) and indices of an (H, W, 3) image of at most 256 colours."""
    height, width, _ = rgb.shape
    packed = (rgb[:, :, 0].astype(np.uint32) << 16) | (rgb[:, :, 1].astype(np.uint32) << 8) \
        | rgb[:, :, 2]
    colours, inverse = np.unique(packed.ravel(), return_inverse=True)
    if colours.size > 256:
        raise SystemExit(f"a tool wrote {colours.size} colours, more than a palette holds")
    palette = np.stack([(colours >> s) & 255 for s in (16, 8, 0)], axis=1).astype(np.uint8)
    return palette, inverse.astype(np.uint8).reshape(height, width)


def score(part: str, method: Method, image: str, pixels: NDArray[np.uint8], k: int,
          seconds: float, runs: int, palette: NDArray[np.uint8], indices: NDArray[np.uint8],
          own_bytes: int) -> Row:
    """PSNR and common-encoder bytes of a result (untimed), as a CSV row."""
    ordered, reindexed = order_palette(palette, indices)
    height, width, _ = pixels.shape
    return Row(
        part=part, method=method.name, image=image, width=width, height=height, k=k,
        timing=method.timing, seconds=seconds, runs=runs,
        psnr_db=psnr(pixels, ordered[reindexed]), own_bytes=own_bytes,
        common_bytes=len(encode_png(ordered, reindexed)),
        colors_used=int(np.unique(ordered, axis=0).shape[0]),
    )


def measure(part: str, method: Method, image: str, path: Path, pixels: NDArray[np.uint8],
            k: int, runs: int, tmp: Path) -> Row:
    """Time one method on one image at one K; score its result."""
    if method.run is not None:
        seconds, result = median_seconds(lambda: method.run(pixels, k), runs)
        return score(part, method, image, pixels, k, seconds, runs, result.palette,
                     result.indices, len(result.own_png()))
    dst = tmp / f"{image}.{method.name}.k{k}.png"
    argv = method.command(path, k, dst)
    seconds, _ = median_seconds(lambda: run_tool(argv), runs)
    palette, indices = index_colours(as_rgb(kmquant.load_image(dst).pixels, dst))
    own_bytes = dst.stat().st_size
    dst.unlink()
    return score(part, method, image, pixels, k, seconds, runs, palette, indices, own_bytes)


def warm_up(methods: list[Method], pixels: NDArray[np.uint8]) -> None:
    """One untimed run of kmquant and imagequant (warm-up)."""
    for method in methods:
        if method.name in ("kmquant", "imagequant"):
            start = time.perf_counter()
            method.run(pixels, 16)
            log(f"warm-up {method.name}: {time.perf_counter() - start:.2f} s")


def log_row(row: Row) -> None:
    """One progress line on stderr."""
    log(f"{row.method:20s} {row.image:18s} K={row.k:<3d} {row.seconds:8.3f} s "
        f"{row.psnr_db:6.2f} dB own {row.own_bytes / 1024:8.1f} KB "
        f"common {row.common_bytes / 1024:8.1f} KB {row.colors_used:3d} colours")


def run_images(args: argparse.Namespace, methods: list[Method], images: dict[str, Path],
               tmp: Path) -> list[Row]:
    """Part 1: every method on every image at every K."""
    rows: list[Row] = []
    for number, (name, path) in enumerate(images.items()):
        pixels = load_rgb(path)
        if number == 0:
            warm_up(methods, pixels)
        for k in args.k:
            for method in methods:
                if method.name == "sklearn-all-pixels" and \
                        pixels.shape[0] * pixels.shape[1] > args.sklearn_max_pixels:
                    continue
                runs = args.slow_repeat if method.slow else args.repeat
                rows.append(measure("kodak", method, name, path, pixels, k, runs, tmp))
                log_row(rows[-1])
    return rows


# --------------------------------------------------------------------------------------------
# Batch and large image


def kmquant_cli() -> list[str]:
    """The ``kmquant`` console script beside this Python, else ``python -m kmquant``."""
    script = Path(sys.executable).with_name("kmquant")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "kmquant"]


def batch_commands(files: list[str], k: int, out_dir: Path) -> dict[str, list[str]]:
    """The two batch command lines (run in the folder holding ``files``)."""
    return {
        "pngquant": [PNGQUANT, "--nofs", "--speed", "1", "--force", "--ext", "-pq.png", str(k),
                     *files],
        "kmquant": [*kmquant_cli(), "compress", *files, "-k", str(k), "-q", "--out-dir",
                    str(out_dir), "--force"],
    }


def show_command(argv: list[str], files: list[str], out_dir: Path) -> str:
    """A batch command line as the report shows it: ``*.png`` for the files, DIR, bare names."""
    shown: list[str] = []
    for arg in argv:
        if arg in files:
            if "*.png" not in shown:
                shown.append("*.png")
        else:
            shown.append("DIR" if arg == str(out_dir) else arg)
    shown[0] = Path(shown[0]).name
    return " ".join(shown)


def time_batch(argv: list[str], cwd: Path, runs: int) -> float:
    """Median wall seconds of ``runs`` runs of one command line in ``cwd``."""
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
        seconds.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{shlex.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return statistics.median(seconds)


def run_batch(images: dict[str, Path], k: int, runs: int, tmp: Path) -> list[BatchRow]:
    """Part 2: all images through each CLI in one process; one untimed warm-up run first."""
    folder = tmp / "batch"
    folder.mkdir()
    files = []
    for name, path in images.items():
        shutil.copyfile(path, folder / f"{name}.png")
        files.append(f"{name}.png")
    out_dir = tmp / "batch-kmquant"
    out_dir.mkdir()
    rows = []
    for tool, argv in batch_commands(files, k, out_dir).items():
        time_batch(argv, folder, 1)  # warm-up: page cache, byte-code caches
        seconds = time_batch(argv, folder, runs)
        written = folder.glob("*-pq.png") if tool == "pngquant" else out_dir.glob("*.png")
        out_bytes = sum(p.stat().st_size for p in written)
        rows.append(BatchRow(tool, len(files), k, seconds, runs, out_bytes,
                             show_command(argv, files, out_dir)))
        log(f"batch {tool}: {len(files)} files, {seconds:.2f} s, {out_bytes / 1024:.1f} KB")
    return rows


def fit_tile(pixels: NDArray[np.uint8], height: int, width: int) -> NDArray[np.uint8]:
    """An image as a (height, width) tile: portrait turned landscape, cropped, edge-padded."""
    if (pixels.shape[0] > pixels.shape[1]) != (height > width):
        pixels = np.rot90(pixels)
    pixels = pixels[:height, :width]
    pad = ((0, height - pixels.shape[0]), (0, width - pixels.shape[1]), (0, 0))
    return np.pad(pixels, pad, mode="edge")


def mosaic(paths: list[Path], width: int, height: int, tile=(512, 768)) -> NDArray[np.uint8]:
    """A (height, width) mosaic of 768x512 tiles cycling through ``paths``, cropped at the edges."""
    rows_n, cols_n = -(-height // tile[0]), -(-width // tile[1])
    tiles = [fit_tile(load_rgb(p), *tile) for p in paths]
    grid = [np.concatenate([tiles[(r * cols_n + c) % len(tiles)] for c in range(cols_n)], axis=1)
            for r in range(rows_n)]
    return np.ascontiguousarray(np.concatenate(grid, axis=0)[:height, :width])


def run_large(args: argparse.Namespace, methods: list[Method], images: dict[str, Path],
              tmp: Path) -> tuple[list[Row], dict[str, float]]:
    """Part 3: kmquant, pngquant and imagequant on the 12 MP mosaic at ``--large-k``.

    Also returns kmquant's stage timings (histogram, seed, refine, remap) of one extra run.
    """
    width, height = LARGE_SIZE
    pixels = mosaic(list(images.values()), width, height)
    path = tmp / f"{LARGE_NAME}.png"
    Image.fromarray(pixels).save(path)
    log(f"large: wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    warm_up(methods, pixels[:512, :768])
    rows = []
    for method in methods:
        if method.name in ("kmquant", "pngquant", "imagequant"):
            rows.append(measure("large", method, LARGE_NAME, path, pixels, args.large_k,
                                args.repeat, tmp))
            log_row(rows[-1])
    stages = {}
    if any(m.name == "kmquant" for m in methods):
        stages = dict(kmquant.quantize(pixels, args.large_k, seed=SEED).timings)
    return rows, stages


# --------------------------------------------------------------------------------------------
# Reporting


def write_csv(rows: list[Row], path: Path) -> None:
    """One row per part x image x K x method."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_FIELDS)
        for r in rows:
            writer.writerow([r.part, r.method, r.image, r.width, r.height, r.k, r.timing,
                             f"{r.seconds:.6f}", r.runs, f"{r.psnr_db:.4f}", r.own_bytes,
                             r.common_bytes, r.colors_used])


def aggregate(rows: list[Row], k: int, order: list[str]) -> list[dict]:
    """Per method at K: images, mean PSNR, mean own/common bytes, median seconds."""
    out = []
    anchor = {r.image: r.seconds for r in rows if r.k == k and r.method == TIME_ANCHOR}
    for name in order:
        group = [r for r in rows if r.k == k and r.method == name]
        if group:
            ratios = [r.seconds / anchor[r.image] for r in group if anchor.get(r.image)]
            out.append({
                "method": name, "k": k, "images": len(group), "timing": group[0].timing,
                "psnr": statistics.mean(r.psnr_db for r in group),
                "own": statistics.mean(r.own_bytes for r in group),
                "common": statistics.mean(r.common_bytes for r in group),
                "seconds": statistics.median(r.seconds for r in group),
                "ratio": statistics.median(ratios) if ratios else None,
            })
    return out


def k_table(summary: list[dict]) -> str:
    """Markdown table for one K, with the PSNR difference to the best reference."""
    refs = [s["psnr"] for s in summary if s["method"] in REFERENCES]
    best = max(refs) if refs else None
    lines = [
        "| method | images | mean PSNR (dB) | Δ PSNR vs best of pngquant/sklearn (dB) "
        f"| mean own-encoder KB | mean common-encoder KB | median s | time ÷ {TIME_ANCHOR} "
        "| timed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in summary:
        delta = f"{s['psnr'] - best:+.2f}" if best is not None else "-"
        ratio = f"{s['ratio']:.2f}" if s["ratio"] is not None else "-"
        lines.append(f"| {s['method']} | {s['images']} | {s['psnr']:.2f} | {delta} "
                     f"| {s['own'] / 1024:.1f} | {s['common'] / 1024:.1f} | {s['seconds']:.3f} "
                     f"| {ratio} | {s['timing']} |")
    return "\n".join(lines)


def batch_table(rows: list[BatchRow]) -> str:
    """Markdown table of the batch runs."""
    lines = ["| tool | files | K | median wall s | s per file | output KB | command |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r.tool} | {r.files} | {r.k} | {r.seconds:.2f} | "
                     f"{r.seconds / r.files:.3f} | {r.out_bytes / 1024:.1f} | `{r.command}` |")
    return "\n".join(lines)


def large_table(rows: list[Row], stages: dict[str, float]) -> str:
    """Markdown table of the 12 MP results, with kmquant's stage times."""
    lines = ["| method | K | PSNR (dB) | own-encoder KB | common-encoder KB | median s | timed |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r.method} | {r.k} | {r.psnr_db:.2f} | {r.own_bytes / 1024:.1f} "
                     f"| {r.common_bytes / 1024:.1f} | {r.seconds:.3f} | {r.timing} |")
    if stages:
        lines += ["", "kmquant stages (one extra run): " + ", ".join(
            f"{stage} {seconds:.3f} s" for stage, seconds in stages.items())]
    return "\n".join(lines)


def tool_output(argv: list[str]) -> str:
    """First line of a tool's output, or 'absent'."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "absent"
    return ((done.stdout or done.stderr).strip().splitlines() or ["?"])[0]


def versions() -> str:
    """Versions of every tool in the comparison (a missing one reads 'absent')."""
    import sklearn

    try:
        import imagequant
    except ImportError:  # the bench extra is not installed: --skip imagequant still works
        liq_text = "absent"
    else:
        liq = imagequant.lib.liq_version()
        liq_text = (f"{importlib.metadata.version('imagequant')} (libimagequant "
                    f"{liq // 10000}.{liq // 100 % 100}.{liq % 100})")
    program = imagemagick_program()
    magick = tool_output([*program, "-version"]) if program else "absent"
    pillow_liq = features.version("libimagequant") if features.check_feature("libimagequant") \
        else "no"
    return (
        f"kmquant {kmquant.__version__}; pngquant {tool_output([PNGQUANT, '--version'])}; "
        f"imagequant {liq_text}; Pillow {Image.__version__} "
        f"(libimagequant: {pillow_liq}); scikit-learn {sklearn.__version__}; "
        f"ImageMagick: {magick}; Python {platform.python_version()}, numpy {np.__version__}"
    )


def header(command: str, args: argparse.Namespace, images: dict[str, Path]) -> str:
    """Markdown header: machine, versions, date, command line and method notes."""
    return "\n".join([
        "# kmquant vs pngquant, libimagequant, Pillow, scikit-learn, ImageMagick",
        "",
        f"- Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- Machine: {platform.platform()}; {os.cpu_count()} CPUs; {cpu_model()}",
        f"- Versions: {versions()}",
        f"- Command: `{command}`",
        f"- Images: {len(images)} ({', '.join(images)}) from "
        f"{next(iter(images.values())).parent}",
        "- No dithering anywhere. PSNR (RGB) against the decoded original.",
        "- Own-encoder bytes: the PNG the tool writes (pngquant's and ImageMagick's output files, "
        "kmquant's `Result.to_png()`; imagequant, Pillow and scikit-learn results saved by Pillow "
        "with `optimize=True`). Common-encoder bytes: every palette + indices through kmquant's "
        "`order_palette` + `encode_png`.",
        f"- Timing: in-process methods: the quantizer call on decoded pixels (quantization + "
        f"mapping, no PNG encoding), median of {args.repeat} run(s) ({args.slow_repeat} for "
        f"sklearn-all-pixels, run only up to {args.sklearn_max_pixels:,} pixels); kmquant and "
        "imagequant warmed up once, untimed. Subprocess methods (pngquant, ImageMagick): wall "
        "time of the command, so it includes process start, PNG decoding and encoding.",
        "- imagequant: `quantize_raw_rgba_bytes` (what `quantize_pil_image` wraps, without its "
        "pure-Python pixel conversion); the bindings leave libimagequant at its default speed (4), "
        "pngquant runs at `--speed 1`.",
        "- Aggregation per K and method over images: mean PSNR, mean bytes, median seconds; "
        "Δ PSNR = method's mean PSNR − the higher of pngquant's and sklearn-all-pixels' mean "
        f"PSNR; time ÷ {TIME_ANCHOR}: the median over images of the method's seconds over "
        f"{TIME_ANCHOR}'s on the same image (steadier than a ratio of medians on a shared "
        "machine).",
    ])


def report(command: str, args: argparse.Namespace, images: dict[str, Path], rows: list[Row],
           order: list[str], batch: list[BatchRow], large: list[Row],
           stages: dict[str, float]) -> str:
    """The whole markdown report."""
    parts = [header(command, args, images)]
    for k in args.k:
        parts.append(f"## K = {k}\n\n" + k_table(aggregate(rows, k, order)))
    if batch:
        parts.append("## Batch: all images through the command-line tools, one process each\n\n"
                     "Wall time, median of " f"{batch[0].runs} run(s) after one untimed warm-up "
                     "run. kmquant runs with -q, which skips the quality measurements of its "
                     "report.\n\n" + batch_table(batch))
    if large:
        w, h = LARGE_SIZE
        parts.append(f"## Large image: {w}×{h} ({w * h / 1e6:.1f} MP) mosaic of the images\n\n"
                     + large_table(large, stages))
    return "\n\n".join(parts) + "\n"


def plot(rows: list[Row], order: list[str], ks: list[int], path: Path) -> None:
    """Mean PSNR vs mean bytes per method and K (solid: own encoder, dashed: common encoder)."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(9, 6), layout="constrained")
    ax = fig.add_subplot()
    colours = [f"C{i}" for i in range(10)]
    for i, name in enumerate(order):
        summary = [s for k in ks for s in aggregate(rows, k, [name])]
        if not summary:
            continue
        colour = colours[i % len(colours)]
        psnrs = [s["psnr"] for s in summary]
        ax.plot([s["own"] / 1024 for s in summary], psnrs, "o-", color=colour, label=name)
        ax.plot([s["common"] / 1024 for s in summary], psnrs, "o--", color=colour,
                markerfacecolor="none", alpha=0.6)
        if name == "kmquant":
            for s in summary:
                ax.annotate(f"K={s['k']}", (s["own"] / 1024, s["psnr"]), textcoords="offset points",
                            xytext=(6, -10), fontsize=8)
    ax.set_xscale("log")
    for axis_format in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
        axis_format(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_xlabel("mean PNG size (KB, log scale)")
    ax.set_ylabel("mean PSNR (dB)")
    ax.set_title("Colour quantizers on Kodak, no dithering")
    ax.grid(True, which="both", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="grey", ls="-", marker="o"),
                Line2D([], [], color="grey", ls="--", marker="o", markerfacecolor="none")]
    labels += ["own encoder", "common encoder"]
    ax.legend(handles, labels, fontsize=8)
    fig.savefig(path, dpi=120)


# --------------------------------------------------------------------------------------------
# Command line


def resolve_images(data: Path | None, names: list[str] | None) -> dict[str, Path]:
    """Image name -> path: ``DATA/<name>.png`` (default all ``kodim*.png``), else the sample."""
    if data is None:
        if not DEFAULT_DATA.is_dir():
            log(f"{DEFAULT_DATA}: absent, using the packaged sample")
            return {"sample": kmquant.sample_path()}
        data = DEFAULT_DATA
    if names is None:
        paths = {p.stem: p for p in sorted(data.glob("kodim*.png"))}
    else:
        paths = {n: data / (n if n.endswith(".png") else f"{n}.png") for n in names}
        paths = {Path(n).stem: p for n, p in paths.items()}
    if not paths:
        raise SystemExit(f"{data}: no kodim*.png images")
    for path in paths.values():
        if not path.is_file():
            raise SystemExit(f"{path}: no such image")
    return paths


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None,
                        help=f"folder of images (default {DEFAULT_DATA} if it exists, else the "
                             "packaged sample)")
    parser.add_argument("--images", type=comma_list, default=None,
                        help="comma list of image names (default all kodim*.png in --data)")
    parser.add_argument("--k", type=comma_ints, default=[16, 64, 256], help="comma list of K")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--slow-repeat", type=int, default=1,
                        help="timed runs for sklearn-all-pixels")
    parser.add_argument("--sklearn-max-pixels", type=lambda s: int(float(s)), default=10**6,
                        help="run sklearn-all-pixels only on images of at most this many pixels")
    parser.add_argument("--batch-k", type=int, default=64, help="K of the batch runs")
    parser.add_argument("--large-k", type=int, default=256, help="K on the 12 MP mosaic")
    parser.add_argument("--skip", type=comma_list, default=[],
                        help=f"comma list of methods ({', '.join(method_names())}; a prefix such "
                             f"as 'sklearn' or 'pillow' works) and parts ({', '.join(PARTS)})")
    parser.add_argument("--no-large", action="store_true", help="same as --skip large")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.slow_repeat < 1:
        parser.error("--repeat and --slow-repeat must be at least 1")
    if not (2 <= args.batch_k <= 256 and 2 <= args.large_k <= 256):
        parser.error("--batch-k and --large-k must be from 2 to 256")
    known = (*method_names(), *PARTS)
    unknown = [s for s in args.skip if not any(is_skipped(n, [s]) for n in known)]
    if unknown:
        parser.error(f"--skip: unknown {', '.join(unknown)}; choose from {', '.join(known)}")
    if args.no_large:
        args.skip.append("large")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, write OUT/pngquant.{csv,md,png}, print the markdown."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = shlex.join([Path(sys.executable).name, sys.argv[0], *argv])
    if not os.access(PNGQUANT, os.X_OK):
        raise SystemExit(f"{PNGQUANT}: not installed (apt-get install pngquant)")
    images = resolve_images(args.data, args.images)
    methods = [m for m in all_methods() if not is_skipped(m.name, args.skip)]
    order = [m.name for m in methods]
    with tempfile.TemporaryDirectory(prefix="bench_pngquant-") as name:
        tmp = Path(name)
        rows = run_images(args, methods, images, tmp)
        batch = [] if is_skipped("batch", args.skip) else \
            run_batch(images, args.batch_k, args.repeat, tmp)
        large, stages = ([], {}) if is_skipped("large", args.skip) else \
            run_large(args, methods, images, tmp)

    markdown = report(command, args, images, rows, order, batch, large, stages)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(rows + large, args.out / "pngquant.csv")
    (args.out / "pngquant.md").write_text(markdown)
    plot(rows, order, args.k, args.out / "pngquant.png")
    print(markdown)
    log(f"wrote {args.out / 'pngquant.csv'}, {args.out / 'pngquant.md'}, "
        f"{args.out / 'pngquant.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
