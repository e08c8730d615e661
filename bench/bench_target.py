"""Smallest file for a look: ``kmquant -k auto --target-ssimulacra2 S`` against tuned pngquant.

For every image and one SSIMULACRA2 target S (``--target``, default 70), each tool makes the
smallest PNG it can whose SSIMULACRA2 score is at least S:

kmquant
    One process per image: ``kmquant compress IN -k auto --target-ssimulacra2 S -o OUT --force
    -q`` (the ``kmquant`` console script beside ``sys.executable``) plus ``--kmquant-args``.
    kmquant searches K itself. A non-zero exit is recorded as a failed row with its exit code.
pngquant, pngquant-nofs (the anchors, ``--anchors``)
    ``pngquant [--nofs] [ANCHOR-ARGS] --force --quality 0-Q --output OUT IN``, Q tuned per image
    by :func:`tune_quality`: Q = 100 first (if even it misses S, the image is recorded as not
    reaching S), then a bisection for the smallest Q in 0..100 whose file reaches S, then
    Q-1 … Q-``--below`` (3) where not tried yet; of all the runs that reach S, the smallest file
    is kept (bytes and scores are not strictly monotone in Q).

Every file is decoded by Pillow to RGB and scored against the original RGB with the
``ssimulacra2`` package, as ``bench_rd.py`` does; that score decides "reaches S", for kmquant too
(kmquant's own score of its file may differ a little).

Seconds: kmquant's whole process (its search included); pngquant's: the sum of its processes
over the tuning (the scoring between them, by this script, is not counted). Jobs (one per image
and tool) run in a pool of ``--jobs`` processes, so times include their contention.

Writes ``OUT/target.csv`` (one row per image and tool) and ``OUT/target.md`` (header, table per
image, totals, and the target line: total kmquant bytes <= ``--max-ratio`` (0.75) × total
``pngquant`` bytes and every kmquant file reaches S), and prints the markdown. With ``--check``
the exit status is 1 when that target fails.

Usage::

    python bench/bench_target.py                                   # every Kodak image, S = 70
    python bench/bench_target.py --images kodim23,kodim05 --jobs 2 --out /tmp/tgt
    python bench/bench_target.py --target 80 --kmquant-args "--dither fs" --check
"""

from __future__ import annotations

import argparse
import csv
import datetime
import importlib.metadata
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import PIL
from numpy.typing import NDArray
from PIL import Image

import kmquant

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import comma_list, cpu_model, load_rgb  # noqa: E402  (bench is not a package)
from bench_dither import perceptual_metrics, ssimulacra2_metric  # noqa: E402
from bench_rd import decode_rgb, image_paths, pngquant_version  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "bench" / "results"
DEFAULT_TARGET = 70.0
DEFAULT_BELOW = 3
MAX_RATIO = 0.75
Q_RANGE = (0, 100)
KMQUANT = "kmquant"
ANCHORS = {"pngquant": (), "pngquant-nofs": ("--nofs",)}
ANCHOR_TAIL = ("--force", "--quality", "0-Q", "--output", "OUT", "IN")
REFERENCE = "pngquant"  # the anchor of the target line
PNGQUANT = shutil.which("pngquant")  # None: the anchors are skipped
CSV_FIELDS = ("image", "tool", "q", "bytes", "ssimulacra2", "seconds", "runs", "ok",
              "exit_code", "note")

Metric = Callable[[NDArray[np.uint8], NDArray[np.uint8]], float]


@dataclass(frozen=True)
class Trial:
    """One file made at one quality setting: its bytes and score (0 and NaN: nothing written)."""

    q: int
    bytes: int
    score: float


@dataclass(frozen=True)
class Tuned:
    """What :func:`tune_quality` found."""

    best: Trial  # the smallest file reaching the target, else the run at the highest Q
    reached: bool
    bisected: int | None  # the Q the bisection ended on (None when the highest Q misses)
    trials: tuple[Trial, ...]  # every evaluation, in order


