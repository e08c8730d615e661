"""A real ``kmquant serve`` (uvicorn) on 127.0.0.1, on a free port, for the API tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Seconds to wait for the server to answer /api/health.
START_TIMEOUT = 30.0
#: Seconds a test's request may take.
REQUEST_TIMEOUT = 60.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_command(*args: str) -> list[str]:
    """``python -m kmquant serve ARGS`` with this interpreter."""
    return [sys.executable, "-m", "kmquant", "serve", *args]


def stop(process: subprocess.Popen) -> None:
    """SIGTERM (uvicorn shuts down, with its worker pool), then wait; SIGKILL if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_up(process: subprocess.Popen, url: str, log: Path | None = None) -> None:
    """Return once ``url``/api/health answers 200; fail the test if ``process`` ends first or
    START_TIMEOUT seconds pass (with the server's stderr from ``log``)."""
    import httpx

    def said() -> str:
        return log.read_text() if log is not None and log.exists() else ""

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"kmquant serve ended with {process.returncode}: {said()}")
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            stop(process)
            pytest.fail(f"kmquant serve did not answer within {START_TIMEOUT:g} s: {said()}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """Base URL of a server started with 2 workers and a 5 MB upload cap."""
    pytest.importorskip("httpx")
    port = free_port()
    log: Path = tmp_path_factory.mktemp("serve") / "stderr.txt"
    with log.open("wb") as err:
        process = subprocess.Popen(
            serve_command("--port", str(port), "--no-browser", "--workers", "2",
                          "--max-upload-mb", "5"),
            stdout=subprocess.DEVNULL, stderr=err)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(process, url, log)
        yield url
    finally:
        stop(process)
    assert process.returncode is not None


@pytest.fixture(scope="module")
def sample_bytes() -> bytes:
    """The packaged sample photo (768 × 512 PNG)."""
    import kmquant

    return kmquant.sample_path().read_bytes()


@pytest.fixture
def client(server) -> Iterator:
    """An httpx client of ``server``; after the test, the server must still answer."""
    httpx = pytest.importorskip("httpx")
    with httpx.Client(base_url=server, timeout=REQUEST_TIMEOUT) as c:
        yield c
    # every case leaves the server alive
    with httpx.Client(base_url=server, timeout=REQUEST_TIMEOUT) as c:
        health = c.get("/api/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
