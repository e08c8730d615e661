"""What every subcommand shares: exit codes, the one-line-error parser, options, progress bars."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import errors
from ..colorspace import SPACE_NAMES
from ..dither import DITHER_METHODS
from ..options import DEFAULT_MAX_ITER, DEFAULT_MAX_PIXELS, DEFAULT_TOL, ENGINE_NAMES

#: Exit code of each error class (the first matching class in this order wins).
EXIT_CODES: tuple[tuple[type[BaseException], int, str], ...] = (
    (errors.InvalidOptionError, 2, "invalid option or K (also for command-line usage errors)"),
    (errors.InputNotFoundError, 3, "input file missing or unreadable"),
    (errors.NotAnImageError, 4, "input is not an image"),
    (errors.TruncatedImageError, 5, "image truncated or corrupt"),
    (errors.UnsupportedModeError, 6, "unsupported pixel mode"),
    (errors.ImageTooLargeError, 7, "image has more pixels than --max-pixels"),
    (errors.OutputExistsError, 8, "output exists (use --force) or would overwrite the input"),
    (errors.OutputNotWritableError, 9, "output directory missing or not writable"),
    (errors.EngineUnavailableError, 10, "engine's package not installed"),
    (errors.AbortedError, 11, "aborted"),
    (errors.TargetUnreachableError, 12,
     "-k auto: no K up to 256 meets the target (nothing written; see --best-effort)"),
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


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def max_pixels(text: str) -> int | None:
    if text.lower() in ("none", "0", "off"):
        return None
    try:
        value = int(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of pixels or 'none', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of pixels, got {text!r}")
    return value


def engine_options(*, json_help: str = "print the report as JSON") -> argparse.ArgumentParser:
    """Options of every command that quantizes (a fresh parser each time: argparse shares
    parent actions, so a default set on one command would leak into the others)."""
    common = Parser(add_help=False)
    common.add_argument("--engine", choices=ENGINE_NAMES, default="auto",
                        help="k-means engine (default auto: numba, else numpy)")
    common.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    common.add_argument("--max-iter", type=int, default=DEFAULT_MAX_ITER,
                        help=f"k-means iteration cap (default {DEFAULT_MAX_ITER})")
    common.add_argument("--tol", type=float, default=DEFAULT_TOL,
                        help=f"convergence tolerance, relative to the colour variance "
                        f"(default {DEFAULT_TOL:g}; scikit-learn uses 1e-4)")
    common.add_argument("--max-pixels", type=max_pixels, default=DEFAULT_MAX_PIXELS,
                        metavar="N", help=f"refuse larger images (default {DEFAULT_MAX_PIXELS:,}, "
                        "Pillow's bomb guard; 'none' for no limit)")
    common.add_argument("--space", choices=SPACE_NAMES, default="rgb",
                        help="colour space of the clustering: rgb (default, best PSNR), linear, "
                        "oklab, lab (lowest ΔE2000, smaller files)")
    common.add_argument("--dither", choices=DITHER_METHODS, default="none",
                        help="none (default), fs (Floyd–Steinberg) or ordered (Bayer): hides "
                        "banding, costs bytes and PSNR")
    common.add_argument("--dither-strength", type=float, default=1.0, metavar="S",
                        help="0 to 1 (default 1)")
    common.add_argument("--swaps", type=int, default=0, metavar="N",
                        help="after k-means, try N greedy swaps for a better palette "
                        "(e.g. 10: +0.06–0.10 dB for 0.05–0.2 s; default 0)")
    common.add_argument("--json", action="store_true", help=json_help)
    common.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    return common


def library_options(args: argparse.Namespace) -> dict:
    """The engine options as keyword arguments of the library."""
    return {"engine": args.engine, "seed": args.seed, "max_iter": args.max_iter, "tol": args.tol,
            "max_pixels": args.max_pixels, "space": args.space, "dither": args.dither,
            "dither_strength": args.dither_strength, "swaps": args.swaps}


def progress_bar(args: argparse.Namespace, label: str, total: int, stage: str = "refine"):
    """A tqdm bar fed by the library's progress callback for one stage, on a terminal only.

    Returns ``(callback, close)``.
    """
    from tqdm import tqdm

    if args.quiet or args.json:
        return None, lambda: None
    bar = tqdm(total=total, desc=label, unit="it" if stage == "refine" else "K", leave=False,
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
    spin for a while after each call, taking a core from the numba kernels and from the other
    batch workers (measured: a 24-file batch on 2 cores, 3.7 → 3.1 s). Called by the command
    line and its workers, not by the library, which leaves its caller's settings alone.
    """
    import numpy  # noqa: F401  (BLAS is found among the loaded libraries)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")
