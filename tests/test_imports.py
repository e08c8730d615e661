"""What importing kmquant costs: the public names resolve lazily, and start-up loads nothing heavy."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types

import kmquant

HEAVY = ("skimage", "sklearn", "scipy", "matplotlib", "kneed", "tqdm", "torch", "numba", "llvmlite")


def _modules_after(code: str) -> set[str]:
    """Top-level packages loaded by a fresh interpreter after running ``code``."""
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True,
    )
    return {name.split(".")[0] for name in json.loads(done.stdout.strip().splitlines()[-1])}


def test_every_public_name_resolves_to_what_it_names():
    for name in kmquant.__all__:
        value = getattr(kmquant, name)
        assert not isinstance(value, types.ModuleType), name  # e.g. kmquant.sweep is a function
    importlib.import_module("kmquant.ksweep")  # a stage module loaded later shadows no name
    assert callable(kmquant.sweep) and not isinstance(kmquant.sweep, types.ModuleType)
    assert set(dir(kmquant)) >= set(kmquant.__all__)
    assert set(kmquant._EXPORTS) == set(kmquant.__all__) - {"sample_path", "__version__"}


def test_import_kmquant_loads_neither_numpy_nor_anything_heavy():
    loaded = _modules_after("import kmquant")
    assert not loaded & {"numpy", "PIL", *HEAVY}


def test_help_loads_no_numpy():
    loaded = _modules_after(
        "from kmquant.cli import main\nimport contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()): main(['compress', '--help'])")
    assert not loaded & {"numpy", "PIL", *HEAVY}


def test_quantizing_loads_only_numpy_pillow_and_the_core():
    loaded = _modules_after(
        "import numpy as np, kmquant\n"
        "kmquant.quantize(np.arange(300, dtype=np.uint8).reshape(10, 10, 3), 4)")
    assert {"numpy", "kmquant"} <= loaded
    assert not loaded & set(HEAVY)
