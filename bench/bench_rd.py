"""Rate–distortion of kmquant against pngquant: bytes vs PSNR and SSIMULACRA2, with BD-rates.

Every **mode** compresses every image at every K into a PNG. For each (image, K, mode) we record
the bytes of that PNG, the PSNR (``kmquant.metrics.psnr``) and the SSIMULACRA2 score (the
``ssimulacra2`` package, higher is better) of the PNG *decoded with Pillow* against the original
RGB pixels, and the seconds the compression took.

Modes
-----
pngquant-nofs, pngquant
    ``pngquant [--nofs] --force --output OUT K IN`` (subprocess, default speed); ``pngquant`` uses
    its default dithering. Bytes: the file pngquant wrote. Seconds: the whole process (start-up,
    decoding IN, quantizing, writing OUT).
kmquant-none, kmquant-fs and any ``--kmquant NAME=DEF``
    In process, ``res = kmquant.quantize(pixels, K, seed=0, **options)`` on the decoded pixels;
    bytes = ``len(res.to_png())``; seconds: quantize + ``to_png``. ``DEF`` is
    ``key:value;key:value`` (values parse as int, then float, else str: ``rdo:0.5;dither:fs;
    speed:3``) and is passed on to ``kmquant.quantize`` untouched, but for ``format:webp``:
    the bytes are then those of the lossless WebP kmquant writes with ``--format webp``.
    Built in: ``kmquant-none`` = ``dither:none``, ``kmquant-fs`` = ``dither:fs``.

The jobs run in a pool of ``--jobs`` processes (the metrics dominate), so the seconds include
contention with the other workers: compare them within a run, not across machines.

BD-rate
-------
:func:`bd_rate` is the Bjøntegaard delta rate: the mean relative change in bytes of curve B
against curve A at equal quality, in percent (negative: B is smaller). log(bytes) is interpolated
as a function of quality with PCHIP (``scipy.interpolate.PchipInterpolator``) on each curve,
integrated over the overlap of the two quality ranges, and ``(exp(mean difference) - 1) * 100``
is returned. The K values of a mode form one curve per image. It is computed **per image**, and
the tables report the **mean over images** (with the smallest and largest).

Non-monotonic curves (SSIMULACRA2 can wobble with K): only the efficient points of a curve are
used. Points are ordered by bytes; a point is kept only if its quality is strictly higher than
that of every smaller point kept, so a point that costs more bytes without raising quality is
dropped and the smaller one stays. Non-finite qualities (PSNR of a lossless result) are dropped
too. The result is NaN (shown n/a) when a curve keeps fewer than 2 points or the quality ranges
do not overlap.

Reuse
-----
Rows go to ``OUT/rd.csv`` as they finish (append + flush), so an interrupted run keeps its work.
With ``--reuse`` (default), rows already there with the same image, K, mode name *and* mode
definition (the ``definition`` column: tool, version and options) are not recomputed: rerunning
with one new ``--kmquant`` mode only computes that mode. ``--no-reuse`` recomputes everything
selected. Images are keyed by name only: use another ``--out`` for another data folder, and
``--no-reuse`` after changing kmquant's code without changing its version.

Usage::

    python bench/bench_rd.py                               # every Kodak image, K=8..256, all modes
    python bench/bench_rd.py --images kodim23,kodim05 --k 8,32,128 --out /tmp/rdtest
    python bench/bench_rd.py --kmquant "kmquant-s2=swaps:2" --compare kmquant-s2:kmquant-none \\
        --target "kmquant-s2:kmquant-none:psnr<=0"

``--data`` defaults to ``../shared/data/kodak`` (relative to the repo root) when that folder
exists, else the packaged sample image (``sample``); ``--images`` defaults to every ``*.png`` in
the folder. ``--compare B:A,...`` chooses the BD-rate pairs (B against A). ``--target
B:A:METRIC<=PCT`` (repeatable; METRIC is psnr or ssimulacra2) adds a pass/fail line; the exit
status is 1 when a target fails. Writes ``OUT/rd.csv``, ``OUT/rd.md`` (header, BD-rate table,
table of means per mode and K) and ``OUT/rd.png`` (the RD curves), and prints the markdown.
``OUT`` defaults to ``bench/results``. Without pngquant on PATH its modes are skipped.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import importlib.metadata
import io
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import PIL
import scipy
from numpy.typing import ArrayLike, NDArray
from PIL import Image
from scipy.interpolate import PchipInterpolator

import kmquant
from kmquant.metrics import psnr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import (  # noqa: E402  (the bench folder is not a package)
    DEFAULT_DATA,
    DEFAULT_OUT,
    comma_ints,
    comma_list,
    cpu_model,
    load_rgb,
    resolve_images,
)
from bench_dither import perceptual_metrics  # noqa: E402

DEFAULT_K = [8, 16, 32, 64, 128, 256]
SAMPLE_NAME = "sample"
SEED = 0
PNGQUANT_MODES = {"pngquant-nofs": ("--nofs",), "pngquant": ()}
BUILTIN_KMQUANT = {"kmquant-none": "dither:none", "kmquant-fs": "dither:fs"}
DEFAULT_COMPARE = "kmquant-none:pngquant-nofs,kmquant-none:pngquant,kmquant-fs:pngquant"
CSV_FIELDS = ("image", "k", "mode", "definition", "bytes", "psnr_db", "ssimulacra2", "seconds")
#: --target / BD-rate metric name -> (Row attribute, label)
QUALITIES = {"psnr": ("psnr_db", "PSNR"), "ssimulacra2": ("ssimulacra2", "SSIMULACRA2")}
PNGQUANT = shutil.which("pngquant")  # None: the pngquant modes are skipped
MODE_NAME = re.compile(r"[A-Za-z0-9_.+-]+")
TARGET = re.compile(r"(?P<b>[^:]+):(?P<a>[^:]+):(?P<metric>\w+)\s*<=\s*(?P<limit>[-+0-9.eE]+)")

Metric = Callable[[NDArray[np.uint8], NDArray[np.uint8]], float]


@dataclass(frozen=True)
class Mode:
    """A way to make a PNG at K colours: a pngquant command line or a kmquant option set."""

    name: str
    kind: str  # "pngquant" or "kmquant"
    definition: str  # tool, version and options: the reuse key beside (image, K, name)
    flags: tuple[str, ...] = ()  # pngquant
    options: tuple[tuple[str, Any], ...] = ()  # kmquant


@dataclass(frozen=True)
class Job:
    """One image at one K through one mode."""

    image: str
    path: Path
    k: int
    mode: Mode
    ssimulacra2: bool  # compute the score (False when the package does not run)


@dataclass(frozen=True)
class Row:
    """One line of ``rd.csv``."""

    image: str
    k: int
    mode: str
    definition: str
    bytes: int
    psnr_db: float
    ssimulacra2: float  # nan when the metric is unavailable
    seconds: float

    def key(self) -> tuple[str, int, str]:
        return (self.image, self.k, self.mode)


@dataclass(frozen=True)
class Target:
    """``B:A:METRIC<=LIMIT``: the mean BD-rate of B against A must not exceed LIMIT percent."""

    b: str
    a: str
    metric: str
    limit: float


@dataclass
class Outcome:
    """What a run did: rows computed and reused, the rows of the report, the failed targets."""

    computed: int = 0
    reused: int = 0
    rows: list[Row] = field(default_factory=list)
    failed_targets: int = 0


# --------------------------------------------------------------------------------------------
# BD-rate


def rd_curve(
    rates: ArrayLike, qualities: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The efficient points of a rate–quality curve, by increasing rate and quality.

    Points are ordered by rate (equal rates: higher quality first); a point is kept only if its
    quality is strictly higher than that of every cheaper point kept. A point that costs more
    without raising quality is dropped, the smaller-rate one stays. Points with a non-finite
    value or a rate <= 0 are dropped.

    Parameters
    ----------
    rates, qualities : (N,) array_like of float

    Returns
    -------
    rates, qualities : (M,) float64 ndarray, M <= N, both strictly increasing
    """
    r = np.asarray(rates, dtype=np.float64).ravel()
    q = np.asarray(qualities, dtype=np.float64).ravel()
    if r.shape != q.shape:
        raise ValueError(f"{r.size} rates but {q.size} qualities; pass one quality per rate")
    ok = np.isfinite(r) & np.isfinite(q) & (r > 0)
    r, q = r[ok], q[ok]
    kept: list[int] = []
    for i in np.lexsort((-q, r)):
        if not kept or q[i] > q[kept[-1]]:
            kept.append(int(i))
    return r[kept], q[kept]


