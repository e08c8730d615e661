"""Shared fixtures: real photographs (the shipped sample and Kodak crops) and small made images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kmquant
from kmquant.load import load_image

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def sample_path() -> Path:
    """The full 768×512 Kodak photograph shipped in the package."""
    return kmquant.sample_path()


@pytest.fixture(scope="session")
def sample_pixels(sample_path) -> np.ndarray:
    return load_image(sample_path).pixels


@pytest.fixture(scope="session")
def crop_path() -> Path:
    """A 96×64 crop of Kodak kodim05 (busy, many colours)."""
    return DATA / "kodim05_crop.png"


@pytest.fixture(scope="session")
def crop_pixels(crop_path) -> np.ndarray:
    return load_image(crop_path).pixels


@pytest.fixture
def photo(tmp_path, crop_path) -> Path:
    """A copy of the crop in a private folder, safe to write beside."""
    dst = tmp_path / "photo.png"
    dst.write_bytes(crop_path.read_bytes())
    return dst


def pytest_report_header(config):
    """Say which compiled core the run uses (``make sanitize`` runs an instrumented copy)."""
    import os

    import kmquant._core

    where = os.path.dirname(kmquant._core.__file__)
    expected = os.environ.get("KMQUANT_EXPECT_CORE")
    if expected and os.path.abspath(expected) not in os.path.abspath(where):
        raise RuntimeError(f"the tests would run the core in {where}, not the one in {expected}")
    return f"kmquant core: {where}"
