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

import itertools
import os
import signal
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from . import errors
from .tasks import Task, run_task

__all__ = ["in_turn", "in_pool", "on_dask", "RETRIES"]

#: How many times Dask reruns a task that raised a fault of the machinery (not a bad file).
RETRIES = 2
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
            workers: int = 0, window: int = 0) -> Iterator[tuple[int, Any]]:
    """Files on a Dask cluster.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``, ``tls://…``, or a scheduler
        file's path); None starts a LocalCluster on 127.0.0.1 for this batch.
    workers : int
        LocalCluster: worker processes, one thread each (0: one per core).
    window : int
        Tasks in flight at most (0: 8 per worker thread, at least 64).

    Raises
    ------
    EngineUnavailableError
        Dask's ``distributed`` is not installed.
    ClusterError
        The scheduler cannot be reached.
    """
    client, cluster = _connect(scheduler, workers)
    pending: dict[str, int] = {}
    try:
        from distributed import as_completed

        threads = sum(client.nthreads().values()) or 1
        window = window or max(64, 8 * threads)
        batch = uuid.uuid4().hex[:12]
        queue = iter(enumerate(tasks))
        running = as_completed()

        def submit(count: int) -> None:
            for _ in range(count):
                item = next(queue, None)
                if item is None:
                    return
                index, task = item
                future = client.submit(_dask_task, task, options, key=f"kmquant-{batch}-{index}",
                                       pure=False, retries=RETRIES)
                pending[future.key] = index
                running.add(future)

        submit(window)
        for future in running:
            index = pending.pop(future.key)
            if future.status == "error":
                outcome: Any = _cluster_fault(future.exception())
            else:
                outcome = future.result()
            future.release()
            submit(1)
            yield index, outcome
    finally:
        if pending:  # interrupted: what has not started will not; running tasks end their write
            try:
                client.cancel([f for f in running.futures], force=True)  # type: ignore[attr-defined]
            except Exception:
                pass
        _disconnect(client, cluster)


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
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                               processes=True, host="127.0.0.1",
                               dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
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


def _dask_task(task: Task, options: dict[str, Any]) -> dict[str, Any]:
    """:func:`run_task` on a Dask worker: each worker thread is one of many workers on the
    machine, so the compiled core and BLAS run on one thread (set once per process)."""
    global _worker_ready
    if not _worker_ready:
        from .cli._common import single_threaded_worker

        single_threaded_worker()
        _worker_ready = True
    return run_task(task, options)


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