def bd_rate(rate_a: ArrayLike, quality_a: ArrayLike, rate_b: ArrayLike,
            quality_b: ArrayLike) -> float:
    """Bjøntegaard delta rate of curve B against curve A, in percent (negative: B smaller).

    Each curve keeps its efficient points (:func:`rd_curve`); log(rate) is interpolated as a
    function of quality with PCHIP and integrated over the overlap of the two quality ranges;
    the result is ``(exp(mean log difference) - 1) * 100``.

    Parameters
    ----------
    rate_a, quality_a : (N,) array_like of float
        Curve A (the reference): bytes and quality (higher is better) of each point.
    rate_b, quality_b : (M,) array_like of float
        Curve B.

    Returns
    -------
    float
        NaN when a curve keeps fewer than 2 points or the quality ranges do not overlap.
    """
    ra, qa = rd_curve(rate_a, quality_a)
    rb, qb = rd_curve(rate_b, quality_b)
    if qa.size < 2 or qb.size < 2:
        return math.nan
    low, high = max(qa[0], qb[0]), min(qa[-1], qb[-1])
    if not high > low:
        return math.nan
    log_a = PchipInterpolator(qa, np.log(ra)).integrate(low, high)
    log_b = PchipInterpolator(qb, np.log(rb)).integrate(low, high)
    return float(math.expm1((log_b - log_a) / (high - low)) * 100.0)


