"""What keeps one client from taking the server: a cap on the request body, read before the
application sees it, and a bounded pool of worker processes with an admission count.

Both raise or answer with the errors below, whose HTTP status is set in one place, the table
``STATUS`` of :mod:`kmquant.web.app`.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from ..errors import KmquantError

__all__ = ["give_back_freed_memory", "Settings", "UploadTooLargeError", "OverloadedError", "DeadlineError",
           "WorkerCrashedError", "BodyLimit", "WorkerPool"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Settings:
    """The server's limits.

    Attributes
    ----------
    max_upload_bytes : int
        Largest request body accepted (413 beyond).
    max_pixels : int or None
        Largest image accepted, in pixels (413 beyond); None: no limit.
    workers : int
        Worker processes; as many more requests may wait, the rest get 429.
    timeout : float
        Seconds a request may wait for its result (503 beyond); a sweep, this per K.
    cache_bytes : int
        Memory for uploads kept between requests: their encoded bytes in the server, and
        their decoded pixels and histograms in each worker.
    """

    max_upload_bytes: int = 50 * 2**20
    max_pixels: int | None = 40_000_000
    workers: int = 2
    timeout: float = 60.0
    cache_bytes: int = 256 * 2**20


#: Size from which glibc serves an allocation by mmap (so that freeing it gives it back).
MMAP_THRESHOLD = 128 * 1024


def give_back_freed_memory() -> None:
    """Make glibc return large freed buffers to the system, in this process (the server and
    each worker call it; an environment variable would reach the browser the server opens).

    glibc raises its mmap threshold once a large buffer is freed, so that later upload-sized
    buffers (0.1 to 50 MB) come from the heap and stay with the process after the request
    (measured: the server kept ~20 MB, a worker ~30 MB, after a load of Kodak uploads). A fixed
    threshold of 128 KiB keeps them mmapped: the memory goes back when a request ends, at no
    measurable cost in speed. Nothing is done on other C libraries.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


class UploadTooLargeError(KmquantError):
    """The request body is larger than ``--max-upload-mb``."""


class OverloadedError(KmquantError):
    """Every worker is busy and as many requests already wait: try again in a moment."""


class DeadlineError(KmquantError):
    """The result did not come within ``--timeout`` seconds."""


