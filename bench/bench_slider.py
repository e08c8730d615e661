"""What moving the K slider costs in ``kmquant serve``: one compression of an upload the server
keeps (``image=<id>``) against the same compression of the file sent again (``file``).

For each photo the script uploads it once (``POST /api/images``), then for each K of the ladder
sends the two requests one after the other, alternating which goes first, on one connection to a
real server (``--workers 1``, so that nothing but the request itself is measured). Latency is
the client's: from sending the request to the whole PNG read. It reports the medians per
photo, the ratio (kept / sent again), and the server's own timings of the stages the kept upload
skips (decode and histogram).

Usage::

    python bench/bench_slider.py                         # Kodak (../shared/data/kodak)
    python bench/bench_slider.py --data DIR --rounds 3

Writes ``OUT/slider.md`` and prints it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from bench_serve import DEFAULT_OUT, cpu_model, free_port, load_images, start_server, stop_server

KS = (8, 16, 24, 32, 48, 64, 96, 128, 192, 256)


def timed(client: httpx.Client, fields: dict[str, str], files: dict | None) -> tuple[float, dict]:
    """Seconds of one compress request, and its report."""
    clock = time.perf_counter()
    response = client.post("/api/compress", data=fields, files=files)
    seconds = time.perf_counter() - clock
    if response.status_code != 200:
        raise SystemExit(f"compress answered {response.status_code}: {response.text}")
    return seconds, json.loads(response.headers["X-Kmquant-Report"])


def measure(url: str, name: str, data: bytes, rounds: int,
            ks: tuple[int, ...] = KS) -> dict[str, float]:
    """Medians for one photo: kept-upload and sent-again latency, and the server's histogram
    time of each."""
    kept: list[float] = []
    again: list[float] = []
    histogram_kept: list[float] = []
    histogram_again: list[float] = []
    with httpx.Client(base_url=url, timeout=300) as client:
        upload = client.post("/api/images", files={"file": (f"{name}.png", data)})
        image = upload.json()["id"]
        step = 0
        for _ in range(rounds):
            for k in ks:
                pair = [("kept", {"image": image, "k": str(k)}, None),
                        ("again", {"k": str(k)}, {"file": (f"{name}.png", data)})]
                if step % 2:
                    pair.reverse()
                step += 1
                for mode, fields, files in pair:
                    seconds, report = timed(client, fields, files)
                    (kept if mode == "kept" else again).append(seconds)
                    (histogram_kept if mode == "kept" else histogram_again).append(
                        report["timings"].get("histogram", 0.0))
        client.delete(f"/api/images/{image}")
    return {"kept": statistics.median(kept), "again": statistics.median(again),
            "histogram_kept": statistics.median(histogram_kept),
            "histogram_again": statistics.median(histogram_again)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of kodim*.png (default ../shared/data/kodak, else the "
                        "packaged sample)")
    parser.add_argument("--images", default="kodim01,kodim05,kodim13,kodim20,kodim23",
                        help="comma list of image names in DATA (default five Kodak photos)")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the K ladder")
    parser.add_argument("--ks", default=",".join(map(str, KS)),
                        help=f"the K ladder (default {','.join(map(str, KS))})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    ks = tuple(int(k) for k in args.ks.split(","))
    try:
        images = load_images(args.data, [n.strip() for n in args.images.split(",")])
    except SystemExit:
        images = load_images(None, None)
    port = free_port()
    with tempfile.TemporaryDirectory() as scratch:
        process = start_server(1, port, Path(scratch) / "stderr.txt")
        try:
            rows = [(name, measure(f"http://127.0.0.1:{port}", name, data, args.rounds, ks))
                    for name, data in images]
        finally:
            stop_server(process)
    lines = [
        "# Moving K in kmquant serve: a kept upload against the file sent again",
        "",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
        f"- Machine: {platform.platform()}; {cpu_model()}",
        f"- Command: `python bench/bench_slider.py {' '.join(argv or sys.argv[1:])}`".rstrip(),
        f"- Server: `kmquant serve --workers 1`; K = {', '.join(map(str, ks))}, "
        f"{args.rounds} rounds, the two modes alternating; medians of the client's latency.",
        "",
        "| photo | kept upload (ms) | file sent again (ms) | ratio | histogram, kept (ms) | "
        "histogram, sent again (ms) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows:
        lines.append(f"| {name} | {row['kept'] * 1e3:.0f} | {row['again'] * 1e3:.0f} | "
                     f"{row['kept'] / row['again']:.2f} | {row['histogram_kept'] * 1e3:.1f} | "
                     f"{row['histogram_again'] * 1e3:.1f} |")
    ratios = [row["kept"] / row["again"] for _, row in rows]
    lines += ["", f"Median ratio over the photos: {statistics.median(ratios):.2f}"]
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "slider.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