def image_bd_rates(rows: list[Row], b: str, a: str, quality: str) -> dict[str, float]:
    """Per image: BD-rate of mode ``b`` against mode ``a`` (the K values of a mode: one curve)."""
    out = {}
    for image in dict.fromkeys(r.image for r in rows):
        curves = []
        for mode in (a, b):
            points = sorted((r.k, r.bytes, getattr(r, quality)) for r in rows
                            if r.image == image and r.mode == mode)
            curves.append(([p[1] for p in points], [p[2] for p in points]))
        (rate_a, q_a), (rate_b, q_b) = curves
        out[image] = bd_rate(rate_a, q_a, rate_b, q_b)
    return out


def mean_bd_rate(rows: list[Row], b: str, a: str, quality: str) -> tuple[float, list[float]]:
    """Mean over images of the finite per-image BD-rates (NaN if none), and those values."""
    values = [v for v in image_bd_rates(rows, b, a, quality).values() if math.isfinite(v)]
    return (statistics.mean(values) if values else math.nan), values


# --------------------------------------------------------------------------------------------
# Modes


def parse_value(text: str) -> int | float | str:
    """``"3"`` -> 3, ``"0.5"`` -> 0.5, anything else stays a string."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def parse_definition(text: str) -> dict[str, int | float | str]:
    """``"dither:fs;swaps:2"`` -> ``{"dither": "fs", "swaps": 2}`` (empty text: no options)."""
    options: dict[str, int | float | str] = {}
    for item in (part.strip() for part in text.split(";")):
        if not item:
            continue
        key, sep, value = (s.strip() for s in item.partition(":"))
        if not sep or not key.isidentifier():
            raise ValueError(f"{item!r} is not key:value; write e.g. dither:fs;swaps:2")
        if key == "n_colors":
            raise ValueError("n_colors is set by --k; leave it out of the definition")
        options[key] = parse_value(value)
    return options


def kmquant_mode(name: str, text: str) -> Mode:
    """A kmquant mode from ``key:value;...``; the definition carries kmquant's version."""
    options = parse_definition(text)
    canonical = ";".join(f"{key}:{value}" for key, value in options.items())
    return Mode(name, "kmquant", f"kmquant {kmquant.__version__} {canonical}".strip(),
                options=tuple(options.items()))


def pngquant_version(program: str) -> str:
    """``pngquant --version``'s first word, or 'absent'."""
    try:
        done = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "absent"
    return ((done.stdout or done.stderr).split() or ["?"])[0]


