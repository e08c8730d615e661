"""The ``kmquant`` command. It holds no algorithm: it parses, calls the library, and turns the
library's exceptions into one line on stderr and an exit code."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from . import __version__, errors
from .options import (
    DEFAULT_MAX_ITER,
    DEFAULT_MAX_PIXELS,
    DEFAULT_TOL,
    ENGINE_NAMES,
    OUTPUT_FORMATS,
)

__all__ = ["main", "run", "EXIT_CODES"]

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
    (errors.KmquantError, 1, "other kmquant error"),
)
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code of an exception."""
    for cls, code, _ in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return EXIT_INTERNAL


def _epilog() -> str:
    lines = ["exit codes:", "  0    success"]
    lines += [f"  {code:<4} {text}" for _, code, text in sorted(EXIT_CODES, key=lambda e: e[1])]
    lines += [f"  {EXIT_INTERNAL:<4} internal error (a bug: please report it)",
              f"  {EXIT_INTERRUPTED:<4} interrupted (Ctrl-C); no partial output is left"]
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _max_pixels(text: str) -> int | None:
    if text.lower() in ("none", "0", "off"):
        return None
    try:
        value = int(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels or 'none', got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of pixels, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kmquant",
        description="Compress images by k-means colour quantization into real indexed PNGs.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kmquant {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    compress = commands.add_parser(
        "compress", parents=[_common_options(64)], help="compress one or more images",
        description="Compress images to indexed PNGs (or --format) and report size and quality.",
        epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compress.add_argument("inputs", nargs="+", metavar="IMAGE", help="image files")
    compress.add_argument("-o", "--output", metavar="FILE",
                          help="output file (one input only; default IMAGE.kK.png beside it)")
    compress.add_argument("--out-dir", metavar="DIR", help="write outputs into DIR")
    compress.add_argument("--format", choices=OUTPUT_FORMATS, default="png", dest="output_format",
                          help="png: indexed PNG (default); input: the input's format; or a "
                          "format name, to write the quantized picture in full colour")
    compress.add_argument("-f", "--force", action="store_true",
                          help="overwrite existing outputs (and the input, if -o names it)")
    compress.set_defaults(handler=_cmd_compress)

    demo = commands.add_parser(
        "demo", parents=[_common_options(32)], help="compress the sample image shipped with kmquant",
        description="Compress the shipped sample photograph and write the result, a report and a "
        "side-by-side figure into a folder.",
    )
    demo.add_argument("--out-dir", default="kmquant-demo", metavar="DIR",
                      help="folder for the results (default ./kmquant-demo)")
    demo.set_defaults(handler=_cmd_demo)
    return parser


def _common_options(default_k: int) -> argparse.ArgumentParser:
    """Options every command shares (a fresh parser each time: argparse shares parent actions)."""
    common = _Parser(add_help=False)
    common.add_argument("-k", "--colors", type=int, default=default_k, metavar="K",
                        help=f"palette size, 1 to 256 (default {default_k})")
    common.add_argument("--engine", choices=ENGINE_NAMES, default="auto",
                        help="k-means engine (default auto: numba, else numpy)")
    common.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    common.add_argument("--max-iter", type=int, default=DEFAULT_MAX_ITER,
                        help=f"k-means iteration cap (default {DEFAULT_MAX_ITER})")
    common.add_argument("--tol", type=float, default=DEFAULT_TOL,
                        help=f"convergence tolerance, relative to the colour variance "
                        f"(default {DEFAULT_TOL:g}; scikit-learn uses 1e-4)")
    common.add_argument("--max-pixels", type=_max_pixels, default=DEFAULT_MAX_PIXELS,
                        metavar="N", help=f"refuse larger images (default {DEFAULT_MAX_PIXELS:,}, "
                        "Pillow's bomb guard; 'none' for no limit)")
    common.add_argument("--json", action="store_true", help="print the report as JSON")
    common.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    return common


def _options(args: argparse.Namespace) -> dict:
    return {"engine": args.engine, "seed": args.seed, "max_iter": args.max_iter, "tol": args.tol,
            "max_pixels": args.max_pixels}


def _progress_bar(args: argparse.Namespace, label: str):
    """A tqdm bar over k-means iterations (only on a terminal); returns (callback, close)."""
    from tqdm import tqdm

    if args.quiet or args.json:
        return None, lambda: None
    bar = tqdm(total=args.max_iter, desc=label, unit="it", leave=False, disable=None,
               file=sys.stderr)

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "refine":
            bar.update(done - bar.n)

    return progress, bar.close


def _cmd_compress(args: argparse.Namespace) -> int:
    from .pipeline import compress

    if args.output and len(args.inputs) > 1:
        raise errors.InvalidOptionError("-o/--output takes one input; use --out-dir for several")
    if args.out_dir and not Path(args.out_dir).is_dir():
        raise errors.OutputNotWritableError(
            f"{args.out_dir}: output directory does not exist; create it first"
        )
    from tqdm import tqdm

    many = len(args.inputs) > 1
    failures: list[tuple[str, BaseException]] = []
    records = []
    files = tqdm(args.inputs, desc="images", unit="img", disable=None if many and not args.quiet
                 and not args.json else True, file=sys.stderr)
    for src in files:
        progress, close = _progress_bar(args, Path(src).name)
        try:
            report = compress(src, args.output, out_dir=args.out_dir, n_colors=args.colors,
                              output_format=args.output_format, force=args.force,
                              progress=progress, **_options(args))
        except errors.KmquantError as exc:
            if not many:
                raise
            failures.append((src, exc))
            tqdm.write(f"kmquant: {exc}", file=sys.stderr)
            continue
        finally:
            close()
        records.append(report.to_dict())
        if not args.quiet and not args.json:
            tqdm.write(report.to_text(), file=sys.stdout)
    if args.json:
        print(json.dumps(records[0] if not many else records, indent=2))
    if failures:
        if not args.quiet:
            print(f"kmquant: {len(failures)} of {len(args.inputs)} files failed: "
                  + ", ".join(str(src) for src, _ in failures), file=sys.stderr)
        return exit_code_for(failures[0][1])
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from . import sample_path
    from .load import load_image
    from .pipeline import compress
    from .plots import save_figure, side_by_side
    from .encode import write_atomic

    out = Path(args.out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise errors.OutputNotWritableError(f"{out}: cannot create the folder ({exc.strerror})")
    k = args.colors
    sample = sample_path()
    progress, close = _progress_bar(args, "sample")
    try:  # the demo folder is ours: re-running the demo refreshes it
        report = compress(sample, out / f"sample.k{k}.png", n_colors=k, force=True,
                          progress=progress, **_options(args))
    finally:
        close()
    original = load_image(sample).pixels
    quantized = load_image(report.output).pixels
    figure = side_by_side(original, quantized, original_bytes=report.original_bytes,
                          compressed_bytes=report.compressed_bytes, psnr=report.psnr,
                          ssim=report.ssim, n_colors=report.colors_used)
    figure_path = save_figure(figure, out / "side_by_side.png", overwrite=True)
    write_atomic(out / "report.json", report.to_json().encode(), overwrite=True)
    if args.json:
        print(report.to_json())
    elif not args.quiet:
        print(report.to_text())
        print(f"  figure   {figure_path}\n  report   {out / 'report.json'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code instead of exiting.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return int(exc.code or 0)
    try:
        return args.handler(args)
    except errors.KmquantError as exc:
        print(f"kmquant: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        print("kmquant: interrupted; no partial output was left", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: say so in one line unless asked for the traceback
        if os.environ.get("KMQUANT_DEBUG"):
            raise
        print(f"kmquant: internal error: {type(exc).__name__}: {exc} "
              "(set KMQUANT_DEBUG=1 for the traceback and please report it)", file=sys.stderr)
        return EXIT_INTERNAL


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
