"""``kmquant serve``: a small HTTP API over the library (FastAPI, run by uvicorn).

Nothing here is imported by ``import kmquant`` or ``kmquant --help``: FastAPI and uvicorn are
the optional ``web`` extra, loaded when the server starts.

- :mod:`.app`: the FastAPI application (routes, and the one table of error → HTTP status).
- :mod:`.limits`: the request-body cap and the bounded worker pool with its admission count.
- :mod:`.jobs`: what the worker processes run (standard library and kmquant only).
- :mod:`.server`: runs uvicorn.
"""

from __future__ import annotations

__all__: list[str] = []
