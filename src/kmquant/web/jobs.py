"""What the web server's worker processes run: a look at an upload, one compression, one sweep.

These functions are pickled by reference into a ``forkserver`` pool, so this module imports
neither FastAPI nor anything heavy at module level: a worker loads only what the job needs.

Each worker keeps the uploads it has decoded (:class:`kmquant.job.Decoded`: pixels and colour
histogram) in a small cache keyed by upload id, so that a request for another K of the same
upload costs one k-means, not a decode and a count; and it reports its progress, per request
ticket, on a queue the server reads.
"""

from __future__ import annotations

import io
import math
import time
from collections import OrderedDict
from typing import Any

__all__ = ["compress_job", "sweep_job", "inspect_job", "worker_init", "finite", "Cache"]

#: Seconds between two progress messages of one stage (the first and last always go).
PROGRESS_INTERVAL = 0.1


class Cache:
    """Decoded uploads of this worker, least recently used first out once over ``max_bytes``.

    Parameters
    ----------
    max_bytes : int
        Memory the kept images may take (an image larger than this is not kept).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, Any] = OrderedDict()

    def get(self, key: str) -> Any:
        """The kept image of ``key``, or None."""
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: str, decoded: Any) -> None:
        """Keep ``decoded`` (a :class:`kmquant.job.Decoded`) under ``key``, dropping the least
        recently used ones to stay under ``max_bytes``."""
        self._items[key] = decoded
        self._items.move_to_end(key)
        self.trim()

    def trim(self) -> None:
        """Drop the least recently used images until the rest fit in ``max_bytes``."""
        while self._items and sum(d.nbytes for d in self._items.values()) > self.max_bytes:
            self._items.popitem(last=False)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)


_cache = Cache(256 * 2**20)
_progress: Any = None  # the server's queue of (ticket, stage, done, total)


def worker_init(parent: int, progress: Any = None, cache_bytes: int = 256 * 2**20) -> None:
    """Initializer of a worker: dies with the server, ignores Ctrl-C (the server decides),
    keeps BLAS and OpenMP to one thread, as the batch workers do; ``progress`` is the queue
    progress messages go to, ``cache_bytes`` the memory for decoded uploads."""
    global _cache, _progress
    from ..batch import worker_setup
    from ..cli._common import single_threaded_worker
    from .limits import give_back_freed_memory

    worker_setup(parent)
    single_threaded_worker()
    give_back_freed_memory()
    _cache, _progress = Cache(cache_bytes), progress


class _Reporter:
    """A progress callback that sends ``(ticket, stage, done, total)`` to the server, at most
    every :data:`PROGRESS_INTERVAL` seconds within a stage."""

    def __init__(self, ticket: str | None) -> None:
        self.ticket, self._stage, self._last = ticket, "", 0.0

    def __call__(self, stage: str, done: int, total: int) -> bool:
        if self.ticket is None or _progress is None:
            return True
        now = time.monotonic()
        if stage != self._stage or done >= total or now - self._last >= PROGRESS_INTERVAL:
            self._stage, self._last = stage, now
            try:
                _progress.put_nowait((self.ticket, stage, int(done), int(total)))
            except Exception:  # a full or closed queue: progress is a courtesy, the work goes on
                pass
        return True


def _decoded(key: str | None, data: bytes, name: str, fields: dict[str, Any],
             report: _Reporter) -> Any:
    """The upload decoded: from this worker's cache when it holds ``key``, else decoded now
    (and kept when ``key`` is given)."""
    from ..job import decode

    decoded = _cache.get(key) if key is not None else None
    if decoded is None:
        report("decode", 0, 1)
        decoded = decode(data, name=name, **fields)
        if key is not None:
            _cache.put(key, decoded)
    return decoded


def inspect_job(key: str, data: bytes, name: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Decode an upload, count its colours, keep it under ``key``; what the page shows of it.

    Returns
    -------
    dict
        ``width``, ``height``, ``colors`` (distinct colours), ``format``, ``frames``,
        ``channels``.
    """
    decoded = _decoded(key, data, name, fields, _Reporter(None))
    prepared = decoded.prepared(fields.get("space", "rgb"))
    _cache.trim()  # the histogram counts too
    return {"width": decoded.loaded.width, "height": decoded.loaded.height,
            "colors": prepared.histogram.n_colors, "format": decoded.loaded.format,
            "frames": decoded.frames.n_frames, "channels": decoded.loaded.channels}


