"""Run the application with uvicorn, in this process, until Ctrl-C (or SIGTERM)."""

from __future__ import annotations

import contextlib
import threading
import time
import webbrowser
from collections.abc import Iterator

import uvicorn

from ..errors import InvalidOptionError
from .app import create_app
from .limits import Settings, give_back_freed_memory

__all__ = ["serve"]


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int = 8000,
          open_browser: bool = True) -> None:
    """Serve until interrupted; the worker pool is shut down on the way out.

    Parameters
    ----------
    settings : Settings
    host, port
        Where to listen.
    open_browser : bool
        Open the default browser on the server's page once it listens.

    Raises
    ------
    InvalidOptionError
        The address cannot be listened on (the port is taken, say).
    """
    give_back_freed_memory()  # the workers call it too (kmquant.web.jobs.worker_init)
    server = _Server(uvicorn.Config(create_app(settings), host=host, port=port,
                                           log_level="warning"))
    if open_browser:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        url = f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"
        threading.Thread(target=_open_when_started, args=(server, url), daemon=True).start()
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot bind
        raise InvalidOptionError(
            f"cannot listen on {host}:{port} (in use, or not an address of this machine); "
            "choose another --port or --host") from None


class _Server(uvicorn.Server):
    """uvicorn's server, ending with the process's own exit code after Ctrl-C or SIGTERM.

    uvicorn raises the signal again once it has shut down, which kills the process by the
    default action before its exit handlers run (the worker pool's queues are then reported as
    leaked); a stop asked for is the normal end of a server, so the CLI exits 0 instead.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            try:
                yield
            finally:
                captured = getattr(self, "_captured_signals", None)
                if isinstance(captured, list):
                    captured.clear()


def _open_when_started(server: uvicorn.Server, url: str, wait: float = 30.0) -> None:
    """Open ``url`` in the browser once ``server`` listens (give up after ``wait`` seconds)."""
    deadline = time.monotonic() + wait
    while not server.started and not server.should_exit and time.monotonic() < deadline:
        time.sleep(0.05)
    if server.started:
        webbrowser.open(url)
