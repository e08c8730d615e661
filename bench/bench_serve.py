"""Load test of ``kmquant serve``: C clients upload photos for S seconds; answers, latency, memory.

The script starts a real server (``python -m kmquant serve --no-browser --port <free> --workers
W``), warms it up, then runs ``--concurrency`` clients (threads, each with its own
``httpx.Client`` and connection) that upload the photos in turn (``POST /api/compress``, field
``file``, ``k=64``) until ``--seconds`` have passed; each client then waits for its last answer.
By default a client sends its next upload as soon as an answer comes, a 429 included (the worst
case for the server); with ``--retry-after`` it first sleeps the seconds of ``Retry-After``.

Checks (the exit status is 1 when one fails):

- every request sent is answered (no transport error), with 200 or 429, never 5xx or another
  status;
- each 200 body is an indexed PNG (signature, IHDR colour type 3);
- each 429 has a ``Retry-After`` header.

Memory: the sum of ``VmRSS`` (``/proc/<pid>/status``) over the server and all its descendants
(the forkserver, the worker processes, the resource tracker), found by their parent pid in
``/proc/<pid>/stat``:

baseline
    after the warm-up (``2 × W`` uploads at once, twice, so that every worker has compressed),
    once it settles;
peak
    the largest sum, sampled every ``--interval`` seconds (0.1) during the load;
after
    once the load has ended and the sum settles (changes less than 1 MiB over 2 s; at most
    ``--settle`` seconds).

CPU: the CPU seconds the server, its workers, the clients and every other process of the
machine used during the load (``/proc/<pid>/stat``, ``/proc/stat``), since the clients share the
machine with the server and anything else running there lowers the rates.

Usage::

    python bench/bench_serve.py                                 # 40 clients x 30 s, 2 workers
    python bench/bench_serve.py --retry-after                   # polite clients
    python bench/bench_serve.py --concurrency 8 --seconds 5 --out /tmp/serve

Writes ``OUT/serve.md`` (machine, command, the table, CPU, memory per process kind),
``OUT/serve_requests.csv`` (one row per request) and ``OUT/serve_memory.csv`` (one row per
memory sample), and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

import kmquant

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import cpu_model  # noqa: E402  (the bench folder is not a package)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "kodak"
DEFAULT_OUT = REPO_ROOT / "bench" / "results"
SAMPLE_NAME = "sample"
MIB = 2**20
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Seconds to wait for the server's first answer to /api/health.
START_TIMEOUT = 60.0
#: A request's own timeout (far above the server's 60 s): a slow answer is measured, not lost.
REQUEST_TIMEOUT = 300.0
#: Memory has settled when it moved less than SETTLE_BYTES over the last SETTLE_WINDOW seconds.
SETTLE_BYTES = 1 * MIB
SETTLE_WINDOW = 2.0


# --------------------------------------------------------------------------------------------
# Memory of the server's process tree


def parents() -> dict[int, int]:
    """pid -> parent pid of every process in ``/proc`` (``/proc/<pid>/stat``, field 4)."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # the command name (field 2) is in parentheses and may hold spaces or ')'
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1:
            table[int(entry.name)] = int(fields[1])
    return table


def descendants(root: int, table: dict[int, int]) -> list[int]:
    """``root`` and every process below it, parents before children."""
    children: dict[int, list[int]] = {}
    for pid, parent in table.items():
        children.setdefault(parent, []).append(pid)
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack += children.get(pid, [])
    return found


def rss(pid: int) -> int | None:
    """``VmRSS`` of ``pid`` in bytes; None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def kind(pid: int, root: int, table: dict[int, int]) -> str:
    """``server``, ``forkserver``, ``worker`` (a child of the forkserver), ``resource_tracker``
    or ``other``."""
    if pid == root:
        return "server"
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        cmdline = b""
    parent = table.get(pid)
    if parent is not None and parent != root:
        return "worker"  # forked by the forkserver: it shows the forkserver's command line
    if b"forkserver" in cmdline:
        return "forkserver"
    if b"resource_tracker" in cmdline:
        return "resource_tracker"
    return "other"


@dataclass(frozen=True)
class Snapshot:
    """The tree's memory at one moment: seconds since the sampler started, bytes per process."""

    at: float
    processes: dict[int, tuple[str, int]]  # pid -> (kind, VmRSS bytes)

    @property
    def total(self) -> int:
        """Sum of VmRSS over the tree, bytes."""
        return sum(memory for _, memory in self.processes.values())

    def by_kind(self) -> dict[str, int]:
        """Bytes per process kind (workers summed)."""
        sums: dict[str, int] = {}
        for name, memory in self.processes.values():
            sums[name] = sums.get(name, 0) + memory
        return sums


