"""What keeps one client from taking the server: a cap on the request body, read before the
application sees it, and a bounded pool of worker processes with an admission count.

Both raise or answer with the errors below, whose HTTP status is set in one place, the table
``STATUS`` of :mod:`kmquant.web.app`.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from ..errors import KmquantError

__all__ = ["Settings", "UploadTooLargeError", "OverloadedError", "DeadlineError",
           "BodyLimit", "WorkerPool"]

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
        Seconds a request may wait for its result (503 beyond).
    """

    max_upload_bytes: int = 50 * 2**20
    max_pixels: int | None = 40_000_000
    workers: int = 2
    timeout: float = 60.0


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

    The application then receives the body whole, in one message.

    Parameters
    ----------
    app : ASGI application
    max_bytes : int
    reject : callable
        ``reject(exc) -> (status, headers, body)``: the response to an error.
    """

    def __init__(self, app: ASGIApp, max_bytes: int,
                 reject: Callable[[Exception], tuple[int, list[tuple[bytes, bytes]], bytes]]
                 ) -> None:
        self.app, self.max_bytes, self.reject = app, max_bytes, reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await self._read(scope, receive)
        if body is None:
            limit = self.max_bytes / 2**20
            await self._answer(send, UploadTooLargeError(
                f"the upload is larger than the server's limit of {limit:g} MB; send a smaller "
                "image (or start the server with a larger --max-upload-mb)"))
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or None once it is over the cap."""
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
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _answer(self, send: Send, exc: Exception) -> None:
        status, headers, body = self.reject(exc)
        headers = [*headers, (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
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
    """``workers`` processes (``forkserver``) for the CPU work, with an admission count.

    At most ``workers`` jobs run and ``workers`` more wait; a job beyond that is refused with
    :class:`OverloadedError` at once. A caller waits ``timeout`` seconds at most
    (:class:`DeadlineError`); a job that outlives its caller still holds its place until it
    ends, so the pool never takes more work than it can run.
    """

    def __init__(self, workers: int, timeout: float) -> None:
        self.workers, self.timeout = workers, timeout
        self._admitted = 0
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None

    @property
    def admitted(self) -> int:
        """Jobs running or waiting now."""
        return self._admitted

    def start(self) -> None:
        """Start the worker processes (the server's start-up calls this)."""
        import multiprocessing

        from .jobs import worker_init

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["kmquant.job", "kmquant.web.jobs"])
        self._executor = ProcessPoolExecutor(self.workers, mp_context=context,
                                             initializer=worker_init, initargs=(os.getpid(),))

    def shutdown(self) -> None:
        """Stop the workers: jobs not started are cancelled, running ones are waited for."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on a worker; its result, or the exception it raised.

        Raises
        ------
        OverloadedError
            ``2 × workers`` jobs are already admitted.
        DeadlineError
            No result within ``timeout`` seconds.
        """
        with self._lock:
            if self._admitted >= 2 * self.workers:
                raise OverloadedError(
                    f"the server is busy ({self._admitted} images in work); try again in a moment")
            self._admitted += 1
        try:
            future = self._submit(fn, *args)
        except BaseException:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        try:
            # on timeout the wrapper is cancelled, which cancels the job if it has not started;
            # a running job ends on its own
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except TimeoutError:
            raise DeadlineError(
                f"the image took longer than the server's limit of {self.timeout:g} s; try a "
                "smaller image, a smaller K or a higher speed") from None

    def _submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        if self._executor is None:
            raise RuntimeError("the worker pool is not started")
        try:
            return self._executor.submit(fn, *args)
        except BrokenProcessPool:  # a worker died (out of memory, killed): start afresh
            self._executor.shutdown(wait=False, cancel_futures=True)
            self.start()
            assert self._executor is not None
            return self._executor.submit(fn, *args)

    def _release(self, _future: Future | None) -> None:
        with self._lock:
            self._admitted -= 1
