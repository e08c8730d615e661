"""The command line, in-process through ``main(argv)`` and once as the installed console script."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kmquant.cli import EXIT_CODES, main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_clean_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_compress_prints_a_report_and_writes_beside_the_input(capsys, photo):
    code, out, err = _run(capsys, "compress", str(photo), "-k", "32")
    assert code == 0, err
    assert photo.with_name("photo.k32.png").exists()
    for words in ("photo.k32.png", "768" if False else "96×64", "KB", "× smaller", "PSNR", "SSIM",
                  "32 used of K=32", "native", "iterations"):
        assert words in out


def test_json_report(capsys, photo, tmp_path):
    out_path = tmp_path / "small.png"
    code, out, _ = _run(capsys, "compress", str(photo), "-k", "8", "-o", str(out_path),
                        "--engine", "numpy", "--seed", "1", "--json")
    assert code == 0
    record = json.loads(out)
    assert record["output"] == str(out_path) and record["engine"] == "numpy"
    assert record["compressed_bytes"] == out_path.stat().st_size
    assert record["original_bytes"] == photo.stat().st_size
    assert record["k_requested"] == 8 and record["colors_used"] == 8
    assert record["ratio"] == pytest.approx(record["original_bytes"] / record["compressed_bytes"], rel=1e-3)


def test_format_input_writes_the_input_format(capsys, photo, tmp_path):
    jpeg = tmp_path / "pic.jpg"
    Image.open(photo).convert("RGB").save(jpeg)
    code, out, _ = _run(capsys, "compress", str(jpeg), "-k", "16", "--format", "input")
    assert code == 0 and (tmp_path / "pic.k16.jpg").exists() and "JPEG" in out


def test_many_files_go_on_past_a_bad_one(capsys, photo, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    other = tmp_path / "other.png"
    other.write_bytes(photo.read_bytes())
    code, out, err = _run(capsys, "compress", str(photo), str(bad), str(other), "-k", "4")
    assert code == 4
    assert (tmp_path / "photo.k4.png").exists() and (tmp_path / "other.k4.png").exists()
    assert not (tmp_path / "bad.k4.png").exists()
    assert "bad.png: not an image" in err and "2 done, 0 skipped, 1 failed" in err
    assert "Traceback" not in err


def test_out_dir(capsys, photo, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, _ = _run(capsys, "compress", str(photo), "-k", "4", "--out-dir", str(out_dir), "--json")
    assert code == 0 and (out_dir / "photo.k4.png").exists()


def _truncated(tmp_path, photo):
    path = tmp_path / "cut.png"
    path.write_bytes(photo.read_bytes()[:3000])
    return path


def _text(tmp_path, photo):
    path = tmp_path / "text.png"
    path.write_text("hello")
    return path


def _big(tmp_path, photo):
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 200), (9, 9, 9)).save(path)
    return path


@pytest.mark.parametrize("case, extra, code, words", [
    (lambda t, p: t / "missing.png", [], 3, "no such file"),
    (_text, [], 4, "not an image"),
    (_truncated, [], 5, "truncated or corrupt"),
    (_big, ["--max-pixels", "10000"], 7, "over the limit"),
    (lambda t, p: p, ["-k", "0"], 2, "K must be a whole number from 1 to 256"),
    (lambda t, p: p, ["-k", "300"], 2, "K must be a whole number from 1 to 256"),
    (lambda t, p: p, ["--tol", "-1"], 2, "tol"),
    (lambda t, p: p, ["-o", "/nonexistent-dir/x.png"], 9, "does not exist"),
    (lambda t, p: p, ["-o", "/proc/x.png"], 9, "cannot write here"),
    (lambda t, p: p, ["-o", None], 8, "is the input"),
])
def test_each_error_is_one_line_with_its_exit_code(capsys, tmp_path, photo, case, extra, code, words):
    src = case(tmp_path, photo)
    extra = [str(src) if e is None else e for e in extra]
    before = sorted(tmp_path.iterdir())
    got, out, err = _run(capsys, "compress", str(src), *extra)
    assert got == code, err
    assert words in _one_clean_line(err)
    assert sorted(tmp_path.iterdir()) == before  # nothing written, not even a temp file


def test_existing_output_needs_force(capsys, photo):
    assert _run(capsys, "compress", str(photo), "-k", "4")[0] == 0
    code, _, err = _run(capsys, "compress", str(photo), "-k", "4")
    assert code == 8 and "--force" in _one_clean_line(err)
    assert _run(capsys, "compress", str(photo), "-k", "4", "--force")[0] == 0


def test_usage_errors_are_one_line_exit_2(capsys, photo):
    code, _, err = _run(capsys, "compress", str(photo), "--engine", "gpu")
    assert code == 2 and "invalid choice" in _one_clean_line(err)
    code, _, err = _run(capsys, "compress", str(photo), "-k", "lots")
    assert code == 2 and "K must be a whole number from 1 to 256 or 'auto'" in _one_clean_line(err)
    other = photo.with_name("other.png")
    other.write_bytes(photo.read_bytes())
    code, _, err = _run(capsys, "compress", str(photo), str(other), "-o", "x.png")
    assert code == 2 and "one input" in _one_clean_line(err)


def test_help_documents_the_exit_codes(capsys):
    code, out, _ = _run(capsys, "compress", "--help")
    assert code == 0
    for _, number, text in EXIT_CODES:
        assert f"{number:<4} {text}" in out


def test_distinct_exit_codes_per_error_class():
    codes = [code for _, code, _ in EXIT_CODES]
    assert len(codes) == len(set(codes))


def test_demo_writes_report_figure_and_png(capsys, tmp_path):
    out_dir = tmp_path / "demo"
    code, out, err = _run(capsys, "demo", "--out-dir", str(out_dir), "-k", "16")
    assert code == 0, err
    png = out_dir / "sample.k16.png"
    with Image.open(png) as im:
        assert im.mode == "P" and im.size == (768, 512)
        assert len(im.getcolors()) == 16
    record = json.loads((out_dir / "report.json").read_text())
    assert record["compressed_bytes"] == png.stat().st_size and record["psnr"] > 25
    with Image.open(out_dir / "side_by_side.png") as fig:
        assert fig.width > 1000
        # the two halves show pictures: many colours on the left, at most ~K plus text on the right
        assert len(fig.convert("RGB").getcolors(1 << 24)) > 1000
    assert "side_by_side.png" in out
    # re-running into the demo's own folder needs --force, and then refreshes it
    assert _run(capsys, "demo", "--out-dir", str(out_dir), "-k", "16", "--force")[0] == 0


def test_installed_console_script(tmp_path, photo):
    script = Path(sys.executable).with_name("kmquant")
    assert script.exists(), "the console script is installed with the package"
    done = subprocess.run([str(script), "compress", str(photo), "-k", "8", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["colors_used"] == 8
    failed = subprocess.run([str(script), "compress", str(tmp_path / "nope.png")],
                            capture_output=True, text=True, timeout=120)
    assert failed.returncode == 3
    assert failed.stderr.count("\n") == 1 and "Traceback" not in failed.stderr


def test_batch_on_worker_processes_matches_one_process(capsys, photo, tmp_path):
    sources = []
    for name in ("a", "b", "c"):
        path = tmp_path / f"{name}.png"
        path.write_bytes(photo.read_bytes())
        sources.append(str(path))
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    one, many = tmp_path / "one", tmp_path / "many"
    one.mkdir()
    many.mkdir()
    code, out1, _ = _run(capsys, "compress", *sources, str(bad), "-k", "8", "--out-dir", str(one),
                         "--jobs", "1", "--json")
    assert code == 4
    code, out2, err = _run(capsys, "compress", *sources, str(bad), "-k", "8", "--out-dir",
                           str(many), "--jobs", "2", "--json")
    assert code == 4 and "bad.png: not an image" in err
    # records come as files finish: sorted by input, they are the same
    first, second = (sorted((json.loads(line) for line in out.splitlines()),
                            key=lambda r: r["input"]) for out in (out1, out2))
    assert [r["input"] for r in second] == sorted(sources + [str(bad)])
    second = [r for r in second if r["input"] != str(bad)] + \
        [r for r in second if r["input"] == str(bad)]
    first = [r for r in first if r["input"] != str(bad)]
    assert [r["status"] for r in second] == ["done", "done", "done", "failed"]
    assert second[-1]["exit_code"] == 4
    for a, b in zip(first[:3], second[:3]):
        assert a["compressed_bytes"] == b["compressed_bytes"] and a["psnr"] == b["psnr"]
    for name in ("a", "b", "c"):
        assert (one / f"{name}.k8.png").read_bytes() == (many / f"{name}.k8.png").read_bytes()


def test_quiet_skips_the_metrics_nobody_reads(capsys, photo):
    from kmquant.job import compress

    report = compress(photo, n_colors=4, measure=False)
    assert report.psnr is None and report.ssim is None
    assert "PSNR not measured" in report.to_text()
    assert json.loads(report.to_json())["psnr"] is None


@pytest.mark.parametrize("numpy_first", [False, True])
def test_the_command_line_keeps_blas_on_one_thread(numpy_first):
    """Whether numpy is loaded before (threadpoolctl) or after (the environment) the call."""
    import os
    import subprocess
    import sys

    call = "from kmquant.cli._common import single_threaded_blas; single_threaded_blas(); "
    code = (("import numpy; " + call) if numpy_first else (call + "import numpy; ")) + (
        "from threadpoolctl import threadpool_info; "
        "print(sorted({i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'}))")
    env = {key: value for key, value in os.environ.items()
           if key not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env=env)
    assert done.stdout.strip() == "[1]"


def test_a_closed_pipe_is_not_an_internal_error(photo):
    import os
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before the first line: like `kmquant ... | head -0`
    try:
        done = subprocess.run([sys.executable, "-m", "kmquant", "compress", str(photo), "-k", "8"],
                              stdout=write_end, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write_end)
    assert done.returncode == 141
    assert done.stderr == ""
    assert photo.with_name("photo.k8.png").is_file()  # the file was written whole before


# --------------------------------------------------------------------------------------------
# outputs only to regular files, and standard output


def _kmquant(*argv, **kwargs):
    """The command line as a real process."""
    return subprocess.run([sys.executable, "-m", "kmquant", *map(str, argv)], timeout=120,
                          **kwargs)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root could replace /dev/null")
def test_a_device_is_refused_even_with_force(capsys, photo):
    before = os.stat("/dev/null")
    code, out, err = _run(capsys, "compress", str(photo), "-k", "4", "-o", "/dev/null", "--force")
    assert code == 8
    assert _one_clean_line(err) == (
        "kmquant: /dev/null: is a character device, not a file; give a file path "
        "(or -o - for standard output)")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_a_symbolic_link_is_refused_even_with_force(capsys, photo, tmp_path):
    target = tmp_path / "target.png"
    target.write_bytes(b"keep me")
    link = tmp_path / "link.png"
    link.symlink_to(target)
    code, _, err = _run(capsys, "compress", str(photo), "-k", "4", "-o", str(link), "--force")
    assert code == 8 and "is a symbolic link" in _one_clean_line(err)
    assert link.is_symlink() and target.read_bytes() == b"keep me"
    dangling = tmp_path / "dangling.png"
    dangling.symlink_to(tmp_path / "nowhere.png")
    code, _, err = _run(capsys, "compress", str(photo), "-k", "4", "-o", str(dangling))
    assert code == 8 and "is a symbolic link" in _one_clean_line(err)
    assert not (tmp_path / "nowhere.png").exists()


def test_a_fifo_and_a_socket_are_refused(capsys, photo, tmp_path):
    import socket

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    code, _, err = _run(capsys, "compress", str(photo), "-k", "4", "-o", str(fifo), "--force")
    assert code == 8 and "pipe.png: is a named pipe (FIFO), not a file" in _one_clean_line(err)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    sock_path = tmp_path / "s.png"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        code, _, err = _run(capsys, "compress", str(photo), "-k", "4", "-o", str(sock_path),
                            "--force")
    assert code == 8 and "s.png: is a socket, not a file" in _one_clean_line(err)
    # the same rule for every command that writes: sweep's table
    code, _, err = _run(capsys, "sweep", str(photo), "-k", "4", "--csv", str(fifo), "--force")
    assert code == 8 and "is a named pipe (FIFO)" in _one_clean_line(err)


def test_dash_writes_the_image_to_stdout_and_the_report_to_stderr(capsys, photo, tmp_path):
    file_out = tmp_path / "file.png"
    assert _run(capsys, "compress", str(photo), "-k", "8", "-o", str(file_out), "-q")[0] == 0
    done = _kmquant("compress", photo, "-k", "8", "-o", "-", capture_output=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == file_out.read_bytes()  # the same bytes as the file, and only them
    report = done.stderr.decode()
    assert "→ <stdout>" in report and "PSNR" in report and "indexed PNG, 4-bit palette" in report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.png", "photo.png"]
    quiet = _kmquant("compress", photo, "-k", "8", "-o", "-", "-q", capture_output=True)
    assert quiet.returncode == 0 and quiet.stdout == done.stdout and quiet.stderr == b""
    as_json = _kmquant("compress", photo, "-k", "8", "-o", "-", "--json", "--format", "jpeg",
                       capture_output=True)
    record = json.loads(as_json.stderr)
    assert record["output"] == "<stdout>" and record["compressed_bytes"] == len(as_json.stdout)
    assert as_json.stdout[:2] == b"\xff\xd8" and record["format"] == "JPEG"


def test_dash_refuses_a_terminal_and_several_inputs(photo, tmp_path):
    import pty

    main_end, terminal = pty.openpty()
    try:
        done = _kmquant("compress", photo, "-k", "8", "-o", "-", stdout=terminal,
                        stderr=subprocess.PIPE, text=True)
    finally:
        os.close(terminal)
    os.set_blocking(main_end, False)
    try:
        shown = os.read(main_end, 1 << 16)
    except (BlockingIOError, OSError):  # nothing was written to the terminal
        shown = b""
    os.close(main_end)
    assert done.returncode == 2 and shown == b""
    assert _one_clean_line(done.stderr) == (
        "kmquant: refusing to write binary image data to a terminal; redirect it "
        "(-o - > out.png)")
    other = tmp_path / "other.png"
    other.write_bytes(photo.read_bytes())
    done = _kmquant("compress", photo, other, "-o", "-", capture_output=True, text=True)
    assert done.returncode == 2 and "takes one input" in _one_clean_line(done.stderr)
    assert done.stdout == ""


# --------------------------------------------------------------------------------------------
# the format written is the format named, and the report says what it is


@pytest.mark.parametrize("name, pillow_format", [
    ("x.png", "PNG"), ("x.jpg", "JPEG"), ("x.JPEG", "JPEG"), ("x.webp", "WEBP"),
    ("x.tif", "TIFF"), ("x.tiff", "TIFF"), ("x.bmp", "BMP"), ("x.gif", "GIF"),
])
def test_the_output_extension_sets_the_format(capsys, photo, tmp_path, name, pillow_format):
    out_path = tmp_path / name
    code, out, err = _run(capsys, "compress", str(photo), "-k", "8", "-o", str(out_path), "--json")
    assert code == 0, err
    with Image.open(out_path) as im:
        assert im.format == pillow_format
        indexed = im.mode == "P"
    described = json.loads(out)["format"]
    if pillow_format == "PNG":
        assert indexed and described == "indexed PNG, 4-bit palette"
    else:
        assert {"WEBP": "WebP"}.get(pillow_format, pillow_format) in described


def test_an_unknown_extension_needs_format_and_a_conflict_is_refused(capsys, photo, tmp_path):
    for name in ("x.jpx", "noextension"):
        code, _, err = _run(capsys, "compress", str(photo), "-k", "8", "-o", str(tmp_path / name))
        line = _one_clean_line(err)
        assert code == 2 and "cannot tell the output format" in line
        assert ".png, .jpg, .jpeg, .webp, .tif, .tiff, .bmp, .gif" in line and "--format" in line
    code, _, err = _run(capsys, "compress", str(photo), "-k", "8", "-o", str(tmp_path / "x.jpg"),
                        "--format", "png")
    assert code == 2 and "--format png and the output name x.jpg (jpeg) disagree" in (
        _one_clean_line(err))
    jpeg = tmp_path / "in.jpg"
    Image.open(photo).convert("RGB").save(jpeg)
    code, _, err = _run(capsys, "compress", str(jpeg), "-k", "8", "-o", str(tmp_path / "y.png"),
                        "--format", "input")
    assert code == 2 and "--format input (JPEG) and the output name y.png (png) disagree" in (
        _one_clean_line(err))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jpg", "photo.png"]
    # a name kmquant does not know is fine when --format says what to write
    code, _, err = _run(capsys, "compress", str(photo), "-k", "8", "-o", str(tmp_path / "x.jpx"),
                        "--format", "png")
    assert code == 0, err
    with Image.open(tmp_path / "x.jpx") as im:
        assert im.format == "PNG" and im.mode == "P"


def _translucent(tmp_path, crop_pixels):
    rgba = np.dstack([crop_pixels, np.full(crop_pixels.shape[:2], 255, np.uint8)])
    rgba[:24, :, 3] = 0  # a transparent band, black under it as kmquant stores it
    rgba[24:32, :, 3] = 100
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba).save(path)
    return path, rgba


@pytest.mark.parametrize("fmt", ["jpeg", "bmp"])
def test_formats_without_alpha_flatten_onto_white_and_say_so(capsys, tmp_path, crop_pixels, fmt):
    from kmquant import metrics
    from kmquant.encode import flatten

    src, rgba = _translucent(tmp_path, crop_pixels)
    out_path = tmp_path / f"out.{fmt}"
    code, out, err = _run(capsys, "compress", str(src), "-k", "16", "-o", str(out_path), "--json")
    assert code == 0, err
    record = json.loads(out)
    name = fmt.upper()
    assert f"{name} has no transparency: flattened onto white" in " ".join(record["notes"])
    written = np.asarray(Image.open(out_path).convert("RGB"))
    assert written[:16].min() >= 250  # white where it was transparent, not black (rows 16-23:
    # JPEG's ringing at the band's edge)
    # measured as written against the original on white: a real PSNR, not 10 dB of black
    assert record["psnr"] == pytest.approx(metrics.psnr(flatten(rgba), written), abs=1e-9)
    assert record["psnr"] > 25


def test_a_grey_png_is_reported_as_what_it_is(capsys, tmp_path, crop_pixels):
    grey = tmp_path / "grey.png"
    Image.fromarray(crop_pixels).convert("L").save(grey)
    for k in (16, 2):
        out_path = tmp_path / f"grey.k{k}.png"
        code, out, err = _run(capsys, "compress", str(grey), "-k", str(k), "-o", str(out_path))
        assert code == 0, err
        with Image.open(out_path) as im:
            mode = im.mode
        expected = "8-bit greyscale PNG" if mode == "L" else "indexed PNG, 1-bit palette"
        assert f"bits/pixel, {expected})" in out
    # the crop's grey at K = 16 is smaller as plain 8-bit grey; at K = 2 as a 1-bit palette
    with Image.open(tmp_path / "grey.k16.png") as im:
        assert im.mode == "L"
    with Image.open(tmp_path / "grey.k2.png") as im:
        assert im.mode == "P"


# --------------------------------------------------------------------------------------------
# nothing written until everything that can fail has run


def test_a_failing_measurement_leaves_no_output(capsys, photo, monkeypatch):
    from kmquant import metrics

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(metrics, "measure", out_of_memory)  # as if the metrics ran out of memory
    before = sorted(photo.parent.iterdir())
    code, _, err = _run(capsys, "compress", str(photo), "-k", "8")
    assert code == 70 and "internal error: MemoryError" in _one_clean_line(err)
    assert sorted(photo.parent.iterdir()) == before  # no output, no temporary file


# --------------------------------------------------------------------------------------------
# no option silently ignored; one message per kind of mistake


def test_dither_strength_needs_dither(capsys, photo):
    code, _, err = _run(capsys, "compress", str(photo), "-k", "8", "--dither-strength", "0.5")
    assert code == 2
    assert _one_clean_line(err) == "kmquant: --dither-strength needs --dither on, fs or ordered"
    assert not photo.with_name("photo.k8.png").exists()
    code, _, err = _run(capsys, "scatter", str(photo), "--dither", "none", "--dither-strength", "1")
    assert code == 2 and "--dither-strength needs --dither" in _one_clean_line(err)


def test_output_and_out_dir_exclude_each_other(capsys, photo, tmp_path):
    code, _, err = _run(capsys, "compress", str(photo), "-o", str(tmp_path / "a.png"),
                        "--out-dir", str(tmp_path))
    assert code == 2 and "-o/--output and --out-dir exclude each other" in _one_clean_line(err)
    assert not (tmp_path / "a.png").exists()


def test_max_pixels_zero_says_how_to_lift_the_limit(capsys, photo):
    code, _, err = _run(capsys, "compress", str(photo), "--max-pixels", "0")
    assert code == 2 and "'none'" in _one_clean_line(err)


@pytest.mark.parametrize("k", ["0", "257", "abc", "1.5", "-3", ""])
def test_every_bad_k_gets_the_same_message(capsys, photo, k):
    code, _, err = _run(capsys, "compress", str(photo), "-k", k)
    assert code == 2
    assert _one_clean_line(err) == (
        "kmquant compress: error: argument -k/--colors: K must be a whole number from 1 to 256 "
        f"or 'auto', got {k!r} (see kmquant compress --help)")
    for command in ("demo", "scatter"):
        code, _, err = _run(capsys, command, *([str(photo)] if command == "scatter" else []),
                            "-k", k)
        assert code == 2
        assert _one_clean_line(err) == (
            f"kmquant {command}: error: argument -k/--colors: K must be a whole number from 1 to "
            f"256, got {k!r} (see kmquant {command} --help)")


def test_counts_of_one_are_singular(capsys, tmp_path):
    src = tmp_path / "flat.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(src)
    code, out, err = _run(capsys, "compress", str(src), "-k", "4", "--swaps", "1")
    assert code == 0, err
    assert "only 1 colour, so it is kept exactly" in out and "1 colours" not in out


def test_demo_refuses_a_folder_that_is_not_empty(capsys, tmp_path):
    out_dir = tmp_path / "mine"
    out_dir.mkdir()
    (out_dir / "notes.txt").write_text("my notes")
    (out_dir / "sample.k4.png").write_text("an old result")
    code, _, err = _run(capsys, "demo", "--out-dir", str(out_dir), "-k", "4")
    line = _one_clean_line(err)
    assert code == 8 and "folder is not empty; pass --force" in line
    assert sorted(p.name for p in out_dir.iterdir()) == ["notes.txt", "sample.k4.png"]
    code, _, err = _run(capsys, "demo", "--out-dir", str(out_dir), "-k", "4", "--force", "-q")
    assert code == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "notes.txt", "report.json", "sample.k4.png", "side_by_side.png"]
    assert (out_dir / "notes.txt").read_text() == "my notes"  # the user's file is untouched
    with Image.open(out_dir / "sample.k4.png") as im:
        assert im.mode == "P"
    a_file = tmp_path / "file"
    a_file.write_text("x")
    code, _, err = _run(capsys, "demo", "--out-dir", str(a_file), "--force")
    assert code == 8 and "is not a folder" in _one_clean_line(err)