def snapshot(root: int, start: float) -> Snapshot:
    """The memory of ``root`` and its descendants now."""
    table = parents()
    processes = {}
    for pid in descendants(root, table):
        memory = rss(pid)
        if memory is not None:
            processes[pid] = (kind(pid, root, table), memory)
    return Snapshot(time.monotonic() - start, processes)


@dataclass
class Sampler:
    """A thread that takes a :class:`Snapshot` of the tree every ``interval`` seconds."""

    root: int
    interval: float
    phase: str = "idle"
    samples: list[tuple[str, Snapshot]] = field(default_factory=list)
    _start: float = field(default_factory=time.monotonic)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.samples.append((self.phase, snapshot(self.root, self._start)))
            self._stop.wait(self.interval)

    def during(self, phase: str) -> list[Snapshot]:
        """The snapshots taken while ``phase`` was set."""
        return [s for p, s in list(self.samples) if p == phase]

    def settle(self, phase: str, limit: float) -> Snapshot:
        """Wait until the sum moved less than SETTLE_BYTES over SETTLE_WINDOW seconds (or
        ``limit`` seconds passed); the last snapshot."""
        self.phase = phase
        begin = time.monotonic()
        while True:
            time.sleep(self.interval)
            seen = self.during(phase)
            if not seen:
                continue
            window = [s.total for s in seen if s.at >= seen[-1].at - SETTLE_WINDOW]
            spanned = seen[-1].at - seen[0].at >= SETTLE_WINDOW
            if (spanned and max(window) - min(window) < SETTLE_BYTES) or \
                    time.monotonic() - begin > limit:
                return seen[-1]


