"""One frozen dataclass of quantization options, validated once at the public entry."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .colorspace import SPACE_NAMES
from .dither import DITHER_METHODS
from .errors import InvalidOptionError

__all__ = [
    "Options", "DEFAULT_MAX_PIXELS", "DEFAULT_TOL", "DEFAULT_MAX_ITER", "MAX_COLORS", "OUTPUT_FORMATS",
]

#: Same threshold as Pillow's decompression-bomb warning (``PIL.Image.MAX_IMAGE_PIXELS``).
DEFAULT_MAX_PIXELS = 89_478_485
#: Convergence tolerance. scikit-learn's default is 1e-4; on six Kodak photos at K = 16, 64 and 256,
#: 1e-3 takes 30 % less time for 0.02 dB less PSNR on average (``bench/``, README).
DEFAULT_TOL = 1e-3
DEFAULT_MAX_ITER = 300
#: An indexed PNG holds at most 256 palette entries.
MAX_COLORS = 256
#: ``png`` is the indexed (palette) PNG; the others write the quantized picture as full colour.
OUTPUT_FORMATS = ("png", "input", "jpeg", "webp", "tiff", "bmp", "gif")
ENGINE_NAMES = (
    "auto", "numba", "numpy", "sklearn", "sklearn-elkan", "sklearn-minibatch", "torch",
)
INIT_NAMES = ("k-means++",)


@dataclass(frozen=True)
class Options:
    """Everything that steers a quantization.

    Parameters
    ----------
    n_colors : int
        Palette size K, 1 to 256.
    engine : str
        k-means engine: ``auto`` (numba when installed, else numpy), ``numba``, ``numpy``,
        ``sklearn`` (KMeans lloyd), ``sklearn-elkan``, ``sklearn-minibatch`` or ``torch`` (CUDA
        when present, else CPU; the ``torch`` extra).
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
    dither : str
        ``none`` (exact nearest colour), ``fs`` (Floyd–Steinberg, serpentine, error clamped) or
        ``ordered`` (8×8 Bayer). Dithering hides banding at the cost of bytes and PSNR.
    dither_strength : float
        0 to 1: how much of the error is diffused (or of the Bayer spread applied).
    swaps : int
        After k-means converges, try this many greedy swaps (move the centre that does least into
        the cluster with the most error, keep it if the error drops): a better optimum for more
        time. 0 (default) skips it. See :mod:`kmquant.swaps`.
    """

    n_colors: int = 64
    engine: str = "auto"
    seed: int = 0
    max_iter: int = DEFAULT_MAX_ITER
    tol: float = DEFAULT_TOL
    init: str = "k-means++"
    space: str = "rgb"
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    dither: str = "none"
    dither_strength: float = 1.0
    swaps: int = 0

    def __post_init__(self) -> None:
        _check_int("n_colors", self.n_colors, 1, MAX_COLORS, hint="K must be between 1 and 256")
        _check_choice("engine", self.engine, ENGINE_NAMES)
        _check_int("seed", self.seed, 0, 2**32 - 1)
        _check_int("max_iter", self.max_iter, 1, 100_000)
        if not isinstance(self.tol, (int, float)) or isinstance(self.tol, bool) or not (
            math.isfinite(self.tol) and self.tol >= 0
        ):
            raise InvalidOptionError(f"tol must be a finite number >= 0, got {self.tol!r}")
        _check_choice("init", self.init, INIT_NAMES)
        _check_choice("space", self.space, SPACE_NAMES)
        _check_choice("dither", self.dither, DITHER_METHODS)
        if isinstance(self.dither_strength, bool) or not isinstance(
            self.dither_strength, (int, float)
        ) or not 0.0 <= self.dither_strength <= 1.0:
            raise InvalidOptionError(
                f"dither strength must be between 0 and 1, got {self.dither_strength!r}")
        _check_int("swaps", self.swaps, 0, 10_000)
        if self.max_pixels is not None:
            _check_int("max_pixels", self.max_pixels, 1, 2**62)

    def replace(self, **changes: object) -> Options:
        """Return a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _check_int(name: str, value: object, lo: int, hi: int, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        msg = hint or f"{name} must be an integer from {lo} to {hi}"
        raise InvalidOptionError(f"{msg}, got {value!r}")


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidOptionError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
