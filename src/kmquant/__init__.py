"""kmquant: image compression by k-means colour quantization, written as real indexed PNGs.

>>> import kmquant
>>> result = kmquant.quantize("photo.jpg", 32)          # doctest: +SKIP
>>> report = kmquant.compress("photo.jpg", n_colors=32)  # doctest: +SKIP
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .choose import KChoice, Target
from .engines import available_engines
from .errors import (
    AbortedError,
    EngineUnavailableError,
    ImageReadError,
    ImageTooLargeError,
    InputNotFoundError,
    InvalidOptionError,
    KmquantError,
    NotAnImageError,
    OutputError,
    OutputExistsError,
    OutputNotWritableError,
    TargetUnreachableError,
    TruncatedImageError,
    UnsupportedModeError,
)
from .job import compress
from .load import LoadedImage, load_image
from .options import Options
from .pipeline import Result, quantize
from .report import Report
from .sweep import SweepResult, sweep

__version__ = "0.1.0"

__all__ = [
    "quantize",
    "compress",
    "sweep",
    "Target",
    "KChoice",
    "SweepResult",
    "load_image",
    "sample_path",
    "available_engines",
    "Result",
    "Report",
    "Options",
    "LoadedImage",
    "KmquantError",
    "InvalidOptionError",
    "InputNotFoundError",
    "ImageReadError",
    "NotAnImageError",
    "TruncatedImageError",
    "UnsupportedModeError",
    "ImageTooLargeError",
    "OutputError",
    "OutputExistsError",
    "OutputNotWritableError",
    "EngineUnavailableError",
    "AbortedError",
    "TargetUnreachableError",
    "__version__",
]


def sample_path() -> Path:
    """Path of the sample photograph shipped in the package (Kodak kodim23, 768×512)."""
    return Path(str(resources.files("kmquant") / "data" / "sample.png"))
