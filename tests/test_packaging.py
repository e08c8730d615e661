"""The package as a user gets it: ``python -m build`` makes an sdist and a wheel with the compiled
core inside, and the wheel installed into a clean virtual environment runs ``kmquant demo``.

Slow (a build and an install, about a minute with pip's cache warm), so it runs once per suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=600, **kwargs)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = _run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out),
                 str(ROOT)])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


@pytest.mark.slow
def test_sdist_carries_the_kernel_sources_and_the_wheel_the_compiled_core(dist):
    (sdist,) = dist.glob("kmquant-*.tar.gz")
    (wheel,) = dist.glob("kmquant-*.whl")
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
    for stem in ("_lloyd", "_histogram", "_seeding", "_dither", "_random_swap"):
        assert any(n.endswith(f"src/kmquant/_core/{stem}.pyx") for n in names), stem
    assert any(n.endswith("setup.py") for n in names)
    with zipfile.ZipFile(wheel) as whl:
        modules = [n for n in whl.namelist() if n.startswith("kmquant/_core/")]
    for stem in ("_lloyd", "_histogram", "_seeding", "_dither", "_random_swap"):
        assert any(Path(n).name.startswith(f"{stem}.") and n.endswith(".so") for n in modules), stem
    assert "linux" in wheel.name or "macosx" in wheel.name or "win" in wheel.name  # not pure


@pytest.mark.slow
def test_the_wheel_in_a_clean_venv_runs_the_demo(dist, tmp_path):
    (wheel,) = dist.glob("kmquant-*.whl")
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)]).returncode == 0
    python = venv / "bin" / "python"
    done = _run([str(python), "-m", "pip", "install", "--quiet", str(wheel)])
    assert done.returncode == 0, done.stderr[-3000:]
    # the installed package, not this checkout's src/
    where = _run([str(python), "-c", "import kmquant._core._lloyd as m; print(m.__file__)"],
                 cwd=tmp_path)
    assert where.returncode == 0 and str(venv) in where.stdout, where.stdout + where.stderr
    assert _run([str(python), "-c", "import numba"], cwd=tmp_path).returncode != 0  # not needed
    demo = _run([str(venv / "bin" / "kmquant"), "demo", "-k", "16", "--out-dir", "out"],
                cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "16 used of K=16" in demo.stdout
    for name in ("sample.k16.png", "side_by_side.png", "report.json"):
        assert (tmp_path / "out" / name).stat().st_size > 0, name
