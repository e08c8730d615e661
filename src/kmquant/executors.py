"""Where a batch's files are worked on: in this process, a process pool, or a Dask cluster.

Each executor takes the batch's :class:`~kmquant.tasks.Task` list and the shared keyword
arguments of :func:`kmquant.job.compress`, and yields ``(index, outcome)`` as files finish (in
any order): the outcome is the status record of :func:`kmquant.tasks.run_task`, or the
exception of a task that could not be run (a fault of the machinery that retries did not cure).

- :func:`in_turn`: one file after another, here (``-j 1``).
- :func:`in_pool`: a ``forkserver`` process pool on this machine, one process per core (the
  default). Interrupted, its workers are stopped at once and remove their temporary files.
- :func:`on_dask`: a Dask distributed cluster, an existing one (``--scheduler tcp://…``) or a
  LocalCluster on 127.0.0.1 (``--cluster local``). Tasks are submitted in a bounded window, so
  the client's memory does not grow with the batch; a worker that dies has its task rerun
  elsewhere by the scheduler, and storage faults are retried (:data:`RETRIES`).
"""

from __future__ import annotations

import collections
import itertools
import os
import signal
import threading
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from . import errors
from .tasks import Task, run_task

__all__ = ["in_turn", "in_pool", "on_dask", "RETRIES"]

#: How many times Dask reruns a task that raised a fault of the machinery (not a bad file).
RETRIES = 2
#: Most files in one Dask task.
CHUNK = 8
#: Seconds to wait for a scheduler.
CONNECT_TIMEOUT = 10


def in_turn(tasks: Sequence[Task], options: dict[str, Any]) -> Iterator[tuple[int, Any]]:
    """Each file in turn, in this process."""
    for index, task in enumerate(tasks):
        try:
            outcome: Any = run_task(task, options)
        except (OSError, MemoryError) as exc:
            outcome = exc
        yield index, outcome