def defined_modes(kmquant_defs: list[tuple[str, str]], pngquant: str | None) -> dict[str, Mode]:
    """Every mode by name: pngquant's (when present), built-in kmquant ones, ``--kmquant`` ones."""
    modes = {}
    if pngquant is not None:
        version = pngquant_version(pngquant)
        for name, flags in PNGQUANT_MODES.items():
            modes[name] = Mode(name, "pngquant", " ".join(["pngquant", version, *flags]), flags)
    for name, text in [*BUILTIN_KMQUANT.items(), *kmquant_defs]:
        modes[name] = kmquant_mode(name, text)
    return modes


def select_modes(requested: list[str] | None, modes: dict[str, Mode], pngquant: str | None,
                 ) -> list[Mode]:
    """The modes of ``--modes`` (default: all defined), pngquant's skipped when it is absent."""
    known = [*PNGQUANT_MODES, *modes]
    names = list(dict.fromkeys(requested if requested is not None else known))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"--modes: unknown {', '.join(unknown)}; choose from "
                         f"{', '.join(dict.fromkeys(known))} or define one with --kmquant NAME=DEF")
    if pngquant is None and any(n in PNGQUANT_MODES for n in names):
        log("pngquant: not on PATH, its modes are skipped (install pngquant to compare with it)")
    return [modes[n] for n in names if n in modes]


def check_kmquant_modes(modes: list[Mode]) -> None:
    """Run every kmquant mode once on a tiny image, so that a bad option fails before the run."""
    pixels = np.random.default_rng(SEED).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    for mode in modes:
        if mode.kind == "kmquant":
            try:
                run_kmquant(dict(mode.options), pixels, 4)
            except Exception as exc:  # noqa: BLE001 - any failure is the definition's fault
                raise SystemExit(f"--kmquant {mode.name}: {exc}") from None


# --------------------------------------------------------------------------------------------
# Measuring (runs in the worker processes)


@lru_cache(maxsize=4)
def cached_rgb(path: Path) -> NDArray[np.uint8]:
    """(H, W, 3) uint8 pixels of an image, decoded once per worker process."""
    return load_rgb(path)


@lru_cache(maxsize=1)
def ssimulacra2_score() -> Metric:
    """The SSIMULACRA2 metric of bench_dither (made once per worker process)."""
    from bench_dither import ssimulacra2_metric

    return ssimulacra2_metric()


def run_pngquant(flags: tuple[str, ...], path: Path, k: int) -> tuple[bytes, float]:
    """The PNG ``pngquant FLAGS --force --output OUT K IN`` writes, and the process's seconds."""
    with tempfile.TemporaryDirectory(prefix="bench_rd-") as folder:
        out = Path(folder) / "out.png"
        argv = [PNGQUANT or "pngquant", *flags, "--force", "--output", str(out), str(k), str(path)]
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"pngquant exited {done.returncode}: {done.stderr.strip()}")
        return out.read_bytes(), seconds


def run_kmquant(options: dict[str, Any], pixels: NDArray[np.uint8], k: int) -> tuple[bytes, float]:
    """``kmquant.quantize(pixels, K, seed=0, **options).to_png()`` and its seconds.

    The option ``format:webp`` is the bench's own: the same result written as kmquant writes
    ``--format webp`` (lossless WebP, :func:`kmquant.encode.encode_as`) instead of the PNG.
    """
    options = dict(options)
    fmt = str(options.pop("format", "png")).lower()
    start = time.perf_counter()
    result = kmquant.quantize(pixels, k, **{"seed": SEED, **options})
    if fmt == "webp":
        from kmquant.encode import encode_as

        data = encode_as(result.to_array(), "WEBP")
    elif fmt == "png":
        data = result.to_png()
    else:
        raise ValueError(f"format must be png or webp, got {fmt!r}")
    return data, time.perf_counter() - start


