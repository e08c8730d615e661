"""What the web server's worker processes run: one compression or one sweep of uploaded bytes.

These functions are pickled by reference into a ``forkserver`` pool, so this module imports
neither FastAPI nor anything heavy at module level: a worker loads only what the job needs.
"""

from __future__ import annotations

import io
import math
from typing import Any

__all__ = ["compress_job", "sweep_job", "worker_init", "finite"]


def worker_init(parent: int) -> None:
    """Initializer of a worker: dies with the server, ignores Ctrl-C (the server decides),
    and keeps BLAS and OpenMP to one thread, as the batch workers do."""
    from ..batch import worker_setup
    from ..cli._common import single_threaded_worker

    worker_setup(parent)
    single_threaded_worker()


def compress_job(data: bytes, name: str, n_colors: int | str, target: Any,
                 fields: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """Compress an uploaded image to an indexed PNG in memory.

    Parameters
    ----------
    data : bytes
        The encoded upload (never written to disk).
    name : str
        What the report and error messages call the input (the upload's file name).
    n_colors : int or "auto"
    target : kmquant.choose.Target or None
    fields : dict
        Fields of :class:`kmquant.Options`.

    Returns
    -------
    png : bytes
        The indexed PNG.
    report : dict
        :meth:`kmquant.Report.to_dict`, plus ``k`` (the K used), with non-finite numbers as None.
    """
    from ..job import compress

    out = io.BytesIO()
    report = compress(data, out, n_colors=n_colors, target=target, name=name,
                      output_format="png", **fields)
    record = report.to_dict()
    record["output"] = None  # no file was written: the PNG is the response's body
    record["k"] = report.k_requested
    return out.getvalue(), finite(record)


def sweep_job(data: bytes, k_spec: str | None, fields: dict[str, Any]) -> dict[str, Any]:
    """Sweep K over an uploaded image.

    Parameters
    ----------
    data : bytes
    k_spec : str or None
        ``"4,8,16"``, ``"2:64"`` … (:func:`kmquant.ksweep.parse_k_values`); None: the default K.
    fields : dict
        Fields of :class:`kmquant.Options`.

    Returns
    -------
    dict
        ``width``, ``height``, ``knee``, ``notes`` and ``rows`` (one dict per K, ascending).
    """
    from ..ksweep import parse_k_values, sweep

    result = sweep(data, parse_k_values(k_spec), **fields)
    return finite({"width": result.width, "height": result.height, "knee": result.knee,
                   "notes": list(result.notes), "rows": result.to_records()})


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