@dataclass(frozen=True)
class Job:
    """One image through one tool."""

    image: str
    path: Path
    tool: str
    flags: tuple[str, ...]  # pngquant flags, or kmquant's extra arguments
    target: float
    below: int


@dataclass(frozen=True)
class Row:
    """One line of ``target.csv``."""

    image: str
    tool: str
    q: int | None  # pngquant: Q of the kept file; kmquant: colours in its palette
    bytes: int  # 0: no file
    ssimulacra2: float  # NaN: no file
    seconds: float
    runs: int
    ok: bool  # a file reaching the target was written
    exit_code: int
    note: str


# --------------------------------------------------------------------------------------------
# Tuning pngquant's quality


def tune_quality(evaluate: Callable[[int], tuple[int, float]], target: float,
                 q_range: tuple[int, int] = Q_RANGE, below: int = DEFAULT_BELOW) -> Tuned:
    """The smallest file whose score reaches ``target``, over integer quality settings.

    ``evaluate(q)`` makes a file at setting ``q`` and returns ``(bytes, score)`` (a failed run:
    ``(0, nan)``, which never reaches). The highest setting is evaluated first; if it misses, so
    does the image. Else a bisection, assuming the score rises with ``q``, finds the smallest
    ``q`` that reaches (at most ceil(log2(range size)) more evaluations: 8 in all for 0..100);
    then ``q - 1`` … ``q - below`` are tried where not tried yet. Each setting is evaluated once.
    Of every trial that reaches, the one with the fewest bytes is kept (ties: the lower ``q``).

    Parameters
    ----------
    evaluate : callable, int -> (int, float)
        Bytes and score of the file made at a setting.
    target : float
        The score to reach (``score >= target``).
    q_range : (int, int)
        Lowest and highest setting, inclusive.
    below : int
        Settings under the bisection's result to try too (scores and bytes wobble).

    Returns
    -------
    Tuned
    """
    low, high = q_range
    if low > high:
        raise ValueError(f"q_range {q_range}: the lowest setting is above the highest")
    trials: dict[int, Trial] = {}

    def reaches(q: int) -> bool:
        if q not in trials:
            size, score = evaluate(q)
            trials[q] = Trial(q, int(size), float(score))
        return trials[q].score >= target

    if not reaches(high):
        return Tuned(trials[high], False, None, tuple(trials.values()))
    while low < high:
        middle = (low + high) // 2
        if reaches(middle):
            high = middle
        else:
            low = middle + 1
    for q in range(high - 1, max(high - below, q_range[0]) - 1, -1):
        reaches(q)
    good = [t for t in trials.values() if t.score >= target]
    best = min(good, key=lambda t: (t.bytes, t.q))
    return Tuned(best, True, high, tuple(trials.values()))


# --------------------------------------------------------------------------------------------
# Running the tools


@lru_cache(maxsize=1)
def ssimulacra2_score() -> Metric:
    """The SSIMULACRA2 metric of bench_dither, made once per worker process."""
    return ssimulacra2_metric()


def score_file(path: Path, original: NDArray[np.uint8]) -> float:
    """SSIMULACRA2 of a PNG decoded by Pillow (RGB) against the original (H, W, 3) pixels."""
    decoded = decode_rgb(path.read_bytes())
    if decoded.shape != original.shape:
        raise RuntimeError(f"{path.name}: decoded {decoded.shape}, expected {original.shape}")
    return ssimulacra2_score()(original, decoded)


def palette_size(path: Path) -> int | None:
    """Colours in a PNG's palette (None when the PNG is not indexed)."""
    with Image.open(path) as image:
        palette = image.getpalette() if image.mode == "P" else None
    return None if palette is None else len(palette) // 3


