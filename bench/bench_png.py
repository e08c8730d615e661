"""PNG bytes: the same palette and indices through each indexed-PNG encoder.

For every image and K, ``kmquant.quantize`` makes one palette + indices (palette sorted by
``order_palette`` as kmquant writes it); each encoder then writes it, and the table gives the mean
bytes and the median encoding time:

pillow-zlib9
    Pillow's PNG writer at ``compress_level=9`` (zlib's best; kmquant's encoder before libdeflate).
pillow-optimize
    Pillow with ``optimize=True``.
libdeflate-L
    ``kmquant.encode.encode_png(..., level=L)``: unfiltered rows, libdeflate at level L.
oxipng-L
    pyoxipng's ``optimize_from_memory(level=L)`` on the Pillow zlib-9 file (filters tried,
    libdeflate inside); only when pyoxipng is installed (the ``bench`` extra has it).

Usage::

    python bench/bench_png.py                       # every kodim*.png, K = 16, 64, 256
    python bench/bench_png.py --images kodim23 --k 64 --out /tmp/png

Writes ``OUT/png.md`` and prints it.
"""

from __future__ import annotations

import argparse
import datetime
import io
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import (  # noqa: E402
    DEFAULT_DATA,
    DEFAULT_OUT,
    comma_ints,
    comma_list,
    cpu_model,
    load_rgb,
    log,
)

import kmquant  # noqa: E402
from kmquant.encode import encode_png  # noqa: E402

LEVELS = (6, 9, 10, 12)


def pillow(palette: np.ndarray, indices: np.ndarray, **options: object) -> bytes:
    """An indexed PNG written by Pillow with ``options``, at the smallest bit depth."""
    bits = next(b for b in (1, 2, 4, 8) if palette.shape[0] <= 1 << b)
    im = Image.fromarray(indices, mode="P")
    im.putpalette(palette[:, :3].tobytes())
    buffer = io.BytesIO()
    im.save(buffer, "PNG", bits=bits, **options)
    return buffer.getvalue()


def encoders() -> dict:
    """Name → encoder(palette, indices) -> bytes, in table order."""
    table = {
        "pillow-zlib9": lambda p, i: pillow(p, i, compress_level=9),
        "pillow-optimize": lambda p, i: pillow(p, i, optimize=True),
    }
    for level in LEVELS:
        table[f"libdeflate-{level}"] = lambda p, i, level=level: encode_png(p, i, level=level)
    try:
        import oxipng
    except ImportError:
        log("oxipng: skipped, pyoxipng is not installed")
    else:
        for level in (1, 2):
            table[f"oxipng-{level}"] = lambda p, i, level=level: oxipng.optimize_from_memory(
                pillow(p, i, compress_level=9), level=level)
    return table


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--images", type=comma_list, default=None)
    parser.add_argument("--k", type=comma_ints, default=[16, 64, 256])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per encoding")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    paths = sorted(args.data.glob("kodim*.png")) if args.images is None else \
        [args.data / f"{name.removesuffix('.png')}.png" for name in args.images]
    if not paths or not all(p.is_file() for p in paths):
        raise SystemExit(f"{args.data}: images not found; pass --data DIR")
    table = encoders()
    sizes: dict = {}
    times: dict = {}
    for path in paths:
        pixels = load_rgb(path)
        for k in args.k:
            result = kmquant.quantize(pixels, k)
            for name, encode in table.items():
                runs = []
                for _ in range(args.repeat):
                    clock = time.perf_counter()
                    data = encode(result.palette, result.indices)
                    runs.append(time.perf_counter() - clock)
                decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
                if not np.array_equal(decoded, result.to_array()):
                    raise SystemExit(f"{name}: did not write the same picture for {path.stem}")
                sizes.setdefault((k, name), []).append(len(data))
                times.setdefault((k, name), []).append(statistics.median(runs))
        log(f"{path.stem}: done")
    command = shlex.join([Path(sys.executable).name, sys.argv[0], *argv])
    lines = ["# PNG bytes: one palette + indices, every encoder", "",
             f"- Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
             f"- Machine: {platform.platform()}; {cpu_model()}",
             f"- Command: `{command}`",
             f"- Images: {len(paths)}; every output decoded and checked against the palette + "
             "indices; time: median of the runs per image, median over images.", ""]
    for k in args.k:
        base = statistics.fmean(sizes[(k, "pillow-zlib9")])
        lines += [f"## K = {k}", "", "| encoder | mean KB | vs zlib 9 | median ms |",
                  "|---|---:|---:|---:|"]
        for name in table:
            mean = statistics.fmean(sizes[(k, name)])
            lines.append(f"| {name} | {mean / 1000:.1f} | {100 * (mean / base - 1):+.1f} % | "
                         f"{1000 * statistics.median(times[(k, name)]):.1f} |")
        lines.append("")
    text = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "png.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
