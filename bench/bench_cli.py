"""Whole-process benchmark of the kmquant command line against pngquant: wall time and peak RSS.

Users compare whole processes -- start-up, imports, decoding, quantizing, encoding, exit -- so every
command here runs as its own process, and the commands of one case run in turn (A, B, A, B, ...,
after one untimed warm-up run of each), ``--repeat`` times. Each case reports the median wall time
and median peak RSS of each command and their ratios (kmquant ÷ anchor), beside its targets.

Cases
-----
photo
    ``kmquant compress PHOTO -k 64 -q -o OUT -f`` vs ``pngquant --nofs --force -o OUT 64 PHOTO``
    (default speed), PHOTO a 768×512 photo (``--image``, default kodim05 from ``--data``).
help
    ``kmquant --help`` and ``python -c "import kmquant"`` vs the bare ``python -c pass``.
first-run
    The run after the byte-code caches are gone (every ``__pycache__`` under the installed kmquant
    package deleted) vs a normal run of the photo command; each repeat deletes, runs once (first)
    and runs again (later).
large
    A 4096×3072 (12.6 MP) mosaic of the photos in ``--data``: ``kmquant compress mosaic.png -k 256
    -q`` vs ``pngquant --nofs 256``, and the same kmquant run with its default report (no ``-q``).
huge
    The mosaic mirrored 2×2 (8192×6144, 50.3 MP) at K = 256, kmquant ``-q`` vs pngquant.
batch
    Every PNG in ``--data`` in one process: ``kmquant compress *.png -k 64 -q --out-dir D -f`` vs
    ``pngquant --nofs --force --ext .pq.png 64 *.png``.

Wall time and peak RSS: every command is spawned by a fresh bare interpreter (:data:`RUNNER`),
which forks, execs it and reaps it with :func:`os.wait4`: wall time is ``time.perf_counter`` from
the fork to the reap, and the rusage's ``ru_maxrss`` (KiB on Linux) is the command's peak resident
set. That figure starts at what the child held before it exec'ed (its parent's pages), so the
spawner is kept small: the *floor* -- the peak of ``/bin/true`` spawned the same way, about 5 MiB
-- is in the report, and a figure at the floor reads ``≤ floor``. For ``batch`` the figure is the
largest single process that kmquant waited for, not the sum over its worker processes.

Usage::

    python bench/bench_cli.py                                   # every case, 7 runs each
    python bench/bench_cli.py --cases photo,help --repeat 3
    python bench/bench_cli.py --data /path/to/kodak --out /tmp/cli

Writes ``OUT/cli.md`` (machine, versions, command, the table), ``OUT/cli.csv`` (one row per table
row) and ``OUT/cli-runs.csv`` (every timed run), and prints the markdown. ``OUT`` defaults to
``bench/results``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "kodak"
DEFAULT_OUT = REPO_ROOT / "bench" / "results"
DEFAULT_IMAGE = "kodim05"
PNGQUANT = "/usr/bin/pngquant"
CASES = ("photo", "help", "first-run", "large", "huge", "batch")
NEEDS_DATA = ("photo", "first-run", "large", "huge", "batch")
NEEDS_PNGQUANT = ("photo", "large", "huge", "batch")
LARGE_SIZE = (4096, 3072)  # width, height: 12.6 MP
TILE = (512, 768)  # height, width of a landscape Kodak photo
MIB = 2**20
#: A figure within this of the spawn floor may be the floor itself, not the child's own peak.
FLOOR_MARGIN = 256 * 1024

CSV_FIELDS = (
    "case", "kmquant_command", "kmquant_wall_s", "kmquant_rss_mib", "anchor", "anchor_command",
    "anchor_wall_s", "anchor_rss_mib", "wall_ratio", "rss_ratio", "runs", "targets", "passed",
)


# --------------------------------------------------------------------------------------------
# Measuring


class CommandError(RuntimeError):
    """A measured command exited with a non-zero status."""


@dataclass(frozen=True)
class Runs:
    """The timed runs of one command: wall seconds and peak RSS (bytes) of each.

    Attributes
    ----------
    label : str
    argv : tuple of str
    seconds : tuple of float
        Wall time of each run, spawn to reap.
    rss : tuple of int
        Peak resident set of each run, bytes (``ru_maxrss`` × 1024).
    """

    label: str
    argv: tuple[str, ...]
    seconds: tuple[float, ...]
    rss: tuple[int, ...]

    @property
    def wall(self) -> float:
        """Median wall seconds."""
        return statistics.median(self.seconds)

    @property
    def peak(self) -> float:
        """Median peak RSS, bytes."""
        return statistics.median(self.rss)

    def ratios(self, anchor: Runs) -> tuple[float, float]:
        """(median wall ÷ anchor's median wall, median peak ÷ anchor's median peak)."""
        return self.wall / anchor.wall, self.peak / anchor.peak


#: The spawner of every measured command, run as ``python -S -I -c RUNNER CWD ARGV...``: a fresh,
#: bare interpreter that forks, execs the command, reaps it with ``os.wait4`` and prints the wall
#: seconds (``time.perf_counter`` from fork to reap), ``ru_maxrss`` (KiB) and the exit code.
#: Why a separate spawner: a child's ``ru_maxrss`` starts at what its memory held before it
#: exec'ed -- with vfork (``subprocess.Popen``, ``posix_spawn``) the parent's whole resident set
#: (measured: 17 MiB for this script, 29 MiB once NumPy is imported), with fork the parent's
#: private pages (5 MiB for this bare interpreter). Below that floor a child's own peak is lost.
RUNNER = """\
import os, sys, time
cwd, argv = sys.argv[1], sys.argv[2:]
null = os.open(os.devnull, os.O_RDWR)
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.dup2(null, 0)
        os.dup2(null, 1)
        if cwd:
            os.chdir(cwd)
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
print(seconds, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def run_once(argv: list[str], cwd: Path | None = None) -> tuple[float, int]:
    """Run ``argv`` once: wall seconds from spawn to reap, and its peak RSS in bytes.

    The command is spawned and reaped by :data:`RUNNER` (stdin and stdout to /dev/null).

    Raises
    ------
    CommandError
        The command exited with a non-zero status (its last stderr lines in the message).
    """
    with tempfile.TemporaryFile() as stderr:
        done = subprocess.run([sys.executable, "-S", "-I", "-c", RUNNER, str(cwd or ""), *argv],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
                              text=True, check=False)
        fields = done.stdout.split()
        if done.returncode != 0 or len(fields) != 3 or fields[2] != "0":
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace").strip().splitlines()[-5:]
            status = fields[2] if len(fields) == 3 else f"(runner {done.returncode})"
            raise CommandError(f"{shlex.join(argv)} exited {status}: " + "\n".join(tail))
    return float(fields[0]), int(fields[1]) * 1024


def measure(
    commands: dict[str, list[str]],
    repeat: int,
    *,
    warm_up: bool = True,
    cwd: Path | None = None,
    before: dict[str, Callable[[], None]] | None = None,
) -> dict[str, Runs]:
    """Run the commands in turn, ``repeat`` rounds: A, B, ..., A, B, ...

    Parameters
    ----------
    commands : dict of label → argv
    repeat : int
        Timed runs of each command.
    warm_up : bool
        One untimed run of each command first (page cache, byte-code caches).
    cwd : Path, optional
        Working folder of every run.
    before : dict of label → callable, optional
        Called (untimed) before each run of that command, e.g. to delete caches.

    Returns
    -------
    dict of label → Runs, in the order of ``commands``
    """
    before = before or {}
    if warm_up:
        for argv in commands.values():
            run_once(argv, cwd)
    seconds: dict[str, list[float]] = {label: [] for label in commands}
    rss: dict[str, list[int]] = {label: [] for label in commands}
    for round_ in range(repeat):
        for label, argv in commands.items():
            if label in before:
                before[label]()
            wall, peak = run_once(argv, cwd)
            seconds[label].append(wall)
            rss[label].append(peak)
            log(f"  {round_ + 1}/{repeat} {label:28s} {wall:8.3f} s {peak / MIB:8.1f} MiB")
    return {label: Runs(label, tuple(argv), tuple(seconds[label]), tuple(rss[label]))
            for label, argv in commands.items()}


def spawn_floor() -> int:
    """The smallest peak RSS a measured command can show: ``/bin/true``'s, bytes."""
    true = shutil.which("true") or "/bin/true"
    return min(run_once([true])[1] for _ in range(3))


# --------------------------------------------------------------------------------------------
# Targets and table rows


@dataclass(frozen=True)
class Target:
    """A goal ``metric ≤ limit``; metric is wall_ratio, rss_ratio, wall_s or rss_mib."""

    label: str
    metric: str
    limit: float


@dataclass(frozen=True)
class Row:
    """One line of the table: kmquant's runs beside an anchor's, with the targets."""

    case: str
    subject: Runs
    anchor: Runs | None = None
    targets: tuple[Target, ...] = ()
    note: str = ""

    def value(self, metric: str) -> float | None:
        """The row's wall_ratio, rss_ratio, wall_s or rss_mib (None without an anchor)."""
        if metric == "wall_s":
            return self.subject.wall
        if metric == "rss_mib":
            return self.subject.peak / MIB
        if self.anchor is None:
            return None
        wall, peak = self.subject.ratios(self.anchor)
        return {"wall_ratio": wall, "rss_ratio": peak}[metric]

    def verdicts(self) -> list[tuple[Target, float, bool]]:
        """(target, value, passed) for each target."""
        out = []
        for target in self.targets:
            value = self.value(target.metric)
            out.append((target, value, value is not None and value <= target.limit))
        return out

    @property
    def passed(self) -> bool:
        return all(ok for _, _, ok in self.verdicts())


@dataclass
class Context:
    """What every case needs: the tools, the data, a scratch folder, the run count."""

    kmquant: list[str]
    python: str
    data: Path | None
    image: Path | None
    tmp: Path
    repeat: int
    images: dict[str, Path] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Cases


def compress(ctx: Context, src: Path, k: int, dst: Path, *, quiet: bool = True) -> list[str]:
    """``kmquant compress SRC -k K [-q] -o DST -f``."""
    return [*ctx.kmquant, "compress", str(src), "-k", str(k), *(["-q"] if quiet else []),
            "-o", str(dst), "-f"]


def pngquant(src: Path, k: int, dst: Path) -> list[str]:
    """``pngquant --nofs --force -o DST K SRC`` at its default speed."""
    return [PNGQUANT, "--nofs", "--force", "-o", str(dst), str(k), str(src)]


def case_photo(ctx: Context) -> list[Row]:
    """kmquant vs pngquant on one 768×512 photo at K = 64."""
    runs = measure({
        "kmquant compress -k 64 -q": compress(ctx, ctx.image, 64, ctx.tmp / "photo-km.png"),
        "pngquant --nofs 64": pngquant(ctx.image, 64, ctx.tmp / "photo-pq.png"),
    }, ctx.repeat)
    km, pq = runs.values()
    return [Row("photo", km, pq, (Target("wall ≤ pngquant", "wall_ratio", 1.0),
                                  Target("peak ≤ 48 MiB", "rss_mib", 48.0)))]


def case_help(ctx: Context) -> list[Row]:
    """``kmquant --help`` and ``import kmquant`` vs the bare interpreter's start-up."""
    runs = measure({
        "kmquant --help": [*ctx.kmquant, "--help"],
        "python -c 'import kmquant'": [ctx.python, "-c", "import kmquant"],
        "python -c pass": [ctx.python, "-c", "pass"],
    }, ctx.repeat)
    help_, imported, bare = runs.values()
    return [Row("help", help_, bare, (Target("wall ≤ 0.15 s", "wall_s", 0.15),)),
            Row("import", imported, bare)]


def package_folder(python: str) -> Path:
    """The folder of the kmquant package that ``python`` imports."""
    done = subprocess.run(
        [python, "-c", "import kmquant, os; print(os.path.dirname(kmquant.__file__))"],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{python}: cannot import kmquant: {done.stderr.strip()}")
    return Path(done.stdout.strip())


def delete_bytecode(folder: Path) -> None:
    """Delete every ``__pycache__`` folder under ``folder``."""
    for cache in sorted(folder.rglob("__pycache__"), reverse=True):
        if cache.is_dir():
            shutil.rmtree(cache)


def case_first_run(ctx: Context) -> list[Row]:
    """The photo command right after the byte-code caches are deleted, vs run again."""
    folder = package_folder(ctx.python)
    if not os.access(folder, os.W_OK):
        raise SystemExit(f"{folder}: not writable, so its byte-code caches cannot be rebuilt; "
                         "skip the first-run case (--cases without first-run)")
    argv = compress(ctx, ctx.image, 64, ctx.tmp / "first-km.png")
    log(f"first-run: deleting every __pycache__ under {folder} before each first run")
    runs = measure({"kmquant compress (first run)": argv, "kmquant compress (later run)": argv},
                   ctx.repeat, warm_up=False,
                   before={"kmquant compress (first run)": lambda: delete_bytecode(folder)})
    first, later = runs.values()
    return [Row("first-run", first, later, (Target("first ≤ 1.3× later", "wall_ratio", 1.3),))]


def case_large(ctx: Context) -> list[Row]:
    """The 12.6 MP mosaic at K = 256: kmquant -q vs pngquant, and kmquant with its report."""
    src = ctx.images["large"]
    runs = measure({
        "kmquant compress -k 256 -q": compress(ctx, src, 256, ctx.tmp / "large-km.png"),
        "pngquant --nofs 256": pngquant(src, 256, ctx.tmp / "large-pq.png"),
        "kmquant compress -k 256 (report)": compress(ctx, src, 256, ctx.tmp / "large-km-report.png",
                                                     quiet=False),
    }, ctx.repeat)
    quiet, pq, report = runs.values()
    return [Row("large", quiet, pq, (Target("peak ≤ pngquant", "rss_ratio", 1.0),
                                     Target("wall ≤ 0.5× pngquant", "wall_ratio", 0.5))),
            Row("large-report", report, quiet, (Target("peak ≤ 1.5× -q", "rss_ratio", 1.5),))]


def case_huge(ctx: Context) -> list[Row]:
    """The 50.3 MP image at K = 256: kmquant -q vs pngquant."""
    src = ctx.images["huge"]
    runs = measure({
        "kmquant compress -k 256 -q": compress(ctx, src, 256, ctx.tmp / "huge-km.png"),
        "pngquant --nofs 256": pngquant(src, 256, ctx.tmp / "huge-pq.png"),
    }, ctx.repeat)
    km, pq = runs.values()
    return [Row("huge", km, pq, (Target("peak ≤ pngquant", "rss_ratio", 1.0),))]


def case_batch(ctx: Context) -> list[Row]:
    """Every photo in one process each: kmquant --out-dir vs pngquant --ext."""
    folder, out_dir = ctx.tmp / "batch", ctx.tmp / "batch-km"
    folder.mkdir()
    out_dir.mkdir()
    files = []
    for path in photo_paths(ctx.data):
        shutil.copyfile(path, folder / path.name)
        files.append(path.name)
    runs = measure({
        f"kmquant compress ({len(files)} files)": [*ctx.kmquant, "compress", *files, "-k", "64", "-q",
                                                   "--out-dir", str(out_dir), "-f"],
        f"pngquant --nofs 64 ({len(files)} files)": [PNGQUANT, "--nofs", "--force", "--ext", ".pq.png",
                                                     "64", *files],
    }, ctx.repeat, cwd=folder)
    km, pq = runs.values()
    return [Row("batch", km, pq, (Target("wall ≤ 0.6× pngquant", "wall_ratio", 0.6),),
                note=f"{len(files)} files")]


CASE_RUNNERS: dict[str, Callable[[Context], list[Row]]] = {
    "photo": case_photo, "help": case_help, "first-run": case_first_run,
    "large": case_large, "huge": case_huge, "batch": case_batch,
}


# --------------------------------------------------------------------------------------------
# Images (built in a separate process: this one stays small, see the module docstring)


def photo_paths(data: Path) -> list[Path]:
    """Every PNG in ``data``, sorted by name."""
    return sorted(data.glob("*.png"))


def _fit_tile(pixels, height: int, width: int):
    """(H, W, 3) uint8 as a (height, width) tile: portrait turned, cropped, edge-padded."""
    import numpy as np

    if pixels.shape[0] > pixels.shape[1]:
        pixels = np.rot90(pixels)
    pixels = pixels[:height, :width]
    pad = ((0, height - pixels.shape[0]), (0, width - pixels.shape[1]), (0, 0))
    return np.pad(pixels, pad, mode="edge")


def _small_mosaic(paths: list[Path], width: int, height: int):
    """A (height, width, 3) mosaic of 768×512 tiles cycling through ``paths`` (Pillow + NumPy)."""
    import numpy as np
    from PIL import Image

    tiles = [_fit_tile(np.asarray(Image.open(p).convert("RGB")), *TILE) for p in paths]
    rows, cols = -(-height // TILE[0]), -(-width // TILE[1])
    grid = [np.concatenate([tiles[(r * cols + c) % len(tiles)] for c in range(cols)], axis=1)
            for r in range(rows)]
    return np.ascontiguousarray(np.concatenate(grid, axis=0)[:height, :width])


def write_images(data: Path, folder: Path, names: list[str]) -> None:
    """Write ``large.png`` (the 4096×3072 mosaic) and/or ``huge.png`` (it mirrored 2×2).

    Uses ``mosaic()`` of ``bench_pngquant.py`` when that imports (it needs scikit-learn), else a
    small copy of it. Run in a child process (:func:`make_images`).
    """
    import numpy as np
    from PIL import Image

    try:
        from bench_pngquant import mosaic
    except ImportError:
        mosaic = _small_mosaic
    large = mosaic(photo_paths(data), *LARGE_SIZE)
    if "large" in names:
        Image.fromarray(large).save(folder / "large.png")
    if "huge" in names:
        top = np.concatenate([large, large[:, ::-1]], axis=1)  # the mosaic | mirrored left-right
        Image.fromarray(np.concatenate([top, top[::-1]], axis=0)).save(folder / "huge.png")


def make_images(ctx: Context, names: list[str]) -> None:
    """Write the mosaic images the chosen cases need into ``ctx.tmp``, in a child process."""
    if not names:
        return
    began = time.perf_counter()
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
            "from pathlib import Path; import bench_cli; "
            f"bench_cli.write_images(Path({str(ctx.data)!r}), Path({str(ctx.tmp)!r}), {names!r})")
    subprocess.run([ctx.python, "-c", code], check=True)
    for name in names:
        ctx.images[name] = ctx.tmp / f"{name}.png"
        log(f"{name}: wrote {ctx.images[name]} "
            f"({ctx.images[name].stat().st_size / MIB:.1f} MiB)")
    log(f"images: {time.perf_counter() - began:.1f} s")


# --------------------------------------------------------------------------------------------
# Reporting


def log(message: str) -> None:
    """A progress line on stderr."""
    print(message, file=sys.stderr, flush=True)


def memory_total() -> str:
    """Total memory from /proc/meminfo, e.g. '23.5 GiB', or '?'."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return "?"


def machine() -> str:
    """Platform, CPU model, cores (and those this process may use), memory."""
    from bench_core import cpu_model  # the other benchmarks' (imported here: it loads kmquant)

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{platform.platform()}; {cpu_model()}; {os.cpu_count()} cores ({usable} usable); "
            f"{memory_total()} memory")


def versions(python: str) -> str:
    """kmquant, NumPy, Pillow and Python as ``python`` imports them, and pngquant's version."""
    probe = ("import platform, kmquant, numpy, PIL; print(f'kmquant {kmquant.__version__}, "
             "Python {platform.python_version()}, numpy {numpy.__version__}, "
             "Pillow {PIL.__version__}')")
    done = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=False)
    found = done.stdout.strip() if done.returncode == 0 else "kmquant: does not import"
    try:
        pq = subprocess.run([PNGQUANT, "--version"], capture_output=True, text=True,
                            check=False).stdout.strip()
    except OSError:
        pq = "absent"
    return f"{found}; pngquant {pq or '?'}"


def mib(value: float, floor: int) -> str:
    """Bytes as MiB; '≤ X' when the figure may be the spawn floor rather than the child's."""
    text = f"{value / MIB:.1f}"
    return f"≤ {text}" if value <= floor + FLOOR_MARGIN else text


def verdict_text(row: Row) -> str:
    """'target: pass (value)' for each target, ';'-separated."""
    parts = []
    for target, value, ok in row.verdicts():
        shown = "-" if value is None else f"{value:.2f}"
        parts.append(f"{target.label}: {'pass' if ok else '**FAIL**'} ({shown})")
    return "; ".join(parts) or "-"


def table(rows: list[Row], floor: int) -> str:
    """The markdown table: one line per row, targets last."""
    lines = ["| case | kmquant | wall s | peak MiB | anchor | wall s | peak MiB | wall ÷ anchor "
             "| peak ÷ anchor | targets |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|---|"]
    for row in rows:
        s, a = row.subject, row.anchor
        anchor = [a.label, f"{a.wall:.3f}", mib(a.peak, floor),
                  *(f"{r:.2f}" for r in s.ratios(a))] if a else ["-"] * 5
        case = f"{row.case} ({row.note})" if row.note else row.case
        lines.append("| " + " | ".join([case, s.label, f"{s.wall:.3f}", mib(s.peak, floor),
                                        *anchor, verdict_text(row)]) + " |")
    return "\n".join(lines)


def shown(argv: tuple[str, ...], folders: dict[str, str]) -> str:
    """A command line as the report shows it: the program's bare name, folders by their names,
    a run of bare ``.png`` names (a batch) as ``*.png``."""
    words = [Path(argv[0]).name]
    for arg in argv[1:]:
        if arg.endswith(".png") and os.sep not in arg and not arg.startswith(("-", ".")):
            if words[-1] != "*.png":
                words.append("*.png")
            continue
        for folder, name in folders.items():
            if arg.startswith(folder + os.sep):
                arg = name + arg[len(folder):]
        words.append(shlex.quote(arg))
    return " ".join(words)


def commands_list(rows: list[Row], folders: dict[str, str]) -> str:
    """Every command that ran, once each with its case(s) and label(s), as a markdown list."""
    seen: dict[str, list[str]] = {}
    for row in rows:
        for runs in (row.subject, row.anchor):
            if runs is not None:
                names = seen.setdefault(shown(runs.argv, folders), [])
                name = f"{row.case}: {runs.label}"
                if runs.label not in {n.split(": ", 1)[1] for n in names}:
                    names.append(name)
    return "\n".join(f"- {'; '.join(names)}: `{argv}`" for argv, names in seen.items())


def report(rows: list[Row], floor: int, command: str, args: argparse.Namespace, info: str,
           versions_text: str, folders: dict[str, str]) -> str:
    """The whole markdown report."""
    return "\n".join([
        "# kmquant command line vs pngquant: whole processes",
        "",
        f"- Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- Machine: {info}",
        f"- Versions: {versions_text}",
        f"- Command: `{command}`",
        f"- Runs: the commands of a case in turn (A, B, A, B, ...), {args.repeat} timed run(s) each "
        "after one untimed warm-up run (first-run: none; each of its rounds deletes the byte-code "
        "caches, runs once, runs again). Medians; ratios are of the medians.",
        "- Each command is forked and exec'ed by a bare `python -S -I` and reaped with `os.wait4`. "
        "Wall: `time.perf_counter` from the fork to the reap. Peak: the rusage's `ru_maxrss`, MiB. "
        f"Floor (`/bin/true`'s peak, the spawner's pages it starts on): {floor / MIB:.1f} MiB; "
        "a figure within 0.25 MiB of it reads `≤`. batch: the largest single process, not the sum "
        "over kmquant's workers.",
        "- Outputs written to a temporary folder, deleted after. pngquant at its default speed.",
        "",
        table(rows, floor),
        "",
        "Commands (TMP: the temporary folder; "
        + ", ".join(f"{name} = {folder}" for folder, name in folders.items() if name != "TMP")
        + "):",
        "",
        commands_list(rows, folders),
        "",
    ])


def write_csv(rows: list[Row], path: Path, folders: dict[str, str]) -> None:
    """One line per table row."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_FIELDS)
        for row in rows:
            s, a = row.subject, row.anchor
            ratios = [f"{r:.4f}" for r in s.ratios(a)] if a else ["", ""]
            writer.writerow([
                row.case, shown(s.argv, folders), f"{s.wall:.4f}", f"{s.peak / MIB:.2f}",
                a.label if a else "", shown(a.argv, folders) if a else "",
                f"{a.wall:.4f}" if a else "", f"{a.peak / MIB:.2f}" if a else "", *ratios,
                len(s.seconds), verdict_text(row).replace("**", ""),
                "" if not row.targets else ("yes" if row.passed else "no"),
            ])


def write_runs_csv(rows: list[Row], path: Path) -> None:
    """Every timed run: case, command label, run number, seconds, peak MiB."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("case", "command", "run", "wall_s", "rss_mib"))
        done = set()
        for row in rows:
            for runs in (row.subject, row.anchor):
                if runs is None or (row.case, runs.label) in done:
                    continue
                done.add((row.case, runs.label))
                for i, (wall, peak) in enumerate(zip(runs.seconds, runs.rss), 1):
                    writer.writerow((row.case, runs.label, i, f"{wall:.4f}", f"{peak / MIB:.2f}"))


# --------------------------------------------------------------------------------------------
# Command line


def kmquant_command(script: str | None) -> list[str]:
    """``--kmquant``, else the console script beside this Python, else ``python -m kmquant``."""
    if script:
        return [script]
    beside = Path(sys.executable).with_name("kmquant")
    return [str(beside)] if beside.is_file() else [sys.executable, "-m", "kmquant"]


def parse_cases(text: str) -> list[str]:
    """``"photo, help"`` → ``["photo", "help"]``, in the order of :data:`CASES`."""
    chosen = {item.strip() for item in text.split(",") if item.strip()}
    unknown = sorted(chosen - set(CASES))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"unknown case(s) {', '.join(unknown) or '(none)'}; "
                                         f"choose from {', '.join(CASES)}")
    return [case for case in CASES if case in chosen]


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=parse_cases, default=list(CASES),
                        help=f"comma list from {','.join(CASES)} (default all)")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per command (default 7)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"folder of PNG photos, e.g. the Kodak set (default {DEFAULT_DATA})")
    parser.add_argument("--image", default=DEFAULT_IMAGE,
                        help=f"the photo of the photo and first-run cases: a name in --data or a "
                             f"path (default {DEFAULT_IMAGE})")
    parser.add_argument("--kmquant", default=None,
                        help="the kmquant program (default: the console script beside this Python)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="folder for cli.md, cli.csv and cli-runs.csv (default bench/results)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def resolve_inputs(args: argparse.Namespace) -> tuple[Path | None, Path | None]:
    """(data folder, photo) when a chosen case needs them, else (None, None); clear errors."""
    if any(case in NEEDS_PNGQUANT for case in args.cases) and not os.access(PNGQUANT, os.X_OK):
        raise SystemExit(f"{PNGQUANT}: not installed (apt-get install pngquant), or run only "
                         "--cases help,first-run")
    if not any(case in NEEDS_DATA for case in args.cases):
        return None, None
    if not args.data.is_dir() or not photo_paths(args.data):
        raise SystemExit(f"{args.data}: no folder of PNG photos there; pass --data DIR, a folder "
                         "of RGB photos such as the Kodak set (kodim01.png ... kodim24.png), or run "
                         "only --cases help")
    image = Path(args.image)
    if not image.is_file():
        image = args.data / (args.image if args.image.endswith(".png") else f"{args.image}.png")
    if not image.is_file():
        raise SystemExit(f"{image}: no such image; pass --image NAME (in --data) or a path")
    return args.data.resolve(), image.resolve()


def main(argv: list[str] | None = None) -> int:
    """Run the chosen cases, write OUT/cli.md, OUT/cli.csv, OUT/cli-runs.csv, print the table."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    data, image = resolve_inputs(args)
    command = shlex.join([Path(sys.executable).name, sys.argv[0], *argv])
    info, versions_text = machine(), versions(sys.executable)
    log(f"machine: {info}\nversions: {versions_text}")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench_cli-") as name:
        ctx = Context(kmquant_command(args.kmquant), sys.executable, data, image, Path(name),
                      args.repeat)
        try:
            if image is not None:  # fail before the minutes spent on the mosaics
                run_once(compress(ctx, image, 16, ctx.tmp / "check.png"))
            make_images(ctx, [case for case in ("large", "huge") if case in args.cases])
            floor = spawn_floor()
            log(f"spawn floor: {floor / MIB:.1f} MiB")
            for case in args.cases:
                log(f"{case}:")
                rows += CASE_RUNNERS[case](ctx)
        except CommandError as exc:
            raise SystemExit(f"bench_cli: {exc}") from None
    folders = {name: "TMP"}  # the temporary folder, deleted by now
    if data is not None:
        folders[str(data)] = "DATA"
    markdown = report(rows, floor, command, args, info, versions_text, folders)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cli.md").write_text(markdown)
    write_csv(rows, args.out / "cli.csv", folders)
    write_runs_csv(rows, args.out / "cli-runs.csv")
    print(markdown)
    log(f"wrote {args.out / 'cli.md'}, {args.out / 'cli.csv'}, {args.out / 'cli-runs.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
