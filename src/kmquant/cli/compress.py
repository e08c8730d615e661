"""``kmquant compress`` and ``kmquant demo``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path, PurePath

from .. import errors
from ..options import OUTPUT_FORMATS
from ._common import (
    engine_options,
    epilog,
    k_arg,
    k_or_auto_arg,
    library_options,
    one_line,
    progress_bar,
)

#: The files ``kmquant demo`` writes (``{k}``: its K); with --force it replaces these only.
DEMO_FILES = ("sample.k{k}.png", "side_by_side.png", "report.json")


def register(commands) -> None:
    compress = commands.add_parser(
        "compress", parents=[engine_options()], help="compress one or more images",
        description="Compress images to indexed PNGs (or --format) and report size and quality. "
        "-k auto chooses K: the smallest K that meets --target-psnr, --target-ssim or --quality, "
        "the smallest file that meets --target-ssimulacra2, the largest K whose PNG fits "
        "--max-bytes, or (with no target) the knee of the distortion curve.",
        epilog=epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compress.add_argument("inputs", nargs="+", metavar="IMAGE",
                          help="image files, folders (their images) or quoted globs")
    compress.add_argument("-r", "--recursive", action="store_true",
                          help="folders: their subfolders too (--out-dir mirrors the tree)")
    compress.add_argument("--ext", metavar="SUFFIX",
                          help="output name: the input's stem + SUFFIX (e.g. .min.png) instead of "
                          ".kK.png")
    compress.add_argument("-k", "--colors", type=k_or_auto_arg, default=None, metavar="K",
                          help="palette size 1 to 256, or 'auto' (default 64; auto when a "
                          "target is given)")
    targets = compress.add_mutually_exclusive_group()
    targets.add_argument("--target-psnr", type=float, metavar="DB",
                         help="-k auto: smallest K with at least this PSNR")
    targets.add_argument("--target-ssim", type=float, metavar="S",
                         help="-k auto: smallest K with at least this SSIM (0 to 1)")
    targets.add_argument("--target-ssimulacra2", type=float, metavar="S",
                         help="-k auto: the smallest file whose SSIMULACRA2 (perceptual, 0 to 100; "
                         "70 high quality, 90 visually lossless) is at least S, trying K and "
                         "dithering (none and on, unless --dither is given); needs the "
                         "ssimulacra2 package (kmquant[perceptual])")
    targets.add_argument("--quality", metavar="MIN-MAX",
                         help="as pngquant: the fewest colours that reach quality MAX (0 to 100); "
                         "if even 256 colours stay below MIN, nothing is written and the exit "
                         "code is 99")
    targets.add_argument("--max-bytes", metavar="N",
                         help="-k auto: largest K whose PNG fits in N bytes (50000, 50k, 1.5M)")
    compress.add_argument("--best-effort", action="store_true",
                          help="-k auto: if no K meets the target, write the closest one")
    compress.add_argument("-o", "--output", metavar="FILE",
                          help="output file (one input only; default IMAGE.kK.png beside it); "
                          "its extension sets the format (.png, .jpg, .webp, .tif, .bmp, .gif); "
                          "'-' writes the image to standard output and the report to stderr")
    compress.add_argument("--out-dir", metavar="DIR",
                          help="write outputs into DIR (created when missing), in the same "
                          "sub-folders as under each input folder")
    compress.add_argument("--format", choices=OUTPUT_FORMATS, default=None, dest="output_format",
                          help="png: indexed PNG (default, or from the -o extension); input: the "
                          "input's format; or a format name, to write the quantized picture in "
                          "full colour (JPEG and BMP flatten transparency onto white)")
    compress.add_argument("-f", "--force", action="store_true",
                          help="overwrite existing outputs (and the input, if -o names it)")
    palettes = compress.add_mutually_exclusive_group()
    palettes.add_argument("--palette", metavar="FILE",
                          help="map every image to this palette instead of fitting one: an "
                          "indexed PNG (its palette), a GIMP .gpl, or a text file of hex colours; "
                          "kept whole and in order, so index i is one colour in every output")
    palettes.add_argument("--shared-palette", action="store_true",
                          help="fit one palette of K colours over all the inputs (their colour "
                          "histograms merged) and map each to it")
    compress.add_argument("--keep-colors", metavar="COLOURS",
                          help="colours the palette must hold exactly: hex colours "
                          "('#ff0000,#00ff00') or a palette file")
    compress.add_argument("--skip-if-larger", action="store_true",
                          help="write nothing for an image whose output would be larger than "
                          "it (exit 98 for one file; counted as skipped in a batch)")
    compress.add_argument("-j", "--jobs", type=int, default=0, metavar="N",
                          help="worker processes for several files (default 0: one per core); "
                          "with --cluster local, its workers")
    where = compress.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run the batch on a running Dask cluster: its scheduler's address "
                       "(tcp://host:8786, tls://…) or scheduler file; the workers must reach "
                       "the inputs and outputs (a shared folder, or s3:// … URLs)")
    where.add_argument("--cluster", choices=("local",),
                       help="local: run the batch on a Dask cluster started here on 127.0.0.1 "
                       "(-j workers); the default process pool is as fast on one machine")
    compress.add_argument("--manifest", metavar="FILE",
                          help="the batch's record of finished files, by which a rerun redoes "
                          "only what changed (default: DIR/kmquant-manifest.jsonl with a local "
                          "--out-dir; 'none' for no manifest)")
    compress.set_defaults(handler=_cmd_compress)

    demo = commands.add_parser(
        "demo", parents=[engine_options()], help="compress the sample image shipped with kmquant",
        description="Compress the shipped sample photograph and write the result, a report and a "
        "side-by-side figure into a folder.",
    )
    demo.add_argument("-k", "--colors", type=k_arg, default=32, metavar="K",
                      help="palette size, 1 to 256 (default 32)")
    demo.add_argument("--out-dir", default="kmquant-demo", metavar="DIR",
                      help="folder for the results (default ./kmquant-demo); a folder that is "
                      "not empty needs --force")
    demo.add_argument("-f", "--force", action="store_true",
                      help="write into a folder that is not empty, replacing the demo's own "
                      "files there (sample.kK.png, side_by_side.png, report.json) and no others")
    demo.set_defaults(handler=_cmd_demo)


def _target(args: argparse.Namespace):
    from ..choose import Target, parse_bytes, parse_quality

    if args.target_psnr is not None:
        return Target("psnr", args.target_psnr)
    if args.target_ssim is not None:
        return Target("ssim", args.target_ssim)
    if args.target_ssimulacra2 is not None:
        tried = ("none", "on") if args.dither is None else ()
        return Target("ssimulacra2", args.target_ssimulacra2, dithers=tried)
    if args.quality is not None:
        low, high = parse_quality(args.quality)
        return Target("quality", high, minimum=low)
    if args.max_bytes is not None:
        return Target("max_bytes", parse_bytes(args.max_bytes))
    return None


def _cmd_compress(args: argparse.Namespace) -> int:
    target = _target(args)
    k = args.colors if args.colors is not None else "auto" if target else 64
    if target is not None and k != "auto":
        raise errors.InvalidOptionError(
            f"-k {k} and a target exclude each other; use -k auto with the target")
    if args.best_effort and k != "auto":
        raise errors.InvalidOptionError("--best-effort goes with -k auto and a target")
    from .. import storage
    from ..batch import expand_inputs

    files = expand_inputs(args.inputs, recursive=args.recursive)
    remote = any(storage.is_url(str(x)) for x in (*args.inputs, args.output or "",
                                                     args.out_dir or ""))
    if args.output == "-" and remote:
        raise errors.InvalidOptionError("-o - goes with a local input; give -o a file or URL")
    one = len(files) == 1 and files[0][1] is None
    single = one and not remote and not (args.scheduler or args.cluster)
    if args.output and not one:
        raise errors.InvalidOptionError("-o/--output takes one input; use --out-dir for several")
    if args.ext is not None and (args.output or not args.ext.strip(". ")):
        raise errors.InvalidOptionError(
            "--ext names the outputs of inputs (e.g. --ext .min.png); it goes without -o")
    if args.output and args.out_dir:
        raise errors.InvalidOptionError(
            "-o/--output and --out-dir exclude each other; give the folder in the -o path")
    if args.output == "-" and sys.stdout.isatty():
        raise errors.InvalidOptionError(
            "refusing to write binary image data to a terminal; redirect it (-o - > out.png)")
    if args.out_dir and not storage.is_url(args.out_dir):
        args.out_dir = storage.local_path(args.out_dir)
    if args.out_dir and Path(args.out_dir).exists() and not Path(args.out_dir).is_dir():
        raise errors.OutputNotWritableError(f"{args.out_dir}: is a file, not a folder")
    if args.jobs < 0:
        raise errors.InvalidOptionError(f"--jobs must be 0 (one per core) or more, got {args.jobs}")
    if (args.palette or args.shared_palette) and (args.colors == "auto" or target is not None):
        raise errors.InvalidOptionError(
            "--palette and --shared-palette go with a fixed K, not -k auto or a target")
    if args.palette and args.colors is not None:
        raise errors.InvalidOptionError("--palette sets the colours; drop -k")
    if args.palette and args.keep_colors:
        raise errors.InvalidOptionError(
            "--palette sets every colour; --keep-colors is for a fitted palette")
    options = dict(n_colors=k, target=target, best_effort=args.best_effort,
                   output_format=args.output_format, force=args.force, out_dir=args.out_dir,
                   measure=not args.quiet or args.json, options=library_options(args),
                   skip_if_larger=args.skip_if_larger)
    if args.palette:
        from ..palette import read_palette

        options["palette"] = read_palette(args.palette)
    elif args.shared_palette:
        options["palette"] = _shared_palette(args, options["options"].replace(n_colors=k),
                                             [src for src, _ in files])
    elif args.keep_colors:
        options["keep_colors"] = args.keep_colors
    if single:
        if args.out_dir:
            Path(args.out_dir).mkdir(parents=True, exist_ok=True)
        return _one(args, options)
    return _batch(args, options, files)


def _batch(args: argparse.Namespace, options: dict, files) -> int:
    """Many files: outputs planned and checked before any work, files unchanged since the
    manifest's record (or whose output is newer) skipped, the rest on the chosen executor; one
    record per file (text, or a JSON line with --json), each appended to the manifest, and a
    summary. SIGTERM ends it like Ctrl-C: workers stopped at once, nothing half-written left."""
    import signal

    from .. import storage
    from ..batch import clean_stale_temporaries, plan_outputs
    from ..encode import EXTENSION_FORMATS
    from ..job import default_output_path
    from ..manifest import options_digest, unchanged
    from ..tasks import Task

    k = options["n_colors"]
    # the output format's usual extension: the first one that names it (.png, .jpg, .tif…)
    extension = {fmt: ext for ext, fmt in reversed(EXTENSION_FORMATS.items())}

    def name_of(src: PurePath) -> str:
        if args.ext:
            return src.stem + args.ext
        fmt = args.output_format or "png"
        suffix = src.suffix if fmt == "input" else extension[fmt]
        return f"{default_output_path(src, k).stem}{suffix}"

    if args.output:  # one input named by URL, with its output
        outputs: list = [storage.local_path(args.output)]
    else:
        outputs = plan_outputs(files, out_dir=args.out_dir, name_of=name_of)
    local = [Path(dst) for dst in outputs if not storage.is_url(str(dst))]
    if args.out_dir and not storage.is_url(args.out_dir):
        for folder in sorted({dst.parent for dst in local}):
            folder.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries([dst.parent for dst in local])
    used = dict(vars(options["options"]), n_colors=k)  # the options each file runs with
    # what decides an output's bytes (limits such as --max-memory, whose default depends on
    # the machine, do not: a batch resumed on another machine keeps its files)
    decisive = {key: value for key, value in used.items()
                if key not in ("max_memory", "max_pixels")}
    digest = options_digest(dict(
        decisive, output_format=args.output_format, skip_if_larger=args.skip_if_larger,
        target=repr(options["target"]), palette=options.get("palette"),
        keep_colors=options.get("keep_colors")))
    manifest = _manifest(args)
    records = manifest.records() if manifest is not None else {}
    tasks, skipped = [], []
    for (src, _), dst in zip(files, outputs):
        src, dst = str(src), str(dst)
        planned = None if k == "auto" else dst  # -k auto: the job names it from the K chosen
        record = records.get(src)
        if not args.force and unchanged(record, src, planned, digest):
            skipped.append({"input": src, "output": record.get("output") if record else dst,
                            "status": "skipped",
                            "reason": "unchanged since the manifest's record"})
            continue
        ours = record is not None and record.get("status") == "done" \
            and record.get("output") == dst  # this batch's own output of an earlier run
        if not args.force and not ours and _up_to_date(src, dst):
            skipped.append({"input": src, "output": dst, "status": "skipped",
                            "reason": "up to date (the output is newer than the input)",
                            **(_recorded_state(src, dst) if manifest is not None else {})})
            continue
        # an output that is not there now is this batch's own if it appears: written by a
        # worker that died after its rename, whose task runs again
        fresh = planned is not None and not _exists(dst)
        tasks.append(Task(src, planned, storage.parent(dst), overwrite=ours or fresh))
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run_batch(args, options, tasks, skipped, used, digest, manifest)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if manifest is not None:
            manifest.close()


def _manifest(args: argparse.Namespace):
    """The batch's manifest: --manifest FILE, or kmquant-manifest.jsonl in a local --out-dir;
    none for --manifest none, or without either (outputs beside the inputs, or in a store)."""
    from .. import storage
    from ..manifest import MANIFEST_NAME, Manifest

    if args.manifest is not None:
        if args.manifest.lower() == "none":
            return None
        if storage.is_url(args.manifest):
            raise errors.InvalidOptionError(
                f"--manifest {args.manifest}: the manifest is synced to disk after every file, "
                "so it must be a local path")
        return Manifest(storage.local_path(args.manifest))
    if args.out_dir and not storage.is_url(args.out_dir):
        return Manifest(Path(storage.local_path(args.out_dir)) / MANIFEST_NAME)
    return None


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _up_to_date(src: str, dst: str) -> bool:
    from .. import storage

    try:
        source, output = storage.file_state(src), storage.file_state(dst)
    except (OSError, errors.KmquantError):
        return False
    return source is not None and output is not None and output[1] >= source[1] > 0


def _run_batch(args: argparse.Namespace, options: dict, tasks, skipped, used: dict,
               digest: str, manifest) -> int:
    from tqdm import tqdm

    from .. import storage

    tally = _Tally()
    for record in skipped:
        if manifest is not None and "input_hash" in record:  # newly known: kept for the next
            manifest.append(dict(record, options_digest=digest))
        _emit(args, {key: record[key] for key in ("input", "output", "status", "reason")}, None)
        tally.skipped += 1
    # workers (on a cluster: other hosts, other folders) get absolute paths; the records
    # say the paths as they were given
    outcomes, label = _executor(args, options, [_absolute(t) for t in tasks])
    existing = {t.dst for t in tasks if t.dst is not None and _exists(t.dst)}
    reported: set[int] = set()
    bar = tqdm(total=len(tasks), desc=label, unit="img", file=sys.stderr,
               disable=None if not args.quiet and not args.json else True)
    try:
        for index, outcome in outcomes:
            reported.add(index)
            bar.update(1)
            _report(args, tasks[index], outcome, used, digest, tally, manifest)
    except KeyboardInterrupt:
        # stop the workers now, whether the interrupt came while waiting for them or while a
        # record was written here (then the executor has not seen it: closing it stops them),
        # so that no file is written after the look at the disk below
        outcomes.close()
        # a worker may have written its file and been stopped before its report came back:
        # every file written is reported, so report those from what is on disk
        for index, task in enumerate(tasks):
            dst = task.dst
            if index not in reported and dst is not None and dst not in existing \
                    and not storage.is_url(dst) and os.path.exists(dst):
                record = {"input": task.src, "output": dst, "status": "done",
                          "compressed_bytes": os.path.getsize(dst),
                          "note": "written whole; its report was cut short by the interrupt"}
                if manifest is not None:
                    manifest.append(dict(record, **_recorded_state(task.src, dst),
                                         options_digest=digest))
                _emit(args, dict(record, options=used),
                      f"{task.src} → {dst}: written whole (its report was cut short by the "
                      "interrupt)")
        raise
    finally:
        bar.close()
    if not args.quiet:
        print(one_line(tally.summary()), file=sys.stderr)
    return tally.failures[0][1] if tally.failures else 0


def _recorded_state(src: str, dst: str) -> dict:
    """What the manifest keeps of an input and its output that no worker reported on: the
    input's size, time and (local) content hash, and the output's size."""
    from .. import storage

    try:
        state, written = storage.file_state(src), storage.file_state(dst)
        if state is None or written is None:
            return {}
        digest = None if storage.is_url(src) else storage.content_hash(src)
    except (OSError, errors.KmquantError):
        return {}
    return {"input_bytes": state[0], "input_mtime": state[1], "input_hash": digest,
            "compressed_bytes": written[0]}


def _absolute(task):
    """The task with local paths made absolute."""
    import dataclasses

    from .. import storage

    def absolute(location):
        return location if location is None or storage.is_url(location) \
            else os.path.abspath(location)

    return dataclasses.replace(task, src=absolute(task.src), dst=absolute(task.dst),
                               folder=absolute(task.folder))


def _exists(location: str) -> bool:
    from .. import storage

    try:
        return storage.exists(location)
    except (OSError, errors.KmquantError):
        return False


def _executor(args: argparse.Namespace, options: dict, tasks):
    """The executor the command line asks for, and the progress bar's label."""
    from .. import executors

    if args.scheduler or args.cluster:
        where = args.scheduler or "a local Dask cluster"
        return executors.on_dask(tasks, options, scheduler=args.scheduler,
                                 workers=args.jobs), f"images on {where}"
    jobs = min(args.jobs or os.cpu_count() or 1, max(1, len(tasks)))
    if jobs > 1:
        return executors.in_pool(tasks, options, jobs), f"images ({jobs} processes)"
    return executors.in_turn(tasks, options), "images"


