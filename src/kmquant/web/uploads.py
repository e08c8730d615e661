"""The uploads the server keeps between requests, so that the page sends an image once and then
only its id: in memory (never on disk), least recently used first out, forgotten when idle.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ..errors import KmquantError

__all__ = ["Upload", "UploadStore", "UnknownImageError"]


class UnknownImageError(KmquantError):
    """No upload has this id (it was never made, was deleted, or was forgotten): upload again."""


@dataclass
class Upload:
    """One kept upload.

    Attributes
    ----------
    id : str
        Random, URL-safe; the only handle on it.
    name : str
        The upload's file name.
    data : bytes
        The encoded image.
    info : dict
        What the server answered about it (size, colours…).
    used : float
        ``time.monotonic()`` of its last use.
    """

    id: str
    name: str
    data: bytes
    info: dict[str, Any] = field(default_factory=dict)
    used: float = field(default_factory=time.monotonic)


class UploadStore:
    """Uploads by id, within ``max_bytes`` and ``max_items``; one unused for ``idle`` seconds
    is forgotten. Thread-safe.

    Parameters
    ----------
    max_bytes : int
        Encoded bytes kept at most (the oldest go first).
    max_items : int
    idle : float
        Seconds an upload is kept without use.
    """

    def __init__(self, max_bytes: int, max_items: int = 64, idle: float = 3600.0) -> None:
        self.max_bytes, self.max_items, self.idle = max_bytes, max_items, idle
        self._items: OrderedDict[str, Upload] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def new_id() -> str:
        """A fresh id (96 random bits)."""
        return secrets.token_urlsafe(12)

    def add(self, upload: Upload) -> None:
        """Keep ``upload``, forgetting the least recently used ones beyond the limits."""
        with self._lock:
            self._items[upload.id] = upload
            self._trim()

    def get(self, upload_id: str) -> Upload:
        """The upload ``upload_id``, marked as used now.

        Raises
        ------
        UnknownImageError
        """
        with self._lock:
            self._expire()
            upload = self._items.get(upload_id)
            if upload is None:
                raise UnknownImageError(
                    "this image is no longer on the server (it was forgotten after an idle "
                    "time, or to make room); upload it again")
            upload.used = time.monotonic()
            self._items.move_to_end(upload_id)
            return upload

    def remove(self, upload_id: str) -> bool:
        """Forget ``upload_id``; whether it was kept."""
        with self._lock:
            return self._items.pop(upload_id, None) is not None

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(len(u.data) for u in self._items.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def _expire(self) -> None:
        limit = time.monotonic() - self.idle
        for key in [k for k, u in self._items.items() if u.used < limit]:
            del self._items[key]

    def _trim(self) -> None:
        self._expire()
        while len(self._items) > self.max_items or (
                len(self._items) > 1 and sum(len(u.data) for u in self._items.values())
                > self.max_bytes):
            self._items.popitem(last=False)
