"""``kmquant serve``: the HTTP API (and, later, its page) on this machine."""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import sys

from .. import errors
from ._common import epilog

#: What ``kmquant serve`` needs beyond kmquant itself (the ``web`` extra): import names.
WEB_MODULES = ("fastapi", "uvicorn", "multipart")
MISSING_EXTRA = "kmquant serve needs the web extra: pip install 'kmquant[web]'"


def register(commands) -> None:
    serve = commands.add_parser(
        "serve", help="a local web app: drop an image, tune K, compare, download",
        description="Serve kmquant's web page and its HTTP API (POST /api/images, "
        "/api/compress, /api/sweep; docs at /docs), and open the page in the browser. "
        "Listens on 127.0.0.1 (this machine only) unless --host says otherwise; Ctrl-C or "
        "SIGTERM stops it (exit 0).",
        epilog=epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1; 0.0.0.0 makes the server "
                       "reachable from the network, without authentication)")
    serve.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    serve.add_argument("--no-browser", action="store_true",
                       help="do not open the browser on the server's page")
    serve.add_argument("--max-upload-mb", type=_positive(float), default=50.0, metavar="MB",
                       help="largest upload accepted, in MB (default 50; more: 413)")
    serve.add_argument("--max-pixels", type=_positive(int), default=40_000_000, metavar="N",
                       help="largest image accepted, in pixels (default 40000000; more: 413)")
    serve.add_argument("--workers", type=_positive(int), default=2, metavar="N",
                       help="worker processes (default 2); as many more requests may wait, "
                       "the rest are answered 429")
    serve.add_argument("--timeout", type=_positive(float), default=60.0, metavar="S",
                       help="seconds a request may take (default 60; more: 503); a sweep may take "
                       "this per K")
    serve.add_argument("--cache-mb", type=_positive(float), default=256.0, metavar="MB",
                       help="memory for images kept between requests, in the server (their "
                       "files) and in each worker (their pixels and histograms); default 256")
    serve.set_defaults(handler=_cmd_serve)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return port


def _positive(kind: type):
    def parse(text: str):
        try:
            value = kind(text.replace("_", ""))
        except ValueError:
            value = 0
        if not value > 0:
            raise argparse.ArgumentTypeError(
                f"expected a positive {'whole ' if kind is int else ''}number, got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.x, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        for name in WEB_MODULES:
            importlib.import_module(name)
    except ImportError:
        raise errors.EngineUnavailableError(MISSING_EXTRA) from None
    from ..web.limits import Settings
    from ..web.server import serve

    if not is_loopback(args.host):
        print(f"kmquant: warning: listening on {args.host}:{args.port}: the server is reachable "
              "from the network, without authentication", file=sys.stderr, flush=True)
    settings = Settings(max_upload_bytes=int(args.max_upload_mb * 2**20),
                        max_pixels=args.max_pixels, workers=args.workers, timeout=args.timeout,
                        cache_bytes=int(args.cache_mb * 2**20))
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    print(f"kmquant: serving on http://{shown}:{args.port}/ (API docs at /docs; Ctrl-C stops)",
          flush=True)
    serve(settings, host=args.host, port=args.port, open_browser=not args.no_browser)
    return 0