# --------------------------------------------------------------------------------------------
# The server


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(workers: int, port: int, log: Path) -> subprocess.Popen:
    """``python -m kmquant serve`` on ``port``, once it answers /api/health."""
    argv = [sys.executable, "-m", "kmquant", "serve", "--no-browser", "--port", str(port),
            "--workers", str(workers)]
    with log.open("wb") as err:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=err)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise SystemExit(f"kmquant serve ended with {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            stop_server(process)
            raise SystemExit(f"kmquant serve did not answer within {START_TIMEOUT:g} s: "
                             f"{log.read_text()}")
        time.sleep(0.2)


def stop_server(process: subprocess.Popen) -> None:
    """SIGTERM (uvicorn stops, with its worker pool), then wait; SIGKILL if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --------------------------------------------------------------------------------------------
# The clients


@dataclass(frozen=True)
class Outcome:
    """One request: who sent it, what, and what came back (status 0: a transport error)."""

    client: int
    image: str
    start: float  # seconds since the load began
    seconds: float
    status: int
    body_bytes: int = 0
    indexed_png: bool = False
    retry_after: str | None = None
    error: str = ""


def is_indexed_png(body: bytes) -> bool:
    """``body`` starts as a PNG whose IHDR says colour type 3 (palette)."""
    return (body[:8] == PNG_SIGNATURE and body[12:16] == b"IHDR" and len(body) > 25
            and body[25] == 3)


@dataclass
class Load:
    """What the clients share: the images, the form, the deadline, and what came back."""

    url: str
    images: list[tuple[str, bytes]] = field(repr=False)
    k: int
    deadline: float
    honour_retry_after: bool = False
    origin: float = field(default_factory=time.monotonic)
    sent: int = 0
    outcomes: list[Outcome] = field(default_factory=list, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, outcome: Outcome) -> None:
        """Keep one outcome (from any client thread)."""
        with self.lock:
            self.outcomes.append(outcome)


def one_request(client: httpx.Client, load: Load, number: int, name: str,
                data: bytes) -> Outcome:
    """POST one upload; its outcome (a transport error is an outcome with status 0)."""
    with load.lock:
        load.sent += 1
    begin = time.monotonic()
    try:
        response = client.post(f"{load.url}/api/compress", data={"k": str(load.k)},
                               files={"file": (f"{name}.png", data, "image/png")})
    except httpx.TransportError as exc:
        return Outcome(number, name, begin - load.origin, time.monotonic() - begin, 0,
                       error=f"{type(exc).__name__}: {exc}")
    seconds = time.monotonic() - begin
    body, status = response.content, response.status_code
    return Outcome(number, name, begin - load.origin, seconds, status, len(body),
                   status == 200 and is_indexed_png(body), response.headers.get("retry-after"),
                   "" if status in (200, 429) else body[:200].decode(errors="replace"))


def client_loop(load: Load, number: int, start: threading.Barrier) -> None:
    """Client ``number`` (its own connection): upload image ``number``, ``number + 1``, … until
    the deadline; with ``honour_retry_after``, sleep the Retry-After seconds after a 429."""
    with httpx.Client(timeout=REQUEST_TIMEOUT) as client:
        start.wait()
        turn = number
        while time.monotonic() < load.deadline:
            name, data = load.images[turn % len(load.images)]
            turn += 1
            outcome = one_request(client, load, number, name, data)
            load.record(outcome)
            if load.honour_retry_after and outcome.status == 429 and outcome.retry_after:
                time.sleep(min(float(outcome.retry_after),
                               max(0.0, load.deadline - time.monotonic())))


def run_clients(url: str, images: list[tuple[str, bytes]], concurrency: int, seconds: float,
                k: int, honour_retry_after: bool = False) -> tuple[Load, float]:
    """``concurrency`` client threads for ``seconds``; the load and the wall seconds from the
    start to the last answer.

    Threads, not asyncio: the clients share the machine with the server, and httpx's async
    client costs far more CPU per request (its pool scans every connection per request, and
    httpcore retries ``import sniffio`` on each call when sniffio is not installed)."""
    load = Load(url, images, k, 0.0, honour_retry_after)
    start = threading.Barrier(concurrency + 1)
    threads = [threading.Thread(target=client_loop, args=(load, n, start), daemon=True)
               for n in range(concurrency)]
    for thread in threads:
        thread.start()
    load.origin = time.monotonic()
    load.deadline = load.origin + seconds
    start.wait()
    for thread in threads:
        thread.join()
    return load, time.monotonic() - load.origin


def batch(url: str, images: list[tuple[str, bytes]], k: int) -> list[Outcome]:
    """One upload of each image, all at once (one thread and connection each)."""
    load = Load(url, images, k, 0.0)
    with httpx.Client(timeout=REQUEST_TIMEOUT,
                      limits=httpx.Limits(max_connections=len(images))) as client, \
            ThreadPoolExecutor(len(images)) as pool:
        futures = [pool.submit(one_request, client, load, n, name, data)
                   for n, (name, data) in enumerate(images)]
        return [f.result() for f in futures]


def warm_up(url: str, images: list[tuple[str, bytes]], workers: int, k: int) -> None:
    """``2 × workers`` uploads at once (none refused), twice, so that every worker
    compresses."""
    count = 2 * workers
    for round_ in range(2):
        chosen = [images[(round_ * count + n) % len(images)] for n in range(count)]
        bad = [o for o in batch(url, chosen, k) if o.status != 200 or not o.indexed_png]
        if bad:
            raise SystemExit(f"warm-up failed: {bad[0].status} {bad[0].error}")


def cpu_seconds(root: int) -> dict[str, float]:
    """CPU seconds (user + system) used so far by the tree's processes, per kind; ``machine``:
    busy seconds of all CPUs (``/proc/stat``); ``client``: this process."""
    tick = os.sysconf("SC_CLK_TCK")
    table = parents()
    used: dict[str, float] = {}
    for pid in descendants(root, table):
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        name = kind(pid, root, table)
        used[name] = used.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    with open("/proc/stat") as handle:
        cpu = [int(v) for v in handle.readline().split()[1:]]
    used["machine"] = (sum(cpu[:8]) - cpu[3] - cpu[4]) / tick  # all but idle and iowait
    times = os.times()
    used["client"] = times.user + times.system
    return used


# --------------------------------------------------------------------------------------------
# Results


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank ``q``-th percentile (0 < q <= 100); None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n q / 100)
    return ordered[int(rank) - 1]


def checks(load: Load) -> list[str]:
    """What went wrong: one line per failed check (empty when all pass)."""
    outcomes = load.outcomes
    problems = []
    if load.sent != len(outcomes):
        problems.append(f"{load.sent} requests sent, {len(outcomes)} outcomes recorded")
    lost = [o for o in outcomes if o.status == 0]
    if lost:
        problems.append(f"{len(lost)} transport errors, e.g. {lost[0].error}")
    other = [o for o in outcomes if o.status not in (0, 200, 429)]
    if other:
        problems.append(f"{len(other)} answers neither 200 nor 429, e.g. {other[0].status} "
                        f"{other[0].error}")
    not_png = [o for o in outcomes if o.status == 200 and not o.indexed_png]
    if not_png:
        problems.append(f"{len(not_png)} 200 answers whose body is not an indexed PNG")
    no_retry = [o for o in outcomes if o.status == 429 and not o.retry_after]
    if no_retry:
        problems.append(f"{len(no_retry)} 429 answers without Retry-After")
    return problems


def milliseconds(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def megabytes(value: int) -> str:
    return f"{value / MIB:.0f}"


def table(args: argparse.Namespace, load: Load, elapsed: float,
          memory: dict[str, Snapshot]) -> str:
    """The Markdown table of one run (one row)."""
    ok = [o.seconds for o in load.outcomes if o.status == 200]
    busy = [o.seconds for o in load.outcomes if o.status == 429]
    other = len(load.outcomes) - len(ok) - len(busy)
    head = ("| machine | workers | concurrency | seconds | requests | 200 | 429 | other "
            "| compressions/s | p50 200 (ms) | p99 200 (ms) | p50 429 (ms) | p99 429 (ms) "
            "| RSS baseline (MB) | RSS peak (MB) | RSS after (MB) |")
    rule = "|---|" + "---:|" * 15
    row = (f"| {cpu_model()}, {os.cpu_count()} cores | {args.workers} | {args.concurrency} "
           f"| {args.seconds:g} | {load.sent} | {len(ok)} | {len(busy)} | {other} "
           f"| {len(ok) / elapsed:.2f} | {milliseconds(percentile(ok, 50))} "
           f"| {milliseconds(percentile(ok, 99))} | {milliseconds(percentile(busy, 50))} "
           f"| {milliseconds(percentile(busy, 99))} | {megabytes(memory['baseline'].total)} "
           f"| {megabytes(memory['peak'].total)} | {megabytes(memory['after'].total)} |")
    return "\n".join([head, rule, row])


def memory_table(memory: dict[str, Snapshot]) -> str:
    """VmRSS per process kind (workers summed) at baseline, at the peak of the sum, after."""
    kinds = sorted({k for snap in memory.values() for k in snap.by_kind()},
                   key=lambda k: ("server", "forkserver", "worker", "resource_tracker").index(k)
                   if k in ("server", "forkserver", "worker", "resource_tracker") else 9)
    lines = ["| process | count | baseline (MB) | at peak (MB) | after (MB) |",
             "|---|---:|---:|---:|---:|"]
    for name in kinds:
        count = sum(1 for k, _ in memory["after"].processes.values() if k == name)
        values = [megabytes(memory[m].by_kind().get(name, 0))
                  for m in ("baseline", "peak", "after")]
        lines.append(f"| {name} | {count} | {' | '.join(values)} |")
    lines.append("| **total** | {} | {} |".format(
        len(memory["after"].processes),
        " | ".join(megabytes(memory[m].total) for m in ("baseline", "peak", "after"))))
    return "\n".join(lines)


def header(command: str, args: argparse.Namespace, images: list[tuple[str, bytes]],
           elapsed: float, settled: float) -> str:
    """Markdown header: machine, versions, date, command line and what was measured."""
    sizes = sorted(len(data) for _, data in images)
    return "\n".join([
        "# kmquant serve under load",
        "",
        f"- Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- Machine: {platform.platform()}; {os.cpu_count()} CPUs; {cpu_model()} "
        "(the clients run on the same machine)",
        f"- Versions: Python {platform.python_version()}, kmquant {kmquant.__version__}, "
        f"httpx {httpx.__version__}",
        f"- Command: `{command}`",
        f"- Images: {len(images)} ({', '.join(n for n, _ in images[:4])}"
        f"{', …' if len(images) > 4 else ''}), {sizes[0] // 1024}–{sizes[-1] // 1024} KB",
        f"- Load: {args.concurrency} clients, each uploading the images in turn "
        f"(POST /api/compress, k={args.k}) for {args.seconds:g} s"
        f"{', sleeping Retry-After after a 429' if args.retry_after else ', no pause after a 429'}"
        f"; the last answer came after {elapsed:.1f} s. compressions/s = 200 answers / "
        f"{elapsed:.1f} s.",
        "- Latency: from sending the request to the whole answer read (nearest-rank percentiles).",
        f"- Memory: sum of VmRSS over the server and its descendants; baseline after a warm-up "
        f"of 2 × {2 * args.workers} uploads, peak sampled every {args.interval:g} s during the "
        f"load, after = once the sum moved < 1 MiB over 2 s ({settled:.1f} s after the load).",
    ])


def write_requests(load: Load, path: Path) -> None:
    """One row per request."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["client", "image", "start_s", "seconds", "status", "body_bytes",
                         "indexed_png", "retry_after", "error"])
        for o in sorted(load.outcomes, key=lambda o: o.start):
            writer.writerow([o.client, o.image, f"{o.start:.4f}", f"{o.seconds:.4f}", o.status,
                             o.body_bytes, int(o.indexed_png), o.retry_after or "", o.error])