class _Tally:
    """What the summary counts."""

    def __init__(self) -> None:
        self.done: list[dict] = []
        self.skipped = 0
        self.failures: list[tuple[str, int]] = []

    def summary(self) -> str:
        done = self.done
        saved = sum(r["original_bytes"] - r["compressed_bytes"] for r in done)
        before = sum(r["original_bytes"] for r in done)
        psnrs = [r["psnr"] for r in done if r.get("psnr") is not None]
        parts = [f"kmquant: {len(done)} done, {self.skipped} skipped, "
                 f"{len(self.failures)} failed"]
        if done:
            parts.append(f"{saved / 2**20:.1f} MB saved ({saved / max(before, 1):.0%})")
        if psnrs:
            parts.append(f"mean PSNR {sum(psnrs) / len(psnrs):.2f} dB")
        text = "; ".join(parts)
        if self.failures:
            shown = ", ".join(src for src, _ in self.failures[:10])
            more = len(self.failures) - 10
            text += " — failed: " + shown + (f" and {more} more" if more > 0 else "")
        return text


def _report(args: argparse.Namespace, task, outcome, used: dict, digest: str, tally: _Tally,
            manifest) -> None:
    """Emit one file's record, count it, and append it to the manifest."""
    from .. import storage
    from ..tasks import failure_record

    record = outcome if isinstance(outcome, dict) else failure_record(task.src, task.dst, outcome)
    written = record.get("output")
    shown = task.dst if task.dst is not None or not isinstance(written, str) \
        else storage.join(task.folder, storage.name(written))  # -k auto: named by its K
    record = dict(record, input=task.src, output=shown, options=used)
    if "error" in record and not storage.is_url(task.src):  # the path as the user gave it
        record["error"] = record["error"].replace(os.path.abspath(task.src), task.src)
    status = record["status"]
    if manifest is not None and (status != "skipped" or "exit_code" in record
                                 or "input_hash" in record):
        manifest.append({**{k: v for k, v in record.items() if k != "options"},
                         "options_digest": digest})
    if status == "failed":
        tally.failures.append((task.src, int(record["exit_code"])))
        _emit(args, record, f"kmquant: {one_line(record['error'])}")
    elif status == "skipped":
        tally.skipped += 1
        _emit(args, record, None)
    else:
        tally.done.append(record)
        _emit(args, record, _report_text(record))


