"""Where files live: local paths, or fsspec URLs (``s3://``, ``gs://``, ``memory://``…).

A batch names inputs and outputs as strings. Local paths (and ``file://`` URLs, turned into
paths) go through :mod:`pathlib` and :func:`kmquant.encode.write_atomic`; any other URL goes
through `fsspec <https://filesystem-spec.readthedocs.io>`_, as in the Dask ecosystem, which
must then be installed (``pip install 'kmquant[dask]'``, plus the store's own package:
``s3fs``, ``gcsfs``…). An object store writes an object whole or not at all, so a URL output
is atomic too.

fsspec is imported only when a URL is used.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .errors import EngineUnavailableError, InputNotFoundError, OutputExistsError

__all__ = ["is_url", "local_path", "filesystem", "read_bytes", "write_bytes", "exists",
           "file_state", "content_hash", "join", "parent", "name", "list_images"]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
#: Bytes read at a time when hashing a file.
_CHUNK = 1 << 20


def is_url(location: str | os.PathLike) -> bool:
    """True for ``scheme://…`` other than ``file://`` (which :func:`local_path` makes a path)."""
    text = os.fspath(location)
    return bool(_URL.match(text)) and not text.lower().startswith("file://")


def local_path(location: str | os.PathLike) -> str:
    """A ``file://`` URL as a local path; anything else as given."""
    text = os.fspath(location)
    if text.lower().startswith("file://"):
        parts = urlsplit(text)
        return unquote(parts.path) or "/"
    return text


def filesystem(url: str) -> tuple[Any, str]:
    """fsspec's filesystem for ``url`` and the path within it.

    Raises
    ------
    EngineUnavailableError
        fsspec (or the store's package, e.g. s3fs) is not installed.
    """
    try:
        import fsspec.core
    except ImportError:
        raise EngineUnavailableError(
            f"{url}: URLs need fsspec; install it with pip install 'kmquant[dask]'") from None
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as exc:  # fsspec knows the protocol, its package is missing
        raise EngineUnavailableError(
            f"{url}: {exc}".split("\n")[0] + " (install the store's fsspec package)") from None
    except ValueError as exc:  # an unknown protocol
        raise InputNotFoundError(f"{url}: {exc}") from None


def read_bytes(url: str) -> bytes:
    """The whole object at ``url``.

    Raises
    ------
    InputNotFoundError
        Nothing is there.
    """
    fs, path = filesystem(url)
    try:
        return bytes(fs.cat_file(path))
    except FileNotFoundError:
        raise InputNotFoundError(f"{url}: no such file; check the URL") from None
    except IsADirectoryError:
        raise InputNotFoundError(f"{url}: not a file; give the URL of an image") from None


def write_bytes(url: str, data: bytes, *, overwrite: bool = False) -> None:
    """Put ``data`` at ``url`` whole (an object store's put is atomic).

    Raises
    ------
    OutputExistsError
        Something is there and ``overwrite`` is False.
    """
    fs, path = filesystem(url)
    if not overwrite and fs.exists(path):
        raise OutputExistsError(f"{url}: exists; pass --force to replace it")
    folder = posixpath.dirname(path)
    if folder:
        fs.makedirs(folder, exist_ok=True)
    fs.pipe_file(path, data)


def exists(location: str) -> bool:
    """Whether a file is at ``location`` (a path or URL)."""
    if not is_url(location):
        return os.path.isfile(local_path(location))
    fs, path = filesystem(location)
    return bool(fs.isfile(path))


def file_state(location: str) -> tuple[int, float] | None:
    """``(size in bytes, modification time)`` of the file at ``location``, None if absent.

    The time is the store's (seconds since the epoch; 0 when the store keeps none): it tells
    whether a file may have changed, and :func:`content_hash` decides.
    """
    if not is_url(location):
        try:
            stat = os.stat(local_path(location))
        except OSError:
            return None
        return stat.st_size, stat.st_mtime
    fs, path = filesystem(location)
    try:
        info = fs.info(path)
    except FileNotFoundError:
        return None
    if info.get("type") != "file":
        return None
    return int(info.get("size") or 0), _seconds(info)


def content_hash(data: bytes | str | os.PathLike) -> str:
    """``"blake2b:…"`` of a file's bytes (given, or read from a local path in chunks)."""
    digest = hashlib.blake2b(digest_size=20)
    if isinstance(data, (bytes, bytearray, memoryview)):
        digest.update(data)
    else:
        with open(local_path(data), "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return f"blake2b:{digest.hexdigest()}"


def join(folder: str, *names: str) -> str:
    """``folder/names…`` for a path or a URL."""
    if is_url(folder):
        return "/".join([folder.rstrip("/"), *[n.strip("/") for n in names if n not in ("", ".")]])
    return str(Path(folder, *names))


def parent(location: str) -> str:
    """The folder of a path or URL."""
    if is_url(location):
        return location.rstrip("/").rsplit("/", 1)[0]
    return str(Path(location).parent)


def name(location: str) -> str:
    """The file name of a path or URL."""
    return location.rstrip("/").rsplit("/", 1)[-1] if is_url(location) else Path(location).name


def list_images(url: str, *, recursive: bool, extensions: frozenset[str]) -> Iterator[str]:
    """The image files under a URL folder (``recursive``: the whole tree), sorted, as URLs."""
    fs, path = filesystem(url)
    found = fs.find(path) if recursive else [
        entry["name"] for entry in fs.ls(path, detail=True) if entry.get("type") == "file"]
    top = path.rstrip("/") or "/"
    for item in sorted(found):
        base = posixpath.basename(item)
        if base.startswith(".") or posixpath.splitext(base)[1].lower() not in extensions:
            continue
        # spelled from the URL as given (memory://in/a.png, not memory:///in/a.png)
        yield url.rstrip("/") + "/" + posixpath.relpath(item, top)


def is_folder(url: str) -> bool:
    """Whether a URL names a folder (a prefix holding objects)."""
    fs, path = filesystem(url)
    try:
        return bool(fs.isdir(path))
    except FileNotFoundError:
        return False


def _seconds(info: dict) -> float:
    for key in ("mtime", "LastModified", "updated", "created"):
        value = info.get(key)
        if value is None:
            continue
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return 0.0