def write_memory(samples: list[tuple[str, Snapshot]], path: Path) -> None:
    """One row per memory sample: phase, seconds, MB per process kind and in all."""
    kinds = ("server", "forkserver", "worker", "resource_tracker", "other")
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phase", "at_s", *(f"{k}_mb" for k in kinds), "total_mb", "processes"])
        for phase, snap in samples:
            sums = snap.by_kind()
            writer.writerow([phase, f"{snap.at:.2f}", *(f"{sums.get(k, 0) / MIB:.1f}"
                                                        for k in kinds),
                             f"{snap.total / MIB:.1f}", len(snap.processes)])


# --------------------------------------------------------------------------------------------
# Command line


def load_images(data: Path | None, names: list[str] | None) -> list[tuple[str, bytes]]:
    """(name, PNG bytes) of ``DATA/<name>.png`` (default every ``kodim*.png``), or of the
    packaged sample when there is no data folder."""
    if data is None and DEFAULT_DATA.is_dir():
        data = DEFAULT_DATA
    if data is None:
        paths = {SAMPLE_NAME: kmquant.sample_path()}
    elif names is None:
        paths = {p.stem: p for p in sorted(data.glob("kodim*.png"))}
    else:
        paths = {n: kmquant.sample_path() if n == SAMPLE_NAME else data / f"{n}.png"
                 for n in names}
    if not paths:
        raise SystemExit(f"no kodim*.png in {data}; pass --data DIR or --images")
    for path in paths.values():
        if not path.is_file():
            raise SystemExit(f"{path}: no such image")
    return [(name, path.read_bytes()) for name, path in paths.items()]


