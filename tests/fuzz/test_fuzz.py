"""Hostile input, checked end to end: the seed corpus, the fuzzers' regressions, and a short
coverage-guided run of the atheris harness (``make fuzz`` runs it for longer).

Every case runs the real command line in a subprocess, as a user would.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, features

from . import make_corpus

HERE = Path(__file__).parent
CORPUS = HERE / "corpus"
REGRESSIONS = HERE / "regressions"
HARNESS = HERE / "fuzz_load.py"
#: ``<what>.exit<N>[.<ext>]``: the exit code the command line must give for the file
REGRESSION_NAME = re.compile(r"^(?P<what>[^.]+)\.exit(?P<code>\d{1,3})(\.[A-Za-z0-9]+)?$")
#: the formats the loader accepts, each of which must have a seed
ALLOWLIST = {"PNG", "JPEG", "GIF", "WEBP", "TIFF", "BMP", "TGA", "PPM", "QOI", "ICO"} | (
    {"AVIF"} if features.check("avif") else set())
#: length of the short atheris run in seconds (``make fuzz``: FUZZ_SECONDS, 10 minutes)
FUZZ_SECONDS = int(os.environ.get("KMQUANT_FUZZ_SECONDS", "20"))


def _seeds() -> list[Path]:
    """The committed seeds this Pillow can read (the AVIF one needs Pillow built with libavif)."""
    return sorted(p for p in CORPUS.iterdir() if p.suffix != ".avif" or features.check("avif"))


def _regressions() -> list[Path]:
    return sorted(p for p in REGRESSIONS.iterdir() if p.name != "README.md")


def _compress(src: Path, out: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "KMQUANT_DEBUG"}
    return subprocess.run(
        [sys.executable, "-m", "kmquant", "compress", str(src), "-o", str(out), "-k", "8", "-q"],
        capture_output=True, text=True, timeout=120, env=env,
    )


def test_the_corpus_has_a_seed_per_allowed_format():
    formats = set()
    for seed in _seeds():
        with Image.open(seed) as im:
            formats.add(im.format)
    assert ALLOWLIST <= formats, f"no seed for {sorted(ALLOWLIST - formats)}"


def test_make_corpus_writes_the_same_seeds(tmp_path):
    """The script regenerates every committed seed (same names, same pictures)."""
    assert make_corpus.main(["--out", str(tmp_path)]) == 0
    assert [p.name for p in sorted(tmp_path.iterdir())] == [p.name for p in _seeds()]
    for seed in _seeds():
        with Image.open(seed) as old, Image.open(tmp_path / seed.name) as new:
            assert (new.format, new.mode, new.size) == (old.format, old.mode, old.size), seed.name


@pytest.mark.parametrize("seed", _seeds(), ids=lambda p: p.name)
def test_every_seed_compresses_to_an_indexed_png(seed, tmp_path):
    out = tmp_path / "out.png"
    done = _compress(seed, out)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout == ""  # -q: nothing but errors
    with Image.open(out) as im:
        im.load()
        assert im.format == "PNG"
        assert im.size == (make_corpus.WIDTH, make_corpus.HEIGHT)
        assert len(im.getcolors(256) or ()) <= 8


def test_regression_files_are_named_with_their_exit_code():
    for path in _regressions():
        assert REGRESSION_NAME.match(path.name), (
            f"{path.name}: name regression files <what>.exit<N>.<ext> (see README.md)")


@pytest.mark.parametrize("case", _regressions(), ids=lambda p: p.name)
def test_regression_gives_its_exit_code_and_one_clean_line(case, tmp_path):
    match = REGRESSION_NAME.match(case.name)
    assert match, case.name
    expected = int(match["code"])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    done = _compress(case, out_dir / "out.png")
    assert done.returncode == expected, done.stderr
    assert "Traceback" not in done.stderr
    if expected == 0:
        assert (out_dir / "out.png").exists()
        return
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kmquant: "), done.stderr
    assert not any(out_dir.iterdir()), f"left behind: {sorted(p.name for p in out_dir.iterdir())}"


@pytest.mark.slow
def test_a_short_atheris_run_finds_nothing(tmp_path):
    pytest.importorskip("atheris", reason="atheris is not installed (pip install -e '.[test]')")
    corpus = tmp_path / "corpus"  # libFuzzer adds what it finds to the corpus: work on a copy
    shutil.copytree(CORPUS, corpus)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    log = tmp_path / "fuzz.log"
    with log.open("wb") as sink:
        done = subprocess.run(
            [sys.executable, str(HARNESS), str(corpus), f"-max_total_time={FUZZ_SECONDS}",
             "-rss_limit_mb=2048", "-timeout=10", "-seed=1", f"-artifact_prefix={artifacts}/"],
            stdout=sink, stderr=subprocess.STDOUT, timeout=FUZZ_SECONDS + 180,
        )
    found = sorted(p.name for p in artifacts.iterdir())
    assert done.returncode == 0 and not found, (
        f"the fuzzer found {found or 'a failure'} (exit {done.returncode}); replay with "
        f"`python {HARNESS} FILE`. Log:\n{_finding(log.read_text(errors='replace'))}"
    )
    assert "DONE" in log.read_text(errors="replace")  # it ran to its time limit


def _finding(log: str) -> str:
    """The part of libFuzzer's log that explains a finding (libtiff's chatter left out)."""
    start = log.find("=== Uncaught Python exception")
    if start < 0:
        start = max(log.find("==ERROR"), 0)
    return "\n".join(line for line in log[start:].splitlines()
                     if not re.match(r"^_?TIFF\w*:|^\w+Decode:", line))[-4000:]
