"""Batches that lose nothing: planned outputs, collisions refused before work, folders, JSON
lines, up-to-date skips, signals that end the work promptly with nothing half-written and no
worker left behind. Every test runs the real command in its own process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kmquant.batch import clean_stale_temporaries, expand_inputs
from kmquant.errors import InputNotFoundError


def _kmquant(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kmquant", *args], cwd=cwd,
                          capture_output=True, text=True, **kwargs)


@pytest.fixture
def tree(tmp_path, crop_pixels) -> Path:
    """a/photo.png, a/g1.png, b/photo.png, b/c/photo.png (and a text file to be ignored)."""
    for folder, name in (("a", "photo"), ("a", "g1"), ("b", "photo"), ("b/c", "photo")):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(crop_pixels).save(tmp_path / folder / f"{name}.png")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    return tmp_path


def test_same_output_name_is_refused_before_any_work(tree):
    done = _kmquant("compress", "a/photo.png", "b/photo.png", "--out-dir", "out", "-k", "8",
                    cwd=tree)
    assert done.returncode == 2 and "would both be written to out/photo.k8.png" in done.stderr
    assert not (tree / "out").exists()
    with Image.open(tree / "a" / "g1.png") as image:
        image.convert("RGB").save(tree / "a" / "g1.jpg")
    done = _kmquant("compress", "a/g1.png", "a/g1.jpg", "-k", "8", "--force", cwd=tree)
    assert done.returncode == 2 and "a/g1.k8.png" in done.stderr
    assert not (tree / "a" / "g1.k8.png").exists()


def test_folders_mirror_into_a_new_out_dir_with_json_lines_and_skips(tree):
    done = _kmquant("compress", "a", "b", "-r", "--out-dir", "out/new", "-k", "8", "--json",
                    "-j", "2", cwd=tree)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    outputs = sorted(r["output"] for r in records)
    assert outputs == ["out/new/a/g1.k8.png", "out/new/a/photo.k8.png",
                       "out/new/b/c/photo.k8.png", "out/new/b/photo.k8.png"]
    assert all(r["status"] == "done" and r["options"]["n_colors"] == 8 for r in records)
    for output in outputs:
        with Image.open(tree / output) as written:
            assert written.mode == "P"
    assert "4 done, 0 skipped, 0 failed" in done.stderr
    again = _kmquant("compress", "a", "b", "-r", "--out-dir", "out/new", "-k", "8", "--json",
                     cwd=tree)
    assert again.returncode == 0
    assert {json.loads(line)["status"] for line in again.stdout.splitlines()} == {"skipped"}


def test_a_bad_file_is_a_record_and_the_batch_goes_on(tree):
    (tree / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(30))
    done = _kmquant("compress", "a", "--out-dir", "out", "-k", "8", "--json", "-j", "1",
                    cwd=tree)
    assert done.returncode == 5
    records = {Path(r["input"]).name: r for r in map(json.loads, done.stdout.splitlines())}
    assert records["broken.png"]["status"] == "failed"
    assert records["broken.png"]["exit_code"] == 5 and "corrupt" in records["broken.png"]["error"]
    assert records["photo.png"]["status"] == "done" and records["g1.png"]["status"] == "done"
    assert not (tree / "out" / "broken.k8.png").exists()


def test_inputs_from_folders_and_globs(tree):
    files = [path.name for path, _ in expand_inputs([str(tree / "a")])]
    assert files == ["g1.png", "photo.png"]  # the text file is not an image
    assert len(expand_inputs([str(tree / "b")], recursive=True)) == 2
    assert len(expand_inputs([str(tree / "*" / "photo.png")])) == 2
    (tree / "empty").mkdir()
    with pytest.raises(InputNotFoundError, match="no images in this folder"):
        expand_inputs([str(tree / "empty")])


def test_stale_temporaries_of_dead_runs_are_removed_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".photo.k8.png.{dead}.abc123.tmp"
    live = tmp_path / f".photo.k8.png.{os.getpid()}.xyz789.tmp"
    other = tmp_path / ".something.tmp"
    for path in (stale, live, other):
        path.write_bytes(b"half")
    assert clean_stale_temporaries([tmp_path]) == [stale]
    assert not stale.exists() and live.exists() and other.exists()


def _big_inputs(folder: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(n):
        pixels = rng.integers(0, 256, (700, 700, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"noise{i:02d}.png", compress_level=1)


def _running_in_group(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that still run (zombies waiting for a reaper are
    dead: they hold no memory and do no work)."""
    running = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state not in ("Z", "X"):
            running.append(int(entry.name))
    return running