def decode_rgb(data: bytes) -> NDArray[np.uint8]:
    """(H, W, 3) uint8 pixels of PNG bytes, decoded by Pillow."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def run_job(job: Job) -> Row:
    """Compress, decode and score one (image, K, mode); a failure names the job."""
    try:
        return measure(job)
    except Exception as exc:  # noqa: BLE001 - reported as one line naming the job
        raise RuntimeError(f"{job.image} K={job.k} {job.mode.name}: {type(exc).__name__}: "
                           f"{exc}") from None


def measure(job: Job) -> Row:
    """Compress, decode and score one (image, K, mode)."""
    pixels = cached_rgb(job.path)
    if job.mode.kind == "pngquant":
        data, seconds = run_pngquant(job.mode.flags, job.path, job.k)
    else:
        data, seconds = run_kmquant(dict(job.mode.options), pixels, job.k)
    decoded = decode_rgb(data)
    if decoded.shape != pixels.shape:
        raise RuntimeError(f"decoded {decoded.shape}, expected {pixels.shape}")
    return Row(
        image=job.image, k=job.k, mode=job.mode.name, definition=job.mode.definition,
        bytes=len(data), psnr_db=psnr(pixels, decoded),
        ssimulacra2=ssimulacra2_score()(pixels, decoded) if job.ssimulacra2 else math.nan,
        seconds=seconds,
    )


# --------------------------------------------------------------------------------------------
# The CSV


def read_rows(path: Path) -> list[Row]:
    """The rows of an existing ``rd.csv`` (none if it does not exist)."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != CSV_FIELDS:
            raise SystemExit(f"{path}: not a bench_rd CSV (columns {reader.fieldnames}); delete it "
                             "or pass another --out")
        try:
            return [Row(r["image"], int(r["k"]), r["mode"], r["definition"], int(r["bytes"]),
                        float(r["psnr_db"]), float(r["ssimulacra2"]), float(r["seconds"]))
                    for r in reader]
        except (TypeError, ValueError) as exc:
            raise SystemExit(f"{path}: unreadable row ({exc}); delete it or pass another "
                             "--out") from None


def csv_cells(row: Row) -> list[str]:
    """The CSV cells of a row."""
    return [row.image, str(row.k), row.mode, row.definition, str(row.bytes),
            f"{row.psnr_db:.4f}", f"{row.ssimulacra2:.4f}", f"{row.seconds:.4f}"]


