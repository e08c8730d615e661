"""Large batches, whole processes: kmquant's process pool and its Dask LocalCluster against
pngquant run in parallel by xargs, on 1,000 mixed photographs.

Commands (each a whole process, the three in turn -- A, B, C, A, B, C, ... -- ``--repeat`` times
after one untimed warm-up run of each on the first ``--warm-up`` files):

pool
    ``kmquant compress DIR -r --out-dir OUT -q -k 256 -j 2`` (its forkserver process pool).
dask
    The same with ``--cluster local -j 2``: a LocalCluster on 127.0.0.1, 2 worker processes of
    one thread each, started and stopped by the command.
pngquant
    ``find PQDIR -name '*.png' ! -name '*.pq.png' -print0 | xargs -0 -P 2 -n 16 pngquant --nofs
    --force --ext .pq.png 256``. pngquant reads PNG only, so it runs on a twin tree where every
    JPEG of the set is stored as a PNG of the same decoded pixels (it pays PNG decoding of those
    instead of JPEG decoding).

``-j`` / ``-P`` follow ``--jobs`` (default 2). Before each run its outputs are deleted (untimed):
kmquant's manifest would otherwise skip every file. After each run the outputs are counted; a
command that fails or writes fewer files stops the benchmark.

The photographs: ``--files`` (default 1,000) crops of the Kodak set (``--data``), scaled to sides
from 64 up to 768×512 (log-uniform width, one of five aspect ratios), 60 % PNG and 40 % JPEG
(quality 70-95), in 10 sub-folders, seeded (``--seed``). They are written once into ``--work``
and reused while the data, count and seed are the same.

Figures
-------
files/s
    ``--files`` ÷ the median wall time (``time.perf_counter`` from the spawn to the reap).
    Ratios are kmquant's files/s ÷ pngquant's (above 1: kmquant is faster).
Scheduling overhead
    (median dask − median pool) ÷ files: what the LocalCluster costs per file over the process
    pool, start-up and shut-down included; and, separately, a LocalCluster (2 processes × 1
    thread) running ``--noop-tasks`` no-op tasks through ``client.map`` + ``as_completed``:
    ms per task (median of ``--repeat`` rounds after a warm-up round; start-up not included,
    reported apart).
Peak RSS
    Every process of the command's tree is sampled every ``--sample`` seconds (default 0.05):
    its ``VmHWM`` (its own peak resident set; reset at exec) and ``VmRSS`` from ``/proc``.
    ``main``: the spawned process (kmquant's client; with ``--cluster local`` it also holds the
    scheduler and the workers' nannies; bash for pngquant). ``worker``: the largest
    peak among the tree's leaf processes that do the work (pool workers, Dask worker processes,
    pngquant), helpers such as the resource tracker, find and xargs left out. ``tree``: the
    largest sum of ``VmRSS`` over the whole tree at one sample. Medians over the runs. A process
    that lives less than one sampling interval may be missed (pngquant runs 16 files each, so
    about a second).

Usage::

    python bench/bench_batch.py                                    # 1,000 files, 3 rounds
    python bench/bench_batch.py --files 40 --repeat 1 --work /tmp/bb --out /tmp/bb/results

Writes ``OUT/batch.md`` (machine, versions, commands, the table) and ``OUT/batch-runs.csv``
(every timed run), and prints the markdown. ``OUT`` defaults to ``bench/results``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench_cli import log, machine, versions

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "kodak"
DEFAULT_WORK = REPO_ROOT / "build" / "bench-batch"
DEFAULT_OUT = REPO_ROOT / "bench" / "results"
PNGQUANT = "/usr/bin/pngquant"
K = 256
MIB = 2**20
SIDES = (64, 768)  # the shortest and the longest side
LONG, SHORT = 768, 512  # at most 768×512 (or 512×768)
ASPECTS = (2 / 3, 3 / 4, 1.0, 4 / 3, 3 / 2)  # height ÷ width
JPEG_SHARE = 0.4
FOLDERS = 10
#: Processes of a command's tree that are not workers (by the program's name or command line).
HELPERS = ("find", "xargs", "bash", "sh", "resource_tracker")


# --------------------------------------------------------------------------------------------
# The photographs


def make_photos(data: Path, work: Path, files: int, seed: int) -> tuple[Path, Path]:
    """Write (or reuse) the photographs: ``work/photos`` (PNG and JPEG) and ``work/pq-in`` (the
    same pixels, all PNG, for pngquant). Returns both folders."""
    photos, twins = work / "photos", work / "pq-in"
    sources = sorted(data.glob("*.png"))
    if not sources:
        raise SystemExit(f"{data}: no PNG photos there; pass --data DIR, a folder of photos such "
                         "as the Kodak set (kodim01.png ... kodim24.png)")
    stamp = {"files": files, "seed": seed, "sources": [p.name for p in sources],
             "version": 1}
    stamp_path = work / "photos.json"
    if stamp_path.is_file() and json.loads(stamp_path.read_text()) == stamp:
        log(f"photos: reusing {files} in {photos}")
        return photos, twins
    import numpy as np
    from PIL import Image

    began = time.perf_counter()
    for folder in (photos, twins):
        shutil.rmtree(folder, ignore_errors=True)
    stamp_path.unlink(missing_ok=True)
    rng = np.random.default_rng(seed)
    pictures = [np.asarray(Image.open(p).convert("RGB")) for p in sources]
    for i in range(files):
        pixels = _photo(rng, pictures[int(rng.integers(len(pictures)))])
        sub = f"{i % FOLDERS:02d}"
        for folder in (photos, twins):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(pixels)
        if rng.random() < JPEG_SHARE:
            jpeg = photos / sub / f"photo{i:04d}.jpg"
            image.save(jpeg, quality=int(rng.integers(70, 96)))
            with Image.open(jpeg) as decoded:  # pngquant's twin: the pixels kmquant will see
                decoded.convert("RGB").save(twins / sub / f"photo{i:04d}.png")
        else:
            image.save(photos / sub / f"photo{i:04d}.png")
            shutil.copyfile(photos / sub / f"photo{i:04d}.png", twins / sub / f"photo{i:04d}.png")
    stamp_path.write_text(json.dumps(stamp))
    log(f"photos: wrote {files} into {photos} and {twins} in {time.perf_counter() - began:.1f} s")
    return photos, twins


def _photo(rng, source):
    """A crop of ``source`` ((H, W, 3) uint8) scaled to a random size: (h, w, 3) uint8."""
    import numpy as np
    from PIL import Image

    aspect = ASPECTS[int(rng.integers(len(ASPECTS)))]
    width = math.exp(rng.uniform(math.log(SIDES[0]), math.log(SIDES[1])))
    height = width * aspect
    scale = min(1.0, LONG / max(width, height), SHORT / min(width, height))
    width, height = max(SIDES[0], round(width * scale)), max(SIDES[0], round(height * scale))
    # the crop: the target's aspect, between the target's size and the largest that fits
    fit = min(source.shape[1] / width, source.shape[0] / height)
    grow = rng.uniform(min(1.0, fit), fit)
    crop_w, crop_h = max(1, round(width * grow)), max(1, round(height * grow))
    crop_w, crop_h = min(crop_w, source.shape[1]), min(crop_h, source.shape[0])
    top = int(rng.integers(source.shape[0] - crop_h + 1))
    left = int(rng.integers(source.shape[1] - crop_w + 1))
    crop = Image.fromarray(np.ascontiguousarray(source[top:top + crop_h, left:left + crop_w]))
    return np.asarray(crop.resize((width, height), Image.Resampling.LANCZOS))


def subset(folder: Path, target: Path, count: int) -> Path:
    """The first ``count`` files under ``folder`` (sorted), linked into ``target`` (warm-ups)."""
    shutil.rmtree(target, ignore_errors=True)
    for path in sorted(p for p in folder.rglob("*") if p.is_file())[:count]:
        link = target / path.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.link(path, link)
    return target


# --------------------------------------------------------------------------------------------
# Measuring


class CommandError(RuntimeError):
    """A measured command failed or wrote fewer files than it was given."""


@dataclass
class Sample:
    """What the sampler saw of one command's process tree."""

    peaks: dict[int, int] = field(default_factory=dict)  # pid → largest VmHWM, bytes
    names: dict[int, str] = field(default_factory=dict)  # pid → program name + command line
    parents: set[int] = field(default_factory=set)  # pids seen with children
    tree: int = 0  # largest sum of VmRSS at one sample, bytes


