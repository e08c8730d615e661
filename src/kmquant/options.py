"""The one options object: every setting that steers a quantization, validated once.

:class:`Options` is the single entry point of :func:`kmquant.quantize`, :func:`kmquant.sweep`,
:func:`kmquant.compress` and the command line: each field carries its help text and its command-line
flag, and :mod:`kmquant.cli` builds its arguments from them, so the option list is written once.

This module imports nothing but the standard library: the command line's ``--help`` builds its
parser from it without loading NumPy. For that reason the *names* a user may choose from (engines,
spaces, dithering methods) live here, and the stages import them from here; the constants of each
stage's algorithm live in that stage.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidOptionError

__all__ = [
    "Options", "DEFAULT_MAX_PIXELS", "DEFAULT_MAX_MEMORY", "DEFAULT_TOL", "DEFAULT_MAX_ITER", "MAX_COLORS",
    "OUTPUT_FORMATS", "ENGINE_NAMES", "SPACE_NAMES", "DITHER_METHODS", "INIT_NAMES",
]

#: Same threshold as Pillow's decompression-bomb warning (``PIL.Image.MAX_IMAGE_PIXELS``).
DEFAULT_MAX_PIXELS = 89_478_485
def _half_the_ram() -> int | None:
    import os

    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (AttributeError, ValueError, OSError):  # not a POSIX system: no default budget
        return None


#: Memory budget of one image by default: half of this machine's RAM (``--max-memory``).
#: The loader estimates what an image will need from its header and refuses it before decoding
#: when the estimate is over the budget (:mod:`kmquant.load`).
DEFAULT_MAX_MEMORY = _half_the_ram()
#: Convergence tolerance. scikit-learn's default is 1e-4; on six Kodak photos at K = 16, 64 and 256,
#: 1e-3 takes 30 % less time for 0.02 dB less PSNR on average (``bench/``, README).
DEFAULT_TOL = 1e-3
DEFAULT_MAX_ITER = 300
#: An indexed PNG holds at most 256 palette entries.
MAX_COLORS = 256
#: ``png`` is the indexed (palette) PNG; the others write the quantized picture as full colour.
OUTPUT_FORMATS = ("png", "input", "jpeg", "webp", "tiff", "bmp", "gif")
#: k-means engines (:mod:`kmquant.engines`); ``auto`` is ``native``, the compiled core.
ENGINE_NAMES = ("auto", "native", "numpy", "sklearn", "sklearn-elkan", "sklearn-minibatch", "torch")
#: Working colour spaces (:mod:`kmquant.colorspace`).
SPACE_NAMES = ("rgb", "linear", "oklab", "lab")
#: Dithering methods (:mod:`kmquant.dither`).
DITHER_METHODS = ("none", "on", "fs", "ordered")
#: Rate-aware strength by default (:func:`kmquant.dither.rate_aware`): the price of a literal in
#: units of the palette's mean squared error, chosen by Bjøntegaard delta rate on the Kodak photos
#: (``bench/bench_rd.py``, README "Pictures per byte").
DEFAULT_RDO = 4.0
MAX_RDO = 100.0
#: Effort levels, as pngquant's ``--speed``: 1 searches longest for the smallest, best file,
#: 10 is quickest. Per level: (random swaps at least, k-means tolerance × this, libdeflate level
#: or None for :func:`kmquant.encode.default_level`). Time and bytes of each level:
#: ``bench/bench_rd.py`` (README "Pictures per byte").
SPEEDS: dict[int, tuple[int, float, int | None]] = {
    1: (20, 0.1, 12), 2: (10, 0.1, 12), 3: (5, 1.0, 11), 4: (0, 1.0, None), 5: (0, 2.0, None),
    6: (0, 5.0, None), 7: (0, 10.0, 8), 8: (0, 10.0, 6), 9: (0, 20.0, 4), 10: (0, 50.0, 2),
}
DEFAULT_SPEED = 4
#: Seeding methods (:mod:`kmquant.seeding`).
INIT_NAMES = ("k-means++",)


def _max_pixels_arg(text: str) -> int | None:
    """``--max-pixels``: a number of pixels (``5e7`` works), or ``none`` for no limit."""
    import argparse

    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of pixels or 'none', got {text!r}") from None
    if not math.isfinite(value) or value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(
            f"expected a whole number of pixels of at least 1, or 'none' for no limit, got {text!r}")
    return int(value)


_SIZE_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def _max_memory_arg(text: str) -> int | None:
    """``--max-memory``: bytes with an optional unit (``512M``, ``2G``, ``1.5g``), or ``none``."""
    import argparse

    spelled = text.strip().lower().removesuffix("b").removesuffix("i")
    if spelled == "none" or text.strip().lower() == "none":
        return None
    unit = spelled[-1:] if spelled[-1:] in _SIZE_UNITS and spelled[-1:] else ""
    number = spelled[: len(spelled) - len(unit)]
    try:
        value = float(number) * _SIZE_UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a size such as 512M or 2G, or 'none' for no limit, got {text!r}") from None
    if not math.isfinite(value) or value < 2**20:
        raise argparse.ArgumentTypeError(
            f"expected a size of at least 1M (such as 512M or 2G), or 'none' for no limit, got "
            f"{text!r}")
    return int(value)


def _cli(flag: str | None, help: str, **argparse_kwargs: Any) -> dict[str, Any]:
    """Field metadata: the command-line flag (None: not on the command line) and its help."""
    return {"flag": flag, "help": help, "argparse": argparse_kwargs}


@dataclass(frozen=True)
class Options:
    """Everything that steers a quantization.

    Parameters
    ----------
    n_colors : int
        Palette size K, 1 to 256.
    engine : str
        k-means engine: ``auto`` (= ``native``, the compiled core), ``native``, ``numpy`` (the
        readable reference), ``sklearn`` (KMeans lloyd), ``sklearn-elkan``, ``sklearn-minibatch`` or
        ``torch`` (CUDA when present, else CPU; the ``torch`` extra).
    seed : int
        Seed of every random choice; same input, options and seed give the same output.
    max_iter : int
        Upper bound on k-means iterations.
    tol : float
        Stop when the squared movement of the centres, summed, falls below ``tol`` times the
        weighted variance of the colours (scikit-learn's rule).
    init : str
        Seeding method for the initial palette.
    space : str
        Working colour space of the clustering and the remap: ``rgb`` (default: it maximises
        PSNR), ``linear``, ``oklab`` or ``lab`` (lowest ΔE2000; see README).
    max_pixels : int or None
        Refuse images with more pixels than this (``None``: no limit).
    max_memory : int or None
        Memory budget in bytes for one image: refuse it, before decoding, when what decoding and
        quantizing it would need is over this (``None``: no limit). Default: half the RAM.
    allow_truncated : bool
        Accept images whose data ends early (the missing part is filled by the decoder);
        by default they are refused as truncated.
    srgb : bool
        Convert the pixels of images with an ICC profile to sRGB; by default the profile is
        kept in the output (iCCP) and the pixels left as they are.
    strip : bool
        Write no ICC profile (or other metadata) in the output.
    dither : str
        ``none`` (exact nearest colour), ``fs`` (Floyd–Steinberg, serpentine, error clamped) or
        ``ordered`` (8×8 Bayer). Dithering hides banding at the cost of bytes and PSNR.
    dither_strength : float
        0 to 1: how much of the error is diffused (or of the Bayer spread applied).
    swaps : int
        After k-means converges, try this many greedy swaps (move the centre that does least into
        the cluster with the most error, keep it if the error drops): a better optimum for more
        time. 0 (default) skips it. See :mod:`kmquant.swaps`.
    per_frame : bool
        For an animation: fit a palette to each frame instead of one over all frames. Only a GIF
        holds a palette per frame (local colour tables); an (A)PNG holds one.

    Examples
    --------
    >>> Options(n_colors=32, dither="fs").replace(seed=7).seed
    7
    """

    n_colors: int = field(default=64, metadata=_cli(None, "palette size K, 1 to 256"))
    engine: str = field(default="auto", metadata=_cli(
        "--engine", "k-means engine (default auto: the compiled native engine)",
        choices=ENGINE_NAMES))
    seed: int = field(default=0, metadata=_cli("--seed", "random seed (default 0)", type=int))
    max_iter: int = field(default=DEFAULT_MAX_ITER, metadata=_cli(
        "--max-iter", f"k-means iteration cap (default {DEFAULT_MAX_ITER})", type=int))
    tol: float = field(default=DEFAULT_TOL, metadata=_cli(
        "--tol", f"convergence tolerance, relative to the colour variance (default {DEFAULT_TOL:g}; "
        "scikit-learn uses 1e-4)", type=float))
    init: str = field(default="k-means++", metadata=_cli(None, "seeding method"))
    space: str = field(default="rgb", metadata=_cli(
        "--space", "colour space of the clustering: rgb (default, best PSNR), linear, oklab, lab "
        "(lowest ΔE2000, smaller files)", choices=SPACE_NAMES))
    max_pixels: int | None = field(default=DEFAULT_MAX_PIXELS, metadata=_cli(
        "--max-pixels", f"refuse larger images (default {DEFAULT_MAX_PIXELS:,}, Pillow's bomb "
        "guard; 'none' for no limit)", type=_max_pixels_arg, metavar="N"))
    max_memory: int | None = field(default=DEFAULT_MAX_MEMORY, metadata=_cli(
        "--max-memory", "refuse images that would need more memory than this, before decoding "
        "(default: half the RAM; e.g. 2G, or 'none')", type=_max_memory_arg, metavar="SIZE"))
    allow_truncated: bool = field(default=False, metadata=_cli(
        "--allow-truncated", "accept images whose data ends early (the decoder fills the rest); "
        "refused by default", action="store_true"))
    srgb: bool = field(default=False, metadata=_cli(
        "--srgb", "convert images with an ICC profile to sRGB pixels (default: keep the profile "
        "in the output)", action="store_true"))
    strip: bool = field(default=False, metadata=_cli(
        "--strip", "write no ICC profile or other metadata", action="store_true"))
    dither: str = field(default="none", metadata=_cli(
        "--dither", "none (default); on: kmquant's best, adaptive dithering that hides banding in "
        "smooth areas and leaves edges and texture alone; fs (plain Floyd–Steinberg) or ordered "
        "(Bayer)", choices=DITHER_METHODS))
    dither_strength: float = field(default=1.0, metadata=_cli(
        "--dither-strength", "0 to 1 (default 1)", type=float, metavar="S"))
    rdo: float = field(default=DEFAULT_RDO, metadata=_cli(
        "--rdo", f"rate-aware pixels: where a palette entry deflate has just seen is nearly as "
        f"close, take it; the strength of that trade, 0 (off: always the nearest) upward "
        f"(default {DEFAULT_RDO:g}; --space rgb only)", type=float, metavar="S"))
    speed: int = field(default=DEFAULT_SPEED, metadata=_cli(
        "--speed", f"effort, as pngquant: 1 (slowest: palette search and strongest deflate) to "
        f"10 (fastest); default {DEFAULT_SPEED}", type=int, metavar="N"))
    swaps: int = field(default=0, metadata=_cli(
        "--swaps", "after k-means, try N greedy swaps for a better palette (e.g. 10: +0.06–0.10 dB "
        "for 0.05–0.2 s; default 0)", type=int, metavar="N"))
    per_frame: bool = field(default=False, metadata=_cli(
        "--per-frame", "animations: a palette per frame instead of one over all frames (GIF "
        "output only: an indexed APNG holds one palette)", action="store_true"))

    def __post_init__(self) -> None:
        _check_int("n_colors", self.n_colors, 1, MAX_COLORS, hint="K must be between 1 and 256")
        _check_choice("engine", self.engine, ENGINE_NAMES)
        _check_int("seed", self.seed, 0, 2**32 - 1)
        _check_int("max_iter", self.max_iter, 1, 100_000)
        if not _is_real(self.tol) or not (math.isfinite(self.tol) and self.tol >= 0):
            raise InvalidOptionError(f"tol must be a finite number >= 0, got {self.tol!r}")
        _check_choice("init", self.init, INIT_NAMES)
        _check_choice("space", self.space, SPACE_NAMES)
        _check_choice("dither", self.dither, DITHER_METHODS)
        if not _is_real(self.dither_strength) or not 0.0 <= self.dither_strength <= 1.0:
            raise InvalidOptionError(
                f"dither strength must be between 0 and 1, got {self.dither_strength!r}")
        if not _is_real(self.rdo) or not (math.isfinite(self.rdo) and 0 <= self.rdo <= MAX_RDO):
            raise InvalidOptionError(f"rdo must be a number from 0 to {MAX_RDO:g}, got {self.rdo!r}")
        _check_int("swaps", self.swaps, 0, 10_000)
        _check_int("speed", self.speed, 1, 10, hint="speed must be an integer from 1 to 10")
        if self.max_pixels is not None:
            _check_int("max_pixels", self.max_pixels, 1, 2**62)
        if self.max_memory is not None:
            _check_int("max_memory", self.max_memory, 2**20, 2**62,
                       hint="max_memory must be a number of bytes of at least 1 MiB")
        for name in ("srgb", "strip", "per_frame"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidOptionError(
                    f"{name} must be True or False, got {getattr(self, name)!r}")
        if not isinstance(self.allow_truncated, bool):
            raise InvalidOptionError(
                f"allow_truncated must be True or False, got {self.allow_truncated!r}")

    @property
    def effective_swaps(self) -> int:
        """Random swaps to run: ``swaps``, or more when ``speed`` asks for them."""
        return max(self.swaps, SPEEDS[self.speed][0])

    @property
    def effective_rdo(self) -> float:
        """The rate-aware strength in use: ``rdo`` in the ``rgb`` space, else 0 (the strength
        weighs squared RGB error; the other spaces are chosen for ΔE and keep nearest entries)."""
        return self.rdo if self.space == "rgb" else 0.0

    @property
    def effective_tol(self) -> float:
        """The k-means tolerance scaled by ``speed``."""
        return self.tol * SPEEDS[self.speed][1]

    @property
    def deflate_level(self) -> int | None:
        """The libdeflate level ``speed`` asks for (None: the default for the image's size)."""
        return SPEEDS[self.speed][2]

    def replace(self, **changes: Any) -> Options:
        """Return a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def build(cls, options: Options | None = None, **changes: Any) -> Options:
        """``options`` (default: the defaults) with ``changes`` applied; how every public entry
        point turns its ``options=`` and keyword fields into one validated object.

        Raises
        ------
        InvalidOptionError
            A field that does not exist, or a value out of range.
        """
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise InvalidOptionError(
                f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; the "
                f"options are {', '.join(f.name for f in dataclasses.fields(cls))}")
        base = options if options is not None else cls()
        return dataclasses.replace(base, **changes) if changes else base


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_int(name: str, value: object, lo: int, hi: int, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        msg = hint or f"{name} must be an integer from {lo} to {hi}"
        raise InvalidOptionError(f"{msg}, got {value!r}")


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidOptionError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
