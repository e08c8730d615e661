"""Many files: what to read, where each output goes, and a batch that loses nothing.

Everything here runs before any image is decoded or in the worker processes' set-up:

- :func:`expand_inputs`: files, folders (their images; ``recursive`` for the whole tree) and
  quoted globs, each with the folder it was found under (so ``--out-dir`` can mirror the tree).
- :func:`plan_outputs`: the output path of every input, and a refusal, before any work starts,
  when two inputs would write the same file or an output would overwrite another input.
- :func:`clean_stale_temporaries`: temporary files that a killed run left (kmquant's names carry
  the writer's process id; a file whose process is gone is removed, a live one's never).
- :func:`worker_setup`: a worker dies with its parent, leaves Ctrl-C to the parent, and on
  SIGTERM stops at once, after the current write has cleaned up its temporary file.
"""

from __future__ import annotations

import contextlib
import glob
import os
import posixpath
import re
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePath
from typing import Any

from . import storage
from .errors import InputNotFoundError, InvalidOptionError

__all__ = ["IMAGE_EXTENSIONS", "expand_inputs", "plan_outputs", "clean_stale_temporaries",
           "worker_setup", "Stopped", "stoppable"]

#: File name extensions of the formats kmquant reads, for folders and globs.
IMAGE_EXTENSIONS = frozenset({
    ".png", ".apng", ".jpg", ".jpeg", ".jpe", ".mpo", ".gif", ".webp", ".tif", ".tiff", ".bmp",
    ".dib", ".tga", ".ppm", ".pgm", ".pbm", ".pnm", ".qoi", ".ico", ".avif",
})
#: What :func:`kmquant.encode.write_atomic` names its temporary files: ``.NAME.PID.RANDOM.tmp``.
TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")


def expand_inputs(
    inputs: Sequence[str], *, recursive: bool = False
) -> list[tuple[Any, Any]]:
    """Input files from paths, folders and globs, in a stable order, without duplicates.

    An fsspec URL (``s3://bucket/photos``, ``memory://in/a.png``) names a file, a folder or a
    glob in a store the same way; ``file://`` URLs are local paths.

    Returns
    -------
    list of (file, root)
        ``root`` is the folder (or the glob's fixed part) the file was found under, None for a
        file named directly. Local ones are Paths, URLs strings.

    Raises
    ------
    InputNotFoundError
        A path that does not exist and matches nothing, or a folder without images.
    """
    found: list[tuple[Any, Any]] = []
    for given in inputs:
        if storage.is_url(given):
            found += _expand_url(given, recursive)
            continue
        given = storage.local_path(given)
        path = Path(given)
        if path.is_dir():
            walk = path.rglob("*") if recursive else path.iterdir()
            files = sorted(p for p in walk if _is_image_file(p))
            if not files:
                hint = "" if recursive else " (add --recursive for its subfolders)"
                raise InputNotFoundError(f"{path}: no images in this folder{hint}")
            found += [(p, path) for p in files]
        elif path.exists() or not glob.has_magic(given):
            found.append((path, None))
        else:
            matches = sorted(Path(m) for m in glob.glob(given, recursive=recursive))
            files = [m for m in matches if _is_image_file(m)]
            if not files:
                raise InputNotFoundError(f"{given}: no image matches this pattern")
            fixed = Path(_fixed_part(given))
            found += [(m, fixed) for m in files]
    unique: dict[str, tuple[Any, Any]] = {}
    for path, where in found:
        unique.setdefault(_key(path), (path, where))
    return list(unique.values())