def one_line(text: str, limit: int = 160) -> str:
    """The last non-empty line of a tool's message, shortened, without CSV-unfriendly breaks."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return last if len(last) <= limit else last[: limit - 1] + "…"


def kmquant_program() -> Path:
    """The ``kmquant`` console script beside this Python."""
    return Path(sys.executable).parent / "kmquant"


def run_kmquant(job: Job) -> Row:
    """``kmquant compress IN -k auto --target-ssimulacra2 S -o OUT --force -q`` + extra args."""
    original = load_rgb(job.path)
    with tempfile.TemporaryDirectory(prefix="bench_target-") as folder:
        out = Path(folder) / "out.png"
        argv = [str(kmquant_program()), "compress", str(job.path), "-k", "auto",
                "--target-ssimulacra2", f"{job.target:g}", "-o", str(out), "--force", "-q",
                *job.flags]
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0 or not out.is_file():
            note = one_line(done.stderr) or "no output file"
            return Row(job.image, KMQUANT, None, 0, math.nan, seconds, 1, False,
                       done.returncode, note)
        score = score_file(out, original)
        ok = score >= job.target
        return Row(job.image, KMQUANT, palette_size(out), out.stat().st_size, score, seconds, 1,
                   ok, 0, "" if ok else f"below the target {job.target:g}")


def run_anchor(job: Job) -> Row:
    """pngquant with ``--quality 0-Q``, Q tuned by :func:`tune_quality`."""
    original = load_rgb(job.path)
    seconds = 0.0
    exit_codes: dict[int, int] = {}
    messages: dict[int, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench_target-") as folder:

        def evaluate(q: int) -> tuple[int, float]:
            nonlocal seconds
            out = Path(folder) / f"q{q}.png"
            argv = [PNGQUANT or "pngquant", *job.flags, "--force", "--quality", f"0-{q}",
                    "--output", str(out), str(job.path)]
            start = time.perf_counter()
            done = subprocess.run(argv, capture_output=True, text=True)
            seconds += time.perf_counter() - start
            exit_codes[q], messages[q] = done.returncode, one_line(done.stderr)
            if done.returncode != 0 or not out.is_file():
                return 0, math.nan
            return out.stat().st_size, score_file(out, original)

        tuned = tune_quality(evaluate, job.target, below=job.below)
    best = tuned.best
    if tuned.reached:
        note = f"bisection Q={tuned.bisected}" + (
            f", smaller file at Q={best.q}" if best.q != tuned.bisected else "")
    elif best.bytes:
        note = f"Q={best.q} reaches only {best.score:.2f}"
    else:
        note = f"pngquant exited {exit_codes[best.q]}: {messages[best.q]}"
    return Row(job.image, job.tool, best.q, best.bytes, best.score, seconds, len(tuned.trials),
               tuned.reached, exit_codes[best.q], note)


def run_job(job: Job) -> Row:
    """One image through one tool; an unexpected failure names the job in one line."""
    try:
        return run_kmquant(job) if job.tool == KMQUANT else run_anchor(job)
    except Exception as exc:  # noqa: BLE001 - reported as one line naming the job
        raise RuntimeError(f"{job.image} {job.tool}: {type(exc).__name__}: {exc}") from None


def compute(jobs: list[Job], workers: int) -> list[Row]:
    """The rows of the jobs, in the jobs' order (run in ``workers`` processes when more than 1)."""
    rows: dict[int, Row] = {}

    def record(index: int, row: Row) -> None:
        rows[index] = row
        log(f"[{len(rows)}/{len(jobs)}] {row.image:10s} {row.tool:14s} "
            f"{'ok  ' if row.ok else 'MISS'} {row.bytes / 1024:8.1f} KB SSIMULACRA2 "
            f"{row.ssimulacra2:6.2f} {row.runs:2d} run(s) {row.seconds:7.2f} s {row.note}")

    if workers <= 1 or len(jobs) <= 1:
        for index, job in enumerate(jobs):
            record(index, run_job(job))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures: dict[Future[Row], int] = {pool.submit(run_job, job): i
                                               for i, job in enumerate(jobs)}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    error = future.exception()
                    if error is not None:
                        for other in pending:
                            other.cancel()
                        raise SystemExit(str(error))
                    record(futures[future], future.result())
    return [rows[i] for i in range(len(jobs))]