def compress_job(key: str | None, data: bytes, name: str, n_colors: int | str, target: Any,
                 fields: dict[str, Any], ticket: str | None = None
                 ) -> tuple[bytes, dict[str, Any]]:
    """Compress an uploaded image to an indexed PNG in memory.

    Parameters
    ----------
    key : str or None
        The upload's id (its decoded pixels and histogram are kept under it), or None for a
        one-off upload.
    data : bytes
        The encoded upload (never written to disk).
    name : str
        What the report and error messages call the input (the upload's file name).
    n_colors : int or "auto"
    target : kmquant.choose.Target or None
    fields : dict
        Fields of :class:`kmquant.Options`.
    ticket : str, optional
        Progress messages go out under this name.

    Returns
    -------
    png : bytes
        The indexed PNG.
    report : dict
        :meth:`kmquant.Report.to_dict`, plus ``k`` (the K used), ``palette`` (``"#rrggbb"`` or
        ``"#rrggbbaa"`` per entry, in file order) and ``shares`` (fraction of the pixels of each
        entry), with non-finite numbers as None.
    """
    from ..job import compress

    report = _Reporter(ticket)
    decoded = _decoded(key, data, name, fields, report)
    out = io.BytesIO()
    result = compress(decoded, out, n_colors=n_colors, target=target, output_format="png",
                      progress=report, **fields)
    _cache.trim()
    png = out.getvalue()
    record = result.to_dict()
    record["output"] = None  # no file was written: the PNG is the response's body
    record["k"] = result.k_requested
    record["palette"], record["shares"] = palette_shares(png)
    return png, finite(record)


def sweep_job(key: str | None, data: bytes, name: str, k_spec: str | None,
              fields: dict[str, Any], ticket: str | None = None) -> dict[str, Any]:
    """Sweep K over an uploaded image.

    Parameters
    ----------
    key, data, name, fields, ticket
        As for :func:`compress_job`.
    k_spec : str or None
        ``"4,8,16"``, ``"2:64"`` … (:func:`kmquant.ksweep.parse_k_values`); None: the default K.

    Returns
    -------
    dict
        ``width``, ``height``, ``knee``, ``notes`` and ``rows`` (one dict per K, ascending).
    """
    from ..engines import get_engine
    from ..ksweep import parse_k_values, sweep_prepared
    from ..options import Options

    report = _Reporter(ticket)
    ks = parse_k_values(k_spec)
    options = Options.build(**fields).replace(n_colors=min(ks))
    decoded = _decoded(key, data, name, fields, report)
    result = sweep_prepared(decoded.prepared(options.space), decoded.loaded.pixels, ks, options,
                            get_engine(options.engine), progress=report)
    _cache.trim()
    return finite({"width": result.width, "height": result.height, "knee": result.knee,
                   "notes": list(result.notes), "rows": result.to_records()})


def palette_shares(png: bytes) -> tuple[list[str], list[float]]:
    """The palette of an indexed PNG as hex colours (``#rrggbbaa`` where an entry is not
    opaque) and each entry's share of the pixels (of the first frame), rounded to 5 digits."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        if image.mode != "P":
            return [], []
        indices = np.asarray(image)
        palette = image.getpalette() or []
        alpha = image.info.get("transparency", b"")
    n = int(indices.max()) + 1 if indices.size else 0
    n = max(n, len(palette) // 3)
    counts = np.bincount(indices.ravel(), minlength=n)[:n]
    if isinstance(alpha, int):  # one transparent entry
        alpha = bytes(255 if i != alpha else 0 for i in range(n))
    colors = []
    for i in range(n):
        r, g, b = palette[3 * i:3 * i + 3] if 3 * i + 2 < len(palette) else (0, 0, 0)
        a = alpha[i] if i < len(alpha) else 255
        colors.append(f"#{r:02x}{g:02x}{b:02x}" + (f"{a:02x}" if a != 255 else ""))
    total = max(1, int(counts.sum()))
    return colors, [round(int(c) / total, 5) for c in counts]


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float (at any depth) replaced by None, so that it
    is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value