def in_pool(tasks: Sequence[Task], options: dict[str, Any], jobs: int, *, window: int = 0
            ) -> Iterator[tuple[int, Any]]:
    """Files on ``jobs`` worker processes, at most ``window`` (0: 4 per process, at least 16)
    submitted at a time, so that memory and bookkeeping do not grow with the batch.
    Interrupted (Ctrl-C, SIGTERM), the workers are stopped at once: each removes the
    temporary file of the write under way; files finished before are yielded first."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["kmquant.job"])  # import once, fork the workers from it
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_pool_worker_init,
                               initargs=(os.getpid(),))
    window = window or max(16, 4 * jobs)
    queue = iter(enumerate(tasks))
    futures: dict[Any, int] = {}

    def submit(count: int) -> None:
        for index, task in itertools.islice(queue, count):
            futures[pool.submit(run_task, task, options)] = index

    stopped = False
    try:
        submit(window)
        while futures:
            finished, _ = wait(futures, return_when=FIRST_COMPLETED)
            for future in finished:
                index = futures.pop(future)
                submit(1)
                yield index, _outcome(future)
    except GeneratorExit:  # closed by the caller (interrupted there): stop, yield nothing
        stopped = True
        _stop_workers(pool)
        raise
    except BaseException:
        # no future.cancel() here: the executor marks the pending ones broken itself once its
        # workers are gone (cancelling them too makes it fail, CPython 3.11)
        stopped = True
        _stop_workers(pool)
        # files finished before the interrupt are whole: report them too
        for future, index in list(futures.items()):
            if future.done() and not future.cancelled() and future.exception() is None:
                yield index, future.result()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=not stopped)


def on_dask(tasks: Sequence[Task], options: dict[str, Any], *, scheduler: str | None = None,
            workers: int = 0, window: int = 0, chunk: int = 0) -> Iterator[tuple[int, Any]]:
    """Files on a Dask cluster, a few to a task.

    Each task compresses ``chunk`` files in turn: Dask's cost per task (tens of milliseconds
    of scheduler and worker time on a loaded 2-core machine, see the README) is then shared
    by several files. When workers die on a task of several files, its files are tried again
    one to a task, so that only a file that kills workers fails.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``, ``tls://…``, or a scheduler
        file's path); None starts a LocalCluster on 127.0.0.1 for this batch.
    workers : int
        LocalCluster: worker processes, one thread each (0: one per core).
    window : int
        Tasks in flight at most (0: 8 per worker thread, at least 64).
    chunk : int
        Files per task (0: the batch ÷ 16 per worker thread, from 1 to :data:`CHUNK`, so the
        last tasks leave no worker idle for long).

    Raises
    ------
    EngineUnavailableError
        Dask's ``distributed`` is not installed.
    ClusterError
        The scheduler cannot be reached.
    """
    client, cluster = _connect(scheduler, workers)
    pending: dict[str, list[int]] = {}
    # a LocalCluster's worker processes: closed, each ends the file it is writing, and the
    # batch waits for that, so every file written is there when it looks
    local = list(client.run(os.getpid).values()) if cluster is not None else []
    # Ctrl-C and SIGTERM only set a flag, which the wait below turns into KeyboardInterrupt:
    # raised at any moment, it could land inside the client holding a lock
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        from distributed import as_completed

        threads = sum(client.nthreads().values()) or 1
        window = window or max(64, 8 * threads)
        chunk = chunk or max(1, min(CHUNK, len(tasks) // (16 * threads)))
        queue = collections.deque(
            list(range(start, min(start + chunk, len(tasks))))
            for start in range(0, len(tasks), chunk))
        batch = uuid.uuid4().hex[:12]
        running = as_completed()
        submitted = itertools.count()

        def submit(count: int) -> None:
            for _ in range(count):
                if not queue:
                    return
                group = queue.popleft()
                future = client.submit(_dask_task, [tasks[i] for i in group], options,
                                       key=f"kmquant-{batch}-{next(submitted)}", pure=False,
                                       retries=RETRIES)
                pending[future.key] = group
                running.add(future)

        submit(window)
        for future in _finished(running, stop):
            group = pending.pop(future.key)
            if future.status == "error":
                fault = future.exception()
                future.release()
                if type(fault).__name__ == "KilledWorker" and len(group) > 1:
                    queue.extendleft([i] for i in reversed(group))  # one file to a task
                    submit(len(group))
                    continue
                outcomes: list[Any] = [_cluster_fault(fault)] * len(group)
            else:
                outcomes = future.result()
                future.release()
            submit(1)
            yield from zip(group, outcomes)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if pending:  # interrupted: what has not started will not; running tasks end their write
            try:
                client.cancel([f for f in running.futures], force=True)  # type: ignore[attr-defined]
            except Exception:
                pass
        _disconnect(client, cluster)
        _wait_gone(local, 3.0)


def _wait_gone(pids: list[int], timeout: float) -> None:
    """Wait until the processes ``pids`` have ended (or are zombies), at most ``timeout`` s."""
    import time

    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{pid}/stat") as handle:
                    if handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                        break
            except (OSError, IndexError):
                break  # gone (or no /proc: nothing to wait on)
            time.sleep(0.02)


def _finished(running: Any, stop: threading.Event) -> Iterator[Any]:
    """The futures of an ``as_completed`` as they finish, waiting in short sleeps here; when
    ``stop`` is set (by a signal), KeyboardInterrupt is raised from here, between calls into
    the client."""
    import time

    while not running.is_empty():
        if stop.is_set():
            raise KeyboardInterrupt
        finished = running.next_batch(block=False)
        if not finished:
            time.sleep(0.02)
        yield from finished


def _connect(scheduler: str | None, workers: int) -> tuple[Any, Any]:
    try:
        import logging

        from distributed import Client, LocalCluster
    except ImportError:
        raise errors.EngineUnavailableError(
            "--scheduler and --cluster need Dask distributed; install it with "
            "pip install 'kmquant[dask]'") from None
    if scheduler is not None:
        try:
            if "://" in scheduler or ":" in scheduler:
                client = Client(scheduler, timeout=CONNECT_TIMEOUT)
            else:  # a scheduler file
                client = Client(scheduler_file=scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:
            raise errors.ClusterError(
                f"cannot reach the Dask scheduler at {scheduler} ({_first_line(exc)}); start "
                "one with 'dask scheduler' or check the address") from None
        if not client.nthreads():
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT * 6)
        return client, None
    # Ctrl-C reaches the whole process group: the workers, started with SIGINT ignored, keep
    # it so (Python leaves an ignored SIGINT alone), and this client alone stops the batch
    # and closes them. Its HTTP server (health checks) on a free port of 127.0.0.1.
    # The workers' statistical profiler (a stack sample every 10 ms) serves the dashboard,
    # which a batch does not show: off. Dask's own logs stay quiet up to CRITICAL: what goes
    # wrong with a file is its record, and a stop by Ctrl-C can race a worker's heartbeat
    # against the scheduler's close, which Dask logs as an ERROR with a traceback.
    import dask

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with dask.config.set({"distributed.worker.profile.enabled": False}):
            cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1,
                                   threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address="127.0.0.1:0", silence_logs=logging.CRITICAL)
    finally:
        signal.signal(signal.SIGINT, previous)
    return Client(cluster), cluster


def _disconnect(client: Any, cluster: Any) -> None:
    try:
        client.close(timeout=5)
    except Exception:
        pass
    if cluster is not None:
        try:
            cluster.close(timeout=5)
        except Exception:
            pass


_worker_ready = False


def _dask_task(tasks: Sequence[Task], options: dict[str, Any]) -> list[dict[str, Any]]:
    """:func:`run_task` on each file of a Dask task, on a worker: each worker thread is one of
    many workers on the machine, so the compiled core and BLAS run on one thread (set once per
    process)."""
    global _worker_ready
    if not _worker_ready:
        from .cli._common import single_threaded_worker

        single_threaded_worker()
        _roomy_malloc()
        _worker_ready = True
    return [run_task(task, options) for task in tasks]


def _roomy_malloc() -> None:
    """Let glibc keep freed memory for the next file, as it does by default.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which returns every
    freed block above 64 KiB to the system and, being set, also stops glibc from raising its
    mmap threshold: each array of a file is then mapped, faulted in page by page and unmapped
    again. Measured in a LocalCluster worker on this project's machine, 100 mixed photographs at
    K = 256: 6,980 page faults and 200 ms of CPU per file with it; 65 faults and 161–167 ms
    with these thresholds, 32 MiB (mmap) and 64 MiB (trim), the values glibc reaches by itself
    after large frees, which bring the
    plain process's behaviour back; elsewhere than glibc nothing is done.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    mallopt(m_mmap_threshold, 32 * 2**20)
    mallopt(m_trim_threshold, 64 * 2**20)