def _report_text(record: dict) -> str:
    """A done record as the report's text."""
    import dataclasses

    from ..report import Report

    fields = {f.name for f in dataclasses.fields(Report)}
    values = {key: value for key, value in record.items() if key in fields}
    values["notes"] = tuple(values.get("notes", ()))
    if record.get("lossless"):
        values["psnr"] = float("inf")
    return Report(**values).to_text()


def _emit(args: argparse.Namespace, record: dict, text: str | None) -> None:
    """One file's record: a JSON line with --json, else its text (failures on stderr)."""
    if record["status"] == "failed" and not args.quiet:
        _write(text or "", sys.stderr)  # with --json too: the record says it for programs
    if args.json:
        _write(json.dumps(record, default=str), sys.stdout)
    elif record["status"] == "failed":
        return
    elif not args.quiet and text is not None:
        _write(text, sys.stdout)
    elif not args.quiet and record["status"] == "skipped":
        _write(f"{record['input']}: skipped, {record['reason']}", sys.stdout)


def _one(args: argparse.Namespace, options: dict) -> int:
    """One file, with a progress bar for its k-means (errors go to the caller)."""
    from ..job import compress

    auto = options["n_colors"] == "auto"
    progress, close = progress_bar(args, Path(args.inputs[0]).name,
                                   9 if auto else args.max_iter, "choose" if auto else "refine")
    to_stdout = args.output == "-"  # the image owns stdout: the report goes to stderr
    source: str | bytes = args.inputs[0]
    if source == "-":  # the image comes on standard input
        if sys.stdin.isatty():
            raise errors.InvalidOptionError(
                "'-' reads the image from standard input, but that is a terminal; pipe a file "
                "in (kmquant compress - -o out.png < photo.png)")
        source = sys.stdin.buffer.read()
    try:
        report = compress(source, sys.stdout.buffer if to_stdout else args.output,
                          progress=progress, **options)
    finally:
        close()
    report_stream = sys.stderr if to_stdout else sys.stdout
    if args.json:
        print(report.to_json(), file=report_stream)
    elif not args.quiet:
        print(report.to_text(), file=report_stream)
    return 0


