"""What every subcommand shares: exit codes, the one-line-error parser, options, progress bars."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from .. import errors
from ..options import MAX_COLORS, Options

#: Fields whose flag defaults to None, so that the command line can tell whether it was given;
#: :func:`library_options` puts the field's default back.
_DEFAULT_LATER = ("dither_strength", "dither")

#: Exit code of each error class (the first matching class in this order wins).
EXIT_CODES: tuple[tuple[type[BaseException], int, str], ...] = (
    (errors.InvalidOptionError, 2, "invalid option or K (also for command-line usage errors)"),
    (errors.InputNotFoundError, 3, "input file missing or unreadable"),
    (errors.NotAnImageError, 4, "input is not an image in a format kmquant reads"),
    (errors.TruncatedImageError, 5, "image truncated or corrupt"),
    (errors.UnsupportedModeError, 6, "unsupported pixel mode"),
    (errors.ImageTooLargeError, 7,
     "image has more pixels than --max-pixels, or needs more memory than --max-memory"),
    (errors.OutputExistsError, 8,
     "output exists (use --force), would overwrite the input, or is not a regular file"),
    (errors.OutputNotWritableError, 9, "output directory missing or not writable"),
    (errors.EngineUnavailableError, 10,
     "an optional package is not installed (an engine's, or ssimulacra2 for its target)"),
    (errors.AbortedError, 11, "aborted"),
    (errors.QualityTooLowError, 99,
     "--quality MIN-MAX: even 256 colours stay below MIN (nothing written; as pngquant)"),
    (errors.TargetUnreachableError, 12,
     "-k auto: no K up to 256 meets the target (nothing written; see --best-effort)"),
    (errors.ClusterError, 13,
     "the Dask scheduler cannot be reached, or a file failed on the cluster after retries"),
    (errors.OutputLargerError, 98,
     "--skip-if-larger: the output would be larger than the input; nothing written"),
    (errors.KmquantError, 1, "other kmquant error"),
)
EXIT_INTERRUPTED = 130
#: The reader of stdout went away (``kmquant … | head``): 128 + SIGPIPE, as the shell reports it.
EXIT_BROKEN_PIPE = 141
EXIT_INTERNAL = 70


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code of an exception."""
    for cls, code, _ in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return EXIT_INTERNAL


def epilog() -> str:
    lines = ["exit codes:", "  0    success (also: fewer colours than K, kept exactly)"]
    lines += [f"  {code:<4} {text}" for _, code, text in sorted(EXIT_CODES, key=lambda e: e[1])]
    lines += [f"  {EXIT_INTERNAL:<4} internal error (a bug: please report it)",
              f"  {EXIT_INTERRUPTED:<4} interrupted (Ctrl-C); no partial output is left",
              f"  {EXIT_BROKEN_PIPE:<4} the reader of the output went away (| head); files written "
              "so far are whole"]
    return "\n".join(lines)


def one_line(message: str) -> str:
    """``message`` on one line: control characters (a newline in a file's name, say) are shown
    as escapes, so that every error stays one line on stderr."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def engine_options(*, json_help: str = "print the report as JSON") -> argparse.ArgumentParser:
    """Options of every command that quantizes: one flag per field of :class:`kmquant.Options`
    that has one, with its help, type and choices from the field (a fresh parser each time:
    argparse shares parent actions, so a default set on one command would leak into the others)."""
    common = Parser(add_help=False)
    for option in _option_fields():
        meta = option.metadata
        default = None if option.name in _DEFAULT_LATER else option.default
        common.add_argument(meta["flag"], dest=option.name, default=default,
                            help=meta["help"], **meta["argparse"])
    common.add_argument("--json", action="store_true", help=json_help)
    common.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    return common


def library_options(args: argparse.Namespace) -> Options:
    """The :class:`kmquant.Options` the command line asked for (``n_colors`` is left to each
    command).

    Raises
    ------
    InvalidOptionError
        A value out of range, or a flag that would be silently ignored (``--dither-strength``
        without ``--dither``).
    """
    values = {option.name: getattr(args, option.name) for option in _option_fields()}
    if values["dither_strength"] is not None and values["dither"] in (None, "none"):
        raise errors.InvalidOptionError("--dither-strength needs --dither on, fs or ordered")
    defaults = {f.name: f.default for f in dataclasses.fields(Options)}
    for name in _DEFAULT_LATER:
        if values[name] is None:
            values[name] = defaults[name]
    return Options(**values)


def k_arg(text: str) -> int:
    """``-k`` of the commands without ``auto``: a whole number from 1 to 256."""
    k = _whole_k(text)
    if k is None:
        raise _bad_k(text, "")
    return k


def k_or_auto_arg(text: str) -> int | str:
    """``-k`` of ``compress``: a whole number from 1 to 256, or ``auto``."""
    if text.strip().lower() == "auto":
        return "auto"
    k = _whole_k(text)
    if k is None:
        raise _bad_k(text, " or 'auto'")
    return k


def _whole_k(text: str) -> int | None:
    """K from its text, or None for anything but a whole number from 1 to 256."""
    try:
        k = int(text)
    except ValueError:
        return None
    return k if 1 <= k <= MAX_COLORS else None


def _bad_k(text: str, alternatives: str) -> argparse.ArgumentTypeError:
    """One message for every bad K (0, 257, abc, 1.5, -3), a usage error (exit 2)."""
    return argparse.ArgumentTypeError(
        f"K must be a whole number from 1 to {MAX_COLORS}{alternatives}, got {text!r}")


def _option_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(Options) if f.metadata.get("flag")]


def progress_bar(args: argparse.Namespace, label: str, total: int, stage: str = "refine"):
    """A tqdm bar fed by the library's progress callback for one stage, on a terminal only.

    Returns ``(callback, close)``.
    """
    if args.quiet or args.json:
        return None, lambda: None
    from tqdm import tqdm  # 0.1 s to import: only when a bar is drawn

    bar = tqdm(total=total, desc=label, unit={"refine": "it", "fit": "img"}.get(stage, "K"),
               leave=False,
               disable=None, file=sys.stderr)

    def progress(name: str, done: int, of: int) -> None:
        if name == stage:
            bar.total = max(bar.total or 0, of)
            bar.update(done - bar.n)

    return progress, bar.close


def check_new_file(path: Path, force: bool) -> Path:
    """Refuse to overwrite an existing file without --force, before any work is done."""
    from ..encode import check_output

    return check_output(path, overwrite=force)


def single_threaded_blas() -> None:
    """Keep BLAS (numpy's ``@``) on one thread in this process.

    kmquant's matrix products are tiny (n × 3); OpenBLAS's extra threads gain nothing there but
    spin for a while after each call, taking a core from the compiled kernels and from the other
    batch workers (measured: a 24-file batch on 2 cores, 3.7 → 3.1 s). Called by the command
    line and its workers, not by the library, which leaves its caller's settings alone.

    Before numpy is loaded this only sets ``OPENBLAS_NUM_THREADS`` (unless the user set it),
    which OpenBLAS reads as numpy loads it; asking threadpoolctl afterwards scans the loaded
    libraries, 12 ms of every run.
    """
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


def single_threaded_worker() -> None:
    """For a batch worker, one of as many processes as cores: BLAS and the compiled core's
    OpenMP threads on one thread each. More only fight the other workers for the cores: a
    24-file batch on 2 cores took 3.5 s with the core's threads, 2.6 s without (see README).
    """
    import numpy  # noqa: F401  (BLAS and OpenMP are found among the loaded libraries)
    from threadpoolctl import threadpool_limits

    import kmquant._core._lloyd  # noqa: F401

    threadpool_limits(1)