def _children(pid: int) -> list[int]:
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(c) for c in handle.read().split()]
        except OSError:
            pass
    return found


def _memory(pid: int) -> tuple[int, int] | None:
    """(VmHWM, VmRSS) of ``pid`` in bytes, None when gone or a zombie."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            text = handle.read()
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        if line.startswith(("VmHWM:", "VmRSS:")):
            key, amount = line.split(":", 1)
            values[key] = int(amount.split()[0]) * 1024
    if len(values) != 2:
        return None
    return values["VmHWM"], values["VmRSS"]


def _name(pid: int) -> str:
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return "?"
    return f"{comm} {cmdline}"


def sample_tree(root: int, sample: Sample) -> None:
    """One look at the tree under ``root``: peaks, names, parents, and the sum of VmRSS."""
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        children = _children(pid)
        if children:
            sample.parents.add(pid)
        stack += children
        memory = _memory(pid)
        if memory is None:
            continue
        if pid not in sample.names:
            sample.names[pid] = _name(pid)
        sample.peaks[pid] = max(sample.peaks.get(pid, 0), memory[0])
        total += memory[1]
    sample.tree = max(sample.tree, total)


@dataclass(frozen=True)
class Run:
    """One timed run: wall seconds and memory figures (bytes)."""

    seconds: float
    main: int
    worker: int
    tree: int
    processes: int


def run_once(argv: list[str], interval: float, cwd: Path | None = None) -> Run:
    """Run ``argv`` (its own session), sampling its tree every ``interval`` seconds.

    Raises
    ------
    CommandError
        A non-zero exit (the last lines of stderr in the message).
    """
    sample = Sample()
    stop = threading.Event()
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        child = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=stderr,
                                 start_new_session=True)

        def watch() -> None:
            while not stop.is_set():
                sample_tree(child.pid, sample)
                stop.wait(interval)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        code = child.wait()
        seconds = time.perf_counter() - start
        stop.set()
        watcher.join()
        if code != 0:
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace").strip().splitlines()[-5:]
            raise CommandError(f"{shlex.join(argv)} exited {code}: " + "\n".join(tail))
    workers = [peak for pid, peak in sample.peaks.items()
               if pid != child.pid and pid not in sample.parents
               and not any(h == sample.names[pid].split(" ", 1)[0] or h in sample.names[pid]
                           for h in HELPERS)]
    return Run(seconds, sample.peaks.get(child.pid, 0), max(workers, default=0), sample.tree,
               len(sample.peaks))


@dataclass
class Command:
    """A measured command: its argv, what to clear before a run and how to count its outputs."""

    label: str
    argv: list[str]
    clear: Callable[[], None]
    count: Callable[[], int]
    runs: list[Run] = field(default_factory=list)

    def median(self, attribute: str) -> float:
        return statistics.median(getattr(r, attribute) for r in self.runs)


def commands(photos: Path, twins: Path, out: Path, jobs: int, kmquant: list[str]) -> list[Command]:
    """The three commands over ``photos`` (kmquant) and ``twins`` (pngquant)."""
    def kmquant_batch(label: str, folder: str, *engine: str) -> Command:
        target = out / folder
        return Command(label, [*kmquant, "compress", str(photos), "-r", "--out-dir", str(target),
                               "-q", "-k", str(K), *engine],
                       lambda: shutil.rmtree(target, ignore_errors=True),
                       lambda: sum(1 for p in target.rglob("*.png") if not p.name.startswith(".")))

    def clear_pq() -> None:
        for path in twins.rglob("*.pq.png"):
            path.unlink()

    script = (f"set -o pipefail; find {shlex.quote(str(twins))} -name '*.png' ! -name '*.pq.png' "
              f"-print0 | xargs -0 -P {jobs} -n 16 {PNGQUANT} --nofs --force --ext .pq.png {K}")
    return [
        kmquant_batch(f"kmquant -j {jobs} (process pool)", "pool", "-j", str(jobs)),
        kmquant_batch(f"kmquant --cluster local -j {jobs}", "dask", "--cluster", "local",
                      "-j", str(jobs)),
        Command(f"pngquant via xargs -P {jobs} -n 16", ["bash", "-c", script], clear_pq,
                lambda: sum(1 for _ in twins.rglob("*.pq.png"))),
    ]


def measure(batch: list[Command], files: int, repeat: int, interval: float) -> None:
    """The commands in turn, ``repeat`` rounds; each run checked to have written ``files``."""
    for round_ in range(repeat):
        for command in batch:
            command.clear()
            run = run_once(command.argv, interval)
            written = command.count()
            if written != files:
                raise CommandError(f"{command.label}: wrote {written} of {files} files")
            command.runs.append(run)
            log(f"  {round_ + 1}/{repeat} {command.label:36s} {run.seconds:8.2f} s "
                f"{files / run.seconds:7.1f} files/s  main {run.main / MIB:6.1f} MiB  "
                f"worker {run.worker / MIB:6.1f} MiB  tree {run.tree / MIB:7.1f} MiB")
            command.clear()


# --------------------------------------------------------------------------------------------
# No-op tasks on a LocalCluster (run in a child process: python bench_batch.py --noop N)


def _noop(value: int) -> int:
    return value


def noop_child(tasks: int, rounds: int, jobs: int) -> None:
    """Print JSON: LocalCluster start-up seconds and the ms per no-op task of each round."""
    from distributed import Client, LocalCluster, as_completed

    began = time.perf_counter()
    with LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.wait_for_workers(jobs)
        startup = time.perf_counter() - began
        per_task = []
        for round_ in range(rounds + 1):  # the first is a warm-up
            start = time.perf_counter()
            futures = client.map(_noop, range(tasks), pure=False)
            for future in as_completed(futures):
                future.result()
            if round_:
                per_task.append((time.perf_counter() - start) / tasks * 1000)
            del futures
    print(json.dumps({"startup_s": startup, "ms_per_task": per_task}))


def noop_overhead(tasks: int, rounds: int, jobs: int) -> dict:
    """:func:`noop_child` in its own process."""
    done = subprocess.run([sys.executable, __file__, "--noop", str(tasks), "--repeat", str(rounds),
                           "--jobs", str(jobs)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise CommandError(f"the no-op LocalCluster run failed: {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# Reporting


def table(batch: list[Command], files: int) -> str:
    """The markdown table: one line per command."""
    anchor = batch[-1]
    rate = {c.label: files / c.median("seconds") for c in batch}
    lines = ["| command | wall s | files/s | ÷ pngquant files/s | main peak MiB | worker peak MiB "
             "| tree peak MiB | processes |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for command in batch:
        lines.append("| " + " | ".join([
            command.label, f"{command.median('seconds'):.2f}", f"{rate[command.label]:.1f}",
            f"{rate[command.label] / rate[anchor.label]:.2f}", f"{command.median('main') / MIB:.1f}",
            f"{command.median('worker') / MIB:.1f}", f"{command.median('tree') / MIB:.1f}",
            f"{max(r.processes for r in command.runs)}"]) + " |")
    return "\n".join(lines)


def report(batch: list[Command], files: int, noop: dict, args: argparse.Namespace,
           command_line: str, info: str, versions_text: str, folders: dict[str, str]) -> str:
    pool, dask = batch[0], batch[1]
    overhead = (dask.median("seconds") - pool.median("seconds")) / files * 1000
    per_task = statistics.median(noop["ms_per_task"])

    def shown(argv: list[str]) -> str:
        text = shlex.join(argv) if argv[0] != "bash" else argv[-1]
        for folder, name in folders.items():
            text = text.replace(folder, name)
        return text

    return "\n".join([
        "# Large batches: kmquant's process pool and LocalCluster vs pngquant (whole processes)",
        "",
        f"- Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- Machine: {info}",
        f"- Versions: {versions_text}",
        f"- Command: `{command_line}`",
        f"- Files: {files} crops of the Kodak photos scaled to 64×64 … 768×512, "
        f"{JPEG_SHARE:.0%} JPEG, in {FOLDERS} folders (seed {args.seed}); pngquant gets the "
        "JPEGs as PNGs of the same pixels (it reads PNG only). K = 256, no dithering.",
        f"- Runs: the three commands in turn, {args.repeat} timed round(s) after an untimed warm-up "
        f"on {args.warm_up} files; medians; outputs deleted before each run. Peaks: VmHWM sampled "
        f"every {args.sample} s over the command's process tree (main: the spawned process, with "
        "--cluster local also the scheduler and the nannies; "
        "worker: the largest worker process; tree: the largest sum of VmRSS at one sample).",
        "",
        table(batch, files),
        "",
        f"- LocalCluster overhead per file, whole process (dask − pool) ÷ files: {overhead:.1f} ms "
        f"({dask.median('seconds') - pool.median('seconds'):+.2f} s over {files} files, "
        "start-up and shut-down included).",
        f"- LocalCluster ({args.jobs} processes × 1 thread), {args.noop_tasks} no-op tasks through "
        f"`client.map` + `as_completed`: {per_task:.2f} ms per task (median of "
        f"{len(noop['ms_per_task'])} round(s): "
        + ", ".join(f"{v:.2f}" for v in noop["ms_per_task"])
        + f"); the cluster's start-up: {noop['startup_s']:.2f} s.",
        "",
        "Commands (" + ", ".join(f"{name} = {folder}" for folder, name in folders.items()) + "):",
        "",
        *(f"- {c.label}: `{shown(c.argv)}`" for c in batch),
        "",
    ])


def write_runs(batch: list[Command], files: int, path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("command", "run", "wall_s", "files_per_s", "main_mib", "worker_mib",
                         "tree_mib", "processes"))
        for command in batch:
            for i, run in enumerate(command.runs, 1):
                writer.writerow((command.label, i, f"{run.seconds:.4f}",
                                 f"{files / run.seconds:.2f}", f"{run.main / MIB:.2f}",
                                 f"{run.worker / MIB:.2f}", f"{run.tree / MIB:.2f}",
                                 run.processes))


# --------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000, help="photographs (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds (default 3)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="workers of each command: -j, xargs -P (default 2)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"folder of PNG photos (default {DEFAULT_DATA})")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK,
                        help=f"folder for the photographs (kept, reused) and outputs "
                             f"(default {DEFAULT_WORK})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="folder for batch.md and batch-runs.csv (default bench/results)")
    parser.add_argument("--seed", type=int, default=0, help="photographs' seed (default 0)")
    parser.add_argument("--warm-up", type=int, default=48,
                        help="files of the untimed warm-up run of each command (0: none; "
                             "default 48)")
    parser.add_argument("--noop-tasks", type=int, default=1000,
                        help="no-op tasks per round on the LocalCluster (default 1000)")
    parser.add_argument("--sample", type=float, default=0.05,
                        help="seconds between two looks at a command's processes (default 0.05)")
    parser.add_argument("--kmquant", default=None,
                        help="the kmquant program (default: the console script beside this Python)")
    parser.add_argument("--noop", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.files < 1 or args.repeat < 1 or args.jobs < 1 or args.noop_tasks < 1:
        parser.error("--files, --repeat, --jobs and --noop-tasks must be at least 1")
    return args


def kmquant_command(script: str | None) -> list[str]:
    """``--kmquant``, else the console script beside this Python, else ``python -m kmquant``."""
    if script:
        return [script]
    beside = Path(sys.executable).with_name("kmquant")
    return [str(beside)] if beside.is_file() else [sys.executable, "-m", "kmquant"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.noop is not None:
        noop_child(args.noop, args.repeat, args.jobs)
        return 0
    if not os.access(PNGQUANT, os.X_OK):
        raise SystemExit(f"{PNGQUANT}: not installed (apt-get install pngquant)")
    command_line = shlex.join([Path(sys.executable).name, sys.argv[0], *argv])
    info, versions_text = machine(), versions(sys.executable)
    log(f"machine: {info}\nversions: {versions_text}")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    photos, twins = make_photos(args.data.resolve(), work, args.files, args.seed)
    kmquant = kmquant_command(args.kmquant)
    try:
        if args.warm_up:
            log(f"warm-up: {min(args.warm_up, args.files)} files, untimed")
            few = min(args.warm_up, args.files)
            small = commands(subset(photos, work / "warm-photos", few),
                             subset(twins, work / "warm-pq-in", few), work / "out", args.jobs,
                             kmquant)
            measure(small, few, 1, args.sample)
        batch = commands(photos, twins, work / "out", args.jobs, kmquant)
        log(f"timed: {args.files} files, {args.repeat} round(s)")
        measure(batch, args.files, args.repeat, args.sample)
        log(f"no-op tasks: {args.noop_tasks} per round on a LocalCluster")
        noop = noop_overhead(args.noop_tasks, args.repeat, args.jobs)
    except CommandError as exc:
        raise SystemExit(f"bench_batch: {exc}") from None
    folders = {str(photos): "PHOTOS", str(twins): "PQDIR", str(work / "out"): "OUT"}
    markdown = report(batch, args.files, noop, args, command_line, info, versions_text, folders)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "batch.md").write_text(markdown)
    write_runs(batch, args.files, args.out / "batch-runs.csv")
    print(markdown)
    log(f"wrote {args.out / 'batch.md'}, {args.out / 'batch-runs.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