def plan_outputs(
    files: Sequence[tuple[Any, Any]],
    *,
    out_dir: str | os.PathLike | None,
    name_of: Callable[[PurePath], str],
) -> list[Any]:
    """The output path of every input, checked for collisions before any work.

    Parameters
    ----------
    files : sequence of (file, root)
        From :func:`expand_inputs`.
    out_dir : path or URL, optional
        Outputs go here, in the same sub-folders as under the input folder (several folders:
        under the folder that holds them all, so ``a b`` gives ``OUT/a/…`` and ``OUT/b/…``);
        files named directly go straight into it. Else beside the inputs.
    name_of : callable
        ``name_of(src) -> str``: the output's file name (``src`` a path; for a URL, its file
        name as a PurePath).

    Returns
    -------
    list of Path or str
        Local outputs as Paths, URLs as strings.

    Raises
    ------
    InvalidOptionError
        Two inputs would write the same output, or an output is another input.
    """
    if out_dir is not None and not storage.is_url(os.fspath(out_dir)):
        out_dir = storage.local_path(os.fspath(out_dir))
    if any(isinstance(src, str) for src, _ in files) or \
            (out_dir is not None and storage.is_url(os.fspath(out_dir))):
        return _check_collisions(files, _plan_urls(files, out_dir, name_of))
    outputs: list[Any] = []
    roots = {_key(root): root for _, root in files if root is not None}
    base = None
    if len(roots) > 1:
        base = Path(os.path.commonpath([os.path.abspath(r) for r in roots.values()]))
    for src, root in files:
        name = name_of(src)
        if out_dir is None:
            outputs.append(src.with_name(name))
            continue
        relative = Path()
        if root is not None:
            try:
                if base is not None:
                    relative = Path(os.path.abspath(src.parent)).relative_to(base)
                else:
                    relative = src.parent.relative_to(root)
            except ValueError:  # found through a link or "..": keep it flat
                relative = Path()
        outputs.append(Path(out_dir) / relative / name)
    return _check_collisions(files, outputs)


def _check_collisions(files: Sequence[tuple[Any, Any]], outputs: list[Any]) -> list[Any]:
    """Refuse two inputs with one output, or an output that is another input."""
    by_output: dict[str, Any] = {}
    inputs = {_key(src): src for src, _ in files}
    for (src, _), dst in zip(files, outputs):
        key = _key(dst)
        if key in by_output:
            raise InvalidOptionError(
                f"{by_output[key]} and {src} would both be written to {dst}; keep their "
                "folders apart (--out-dir mirrors the input tree), rename one, or use --ext")
        if key in inputs and key != _key(src):
            raise InvalidOptionError(
                f"the output of {src}, {dst}, is another input; choose --out-dir or --ext")
        by_output[key] = src
    return outputs


def clean_stale_temporaries(folders: Sequence[Path]) -> list[Path]:
    """Remove temporary files a killed kmquant run left in ``folders``; returns them.

    Only files named as :func:`kmquant.encode.write_atomic` names them, and only when the
    process that wrote them is gone (a run still writing there keeps its own).
    """
    removed = []
    for folder in {_key(f): f for f in folders}.values():
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            match = TEMPORARY.match(entry.name)
            if match is None or not entry.is_file(follow_symlinks=False):
                continue
            if _alive(int(match.group("pid"))):
                continue
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass
    return removed


class Stopped(BaseException):
    """Raised in a worker by SIGTERM while it works on a file: unwinds (removing a half-written
    temporary file) and ends the worker."""


_working = False  # in a worker: a file is being worked on (SIGTERM then unwinds first)


@contextlib.contextmanager
def stoppable() -> Iterator[None]:
    """Mark a worker busy: SIGTERM now raises :class:`Stopped` here instead of ending the
    process at once."""
    global _working
    _working = True
    try:
        yield
    finally:
        _working = False


