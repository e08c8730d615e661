"""The Dask engine against real processes: a scheduler and two workers (each with its nanny)
started with the ``dask`` command, and ``kmquant compress --scheduler`` / ``--cluster local`` run
as whole processes. Batches that count right, a client or a worker killed midway, resume from the
manifest, signals, and fsspec URLs (in process: the memory filesystem lives in one process).

The workers run in another folder than the command, so a path handed to them must be absolute.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import distributed  # the dask extra, which make test installs
import numpy as np
import pytest
from PIL import Image

DASK = Path(sys.executable).with_name("dask")
MANIFEST = "kmquant-manifest.jsonl"
STATUSES = ("done", "skipped", "failed")


# --------------------------------------------------------------------------------------------
# Processes


def _running_in_group(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that still run (zombies are dead: they hold no memory
    and do no work). As in test_batch.py."""
    running = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            running.append(int(entry.name))
    return running


def _group_gone(pgid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not _running_in_group(pgid):
            return True
        time.sleep(0.05)
    return False


def _stop_group(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group of ``process`` (its own session), SIGKILL what is left after
    ``grace`` seconds; reap ``process``."""
    for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            break
        if _group_gone(process.pid, wait):
            break
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_for(predicate, timeout: float, what: str, interval: float = 0.02):
    """Poll ``predicate()`` until it returns something true; fail with ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class Cluster:
    """A scheduler and two workers started with the ``dask`` command."""

    address: str
    client: distributed.Client
    folder: Path
    processes: list[subprocess.Popen]

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}"
                         for p in sorted(self.folder.glob("*.log")))

    def worker_pids(self) -> dict[str, int]:
        """Worker address → the worker process's id (not its nanny's)."""
        return self.client.run(os.getpid)

    def ready(self, timeout: float = 60.0) -> dict[str, int]:
        """Wait until two workers are connected and answer; returns their pids."""
        def two():
            if len(self.client.scheduler_info(n_workers=-1)["workers"]) != 2:
                return None
            try:
                pids = self.worker_pids()
            except (OSError, distributed.comm.CommClosedError):
                return None
            return pids if len(pids) == 2 else None

        return _wait_for(two, timeout, f"two workers\n{self.logs()}", interval=0.2)

    def idle(self, timeout: float = 60.0) -> None:
        """Wait until no task is processing on the scheduler and no worker thread runs one (a
        task released by a client that died goes on in its thread until it ends)."""
        def quiet():
            if any(self.client.processing().values()):
                return False
            running = self.client.run(lambda dask_worker: len(dask_worker.active_threads))
            return not any(running.values())

        _wait_for(quiet, timeout, "the cluster to go idle", interval=0.1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``dask scheduler`` and two ``dask worker`` (one thread each, with their nannies) on
    127.0.0.1, each in its own session; torn down and reaped, none left running."""
    folder = tmp_path_factory.mktemp("cluster")
    file = folder / "scheduler.json"
    processes: list[subprocess.Popen] = []
    client = None

    def start(name: str, *args: str) -> None:
        with open(folder / f"{name}.log", "wb") as log:
            processes.append(subprocess.Popen(
                [str(DASK), *args], cwd=folder, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True))

    try:
        start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
              "--scheduler-file", str(file))
        address = _wait_for(lambda: _scheduler_address(file), 60, "the scheduler file",
                            interval=0.1)
        for i in range(2):
            start(f"worker{i}", "worker", "--nthreads", "1", "--no-dashboard", "--host",
                  "127.0.0.1", "--scheduler-file", str(file),
                  "--local-directory", str(folder / f"scratch{i}"))
        client = distributed.Client(address, timeout=60, set_as_default=False)
        running = Cluster(address, client, folder, processes)
        running.ready()
        yield running
    finally:
        if client is not None:
            client.close()
        for process in reversed(processes):  # workers first: they leave, then the scheduler
            _stop_group(process)
    left = {p.pid: _running_in_group(p.pid) for p in processes}
    assert not any(left.values()), f"processes of the cluster outlived it: {left}"


def _scheduler_address(file: Path) -> str | None:
    try:
        return json.loads(file.read_text())["address"]
    except (OSError, ValueError, KeyError):
        return None


# --------------------------------------------------------------------------------------------
# Images and the command


def _picture(rng: np.random.Generator, height: int, width: int, kind: int) -> np.ndarray:
    """(height, width, 3) uint8 of one of four kinds: noisy gradient, blocks, stripes, noise."""
    y, x = np.mgrid[0:height, 0:width]
    if kind == 0:
        base = np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // (height + width)],
                        axis=-1)
        pixels = base + rng.integers(-30, 30, (height, width, 3))
    elif kind == 1:
        colours = rng.integers(0, 256, (9, 3))
        pixels = colours[(y * 3 // height) * 3 + x * 3 // width]
    elif kind == 2:
        pixels = np.stack([np.sin(x / rng.uniform(1, 6)) * 120 + 128,
                           np.cos(y / rng.uniform(1, 6)) * 120 + 128,
                           np.full((height, width), rng.integers(0, 256))], axis=-1)
    else:
        pixels = rng.integers(0, 256, (height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _write_picture(path: Path, pixels: np.ndarray, rng: np.random.Generator) -> None:
    image = Image.fromarray(pixels)
    if path.suffix == ".jpg":
        image.save(path, quality=int(rng.integers(60, 95)))
    elif rng.random() < 0.2:  # some with an alpha channel
        alpha = rng.integers(0, 2, pixels.shape[:2], dtype=np.uint8) * 255
        Image.fromarray(np.dstack([pixels, alpha])).save(path)
    else:
        image.save(path)


FOLDERS = ("", "a", "a/b", "c/d/e", "f")


def _make_tree(root: Path, n: int, *, sizes: tuple[int, int], seed: int) -> list[Path]:
    """``n`` images, PNG and JPEG, sides in ``sizes`` (inclusive), spread over nested folders;
    every stem distinct."""
    rng = np.random.default_rng(seed)
    made = []
    for i in range(n):
        folder = root / FOLDERS[i % len(FOLDERS)]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"img{i:03d}{'.jpg' if i % 3 == 0 else '.png'}"
        height, width = (int(s) for s in rng.integers(sizes[0], sizes[1] + 1, 2))
        _write_picture(path, _picture(rng, height, width, i % 4), rng)
        made.append(path)
    return made


def _make_bad(root: Path) -> list[Path]:
    """Six files that cannot be read: truncated PNGs, text named .png, empty JPEGs."""
    buffer = io.BytesIO()
    Image.fromarray(_picture(np.random.default_rng(1), 40, 40, 3)).save(buffer, format="PNG")
    whole = buffer.getvalue()
    bad = {"a/truncated1.png": whole[: len(whole) // 2], "c/d/truncated2.png": whole[:60],
           "notes.png": b"this is a text file, not a picture\n",
           "a/b/readme.png": b"# not an image either\n", "empty.jpg": b"", "c/empty2.jpg": b""}
    for name, data in bad.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return [root / name for name in bad]


def _kmquant(*args: str) -> list[str]:
    return [sys.executable, "-m", "kmquant", "compress", *args]


def _run(argv: list[str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _records(stdout: str) -> list[dict]:
    records = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    assert all(r["status"] in STATUSES for r in records), records
    return records


def _at(cwd: Path, path: str) -> str:
    """A path as the command printed it (relative to ``cwd`` or absolute), made absolute."""
    return os.path.normpath(os.path.join(cwd, path))


def _manifest(out: Path, cwd: Path) -> dict[str, list[dict]]:
    """Absolute input path → its manifest records, oldest first (none: no manifest)."""
    by_input: dict[str, list[dict]] = {}
    if not (out / MANIFEST).is_file():
        return by_input
    for line in (out / MANIFEST).read_text().splitlines():
        record = json.loads(line)
        by_input.setdefault(_at(cwd, record["input"]), []).append(record)
    return by_input


def _outputs(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*.png") if not p.name.startswith("."))


def _temporaries(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob(".*.tmp")]


def _expected_output(src: Path, root: Path, out: Path, k: int) -> str:
    return os.path.normpath(out / src.parent.relative_to(root) / f"{src.stem}.k{k}.png")


def _check_indexed(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "P", (path, image.mode)
        image.load()  # whole: it decodes


def _stats(paths: list[Path]) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in paths}


# --------------------------------------------------------------------------------------------
# A batch on the cluster


def test_a_mixed_batch_on_the_cluster_counts_right(cluster, tmp_path):
    good = _make_tree(tmp_path / "in", 294, sizes=(16, 48), seed=0)
    bad = _make_bad(tmp_path / "in")
    done = _run(_kmquant("in", "-r", "--out-dir", "out", "--scheduler", cluster.address, "--json",
                         "-k", "16", "-q"), cwd=tmp_path)
    records = _records(done.stdout)
    by_status = {s: [r for r in records if r["status"] == s] for s in STATUSES}
    assert len(records) == 300, done.stderr
    assert len(by_status["done"]) == len(good) and len(by_status["failed"]) == len(bad), \
        done.stderr
    failed_codes = {r["exit_code"] for r in by_status["failed"]}
    assert done.returncode != 0 and done.returncode in failed_codes, done.stderr
    assert {_at(tmp_path, r["input"]) for r in by_status["failed"]} == {str(p) for p in bad}
    for record in by_status["failed"]:
        assert record["error"] and isinstance(record["exit_code"], int) and record["exit_code"] > 0
    out = tmp_path / "out"
    expected = {_at(tmp_path, str(p)): _expected_output(p, tmp_path / "in", out, 16) for p in good}
    for record in by_status["done"]:
        assert _at(tmp_path, record["output"]) == expected[_at(tmp_path, record["input"])]
        assert record["original_bytes"] > 0 and record["compressed_bytes"] > 0
        assert "psnr" in record and "ssim" in record and record["options"]["n_colors"] == 16
    written = _outputs(out)
    assert sorted(map(str, written)) == sorted(expected.values())  # mirrored, nothing for bad
    for path in written:
        _check_indexed(path)
    assert not _temporaries(tmp_path)
    manifest = _manifest(out, tmp_path)
    assert sorted(manifest) == sorted(str(p) for p in good + bad)
    assert all(len(lines) == 1 for lines in manifest.values())
    for record in (lines[0] for lines in manifest.values()):
        assert record["status"] in ("done", "failed") and record["options_digest"]
        if record["status"] == "done":
            assert record["input_hash"] and record["compressed_bytes"] > 0


def _start(argv: list[str], cwd: Path) -> tuple[subprocess.Popen, Path, Path]:
    """The command in its own session, stdout and stderr to files (a pipe nobody reads could
    fill and stall it)."""
    stdout, stderr = cwd / "stdout.jsonl", cwd / "stderr.txt"
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        child = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                 start_new_session=True)
    return child, stdout, stderr


def test_a_killed_client_then_a_rerun_rewrites_nothing_and_finishes(cluster, tmp_path):
    cluster.ready()
    inputs = _make_tree(tmp_path / "in", 60, sizes=(160, 256), seed=2)
    argv = _kmquant("in", "-r", "--out-dir", "out", "--scheduler", cluster.address, "--json",
                    "-k", "16", "-q")
    out = tmp_path / "out"
    child, _, stderr = _start(argv, tmp_path)
    try:
        _wait_for(lambda: len(_outputs(out)) >= 4 if out.is_dir() else False, 60,
                  "the first outputs")
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=10)
    cluster.idle()  # what its workers were still doing has ended
    before = _stats(_outputs(out))
    assert len(before) < len(inputs), "the kill came too late: every file was done"
    for path in before:  # what a client killed midway left is whole
        _check_indexed(path)
    done = _run(argv, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    records = _records(done.stdout)
    assert sorted(_at(tmp_path, r["input"]) for r in records) == sorted(map(str, inputs))
    assert {r["status"] for r in records} <= {"done", "skipped"}
    after = _outputs(out)
    assert len(after) == len(inputs)
    for path in after:
        _check_indexed(path)
    rewritten = [p for p, stat in before.items() if _stats([p])[p] != stat]
    assert not rewritten, f"{len(rewritten)} whole outputs were written again, e.g. {rewritten[0]}"
    assert not _temporaries(tmp_path)
    manifest = _manifest(out, tmp_path)
    unrecorded = sorted(set(map(str, inputs)) - set(manifest))
    assert not unrecorded, f"inputs the manifest does not record after the rerun: {unrecorded}"
    # done, or found written whole and up to date (by a task of the killed client)
    assert all(lines[-1]["status"] == "done" or lines[-1]["status"] == "skipped"
               and lines[-1]["reason"].startswith("up to date") for lines in manifest.values())


def test_a_killed_worker_does_not_lose_a_file(cluster, tmp_path):
    pids = cluster.ready()
    inputs = _make_tree(tmp_path / "in", 60, sizes=(160, 256), seed=3)
    argv = _kmquant("in", "-r", "--out-dir", "out", "--scheduler", cluster.address, "--json",
                    "-k", "16", "-q")
    out = tmp_path / "out"
    child, stdout, stderr = _start(argv, tmp_path)
    try:
        _wait_for(lambda: len(_outputs(out)) >= 4 if out.is_dir() else False, 60,
                  "the first outputs")
        victim = min(pids.values())
        os.kill(victim, signal.SIGKILL)  # the worker, not its nanny: the nanny starts another
        seen = len(_outputs(out))
        returncode = child.wait(timeout=180)
    finally:
        if child.poll() is None:
            _stop_group(child)
    assert seen < len(inputs), "the worker was killed too late: every file was done"
    assert returncode == 0, stderr.read_text()
    records = _records(stdout.read_text())
    assert sorted(_at(tmp_path, r["input"]) for r in records) == sorted(map(str, inputs))
    written = _outputs(out)
    assert len(written) == len(inputs)
    for path in written:
        _check_indexed(path)
    manifest = _manifest(out, tmp_path)
    again = cluster.ready()
    assert victim not in again.values()
    # the killed worker's half-written file, if any, is the next run's to remove
    rerun = _run(argv, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert {r["status"] for r in _records(rerun.stdout)} == {"skipped"}
    assert not _temporaries(tmp_path)
    # a file the killed worker wrote but could not report is rerun elsewhere: still this
    # batch's file, done (not "skipped, up to date"), and in the manifest
    not_done = [(r["input"], r["status"], r.get("reason")) for r in records
                if r["status"] != "done"]
    assert not not_done, f"files of this batch not reported done: {not_done}"
    unrecorded = sorted(set(map(str, inputs)) - set(manifest))
    assert not unrecorded, f"inputs the manifest does not record: {unrecorded}"


def test_a_rerun_redoes_only_what_changed(cluster, tmp_path):
    cluster.ready()
    inputs = _make_tree(tmp_path / "in", 10, sizes=(24, 40), seed=4)
    out = tmp_path / "out"

    def batch(k: int) -> tuple[subprocess.CompletedProcess, dict[str, dict]]:
        done = _run(_kmquant("in", "-r", "--out-dir", "out", "--scheduler", cluster.address,
                             "--json", "-k", str(k)), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done, {_at(tmp_path, r["input"]): r for r in _records(done.stdout)}

    first, records = batch(8)
    assert {r["status"] for r in records.values()} == {"done"} and len(records) == 10
    assert "kmquant: 10 done, 0 skipped, 0 failed" in first.stderr
    stats = _stats(_outputs(out))

    again, records = batch(8)
    assert {r["status"] for r in records.values()} == {"skipped"}
    assert all(any(word in r["reason"] for word in ("manifest", "up to date"))
               for r in records.values())
    assert "kmquant: 0 done, 10 skipped, 0 failed" in again.stderr
    assert _stats(_outputs(out)) == stats

    touched, changed = inputs[1], inputs[2]
    later = touched.stat().st_mtime + 100
    os.utime(touched, (later, later))  # newer, but the same content: still up to date
    _, records = batch(8)
    assert {r["status"] for r in records.values()} == {"skipped"}

    old_hash = _manifest(out, tmp_path)[str(changed)][-1]["input_hash"]
    rng = np.random.default_rng(99)
    _write_picture(changed, _picture(rng, 30, 30, 3), rng)  # other pixels
    _, records = batch(8)
    redone = sorted(path for path, r in records.items() if r["status"] == "done")
    assert redone == [str(changed)]
    assert all(r["status"] == "skipped" for path, r in records.items() if path != str(changed))
    assert _manifest(out, tmp_path)[str(changed)][-1]["input_hash"] != old_hash
    output = Path(_expected_output(changed, tmp_path / "in", out, 8))
    assert _stats([output]) != {output: stats[output]}
    with Image.open(output) as image:
        assert image.size == (30, 30)

    digests = {r["options_digest"] for lines in _manifest(out, tmp_path).values() for r in lines}
    _, records = batch(12)
    assert {r["status"] for r in records.values()} == {"done"} and len(records) == 10
    for path in inputs:
        _check_indexed(Path(_expected_output(path, tmp_path / "in", out, 12)))
    latest = {lines[-1]["options_digest"] for lines in _manifest(out, tmp_path).values()}
    assert len(latest) == 1 and not latest & digests


# --------------------------------------------------------------------------------------------
# Signals to a batch on its own LocalCluster


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_a_local_cluster_batch_promptly(tmp_path, signum):
    """SIGTERM to the command (``kill PID``); SIGINT to its whole process group, as Ctrl-C in
    a terminal sends it (the LocalCluster's worker processes get it too)."""
    _make_tree(tmp_path / "in", 40, sizes=(200, 256), seed=5)
    out = tmp_path / "out"
    child, stdout, stderr = _start(_kmquant("in", "-r", "--out-dir", "out", "--cluster", "local",
                                            "-j", "2", "--json", "-k", "64"), tmp_path)
    try:
        _wait_for(lambda: len(_outputs(out)) >= 4 if out.is_dir() else False, 60,
                  "the first outputs")
        signalled = time.monotonic()
        if signum == signal.SIGINT:
            os.killpg(child.pid, signum)
        else:
            os.kill(child.pid, signum)
        child.wait(timeout=30)
        took = time.monotonic() - signalled
    finally:
        if child.poll() is None:
            _stop_group(child)
    print(f"{signal.Signals(signum).name}: the batch ended {took:.2f} s after the signal")
    assert took < 4.0, f"the batch took {took:.2f} s to stop (goal: 2 s)"
    assert child.returncode == 130, stderr.read_text()
    assert _group_gone(child.pid, within=3.0), \
        f"processes of the batch outlived it: {_running_in_group(child.pid)}"
    assert not _temporaries(tmp_path)
    written = sorted(map(str, _outputs(out)))
    assert written, "nothing was written before the signal"
    for path in written:
        _check_indexed(Path(path))
    reported = sorted(_at(tmp_path, r["output"]) for r in _records(stdout.read_text())
                      if r["status"] == "done")
    assert written == reported  # every file written is whole and was reported
    listed = sorted(_at(tmp_path, r["output"]) for lines in _manifest(out, tmp_path).values()
                    for r in lines if r["status"] == "done")
    missing = sorted(set(written) - set(listed))
    assert not missing, f"written and reported, but not in the manifest: {missing}"
    assert "Traceback" not in stderr.read_text()  # one line says it was interrupted


# --------------------------------------------------------------------------------------------
# fsspec URLs, in process


def _png_bytes(seed: int, size: tuple[int, int]) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(_picture(rng, *size, seed % 4)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def memory_fs():
    """fsspec's memory filesystem (one per process, global): emptied of /in and /out after."""
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    yield fs
    for root in ("/in", "/out"):
        if fs.exists(root):
            fs.rm(root, recursive=True)
    assert not fs.exists("/in") and not fs.exists("/out")


def test_memory_urls_in_and_out(memory_fs, capsys, tmp_path):
    from kmquant.cli import main

    names = ["/in/one.png", "/in/sub/two.png", "/in/sub/deeper/three.png"]
    for i, name in enumerate(names):
        memory_fs.pipe(name, _png_bytes(i, (20 + 4 * i, 24)))
    manifest = tmp_path / "manifest.jsonl"  # a store gets none by default: it is a local file
    argv = ["compress", "memory://in", "-r", "--out-dir", "memory://out", "-j", "1", "--json",
            "-q", "--manifest", str(manifest)]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    records = _records(captured.out)
    assert len(records) == 3 and {r["status"] for r in records} == {"done"}
    written = sorted(p for p in memory_fs.find("/out") if p.endswith(".png"))
    assert written == ["/out/one.k64.png", "/out/sub/deeper/three.k64.png", "/out/sub/two.k64.png"]
    for i, name in enumerate(names):
        output = name.replace("/in/", "/out/").replace(".png", ".k64.png")
        with Image.open(io.BytesIO(memory_fs.cat(output))) as image:
            assert image.mode == "P" and image.size == (24, 20 + 4 * i)  # (width, height)
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(lines) == 3 and {r["status"] for r in lines} == {"done"}
    assert not memory_fs.exists(f"/out/{MANIFEST}")
    assert main(argv) == 0  # again: nothing to redo
    assert {r["status"] for r in _records(capsys.readouterr().out)} == {"skipped"}


def test_file_urls_in_and_out(tmp_path, capsys):
    from kmquant.cli import main

    inputs = _make_tree(tmp_path / "in", 4, sizes=(20, 30), seed=6)
    code = main(["compress", f"file://{tmp_path}/in", "-r", "--out-dir", f"file://{tmp_path}/out",
                 "-j", "1", "--json", "-q"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert {r["status"] for r in _records(captured.out)} == {"done"}
    out = tmp_path / "out"
    assert sorted(map(str, _outputs(out))) == sorted(
        _expected_output(p, tmp_path / "in", out, 64) for p in inputs)
    for path in _outputs(out):
        _check_indexed(path)
    assert not _temporaries(tmp_path)


def test_a_file_that_kills_workers_fails_alone(tmp_path):
    """A task of several files whose worker dies (here: the nanny kills a worker over its
    memory limit, on a 9000×9000 picture) is tried again one file to a task, so only the file
    that kills workers fails (exit 13), and the files that shared its task are done."""
    from kmquant.executors import on_dask
    from kmquant.tasks import Task

    rng = np.random.default_rng(5)
    # the killer last: with no retries allowed, a task merely waiting on the dying worker would
    # be given up on too (with Dask's default of 3 it would be tried again)
    names = ["p0.png", "p1.png", "big.png"]
    for name in names:
        if name != "big.png":
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), np.uint8)).save(tmp_path / name)
    Image.new("RGB", (9000, 9000), (10, 200, 30)).save(tmp_path / "big.png")  # 243 MB decoded
    file = tmp_path / "scheduler.json"
    processes: list[subprocess.Popen] = []

    def start(name: str, *args: str, env: dict | None = None) -> None:
        with open(tmp_path / f"{name}.log", "wb") as log:
            processes.append(subprocess.Popen(
                [str(DASK), *args], cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, env=env))

    try:  # the first death of a worker on a task gives up on it (no retries: seconds each)
        start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
              "--scheduler-file", str(file),
              env=dict(os.environ, DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="0"))
        address = _wait_for(lambda: _scheduler_address(file), 60, "the scheduler file",
                            interval=0.1)
        start("worker", "worker", "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1",
              "--scheduler-file", str(file), "--memory-limit", "400MiB",
              "--local-directory", str(tmp_path / "scratch"))
        # overwrite: as the command line plans outputs that do not exist yet (a retry replaces
        # what the dead task wrote)
        tasks = [Task(str(tmp_path / n), str(tmp_path / f"out-{n}"), str(tmp_path), True)
                 for n in names]
        outcomes = dict(on_dask(tasks, {"n_colors": 8, "measure": False}, scheduler=address,
                                chunk=3))
    finally:
        for process in reversed(processes):
            _stop_group(process)
    assert sorted(outcomes) == [0, 1, 2]
    assert [outcomes[i]["status"] for i in (0, 1)] == ["done"] * 2
    killer = outcomes[2]
    assert type(killer).__name__ == "ClusterError" and "died" in str(killer)
    assert not (tmp_path / "out-big.png").exists()
    assert not list(tmp_path.glob(".*.tmp"))