class BodyLimit:
    """ASGI middleware that reads each HTTP request's body into memory, counting its bytes,
    and answers ``reject(UploadTooLargeError)`` as soon as the count passes ``max_bytes``
    (or at once when ``Content-Length`` announces more), without reading the rest.

    A ``gate`` may refuse a request before its body counts: the body is then read and dropped
    (so that the client, still sending, gets the answer and keeps its connection) and
    ``reject(gate's error)`` answered, without the form parsing of the application.

    The application then receives the body whole, in one message.

    Parameters
    ----------
    app : ASGI application
    max_bytes : int
    reject : callable
        ``reject(exc) -> (status, headers, body)``: the response to an error.
    gate : callable, optional
        ``gate(scope) -> Exception | None``: an error to answer at once, or None to go on.
    """

    def __init__(self, app: ASGIApp, max_bytes: int,
                 reject: Callable[[Exception], tuple[int, list[tuple[bytes, bytes]], bytes]],
                 gate: Callable[[Scope], Exception | None] | None = None) -> None:
        self.app, self.max_bytes, self.reject, self.gate = app, max_bytes, reject, gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = self.gate(scope) if self.gate is not None else None
        body = await self._read(scope, receive, keep=refused is None)
        if body is None:
            limit = self.max_bytes / 2**20
            await self._answer(send, UploadTooLargeError(
                f"the upload is larger than the server's limit of {limit:g} MB; send a smaller "
                "image (or start the server with a larger --max-upload-mb)"), close=True)
            return
        if refused is not None:
            await self._answer(send, refused)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, scope: Scope, receive: Receive, keep: bool = True) -> bytes | None:
        """The whole body (``b""`` when not ``keep``), or None once it is over the cap."""
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                return None
        chunks, count = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            count += len(chunk)
            if count > self.max_bytes:
                return None
            if keep:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _answer(self, send: Send, exc: Exception, close: bool = False) -> None:
        status, headers, body = self.reject(exc)
        headers = [*headers, (b"content-length", str(len(body)).encode())]
        if close:  # the rest of the body was not read: the connection cannot go on
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` in one message, then defers to ``receive`` (which
    reports the client's disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class WorkerPool:
    """``workers`` worker processes (``forkserver``) for the CPU work, with an admission count,
    routing by upload, and progress per request ticket.

    At most ``workers`` jobs run and ``workers`` more wait; a job beyond that is refused with
    :class:`OverloadedError` at once. A caller waits ``timeout`` seconds at most
    (:class:`DeadlineError`); a job that outlives its caller still holds its place until it
    ends, so the pool never takes more work than it can run.

    Each worker is a lane of its own (a one-process executor), so that a job can go where its
    upload is already decoded: a job goes to the least loaded worker, and among those to one
    that has run a job for the same ``key`` before.

    Progress: a job given a ``ticket`` reports ``(stage, done, total)`` on a queue that a thread
    of the server reads into :attr:`progress` while the job is admitted.
    """

    def __init__(self, workers: int, timeout: float, cache_bytes: int = 256 * 2**20) -> None:
        self.workers, self.timeout, self.cache_bytes = workers, timeout, cache_bytes
        self._lock = threading.Lock()
        self._lanes: list[_Lane] = []
        self._queue: Any = None
        self._reader: threading.Thread | None = None
        self._progress: dict[str, tuple[str, int, int]] = {}

    @property
    def admitted(self) -> int:
        """Jobs running or waiting now."""
        return sum(lane.load for lane in self._lanes)

    def full(self) -> bool:
        """Whether a job now would be refused (``2 × workers`` admitted)."""
        return self.admitted >= 2 * self.workers

    def overloaded(self) -> OverloadedError:
        """The error of a job refused now."""
        return OverloadedError(
            f"the server is busy ({self.admitted} images in work); try again in a moment")

    def progress(self, ticket: str) -> tuple[str, int, int] | None:
        """``(stage, done, total)`` of the admitted job with ``ticket``, or None."""
        return self._progress.get(ticket)

    def start(self) -> None:
        """Start the worker processes (the server's start-up calls this)."""
        import multiprocessing

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["kmquant.job", "kmquant.web.jobs"])
        self._context = context
        self._queue = context.Queue()
        self._reader = threading.Thread(target=self._read_progress, name="kmquant-progress",
                                        daemon=True)
        self._reader.start()
        self._lanes = [_Lane(self._executor()) for _ in range(self.workers)]

    def _executor(self) -> ProcessPoolExecutor:
        from .jobs import worker_init

        return ProcessPoolExecutor(1, mp_context=self._context, initializer=worker_init,
                                   initargs=(os.getpid(), self._queue, self.cache_bytes))

    def shutdown(self) -> None:
        """Stop the workers: jobs not started are cancelled, running ones are waited for."""
        for lane in self._lanes:
            lane.executor.shutdown(wait=False, cancel_futures=True)
        for lane in self._lanes:
            lane.executor.shutdown(wait=True)
        self._lanes = []
        if self._queue is not None:
            self._queue.put(None)
            if self._reader is not None:
                self._reader.join(timeout=5)
            self._queue.close()
            self._queue.join_thread()
            self._queue = None

    def _read_progress(self) -> None:
        """Copy the workers' progress messages into :attr:`_progress` (for admitted tickets
        only) until the ``None`` of :meth:`shutdown`."""
        queue = self._queue
        while True:
            try:
                message = queue.get()
            except (EOFError, OSError):
                return
            if message is None:
                return
            ticket, stage, done, total = message
            if ticket in self._progress:
                self._progress[ticket] = (stage, done, total)

    async def run(self, fn: Callable[..., Any], *args: Any, key: str | None = None,
                  ticket: str | None = None, timeout: float | None = None) -> Any:
        """``fn(*args)`` on a worker; its result, or the exception it raised.

        Parameters
        ----------
        fn, args
            The job (a picklable function) and its arguments.
        key : str, optional
            The upload the job works on: it goes preferably to a worker that has it.
        ticket : str, optional
            Its progress is kept under this name while it is admitted (``fn`` must take it
            as its last argument and report under it).
        timeout : float, optional
            Seconds to wait for it (default: the pool's ``timeout``).

        Raises
        ------
        OverloadedError
            ``2 × workers`` jobs are already admitted.
        DeadlineError
            No result within ``timeout`` seconds.
        WorkerCrashedError
            The worker process died during the job.
        """
        limit = self.timeout if timeout is None else timeout
        lane = self._admit(key)
        if ticket is not None:
            self._progress[ticket] = ("queued", 0, 1)
        try:
            try:
                future = self._submit(lane, fn, *args)
            except BaseException:
                self._release(lane)
                raise
            future.add_done_callback(lambda _: self._release(lane))
            # on timeout the wrapper is cancelled, which cancels the job if it has not
            # started; a running job ends on its own
            return await asyncio.wait_for(asyncio.wrap_future(future), limit)
        except TimeoutError:
            raise DeadlineError(
                f"the image took longer than the server's limit of {limit:g} s; try a "
                "smaller image, a smaller K or a higher speed") from None
        except BrokenProcessPool:
            raise WorkerCrashedError(
                "the worker process died on this image (out of memory?); try a smaller image"
            ) from None
        finally:
            if ticket is not None:
                self._progress.pop(ticket, None)

    def _admit(self, key: str | None) -> _Lane:
        """The lane for a job on ``key``: least loaded, then one that has seen ``key``."""
        with self._lock:
            if not self._lanes:
                raise RuntimeError("the worker pool is not started")
            if self.full():
                raise self.overloaded()
            lane = min(self._lanes, key=lambda lane: (lane.load, key not in lane.keys))
            lane.load += 1
            if key is not None:
                lane.remember(key)
            return lane

    def _submit(self, lane: _Lane, fn: Callable[..., Any], *args: Any) -> Future:
        try:
            return lane.executor.submit(fn, *args)
        except BrokenProcessPool:  # its worker died (out of memory, killed): start afresh
            lane.executor.shutdown(wait=False, cancel_futures=True)
            lane.executor, lane.keys = self._executor(), OrderedDict()
            return lane.executor.submit(fn, *args)

    def _release(self, lane: _Lane) -> None:
        with self._lock:
            lane.load -= 1


class WorkerCrashedError(KmquantError):
    """A worker process died during a job."""


class _Lane:
    """One worker process: its executor, its jobs admitted, and the uploads it has worked on
    (the most recent :data:`KEYS` of them)."""

    KEYS = 64

    def __init__(self, executor: ProcessPoolExecutor) -> None:
        self.executor, self.load = executor, 0
        self.keys: OrderedDict[str, None] = OrderedDict()

    def remember(self, key: str) -> None:
        self.keys[key] = None
        self.keys.move_to_end(key)
        while len(self.keys) > self.KEYS:
            self.keys.popitem(last=False)