def rewrite_csv(path: Path, rows: Iterable[Row]) -> None:
    """Replace ``rd.csv`` atomically by a header and ``rows``."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_FIELDS)
        writer.writerows(csv_cells(r) for r in rows)
    os.replace(temporary, path)


def plan(jobs: list[Job], old: list[Row], reuse: bool) -> tuple[dict[tuple[str, int, str], Row],
                                                                 list[Job], list[Row]]:
    """(reused rows by key, jobs to run, old rows to keep in the CSV).

    A job is reused when an old row has its image, K, mode name and definition (and a score when
    the score is wanted). The CSV keeps one row per key: the old rows of the jobs to run go.
    """
    latest = {r.key(): r for r in old}
    reused, todo = {}, []
    for job in jobs:
        key = (job.image, job.k, job.mode.name)
        row = latest.get(key)
        if (reuse and row is not None and row.definition == job.mode.definition
                and (math.isfinite(row.ssimulacra2) or not job.ssimulacra2)):
            reused[key] = row
        else:
            todo.append(job)
    redo = {(j.image, j.k, j.mode.name) for j in todo}
    return reused, todo, [r for key, r in latest.items() if key not in redo]


def compute(todo: list[Job], csv_path: Path, workers: int) -> list[Row]:
    """Run the jobs (in ``workers`` processes when more than 1); append each row as it ends."""
    rows: list[Row] = []
    with csv_path.open("a", newline="") as handle:
        writer = csv.writer(handle)

        def record(row: Row) -> None:
            writer.writerow(csv_cells(row))
            handle.flush()
            rows.append(row)
            log(f"[{len(rows)}/{len(todo)}] {row.image:10s} K={row.k:<3d} {row.mode:16s} "
                f"{row.bytes / 1024:8.1f} KB {row.psnr_db:6.2f} dB SSIMULACRA2 "
                f"{row.ssimulacra2:6.2f} {row.seconds:7.3f} s")

        if workers <= 1 or len(todo) <= 1:
            for job in todo:
                record(run_job(job))
            return rows
        with ProcessPoolExecutor(max_workers=workers) as pool:
            pending: set[Future[Row]] = {pool.submit(run_job, job) for job in todo}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                errors = [f.exception() for f in done if f.exception() is not None]
                for future in done:
                    if future.exception() is None:
                        record(future.result())
                if errors:
                    for other in pending:
                        other.cancel()
                    raise errors[0]  # type: ignore[misc]
    return rows


# --------------------------------------------------------------------------------------------
# Reporting


def log(message: str) -> None:
    """A progress line on stderr."""
    print(message, file=sys.stderr, flush=True)


def _fmt(value: float, digits: int, suffix: str = "") -> str:
    return f"{value:+.{digits}f}{suffix}" if math.isfinite(value) else "n/a"


def _mean(values: list[float], digits: int) -> str:
    finite = [v for v in values if math.isfinite(v)]
    return f"{statistics.mean(finite):.{digits}f}" if finite else "-"


def bd_table(rows: list[Row], pairs: list[tuple[str, str]], n_images: int) -> str:
    """Markdown: per pair, the mean over images of per-image BD-rates at equal PSNR, SSIMULACRA2."""
    lines = [
        "| B vs A | BD-rate @ equal PSNR | images (min … max) | BD-rate @ equal SSIMULACRA2 "
        "| images (min … max) |",
        "|---|---:|---|---:|---|",
    ]
    for b, a in pairs:
        cells = [f"{b} vs {a}"]
        for quality in ("psnr_db", "ssimulacra2"):
            mean, values = mean_bd_rate(rows, b, a, quality)
            cells.append(_fmt(mean, 1, " %"))
            cells.append(f"{len(values)}/{n_images} ({min(values):+.1f} … {max(values):+.1f})"
                         if values else f"0/{n_images}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def means_table(rows: list[Row], modes: list[Mode]) -> str:
    """Markdown: per mode and K, means over images (median for seconds)."""
    lines = ["| mode | K | images | KB | PSNR (dB) | SSIMULACRA2 | s (median) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for mode in modes:
        for k in sorted({r.k for r in rows if r.mode == mode.name}):
            group = [r for r in rows if r.mode == mode.name and r.k == k]
            lines.append(
                f"| {mode.name} | {k} | {len(group)} "
                f"| {statistics.mean(r.bytes for r in group) / 1024:.1f} "
                f"| {_mean([r.psnr_db for r in group], 2)} "
                f"| {_mean([r.ssimulacra2 for r in group], 2)} "
                f"| {statistics.median(r.seconds for r in group):.3f} |"
            )
    return "\n".join(lines)


def target_lines(rows: list[Row], targets: list[Target]) -> tuple[str, int]:
    """Markdown list of the targets with pass/FAIL, and how many failed."""
    lines, failed = [], 0
    for t in targets:
        value, _ = mean_bd_rate(rows, t.b, t.a, QUALITIES[t.metric][0])
        ok = math.isfinite(value) and value <= t.limit
        failed += not ok
        lines.append(f"- {t.b} vs {t.a}, BD-rate @ equal {QUALITIES[t.metric][1]} <= "
                     f"{t.limit:g} %: {'pass' if ok else '**FAIL**'} ({_fmt(value, 1, ' %')})")
    return "\n".join(lines), failed


def header(command: str, images: dict[str, Path], modes: list[Mode], workers: int,
           metrics: list[str], outcome: Outcome) -> str:
    """Markdown header: machine, versions, date, command, modes and how things are measured."""
    try:
        ssim2_version = importlib.metadata.version("ssimulacra2")
    except importlib.metadata.PackageNotFoundError:
        ssim2_version = "absent"
    folders = sorted({str(p.parent) for p in images.values()})
    return "\n".join([
        "# kmquant rate–distortion benchmark",
        "",
        f"- Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- Machine: {platform.platform()}; {os.cpu_count()} CPUs; {cpu_model()}",
        f"- Versions: kmquant {kmquant.__version__}; pngquant "
        f"{pngquant_version(PNGQUANT) if PNGQUANT else 'absent'}; ssimulacra2 {ssim2_version}; "
        f"Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"Pillow {PIL.__version__}",
        f"- Command: `{command}`",
        f"- Images ({len(images)}, from {', '.join(folders)}): {', '.join(images)}",
        "- Modes: " + "; ".join(f"{m.name} = `{m.definition}`" for m in modes),
        f"- Per (image, K, mode): bytes of the PNG; PSNR and "
        f"{'SSIMULACRA2' if 'ssimulacra2' in metrics else 'no SSIMULACRA2 (not available)'} of "
        "that PNG decoded by Pillow against the original RGB. Seconds: pngquant's whole process; "
        "kmquant's `quantize` + `to_png` in process, on decoded pixels. "
        f"{workers} worker process(es) run at once, so times include their contention.",
        "- BD-rate (Bjøntegaard, PCHIP of log(bytes) against quality over the overlap of the "
        "quality ranges): bytes of B relative to A at equal quality, negative = B smaller. "
        "Computed per image over its K values, then the mean over images (images: how many had "
        "an overlap). Curves keep their efficient points only: by bytes, a point is kept when its "
        "quality is above every cheaper point's.",
        f"- Rows: {outcome.computed} computed, {outcome.reused} reused from an earlier run "
        "(same image, K, mode and definition).",
    ])


def plot(rows: list[Row], modes: list[Mode], path: Path) -> None:
    """Two panels, mean PSNR and mean SSIMULACRA2 against mean KB (log x); a marker per K."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, axes = plt.subplots(1, 2, figsize=(13, 5), constrained_layout=True)
    for ax, (quality, label) in zip(axes, QUALITIES.values()):
        for mode in modes:
            ks = sorted({r.k for r in rows if r.mode == mode.name})
            points = []
            for k in ks:
                group = [r for r in rows if r.mode == mode.name and r.k == k]
                scores = [getattr(r, quality) for r in group if math.isfinite(getattr(r, quality))]
                if scores:
                    points.append((k, statistics.mean(r.bytes for r in group) / 1024,
                                   statistics.mean(scores)))
            if not points:
                continue
            (line,) = ax.plot([p[1] for p in points], [p[2] for p in points], marker="o",
                              label=mode.name)
            for k, x, y in points:
                ax.annotate(str(k), (x, y), textcoords="offset points", xytext=(3, -9),
                            fontsize=7, color=line.get_color())
        ax.set_xscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:g}")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.set_xlabel("mean PNG size (KB, log scale)")
        ax.set_ylabel(f"mean {label}" + (" (dB)" if quality == "psnr_db" else ""))
        ax.set_title(f"{label} vs size (markers: K)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# Command line


def kmquant_arg(text: str) -> tuple[str, str]:
    """``NAME=DEF`` -> ``(NAME, DEF)``, checked."""
    name, sep, definition = text.partition("=")
    name = name.strip()
    if not sep or not MODE_NAME.fullmatch(name):
        raise argparse.ArgumentTypeError(
            f"{text!r}: write NAME=key:value;... with NAME of letters, digits, '_.+-'")
    try:
        parse_definition(definition)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{name}: {exc}") from None
    if name in PNGQUANT_MODES:
        raise argparse.ArgumentTypeError(f"{name} is a pngquant mode; choose another NAME")
    return name, definition


def pairs_arg(text: str) -> list[tuple[str, str]]:
    """``"B:A,D:C"`` -> ``[("B", "A"), ("D", "C")]``."""
    pairs = []
    for item in comma_list(text):
        b, sep, a = item.partition(":")
        if not sep or not b or not a or ":" in a:
            raise argparse.ArgumentTypeError(f"{item!r}: write B:A (B compared against A)")
        pairs.append((b.strip(), a.strip()))
    return pairs


def target_arg(text: str) -> Target:
    """``"B:A:psnr<=-5"`` -> Target."""
    match = TARGET.fullmatch(text.strip())
    if match is None or match["metric"] not in QUALITIES:
        raise argparse.ArgumentTypeError(
            f"{text!r}: write B:A:METRIC<=PERCENT with METRIC psnr or ssimulacra2")
    try:
        limit = float(match["limit"])
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: {match['limit']!r} is not a number") from None
    return Target(match["b"], match["a"], match["metric"], limit)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None,
                        help=f"folder of <name>.png images (default {DEFAULT_DATA} if it exists, "
                             "else the packaged sample)")
    parser.add_argument("--images", type=comma_list, default=None,
                        help=f"comma list of image names (default every *.png in the folder; "
                             f"'{SAMPLE_NAME}' is the packaged sample)")
    parser.add_argument("--k", type=comma_ints, default=DEFAULT_K, help="comma list of K")
    parser.add_argument("--modes", type=comma_list, default=None,
                        help="comma list of modes (default: pngquant-nofs, pngquant, "
                             "kmquant-none, kmquant-fs and every --kmquant)")
    parser.add_argument("--kmquant", type=kmquant_arg, action="append", default=[],
                        metavar="NAME=DEF",
                        help="a kmquant mode: options key:value;key:value for kmquant.quantize "
                             "(repeatable)")
    parser.add_argument("--compare", type=pairs_arg, default=pairs_arg(DEFAULT_COMPARE),
                        help=f"BD-rate pairs B:A, comma separated (default {DEFAULT_COMPARE})")
    parser.add_argument("--target", type=target_arg, action="append", default=[],
                        metavar="B:A:METRIC<=PCT",
                        help="pass/fail on a mean BD-rate (METRIC psnr or ssimulacra2; "
                             "repeatable); exit status 1 if one fails")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--reuse", action=argparse.BooleanOptionalAction, default=True,
                        help="keep rows of OUT/rd.csv with the same image, K, mode and "
                             "definition (default on)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    known = {*PNGQUANT_MODES, *BUILTIN_KMQUANT, *(name for name, _ in args.kmquant)}
    named = {n for b, a in args.compare for n in (b, a)} | {n for t in args.target
                                                          for n in (t.b, t.a)}
    unknown = sorted(named - known)
    if unknown:
        parser.error(f"--compare/--target: unknown mode {', '.join(unknown)}; choose from "
                     f"{', '.join(sorted(known))}")
    return args