def comma_list(text: str) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]``."""
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2,
                        help="server worker processes (default 2)")
    parser.add_argument("--concurrency", type=int, default=40, help="clients at once (default 40)")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="seconds the clients send new uploads (default 30)")
    parser.add_argument("--k", type=int, default=64, help="K of every upload (default 64)")
    parser.add_argument("--data", type=Path, default=None,
                        help=f"folder of PNG photos (default {DEFAULT_DATA} if it exists, "
                             "else the packaged sample)")
    parser.add_argument("--images", type=comma_list, default=None,
                        help="comma list of image names in DATA (default every kodim*.png; "
                             f"'{SAMPLE_NAME}' is the packaged sample)")
    parser.add_argument("--retry-after", action="store_true",
                        help="a client sleeps the Retry-After seconds after a 429 (default: it "
                             "sends its next upload at once)")
    parser.add_argument("--interval", type=float, default=0.1,
                        help="seconds between memory samples (default 0.1)")
    parser.add_argument("--settle", type=float, default=10.0,
                        help="longest wait, in seconds, for memory to settle (default 10)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output folder (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.concurrency < 1 or args.seconds <= 0 or args.interval <= 0:
        parser.error("--workers and --concurrency must be at least 1, --seconds and "
                     "--interval above 0")
    if not 1 <= args.k <= 256:
        parser.error("--k must be from 1 to 256")
    return args


@dataclass
class Result:
    """Everything one run measured."""

    load: Load
    elapsed: float  # seconds from the clients' start to the last answer
    settled: float  # seconds from the end of the load until memory settled
    memory: dict[str, Snapshot]  # baseline, peak, after
    samples: list[tuple[str, Snapshot]]
    cpu: dict[str, float]  # CPU seconds during the load, per process kind
    health: int
    server_log: str


def measure(args: argparse.Namespace, images: list[tuple[str, bytes]]) -> Result:
    """Start the server, warm it up, load it, watch its memory settle, stop it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "serve.log"
        server = start_server(args.workers, port, log)
        try:
            with Sampler(server.pid, args.interval) as sampler:
                warm_up(url, images, args.workers, args.k)
                baseline = sampler.settle("baseline", args.settle)
                sampler.phase = "load"
                before = cpu_seconds(server.pid)
                load, elapsed = run_clients(url, images, args.concurrency, args.seconds,
                                            args.k, args.retry_after)
                used = cpu_seconds(server.pid)
                begin = time.monotonic()
                after = sampler.settle("after", args.settle)
                settled = time.monotonic() - begin
                health = httpx.get(f"{url}/api/health", timeout=10).status_code
            peak = max(sampler.during("load") or [after], key=lambda s: s.total)
            samples = list(sampler.samples)
        finally:
            stop_server(server)
        server_log = log.read_text(errors="replace")
    cpu = {name: used[name] - before.get(name, 0.0) for name in used}
    return Result(load, elapsed, settled, {"baseline": baseline, "peak": peak, "after": after},
                  samples, cpu, health, server_log)


