"""The command line, in-process through ``main(argv)`` and once as the installed console script."""

import json
import subprocess
import sys
from pathlib import Path

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
    assert "bad.png: not an image" in err and "1 of 3 files failed" in err
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
    (lambda t, p: p, ["-k", "0"], 2, "K must be between 1 and 256"),
    (lambda t, p: p, ["-k", "300"], 2, "K must be between 1 and 256"),
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
    assert code == 2 and "K must be a number from 1 to 256 or 'auto'" in _one_clean_line(err)
    code, _, err = _run(capsys, "compress", str(photo), str(photo), "-o", "x.png")
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
    assert _run(capsys, "demo", "--out-dir", str(out_dir), "-k", "16")[0] == 0  # re-run refreshes


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
    first, second = json.loads(out1), json.loads(out2)
    assert [r["input"] for r in second] == sources  # input order kept
    for a, b in zip(first, second):
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