def worker_setup(parent: int) -> None:
    """Initializer of a batch worker process.

    - Dies with the batch's process ``parent``, even when that is killed with SIGKILL: a thread
      waits on the parent's pidfd (Linux; elsewhere it polls) and then sends this worker SIGTERM.
      (With the forkserver the workers' own parent is the server, which lives as long as they
      do, so ``PR_SET_PDEATHSIG`` would never fire.)
    - Ignores SIGINT: Ctrl-C reaches the whole process group, and the parent decides.
    - SIGTERM raises :class:`Stopped` while a file is worked on, so the write under way removes
      its temporary file; idle, the worker just ends.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)
    threading.Thread(target=_watch, args=(parent,), name="kmquant-parent-watch",
                     daemon=True).start()


def _watch(parent: int) -> None:
    """Return when process ``parent`` is gone, then SIGTERM this process."""
    try:
        handle = os.pidfd_open(parent)
    except (AttributeError, OSError):  # no pidfd (not Linux ≥ 5.3): poll
        while _alive(parent):
            time.sleep(0.25)
    else:
        select.select([handle], [], [])
    os.kill(os.getpid(), signal.SIGTERM)


def _stop(signum: int, frame: object) -> None:
    if not _working:  # idle (waiting for work): nothing to clean up
        os._exit(143)
    raise Stopped()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS \
        and not path.name.startswith(".")


def _fixed_part(pattern: str) -> str:
    """The folders of a glob before its first wildcard (``photos/**/*.png`` → ``photos``)."""
    parts = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return str(Path(*parts)) if parts else "."


def _expand_url(given: str, recursive: bool) -> list[tuple[Any, Any]]:
    """A URL's files: the file itself, a folder's images, or a glob's matches."""
    if storage.is_folder(given):
        files = list(storage.list_images(given, recursive=recursive,
                                         extensions=IMAGE_EXTENSIONS))
        if not files:
            hint = "" if recursive else " (add --recursive for its subfolders)"
            raise InputNotFoundError(f"{given}: no images in this folder{hint}")
        return [(f, given.rstrip("/")) for f in files]
    if storage.exists(given) or not glob.has_magic(given):
        if not storage.exists(given):
            raise InputNotFoundError(f"{given}: no such file; check the URL")
        return [(given, None)]
    fs, pattern = storage.filesystem(given)
    matches = sorted(fs.glob(pattern))
    scheme = given.split("://", 1)[0]
    files = [fs.unstrip_protocol(m) for m in matches
             if PurePath(m).suffix.lower() in IMAGE_EXTENSIONS and fs.isfile(m)]
    if not files:
        raise InputNotFoundError(f"{given}: no image matches this pattern")
    fixed = _fixed_part(given.split("://", 1)[1])
    return [(f, f"{scheme}://{fixed}") for f in files]


def _plan_urls(files: Sequence[tuple[Any, Any]], out_dir: Any, name_of: Callable) -> list[Any]:
    """:func:`plan_outputs` where a URL is involved: the same layout, by string."""
    roots = sorted({str(root) for _, root in files if root is not None})
    base = None
    if len(roots) > 1:  # several folders: mirrored under the folder holding them all
        base = posixpath.commonpath([_url_path(r) for r in roots])
    outputs: list[Any] = []
    for src, root in files:
        text = str(src)
        name = name_of(PurePath(storage.name(text)))
        if out_dir is None:
            outputs.append(storage.join(storage.parent(text), name) if storage.is_url(text)
                           else Path(text).with_name(name))
            continue
        relative = ""
        if root is not None:
            folder = _url_path(storage.parent(text))
            anchor = base if base is not None else _url_path(str(root))
            if folder == anchor or folder.startswith(anchor.rstrip("/") + "/"):
                relative = posixpath.relpath(folder, anchor) if folder != anchor else ""
        target = storage.join(os.fspath(out_dir), relative, name) if relative \
            else storage.join(os.fspath(out_dir), name)
        outputs.append(target if storage.is_url(target) else Path(target))
    return outputs


def _url_path(location: str) -> str:
    """A URL's path (or a local path, absolute), for comparing folders."""
    if storage.is_url(location):
        return "/" + location.split("://", 1)[1].strip("/")
    return os.path.abspath(location)


def _key(path: Any) -> str:
    if isinstance(path, str) and storage.is_url(path):
        return path.rstrip("/")
    return os.path.normcase(os.path.abspath(path))