def cpu_line(result: Result) -> str:
    """CPU seconds during the load: per process kind, the clients, the rest of the machine."""
    cpu = result.cpu
    tree = sum(v for k, v in cpu.items() if k not in ("machine", "client"))
    others = max(0.0, cpu["machine"] - tree - cpu["client"])
    parts = [f"{name} {cpu[name]:.1f}" for name in ("server", "worker") if name in cpu]
    return (f"CPU seconds during the load ({result.elapsed:.1f} s × {os.cpu_count()} CPUs = "
            f"{result.elapsed * (os.cpu_count() or 1):.0f} available): {', '.join(parts)} "
            f"(workers summed), clients {cpu['client']:.1f}, other processes of the machine "
            f"{others:.1f}, machine busy {cpu['machine']:.1f}.")


def main(argv: list[str] | None = None) -> int:
    """Run the load; write OUT/serve.md and the CSVs; print the table; 1 if a check failed."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = shlex.join([Path(sys.executable).name, sys.argv[0], *argv])
    images = load_images(args.data, args.images)
    result = measure(args, images)
    problems = checks(result.load)
    if result.health != 200:
        problems.append(f"/api/health answered {result.health} after the load")
    if "Traceback" in result.server_log:
        problems.append("the server logged a traceback: " + result.server_log[-500:])
    text = "\n\n".join([
        header(command, args, images, result.elapsed, result.settled),
        table(args, result.load, result.elapsed, result.memory),
        cpu_line(result),
        "Memory (VmRSS) per process kind:", memory_table(result.memory)])
    text += "\n\nChecks: " + ("all passed" if not problems else "; ".join(problems)) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve.md").write_text(text)
    write_requests(result.load, args.out / "serve_requests.csv")
    write_memory(result.samples, args.out / "serve_memory.csv")
    print(text)
    print(f"wrote {args.out / 'serve.md'}, serve_requests.csv and serve_memory.csv",
          file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
