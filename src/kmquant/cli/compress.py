"""``kmquant compress`` and ``kmquant demo``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import errors
from ..options import OUTPUT_FORMATS
from ._common import engine_options, epilog, exit_code_for, library_options, progress_bar


def register(commands) -> None:
    compress = commands.add_parser(
        "compress", parents=[engine_options()], help="compress one or more images",
        description="Compress images to indexed PNGs (or --format) and report size and quality. "
        "-k auto chooses K: the smallest K that meets --target-psnr or --target-ssim, the "
        "largest whose PNG fits --max-bytes, or (with no target) the knee of the distortion "
        "curve.",
        epilog=epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compress.add_argument("inputs", nargs="+", metavar="IMAGE", help="image files")
    compress.add_argument("-k", "--colors", type=_k_or_auto, default=None, metavar="K",
                          help="palette size 1 to 256, or 'auto' (default 64; auto when a "
                          "target is given)")
    targets = compress.add_mutually_exclusive_group()
    targets.add_argument("--target-psnr", type=float, metavar="DB",
                         help="-k auto: smallest K with at least this PSNR")
    targets.add_argument("--target-ssim", type=float, metavar="S",
                         help="-k auto: smallest K with at least this SSIM (0 to 1)")
    targets.add_argument("--max-bytes", metavar="N",
                         help="-k auto: largest K whose PNG fits in N bytes (50000, 50k, 1.5M)")
    compress.add_argument("--best-effort", action="store_true",
                          help="-k auto: if no K meets the target, write the closest one")
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
        "demo", parents=[engine_options()], help="compress the sample image shipped with kmquant",
        description="Compress the shipped sample photograph and write the result, a report and a "
        "side-by-side figure into a folder.",
    )
    demo.add_argument("-k", "--colors", type=int, default=32, metavar="K",
                      help="palette size, 1 to 256 (default 32)")
    demo.add_argument("--out-dir", default="kmquant-demo", metavar="DIR",
                      help="folder for the results (default ./kmquant-demo)")
    demo.set_defaults(handler=_cmd_demo)


def _k_or_auto(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"K must be a number from 1 to 256 or 'auto', got {text!r}")


def _target(args: argparse.Namespace):
    from ..choose import Target, parse_bytes

    if args.target_psnr is not None:
        return Target("psnr", args.target_psnr)
    if args.target_ssim is not None:
        return Target("ssim", args.target_ssim)
    if args.max_bytes is not None:
        return Target("max_bytes", parse_bytes(args.max_bytes))
    return None


def _cmd_compress(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..job import compress

    target = _target(args)
    k = args.colors if args.colors is not None else "auto" if target else 64
    if target is not None and k != "auto":
        raise errors.InvalidOptionError(
            f"-k {k} and a target exclude each other; use -k auto with the target")
    if args.best_effort and k != "auto":
        raise errors.InvalidOptionError("--best-effort goes with -k auto and a target")
    if args.output and len(args.inputs) > 1:
        raise errors.InvalidOptionError("-o/--output takes one input; use --out-dir for several")
    if args.out_dir and not Path(args.out_dir).is_dir():
        raise errors.OutputNotWritableError(
            f"{args.out_dir}: output directory does not exist; create it first"
        )
    many = len(args.inputs) > 1
    failures: list[tuple[str, BaseException]] = []
    records = []
    files = tqdm(args.inputs, desc="images", unit="img", file=sys.stderr,
                 disable=None if many and not args.quiet and not args.json else True)
    for src in files:
        stage = "choose" if k == "auto" else "refine"
        progress, close = progress_bar(args, Path(src).name, args.max_iter if k != "auto" else 9,
                                       stage)
        try:
            report = compress(src, args.output, out_dir=args.out_dir, n_colors=k, target=target,
                              best_effort=args.best_effort, output_format=args.output_format,
                              force=args.force, progress=progress, **library_options(args))
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
    from .. import sample_path
    from ..encode import write_atomic
    from ..job import compress
    from ..load import load_image
    from ..plots import save_figure, side_by_side

    out = Path(args.out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise errors.OutputNotWritableError(
            f"{out}: cannot create the folder ({exc.strerror})") from None
    k = args.colors
    sample = sample_path()
    progress, close = progress_bar(args, "sample", args.max_iter)
    try:  # the demo folder is ours: re-running the demo refreshes it
        report = compress(sample, out / f"sample.k{k}.png", n_colors=k, force=True,
                          progress=progress, **library_options(args))
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