def image_paths(data: Path | None, names: list[str] | None) -> dict[str, Path]:
    """Name -> path: ``--images`` from ``--data``, or every ``*.png`` there, or the sample."""
    if data is None and DEFAULT_DATA.is_dir():
        data = DEFAULT_DATA
    if names is None and data is not None:
        if not data.is_dir():
            raise SystemExit(f"{data}: no such folder; pass --data DIR")
        names = sorted(p.stem for p in data.glob("*.png"))
        if not names:
            raise SystemExit(f"{data}: no *.png images; pass --data DIR or --images NAMES")
    return resolve_images(data, names, (SAMPLE_NAME,))


def run(argv: list[str]) -> Outcome:
    """Measure what is missing, write OUT/rd.csv, rd.md and rd.png, print the markdown."""
    args = parse_args(argv)
    command = shlex.join([Path(sys.executable).name, sys.argv[0], *argv])
    images = image_paths(args.data, args.images)
    modes = select_modes(args.modes, defined_modes(args.kmquant, PNGQUANT), PNGQUANT)
    check_kmquant_modes(modes)
    metrics = list(perceptual_metrics(["ssimulacra2"]))
    jobs = [Job(name, path, k, mode, bool(metrics))
            for name, path in images.items() for k in args.k for mode in modes]

    args.out.mkdir(parents=True, exist_ok=True)
    csv_path = args.out / "rd.csv"
    reused, todo, kept = plan(jobs, read_rows(csv_path), args.reuse)
    rewrite_csv(csv_path, kept)
    log(f"{len(todo)} to compute, {len(reused)} reused from {csv_path}")
    try:
        new = {r.key(): r for r in compute(todo, csv_path, args.jobs)}
    except RuntimeError as exc:
        raise SystemExit(f"{exc}") from None
    outcome = Outcome(computed=len(new), reused=len(reused))
    outcome.rows = [new.get(key) or reused[key]
                    for key in ((j.image, j.k, j.mode.name) for j in jobs)]

    targets, outcome.failed_targets = target_lines(outcome.rows, args.target)
    sections = [
        header(command, images, modes, args.jobs, metrics, outcome),
        "## BD-rate (mean over images of the per-image BD-rate)",
        bd_table(outcome.rows, args.compare, len(images)),
        *(["## Targets", targets] if targets else []),
        "## Means per mode and K (over images; seconds: median)",
        means_table(outcome.rows, modes),
    ]
    markdown = "\n\n".join(sections) + "\n"
    (args.out / "rd.md").write_text(markdown)
    plot(outcome.rows, modes, args.out / "rd.png")
    print(markdown)
    log(f"{outcome.computed} computed, {outcome.reused} reused; wrote {csv_path}, "
        f"{args.out / 'rd.md'} and {args.out / 'rd.png'}")
    return outcome


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 1 when a ``--target`` fails."""
    outcome = run(sys.argv[1:] if argv is None else argv)
    return 1 if outcome.failed_targets else 0


if __name__ == "__main__":
    raise SystemExit(main())