def _cluster_fault(exc: BaseException | None) -> BaseException:
    """What the client says of a task Dask gave up on."""
    name = type(exc).__name__
    if name == "KilledWorker":
        return errors.ClusterError(
            "the worker running this file died each time it was tried (it may need more "
            "memory than a worker has: give workers more, or lower --max-memory)")
    if isinstance(exc, (OSError, MemoryError)):
        return errors.ClusterError(
            f"failed {RETRIES + 1} times on the cluster ({name}: {_first_line(exc)}); check "
            "the storage and the workers, then run the batch again")
    return exc if exc is not None else errors.ClusterError("the task failed on the cluster")


def _first_line(exc: BaseException | None) -> str:
    return str(exc).strip().split("\n")[0] if exc is not None else ""


def _outcome(future: Any) -> Any:
    exc = future.exception()
    return exc if exc is not None else future.result()


def _stop_workers(pool: Any, grace: float = 1.5) -> None:
    """SIGTERM every worker (each unwinds its write, removing the temporary file), SIGKILL
    what is left after ``grace`` seconds."""
    import time

    processes = list(getattr(pool, "_processes", {}).values())  # the executor's own handles
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join(1.0)


def _pool_worker_init(parent: int) -> None:
    from .batch import worker_setup
    from .cli._common import single_threaded_worker

    worker_setup(parent)
    single_threaded_worker()
