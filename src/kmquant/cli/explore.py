"""``kmquant sweep``, ``kmquant compare`` and ``kmquant scatter``: choosing K and seeing results."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ._common import check_new_file, engine_options, k_arg, library_options, progress_bar


def register(commands) -> None:
    sweep = commands.add_parser(
        "sweep", parents=[engine_options(json_help="print the table as JSON")],
        help="quantize at many K: inertia, silhouette, PSNR, SSIM, bytes; curves and the knee",
        description="Quantize one image at many K and tabulate inertia, silhouette, MSE, PSNR, "
        "SSIM, indexed-PNG bytes, bits per pixel and time; mark the knee of the inertia curve.",
    )
    sweep.add_argument("image", metavar="IMAGE")
    sweep.add_argument("-k", "--k", dest="k_values", metavar="SPEC",
                       help="K values: a range 2:256 (powers of two and 1.5× powers of two), a "
                       "stepped range 2:64:2, or a list 4,8,16 (default 2:256)")
    sweep.add_argument("--csv", metavar="FILE", help="table as CSV (default IMAGE.sweep.csv; "
                       "a .json name writes JSON)")
    sweep.add_argument("--figure", metavar="FILE", help="curves (default IMAGE.sweep.png)")
    sweep.add_argument("--silhouette-sample", type=int, default=2000, metavar="N",
                       help="pixels in the seeded silhouette sample (default 2000; 0 skips)")
    sweep.add_argument("-f", "--force", action="store_true", help="overwrite existing outputs")
    sweep.set_defaults(handler=_cmd_sweep)

    compare = commands.add_parser(
        "compare", help="side by side with sizes, PSNR/SSIM, the worst region zoomed, an error map",
        description="Compare an original with its compressed version in one figure.",
    )
    compare.add_argument("original", metavar="ORIGINAL")
    compare.add_argument("compressed", metavar="COMPRESSED")
    compare.add_argument("-o", "--output", metavar="FILE",
                         help="figure (default COMPRESSED.compare.png)")
    compare.add_argument("--crop", type=int, default=64, metavar="N",
                         help="side of the zoomed region in pixels (default 64)")
    compare.add_argument("--max-pixels", type=int, default=None, help=argparse.SUPPRESS)
    compare.add_argument("-f", "--force", action="store_true", help="overwrite the figure")
    compare.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    compare.set_defaults(handler=_cmd_compare)

    scatter = commands.add_parser(
        "scatter", parents=[engine_options()],
        help="the pixels in 3-D RGB space coloured by cluster, and the palette with its shares",
        description="Quantize and draw a seeded sample of the pixels in RGB space, each coloured "
        "by its palette colour, the palette marked, and the palette as a swatch strip.",
    )
    scatter.add_argument("image", metavar="IMAGE")
    scatter.add_argument("-k", "--colors", type=k_arg, default=16, metavar="K",
                         help="palette size, 1 to 256 (default 16)")
    scatter.add_argument("-o", "--output", metavar="FILE",
                         help="figure (default IMAGE.kK.scatter.png)")
    scatter.add_argument("--sample", type=int, default=5000, metavar="N",
                         help="pixels drawn (default 5000)")
    scatter.add_argument("-f", "--force", action="store_true", help="overwrite the figure")
    scatter.set_defaults(handler=_cmd_scatter)


def _beside(path: str, suffix: str) -> Path:
    p = Path(path)
    return p.with_name(f"{p.stem}{suffix}")


def _cmd_sweep(args: argparse.Namespace) -> int:
    from ..encode import write_atomic
    from ..errors import InvalidOptionError
    from ..ksweep import parse_k_values, sweep
    from ..plots import save_figure
    from ..plots.sweep import sweep_figure

    if args.silhouette_sample < 0:
        raise InvalidOptionError("--silhouette-sample must be 0 or more")
    ks = parse_k_values(args.k_values)
    table = check_new_file(Path(args.csv) if args.csv else _beside(args.image, ".sweep.csv"),
                           args.force)
    figure = check_new_file(Path(args.figure) if args.figure
                            else _beside(args.image, ".sweep.png"), args.force)
    progress, close = progress_bar(args, f"sweep {Path(args.image).name}", len(ks), "sweep")
    try:
        result = sweep(args.image, ks, silhouette_sample=args.silhouette_sample,
                       progress=progress, options=library_options(args))
    finally:
        close()
    data = result.to_json() if table.suffix.lower() == ".json" else result.to_csv()
    write_atomic(table, data.encode(), overwrite=args.force)
    save_figure(sweep_figure(result, title=os.path.basename(args.image)), figure,
                overwrite=args.force)
    if args.json:
        print(result.to_json())
    elif not args.quiet:
        print(result.to_text())
        print(f"table   {table}\nfigure  {figure}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from ..errors import InvalidOptionError
    from ..load import load_image
    from ..plots import compare_figure, save_figure

    if args.crop < 1:
        raise InvalidOptionError(f"--crop must be at least 1 pixel, got {args.crop}")
    output = check_new_file(Path(args.output) if args.output
                            else _beside(args.compressed, ".compare.png"), args.force)
    original = load_image(args.original)
    compressed = load_image(args.compressed)
    a, b = _common_channels(original.pixels, compressed.pixels)
    if a.shape != b.shape:
        raise InvalidOptionError(
            f"the images differ in size ({original.width}×{original.height} vs "
            f"{compressed.width}×{compressed.height}); compare an image with its own compressed "
            "version")
    fig = compare_figure(a, b, original_bytes=os.path.getsize(args.original),
                         compressed_bytes=os.path.getsize(args.compressed),
                         original_name=Path(args.original).name,
                         compressed_name=Path(args.compressed).name, crop_size=args.crop)
    save_figure(fig, output, overwrite=args.force)
    if not args.quiet:
        print(f"figure  {output}")
    return 0


def _common_channels(a, b):
    """Bring two decoded images to the same channels (grey → RGB, opaque RGB → RGBA)."""
    import numpy as np

    def widen(x, channels):
        if x.shape[2] == channels:
            return x
        if x.shape[2] == 1:
            x = np.repeat(x, 3, axis=2)
        if channels == 4 and x.shape[2] == 3:
            x = np.concatenate([x, np.full(x.shape[:2] + (1,), 255, np.uint8)], axis=2)
        return x

    channels = max(a.shape[2], b.shape[2])
    return widen(a, channels), widen(b, channels)


def _cmd_scatter(args: argparse.Namespace) -> int:
    from ..errors import InvalidOptionError
    from ..load import load_image
    from ..pipeline import quantize
    from ..plots import save_figure, scatter_figure

    if args.sample < 1:
        raise InvalidOptionError(f"--sample must be at least 1 pixel, got {args.sample}")
    output = check_new_file(Path(args.output) if args.output
                            else _beside(args.image, f".k{args.colors}.scatter.png"), args.force)
    options = library_options(args)
    loaded = load_image(args.image, max_pixels=options.max_pixels, max_memory=options.max_memory,
                        allow_truncated=options.allow_truncated)
    progress, close = progress_bar(args, Path(args.image).name, args.max_iter)
    try:
        result = quantize(loaded.pixels, args.colors, progress=progress, options=options)
    finally:
        close()
    fig = scatter_figure(loaded.pixels, result.palette, result.indices, sample_size=args.sample,
                         seed=args.seed)
    save_figure(fig, output, overwrite=args.force)
    if not args.quiet:
        print(f"figure  {output}", file=sys.stdout)
    return 0
