"""kmquant: image compression by k-means colour quantization, written as real indexed PNGs.

>>> import kmquant
>>> result = kmquant.quantize("photo.jpg", 32)          # doctest: +SKIP
>>> report = kmquant.compress("photo.jpg", n_colors=32)  # doctest: +SKIP

Importing the package costs nothing but this module: each public name is imported from its
stage module the first time it is used (PEP 562), so ``import kmquant`` and ``kmquant --help``
load neither NumPy's friends nor the compiled core until they are needed.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name → the module that defines it
_EXPORTS: dict[str, str] = {
    "quantize": "pipeline",
    "Result": "pipeline",
    "compress": "job",
    "sweep": "ksweep",
    "SweepResult": "ksweep",
    "Target": "choose",
    "KChoice": "choose",
    "load_image": "load",
    "LoadedImage": "load",
    "load_frames": "load",
    "LoadedFrames": "load",
    "available_engines": "engines",
    "Report": "report",
    "Options": "options",
    "Quantizer": "palette",
    "remap": "palette",
    "read_palette": "palette",
    **{name: "errors" for name in (
        "KmquantError", "InvalidOptionError", "InputNotFoundError", "ImageReadError",
        "NotAnImageError", "TruncatedImageError", "UnsupportedModeError", "ImageTooLargeError",
        "OutputError", "OutputExistsError", "OutputNotWritableError", "EngineUnavailableError",
        "AbortedError", "TargetUnreachableError", "OutputLargerError", "ClusterError",
    )},
}

__all__ = [
    "quantize", "Result", "compress", "sweep", "SweepResult", "Target", "KChoice", "load_image",
    "LoadedImage", "load_frames", "LoadedFrames", "available_engines", "Report", "Options",
    "Quantizer", "remap", "read_palette", "sample_path", "__version__",
    "KmquantError", "InvalidOptionError", "InputNotFoundError", "ImageReadError",
    "NotAnImageError", "TruncatedImageError", "UnsupportedModeError", "ImageTooLargeError",
    "OutputError", "OutputExistsError", "OutputNotWritableError", "EngineUnavailableError",
    "AbortedError", "TargetUnreachableError", "OutputLargerError", "ClusterError",
]

if TYPE_CHECKING:  # what a type checker and an IDE see; at run time __getattr__ imports these
    from .choose import KChoice, Target
    from .engines import available_engines
    from .errors import (
        AbortedError,
        ClusterError,
        EngineUnavailableError,
        ImageReadError,
        ImageTooLargeError,
        InputNotFoundError,
        InvalidOptionError,
        KmquantError,
        NotAnImageError,
        OutputError,
        OutputExistsError,
        OutputLargerError,
        OutputNotWritableError,
        TargetUnreachableError,
        TruncatedImageError,
        UnsupportedModeError,
    )
    from .job import compress
    from .ksweep import SweepResult, sweep
    from .load import LoadedFrames, LoadedImage, load_frames, load_image
    from .options import Options
    from .palette import Quantizer, read_palette, remap
    from .pipeline import Result, quantize
    from .report import Report


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kmquant' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def sample_path() -> Path:
    """Path of the sample photograph shipped in the package (Kodak kodim23, 768×512)."""
    from importlib import resources  # 30 ms to import: not at start-up

    return Path(str(resources.files("kmquant") / "data" / "sample.png"))
