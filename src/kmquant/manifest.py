"""The batch manifest: one JSON line per finished file, so that a rerun redoes only what changed.

A batch appends a record for every file it finished (``done``, ``skipped`` because the output
would be larger, ``failed``) to ``kmquant-manifest.jsonl`` beside its outputs, and syncs the
file to disk after each line: a crash, a kill -9 or a power cut loses at most the line being
written (a torn last line is ignored on reading). Each record holds the input, its size,
modification time and content hash, the digest of the options it ran with, the output, the
sizes and metrics, and the status.

On the next run a file is left alone when its last record says it was done (or skipped) with
the same options, the input is unchanged (same size and time, or else the same content hash)
and the output is still there with the recorded size. Anything else is redone; an output the
manifest records as kmquant's own may then be replaced without ``--force``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import storage

__all__ = ["MANIFEST_NAME", "Manifest", "options_digest", "unchanged"]

#: The manifest's file name in the output folder.
MANIFEST_NAME = "kmquant-manifest.jsonl"
#: Statuses of a record a rerun may keep (a failure is always retried).
_KEPT = ("done", "skipped")


class Manifest:
    """An append-only JSON-lines file of per-file records, synced after every line.

    Parameters
    ----------
    path : path
        A local file; created (with its folder) on the first :meth:`append`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._handle: Any = None

    def records(self) -> dict[str, dict]:
        """The last record of each input (by its ``input``); unreadable lines are skipped."""
        latest: dict[str, dict] = {}
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return latest
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except ValueError:  # a line torn by a crash
                continue
            if isinstance(record, dict) and isinstance(record.get("input"), str):
                latest[record["input"]] = record
        return latest

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one record as a line and sync it to disk before returning."""
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a+b")
            self._handle.seek(0, os.SEEK_END)
            if self._handle.tell() > 0:  # a line torn by a crash gets its own line ended
                self._handle.seek(-1, os.SEEK_END)
                if self._handle.read(1) != b"\n":
                    self._handle.write(b"\n")
        line = json.dumps(dict(record), default=str, ensure_ascii=False)
        self._handle.write(line.encode("utf-8") + b"\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def options_digest(used: Mapping[str, Any]) -> str:
    """A short digest of everything that decides an output's bytes (options, K, palette,
    format…), so a rerun with other options redoes the file."""
    text = json.dumps(used, sort_keys=True, default=_plain)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:32]


def unchanged(record: Mapping[str, Any] | None, src: str, dst: str | None, digest: str) -> bool:
    """Whether ``record`` (the manifest's last for ``src``) means there is nothing to redo.

    The input must have the recorded size and time, or else the recorded content hash; the
    options the same digest; an output the record saw must exist with the recorded size.
    """
    if record is None or record.get("status") not in _KEPT:
        return False
    if record.get("options_digest") != digest:
        return False
    if dst is not None and record.get("output") != dst:
        return False
    state = storage.file_state(src)
    if state is None or state[0] != record.get("input_bytes"):
        return False
    if state[1] != record.get("input_mtime") and (
            storage.is_url(src) or storage.content_hash(src) != record.get("input_hash")):
        # a URL's bytes are read by the workers, not here: a changed time means redo
        return False
    if record.get("compressed_bytes") is not None:  # an output was there: it must still be
        output = record.get("output")
        written = storage.file_state(output) if isinstance(output, str) else None
        return written is not None and written[0] == record.get("compressed_bytes")
    return record["status"] == "skipped"  # nothing was written (it would have been larger)


def _plain(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    if tolist is not None:  # numpy arrays and scalars
        return tolist()
    return str(value)

