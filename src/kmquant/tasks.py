"""One file of a batch, as a worker runs it: read, compress, write, and say what happened.

:func:`run_task` never raises for a bad file: the outcome is a **status record**, a plain dict
(``input``, ``output``, ``status`` = ``done`` | ``skipped`` | ``failed``, sizes and metrics, the
input's size, time and content hash, ``error`` and ``exit_code`` for a failure) that pickles
cheaply back from a process pool or a Dask worker and goes into the manifest as it is. Only
faults of the machinery (storage or network errors, memory) propagate, so that Dask retries
them on another worker; a bug becomes a failed record (exit code 70) and is not retried.
"""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path
from typing import Any

from . import errors, storage

__all__ = ["Task", "run_task", "failure_record", "EXIT_INTERNAL"]

#: Exit code of a bug (kmquant's command line documents it).
EXIT_INTERNAL = 70


@dataclasses.dataclass(frozen=True)
class Task:
    """One input and where its output goes.

    Attributes
    ----------
    src : str
        A local path or a URL.
    dst : str or None
        The output (path or URL); None with ``-k auto``, whose name tells the chosen K: it is
        then made in ``folder``.
    folder : str
        The output's folder.
    overwrite : bool
        Replace an existing output: ``--force``, or an output the manifest records as this
        batch's own from an earlier run.
    """

    src: str
    dst: str | None
    folder: str
    overwrite: bool = False


def run_task(task: Task, options: dict[str, Any]) -> dict[str, Any]:
    """Compress one file of a batch; returns its status record.

    Parameters
    ----------
    task : Task
    options : dict
        Keyword arguments of :func:`kmquant.job.compress` (``n_colors``, ``options``,
        ``force``…) shared by the batch.

    Returns
    -------
    dict
        The status record (see the module's description).

    Raises
    ------
    OSError, MemoryError
        A fault of storage or of the machine, worth a retry elsewhere.
    """
    from .batch import Stopped, stoppable

    try:
        with stoppable():
            return _run(task, options)
    except errors.OutputLargerError as exc:
        return dict(_input_state(task), input=task.src, output=task.dst, status="skipped",
                    reason="the output would be larger than the input",
                    error=str(exc), exit_code=_exit_code(exc))
    except errors.KmquantError as exc:
        return failure_record(task.src, task.dst, exc)
    except Stopped:  # a pool worker told to stop: its write has cleaned up
        os._exit(143)
    except (OSError, MemoryError):
        raise
    except Exception as exc:  # a bug: reported, not retried
        return failure_record(task.src, task.dst, exc)


def failure_record(src: str, dst: str | None, exc: BaseException) -> dict[str, Any]:
    """The record of a file that failed with ``exc``."""
    if isinstance(exc, errors.KmquantError):
        message = str(exc)
    else:
        message = f"internal error: {type(exc).__name__}: {exc}"
    return {"input": src, "output": dst, "status": "failed",
            "error": " ".join(message.split()), "exit_code": _exit_code(exc)}


def _run(task: Task, options: dict[str, Any]) -> dict[str, Any]:
    from .job import compress

    force = bool(options.get("force")) or task.overwrite
    remote = storage.is_url(task.src) or storage.is_url(task.dst or task.folder)
    if not remote:
        if task.dst is not None and not force and _up_to_date(task.src, task.dst):
            # written meanwhile (by a run whose client was killed, say): nothing to redo
            return {"input": task.src, "output": task.dst, "status": "skipped",
                    "reason": "up to date (the output is newer than the input)",
                    **_input_state(task), "compressed_bytes": os.path.getsize(task.dst)}
        state = _input_state(task)
        report = compress(task.src, task.dst, **dict(
            options, force=force, out_dir=task.folder if task.dst is None else None))
        return {"status": "done", **report.to_dict(), **state}

    # a URL at one end: the bytes pass through memory
    data = storage.read_bytes(task.src) if storage.is_url(task.src) \
        else _read_local(task.src)
    state = dict(_input_state(task, data))
    buffer = io.BytesIO()
    fmt = options.get("output_format")
    if fmt is None and task.dst is not None:
        from .encode import format_for_extension

        fmt = format_for_extension(storage.name(task.dst)) or "png"
    report = compress(data, buffer, name=task.src, **dict(
        options, force=force, out_dir=None, output_format=fmt))
    dst = task.dst
    if dst is None:  # -k auto: the name tells the K chosen
        from .job import default_output_path

        dst = storage.join(task.folder, default_output_path(
            storage.name(task.src), report.k_requested).name)
    written = buffer.getvalue()
    if storage.is_url(dst):
        storage.write_bytes(dst, written, overwrite=force)
    else:
        from .encode import write_atomic

        write_atomic(dst, written, overwrite=force)
    report = dataclasses.replace(report, output=dst)
    return {"status": "done", **report.to_dict(), **state}


def _input_state(task: Task, data: bytes | None = None) -> dict[str, Any]:
    """Size, time and content hash of the input, for the manifest (empty if unreadable)."""
    try:
        state = storage.file_state(task.src)
        if state is None:
            return {}
        digest = storage.content_hash(data if data is not None else task.src)
    except (OSError, errors.KmquantError):
        return {}
    return {"input_bytes": state[0], "input_mtime": state[1], "input_hash": digest}


def _read_local(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise errors.InputNotFoundError(f"{path}: no such file; check the path") from None
    except OSError as exc:
        raise errors.InputNotFoundError(f"{path}: cannot be read ({exc.strerror})") from None


def _up_to_date(src: str, dst: str) -> bool:
    try:
        return os.path.isfile(dst) and os.stat(dst).st_mtime >= os.stat(src).st_mtime
    except OSError:
        return False


def _exit_code(exc: BaseException) -> int:
    from .cli._common import exit_code_for

    return exit_code_for(exc)