# --------------------------------------------------------------------------------------------
# Reporting


def log(message: str) -> None:
    """A progress line on stderr."""
    print(message, file=sys.stderr, flush=True)


def write_csv(rows: list[Row], path: Path) -> None:
    """``target.csv``: one row per image and tool."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_FIELDS)
        for r in rows:
            writer.writerow([r.image, r.tool, "" if r.q is None else r.q, r.bytes,
                             f"{r.ssimulacra2:.4f}", f"{r.seconds:.4f}", r.runs, int(r.ok),
                             r.exit_code, r.note])


def by_key(rows: list[Row]) -> dict[tuple[str, str], Row]:
    """(image, tool) -> row."""
    return {(r.image, r.tool): r for r in rows}


def _kb(row: Row | None) -> str:
    if row is None:
        return "-"
    return f"{row.bytes / 1024:.1f}" if row.bytes else f"exit {row.exit_code}"


def _score(row: Row | None) -> str:
    if row is None or not math.isfinite(row.ssimulacra2):
        return "-"
    return f"{row.ssimulacra2:.2f}" + ("" if row.ok else " ✗")


def _ratio(a: Row | None, b: Row | None) -> str:
    return f"{a.bytes / b.bytes:.3f}" if a and b and a.bytes and b.bytes else "-"


def image_table(rows: list[Row], images: list[str], anchors: list[str]) -> str:
    """Markdown: per image, kmquant's file and each anchor's, and kmquant / anchor bytes."""
    head = ["image", "kmquant colours", "kmquant KB", "kmquant score"]
    for anchor in anchors:
        head += [f"{anchor} Q", f"{anchor} KB", f"{anchor} score", f"kmquant / {anchor}"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    rows_by = by_key(rows)
    for image in images:
        km = rows_by.get((image, KMQUANT))
        cells = [image, "-" if km is None or km.q is None else str(km.q), _kb(km), _score(km)]
        for anchor in anchors:
            row = rows_by.get((image, anchor))
            cells += ["-" if row is None else str(row.q), _kb(row), _score(row), _ratio(km, row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def totals_ratio(rows: list[Row], anchor: str) -> tuple[float, int]:
    """Total kmquant bytes / total ``anchor`` bytes over the images where both wrote a file."""
    pairs = both_wrote(rows, anchor)
    if not pairs:
        return math.nan, 0
    return sum(k.bytes for k, _ in pairs) / sum(a.bytes for _, a in pairs), len(pairs)


def both_wrote(rows: list[Row], anchor: str) -> list[tuple[Row, Row]]:
    """(kmquant row, ``anchor`` row) of every image where both wrote a file."""
    rows_by = by_key(rows)
    pairs = [(r, rows_by[(r.image, anchor)]) for r in rows
             if r.tool == KMQUANT and (r.image, anchor) in rows_by]
    return [(k, a) for k, a in pairs if k.bytes and a.bytes]


def totals_table(rows: list[Row], tools: list[str], n_images: int, target: float) -> str:
    """Markdown: per tool, images reaching the target, total bytes, runs and seconds."""
    lines = [f"| tool | images reaching {target:g} | files | total KB | runs | seconds |",
             "|---|---:|---:|---:|---:|---:|"]
    for tool in tools:
        group = [r for r in rows if r.tool == tool]
        lines.append(f"| {tool} | {sum(r.ok for r in group)}/{n_images} "
                     f"| {sum(bool(r.bytes) for r in group)} "
                     f"| {sum(r.bytes for r in group) / 1024:.1f} | {sum(r.runs for r in group)} "
                     f"| {sum(r.seconds for r in group):.1f} |")
    return "\n".join(lines)


def ratio_lines(rows: list[Row], anchors: list[str]) -> str:
    """Markdown list: the ratio of total bytes, kmquant / each anchor."""
    lines = []
    for anchor in anchors:
        ratio, n = totals_ratio(rows, anchor)
        missed = sum(1 for _, a in both_wrote(rows, anchor) if not a.ok)
        lines.append(f"- total kmquant bytes / total {anchor} bytes: "
                     f"{f'{ratio:.3f}' if n else 'n/a'} (over {n} image(s) where both wrote a "
                     f"file; {missed} {anchor} file(s) among them below the target)")
    return "\n".join(lines)


def target_line(rows: list[Row], anchors: list[str], target: float,
                max_ratio: float) -> tuple[str, bool]:
    """The pass/fail line of the target against the ``pngquant`` anchor, and whether it passed."""
    km = [r for r in rows if r.tool == KMQUANT]
    reached = sum(r.ok for r in km)
    ratio, n = totals_ratio(rows, REFERENCE) if REFERENCE in anchors else (math.nan, 0)
    ok = bool(km) and reached == len(km) and n == len(km) and ratio <= max_ratio
    shown = (f"{ratio:.3f}" if n else "n/a: no image where both wrote a file"
             if REFERENCE in anchors else f"n/a: {REFERENCE} not run")
    return (f"- Target: total kmquant bytes <= {max_ratio:g} × total {REFERENCE} bytes and every "
            f"kmquant file reaches SSIMULACRA2 {target:g}: {'pass' if ok else '**FAIL**'} "
            f"(ratio {shown}; kmquant reached {target:g} on {reached}/{len(km)} images)"), ok


def header(command: str, images: dict[str, Path], args: argparse.Namespace,
           anchors: dict[str, tuple[str, ...]]) -> str:
    """Markdown header: machine, versions, date, command and what is measured."""
    try:
        ssim2_version = importlib.metadata.version("ssimulacra2")
    except importlib.metadata.PackageNotFoundError:
        ssim2_version = "absent"
    folders = sorted({str(p.parent) for p in images.values()})
    kmquant_cmd = shlex.join(["kmquant", "compress", "IN", "-k", "auto", "--target-ssimulacra2",
                              f"{args.target:g}", "-o", "OUT", "--force", "-q",
                              *args.kmquant_args])
    anchor_cmds = "; ".join(
        f"{name} = `{shlex.join(['pngquant', *flags, *ANCHOR_TAIL])}`"
        for name, flags in anchors.items())
    return "\n".join([
        f"# Smallest file reaching SSIMULACRA2 {args.target:g}: kmquant against tuned pngquant",
        "",
        f"- Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- Machine: {platform.platform()}; {os.cpu_count()} CPUs; {cpu_model()}",
        f"- Versions: kmquant {kmquant.__version__}; pngquant "
        f"{pngquant_version(PNGQUANT) if PNGQUANT else 'absent'}; ssimulacra2 {ssim2_version}; "
        f"Python {platform.python_version()}, numpy {np.__version__}, Pillow {PIL.__version__}",
        f"- Command: `{command}`",
        f"- Images ({len(images)}, from {', '.join(folders)}): {', '.join(images)}",
        f"- kmquant: `{kmquant_cmd}`, one process per image; colours: its palette's size.",
        f"- Anchors: {anchor_cmds or 'none (pngquant not on PATH or none chosen)'}. Q: the "
        f"smallest file reaching the target among Q = 100, a bisection over 0..100 and up to "
        f"{args.below} Q below the bisection's; ✗: not reached (even Q = 100 misses).",
        "- Scores: SSIMULACRA2 (`ssimulacra2` package, higher is better) of each PNG decoded by "
        "Pillow against the original RGB. Seconds: kmquant's whole process (its K search "
        "included); pngquant's processes summed over the tuning (scoring not counted). "
        f"{args.jobs} worker process(es) at once (one job per image and tool).",
    ])


# --------------------------------------------------------------------------------------------
# Command line


def anchors_arg(text: str) -> list[str]:
    """``"pngquant,pngquant-nofs"`` -> the anchor names, checked."""
    names = list(dict.fromkeys(comma_list(text)))
    unknown = [n for n in names if n not in ANCHORS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown anchor {', '.join(unknown)}; choose from "
                                         f"{', '.join(ANCHORS)}")
    return names


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of <name>.png images (default ../shared/data/kodak if it "
                             "exists, else the packaged sample)")
    parser.add_argument("--images", type=comma_list, default=None,
                        help="comma list of image names (default every *.png in the folder; "
                             "'sample' is the packaged sample)")
    parser.add_argument("--target", type=float, default=DEFAULT_TARGET,
                        help=f"SSIMULACRA2 score to reach (default {DEFAULT_TARGET:g})")
    parser.add_argument("--anchors", type=anchors_arg, default=list(ANCHORS),
                        help=f"comma list of pngquant anchors (default {','.join(ANCHORS)})")
    parser.add_argument("--anchor-args", type=shlex.split, default=[],
                        help="extra pngquant arguments for every anchor, e.g. \"--speed 1\"")
    parser.add_argument("--kmquant-args", type=shlex.split, default=[],
                        help="extra kmquant compress arguments, e.g. \"--dither fs\"")
    parser.add_argument("--below", type=int, default=DEFAULT_BELOW,
                        help=f"Q values under the bisection's to try too (default "
                             f"{DEFAULT_BELOW})")
    parser.add_argument("--max-ratio", type=float, default=MAX_RATIO,
                        help=f"the target's bound on kmquant / pngquant total bytes (default "
                             f"{MAX_RATIO:g})")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--check", action="store_true",
                        help="exit status 1 when the target fails")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.below < 0:
        parser.error("--below must be 0 or more")
    return args


def make_jobs(images: dict[str, Path], anchors: dict[str, tuple[str, ...]],
              args: argparse.Namespace) -> list[Job]:
    """Per image: kmquant, then each anchor."""
    jobs = []
    for name, path in images.items():
        jobs.append(Job(name, path, KMQUANT, tuple(args.kmquant_args), args.target, args.below))
        jobs += [Job(name, path, anchor, flags, args.target, args.below)
                 for anchor, flags in anchors.items()]
    return jobs


def chosen_anchors(names: list[str], extra: list[str]) -> dict[str, tuple[str, ...]]:
    """Anchor name -> pngquant flags; none when pngquant is not on PATH."""
    if PNGQUANT is None:
        if names:
            log("pngquant: not on PATH, the anchors are skipped (install pngquant)")
        return {}
    return {name: (*ANCHORS[name], *extra) for name in names}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; with ``--check``, exit status 1 when the target fails."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = shlex.join([Path(sys.executable).name, sys.argv[0], *argv])
    if not kmquant_program().is_file():
        raise SystemExit(f"{kmquant_program()}: no kmquant console script; run "
                         "'pip install -e .' in this environment")
    if not perceptual_metrics(["ssimulacra2"]):
        raise SystemExit("the ssimulacra2 package does not run; install it with "
                         "'pip install -e .[bench]'")
    images = image_paths(args.data, args.images)
    anchors = chosen_anchors(args.anchors, args.anchor_args)
    rows = compute(make_jobs(images, anchors, args), args.jobs)

    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, args.out / "target.csv")
    line, passed = target_line(rows, list(anchors), args.target, args.max_ratio)
    sections = [
        header(command, images, args, anchors),
        "## Per image (KB = 1024 bytes; score: SSIMULACRA2)",
        image_table(rows, list(images), list(anchors)),
        "## Totals",
        totals_table(rows, [KMQUANT, *anchors], len(images), args.target),
        ratio_lines(rows, list(anchors)),
        "## Target",
        line,
    ]
    markdown = "\n\n".join(s for s in sections if s) + "\n"
    (args.out / "target.md").write_text(markdown)
    print(markdown)
    log(f"wrote {args.out / 'target.csv'} and {args.out / 'target.md'}")
    return 1 if args.check and not passed else 0


if __name__ == "__main__":
    raise SystemExit(main())