def _descendants_gone(pgid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not _running_in_group(pgid):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_the_batch_promptly_and_loses_nothing(tmp_path, signum):
    _big_inputs(tmp_path / "in", 12)
    child = subprocess.Popen(
        [sys.executable, "-m", "kmquant", "compress", "in", "--out-dir", "out", "-k", "256",
         "--json", "-j", "2"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)  # its own process group: the workers are found by it
    time.sleep(3.0)
    signalled = time.monotonic()
    os.kill(child.pid, signum)
    stdout, stderr = child.communicate(timeout=30)
    assert time.monotonic() - signalled < 2.5, "the batch took too long to stop"
    assert child.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert _descendants_gone(child.pid, within=3.0), "a worker outlived the batch"
    written = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "out").glob("*")
                     if p.name != "kmquant-manifest.jsonl")
    assert not [p for p in written if p.endswith(".tmp")], written
    reported = sorted(json.loads(line)["output"] for line in stdout.splitlines())
    assert written == reported  # every file written is whole and was reported
    manifest = tmp_path / "out" / "kmquant-manifest.jsonl"
    recorded = [json.loads(line)["output"] for line in manifest.read_text().splitlines()] \
        if manifest.exists() else []
    assert set(recorded) <= set(reported)  # the manifest holds only files written whole
    for path in written:
        with Image.open(tmp_path / path) as image:
            image.load()  # whole: it decodes
            assert image.size == (700, 700)


def test_a_killed_parent_takes_its_workers_with_it(tmp_path):
    _big_inputs(tmp_path / "in", 8)
    child = subprocess.Popen(
        [sys.executable, "-m", "kmquant", "compress", "in", "--out-dir", "out", "-k", "256",
         "-q", "-j", "2"], cwd=tmp_path, start_new_session=True)
    time.sleep(3.0)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    assert _descendants_gone(child.pid, within=5.0), "workers went on after the parent died"
    # what they were writing is left as temporary files at worst, and the next run removes them
    done = _kmquant("compress", "in", "--out-dir", "out", "-k", "8", "-q", cwd=tmp_path)
    assert done.returncode in (0, 8)
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_skip_if_larger_writes_nothing_and_says_so(tree):
    with Image.open(tree / "a" / "photo.png") as image:
        image.save(tree / "a" / "tiny.jpg", quality=5)  # a JPEG far smaller than any PNG of it
    done = _kmquant("compress", "a/tiny.jpg", "-k", "64", "--skip-if-larger", cwd=tree)
    assert done.returncode == 98 and "would be larger than the input" in done.stderr
    assert not (tree / "a" / "tiny.k64.png").exists()
    done = _kmquant("compress", "a", "--out-dir", "out", "-k", "64", "--skip-if-larger",
                    "--json", cwd=tree)
    assert done.returncode == 0, done.stderr
    records = {Path(r["input"]).name: r for r in map(json.loads, done.stdout.splitlines())}
    assert records["tiny.jpg"]["status"] == "skipped" and records["tiny.jpg"]["exit_code"] == 98
    assert records["photo.png"]["status"] == "done"
    assert not (tree / "out" / "tiny.k64.png").exists()
    assert "1 skipped" in done.stderr


def test_standard_input_to_standard_output(tree):
    src = (tree / "a" / "photo.png").read_bytes()
    done = subprocess.run([sys.executable, "-m", "kmquant", "compress", "-", "-o", "-", "-k", "8",
                           "--json"], input=src, capture_output=True, cwd=tree)
    assert done.returncode == 0, done.stderr
    import io

    with Image.open(io.BytesIO(done.stdout)) as written:
        assert written.mode == "P" and written.size == (96, 64)
    report = json.loads(done.stderr)
    assert report["input"] == "<stdin>" and report["original_bytes"] == len(src)
    missing = subprocess.run([sys.executable, "-m", "kmquant", "compress", "-", "-k", "8"],
                             input=src, capture_output=True, cwd=tree)
    assert missing.returncode == 2 and b"give -o FILE" in missing.stderr


def _with_profile(tree: Path) -> tuple[Path, bytes]:
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tree / "a" / "profiled.png"
    with Image.open(tree / "a" / "photo.png") as image:
        image.save(path, icc_profile=icc)
    return path, icc


def test_an_icc_profile_is_kept_converted_or_stripped_and_the_report_says_which(tree):
    from kmquant.job import compress

    path, icc = _with_profile(tree)
    kept = compress(path, tree / "kept.png", n_colors=16)
    with Image.open(tree / "kept.png") as written:
        assert written.info.get("icc_profile") == icc
    assert any("kept in the output" in note for note in kept.notes)
    converted = compress(path, tree / "srgb.png", n_colors=16, srgb=True)
    with Image.open(tree / "srgb.png") as written:
        assert "icc_profile" not in written.info
    assert any("to sRGB" in note for note in converted.notes)
    assert abs(converted.psnr - kept.psnr) < 1.0  # sRGB to sRGB: about the same picture
    stripped = compress(path, tree / "strip.jpg", n_colors=16, strip=True)
    with Image.open(tree / "strip.jpg") as written:
        assert "icc_profile" not in written.info
    assert any("--strip" in note for note in stripped.notes)
    compress(path, tree / "kept.jpg", n_colors=16)
    with Image.open(tree / "kept.jpg") as written:
        assert written.info.get("icc_profile") == icc


def test_an_animation_is_written_whole_and_the_report_says_so(tree):
    from kmquant.job import compress

    frames = Path(__file__).parent / "fuzz" / "corpus" / "gif_animated.gif"
    report = compress(frames, tree / "anim.png", n_colors=8)
    assert report.frames == 2 and any(n.startswith("animation: 2 frames") for n in report.notes)
    with Image.open(tree / "anim.png") as image:
        assert image.n_frames == 2 and image.mode == "P"