def _shared_palette(args: argparse.Namespace, opts, files: list):
    """One palette fitted over every input (decoded one at a time), with a bar on a terminal."""
    from .. import storage
    from ..palette import Quantizer

    progress, close = progress_bar(args, f"palette over {len(files)} images",
                                   len(files), stage="fit")
    try:
        quantizer = Quantizer(opts, keep_colors=args.keep_colors)
        images = (storage.read_bytes(str(f)) if storage.is_url(str(f)) else f for f in files)
        return quantizer.fit(*images, progress=progress).palette_
    finally:
        close()


def _write(text: str, stream) -> None:
    from tqdm import tqdm

    tqdm.write(text, file=stream)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .. import sample_path
    from ..encode import write_atomic
    from ..job import compress
    from ..load import load_image
    from ..plots import save_figure, side_by_side

    options = library_options(args)
    out = Path(args.out_dir)
    k = args.colors
    names = [name.format(k=k) for name in DEMO_FILES]
    _check_demo_folder(out, names, args.force)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise errors.OutputNotWritableError(
            f"{out}: cannot create the folder ({exc.strerror})") from None
    sample = sample_path()
    progress, close = progress_bar(args, "sample", args.max_iter)
    written = out / names[0]
    try:  # an empty or new folder, or --force: the demo's own files may be replaced
        report = compress(sample, written, n_colors=k, force=True, progress=progress,
                          options=options)
    finally:
        close()
    original = load_image(sample).pixels
    quantized = load_image(written).pixels
    assert report.psnr is not None  # the demo always measures
    figure = side_by_side(original, quantized, original_bytes=report.original_bytes,
                          compressed_bytes=report.compressed_bytes, psnr=report.psnr,
                          ssim=report.ssim, n_colors=report.colors_used)
    figure_path = save_figure(figure, out / names[1], overwrite=True)
    report_path = write_atomic(out / names[2], report.to_json().encode(), overwrite=True)
    if args.json:
        print(report.to_json())
    elif not args.quiet:
        print(report.to_text())
        print(f"  figure   {figure_path}\n  report   {report_path}")
    return 0


def _check_demo_folder(out: Path, names: list[str], force: bool) -> None:
    """Refuse, before any work, a demo folder that is a file, or that holds anything without
    --force (the user's files in it are never touched; with --force only ``names`` are
    replaced, and those must be regular files)."""
    from ..encode import check_output

    if out.exists() and not out.is_dir():
        raise errors.OutputExistsError(
            f"{out}: is not a folder; give --out-dir a folder for the demo's files")
    if not out.is_dir():
        return
    if not force and any(out.iterdir()):
        raise errors.OutputExistsError(
            f"{out}: folder is not empty; pass --force to write the demo's files into it "
            f"(it replaces {', '.join(names)} and nothing else), or choose another --out-dir")
    for name in names:
        check_output(out / name, overwrite=True)
