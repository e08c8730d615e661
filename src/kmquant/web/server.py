"""Run the application with uvicorn, in this process, until Ctrl-C (or SIGTERM)."""

from __future__ import annotations

import threading
import time
import webbrowser

import uvicorn

from ..errors import InvalidOptionError
from .app import create_app
from .limits import Settings

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
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host=host, port=port,
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


def _open_when_started(server: uvicorn.Server, url: str, wait: float = 30.0) -> None:
    """Open ``url`` in the browser once ``server`` listens (give up after ``wait`` seconds)."""
    deadline = time.monotonic() + wait
    while not server.started and not server.should_exit and time.monotonic() < deadline:
        time.sleep(0.05)
    if server.started:
        webbrowser.open(url)
