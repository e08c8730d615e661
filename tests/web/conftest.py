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


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """Base URL of a server started with 2 workers and a 5 MB upload cap."""
    httpx = pytest.importorskip("httpx")
    port = free_port()
    log: Path = tmp_path_factory.mktemp("serve") / "stderr.txt"
    with log.open("wb") as err:
        process = subprocess.Popen(
            serve_command("--port", str(port), "--no-browser", "--workers", "2",
                          "--max-upload-mb", "5"),
            stdout=subprocess.DEVNULL, stderr=err)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"kmquant serve ended with {process.returncode}: {log.read_text()}")
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"kmquant serve did not answer within {START_TIMEOUT:g} s: "
                            f"{log.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        stop(process)
    assert process.returncode is not None
