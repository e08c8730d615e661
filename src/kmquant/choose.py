"""Choose K for a target: the smallest K that reaches a quality, the largest that fits a size,
or the knee of the distortion curve.

Quality and size grow with K (nearly monotonically), so a binary search over 1..256 finds the
answer in about eight quantizations instead of 256; the histogram is counted once for all of them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from . import metrics
from .engines import Engine
from .errors import InvalidOptionError, TargetUnreachableError
from .options import MAX_COLORS, Options
from .pipeline import Prepared, Result, quantize_prepared
from .refine import Progress, report_progress

__all__ = ["Target", "KChoice", "choose_k", "parse_bytes", "TARGET_KINDS"]

TARGET_KINDS = ("psnr", "ssim", "max_bytes", "knee")


@dataclass(frozen=True)
class Target:
    """What ``-k auto`` aims at.

    Attributes
    ----------
    kind : str
        ``psnr`` (dB, at least), ``ssim`` (at least, 0..1), ``max_bytes`` (indexed-PNG bytes, at
        most) or ``knee`` (the elbow of the inertia curve).
    value : float or None
        The target; None for ``knee``.
    """

    kind: str = "knee"
    value: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise InvalidOptionError(f"target must be one of {', '.join(TARGET_KINDS)}")
        if self.kind == "knee":
            return
        value = self.value
        if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidOptionError(f"the {self.kind} target needs a number, got {value!r}")
        if self.kind == "ssim" and not 0 < value <= 1:
            raise InvalidOptionError(f"--target-ssim must be in (0, 1], got {value}")
        if self.kind == "psnr" and value <= 0:
            raise InvalidOptionError(f"--target-psnr must be a positive number of dB, got {value}")
        if self.kind == "max_bytes" and value < 1:
            raise InvalidOptionError(f"--max-bytes must be at least 1 byte, got {value}")

    def describe(self) -> str:
        if self.kind == "psnr":
            return f"PSNR ≥ {self.value:g} dB"
        if self.kind == "ssim":
            return f"SSIM ≥ {self.value:g}"
        if self.kind == "max_bytes":
            return f"PNG ≤ {int(self.value or 0):,} bytes"
        return "the knee of the inertia curve"


@dataclass(frozen=True)
class KChoice:
    """The K that was chosen, and why.

    Attributes
    ----------
    k : int
    target : Target
    achieved : float
        The measured value at ``k`` (PSNR, SSIM or bytes; for the knee, the inertia).
    met : bool
        False only with ``best_effort`` when the target was out of reach.
    trials : tuple of (int, float)
        Every K tried and its measured value, in the order tried.
    reason : str
        One sentence for people.
    """

    k: int
    target: Target
    achieved: float
    met: bool
    trials: tuple[tuple[int, float], ...] = field(default=())
    reason: str = ""

    def to_dict(self) -> dict:
        return {
            "k": self.k, "target": self.target.kind, "target_value": self.target.value,
            "achieved": None if not math.isfinite(self.achieved) else self.achieved,
            "met": self.met, "trials": [[k, v if math.isfinite(v) else None] for k, v in self.trials],
            "reason": self.reason,
        }


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)(?:i?[bB])?\s*$")


def parse_bytes(text: str) -> int:
    """``"50k"`` → 51200, ``"1.5M"`` → 1572864, ``"50000"`` → 50000 (binary multiples).

    Raises
    ------
    InvalidOptionError
    """
    match = _SIZE.match(text)
    if not match:
        raise InvalidOptionError(f"cannot read the size {text!r}; write e.g. 50000, 50k or 1.5M")
    scale = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2).lower()]
    value = int(float(match.group(1)) * scale)
    if value < 1:
        raise InvalidOptionError(f"the size must be at least 1 byte, got {text!r}")
    return value


def choose_k(
    prepared: Prepared,
    original: NDArray[np.uint8],
    target: Target,
    options: Options,
    engine: Engine,
    *,
    best_effort: bool = False,
    progress: Progress = None,
) -> tuple[KChoice, Result]:
    """Find K for ``target`` and return it with the quantization at that K.

    Parameters
    ----------
    prepared : Prepared
        The image's histogram (see :func:`kmquant.pipeline.prepare`).
    original : (H, W, C) uint8 ndarray
        The pixels, for the quality measures.
    target : Target
    options : Options
        Everything but ``n_colors``.
    engine : Engine
    best_effort : bool
        When the target is out of reach, take the closest K (256 for quality, 1 for size)
        instead of raising.

    Raises
    ------
    TargetUnreachableError
        The target cannot be met with K ≤ 256 (and not ``best_effort``).
    """
    if target.kind == "knee":
        return _knee(prepared, original, options, engine, target, progress)
    cache: dict[int, tuple[float, Result]] = {}
    trials: list[tuple[int, float]] = []

    def measure(k: int) -> float:
        if k not in cache:
            result, _ = quantize_prepared(prepared, options.replace(n_colors=k), engine)
            if target.kind == "max_bytes":
                value = float(len(result.to_png()))
            else:
                quality = metrics.measure(original, result.palette, result.indices,
                                          psnr=target.kind == "psnr", ssim=target.kind == "ssim",
                                          delta_e=False, lossless=result.lossless)
                got = quality.psnr if target.kind == "psnr" else quality.ssim
                value = -math.inf if got is None else got
            cache[k] = (value, result)
            trials.append((k, value))
            report_progress(progress, "choose", len(trials), 9)
        return cache[k][0]

    top = min(MAX_COLORS, prepared.histogram.n_colors)  # more colours than the image has: same
    goal = target.value
    assert goal is not None  # every kind but the knee has a value (Target checks it)
    if target.kind == "max_bytes":
        ok = lambda k: measure(k) <= goal  # noqa: E731
        if not ok(1):
            return _unreachable(target, 1, cache, trials, best_effort,
                                f"even one colour takes {int(measure(1)):,} bytes")
        lo, hi = 1, top  # ok(lo); find the largest ok K
        if ok(hi):
            lo = hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if ok(mid) else (lo, mid)
        k = lo
        reason = (f"K={k} is the largest K whose PNG fits in {int(goal):,} bytes "
                  f"({int(cache[k][0]):,} bytes; {len(trials)} K tried)")
    else:
        ok = lambda k: measure(k) >= goal  # noqa: E731
        if not ok(top):
            unit = " dB" if target.kind == "psnr" else ""
            return _unreachable(target, top, cache, trials, best_effort,
                                f"K={top} reaches only {target.kind.upper()} "
                                f"{measure(top):.4g}{unit}")
        lo, hi = 0, top  # ok(hi); find the smallest ok K
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if ok(mid) else (mid, hi)
        k = hi
        value = cache[k][0]
        shown = "lossless" if math.isinf(value) else f"{value:.4g}"
        reason = (f"K={k} is the smallest K with {target.describe()} ({target.kind.upper()} "
                  f"{shown}; {len(trials)} K tried)")
    choice = KChoice(k, target, cache[k][0], True, tuple(trials), reason)
    return choice, cache[k][1]


def _unreachable(target, k, cache, trials, best_effort, why):
    if not best_effort:
        raise TargetUnreachableError(
            f"cannot reach {target.describe()} with at most {MAX_COLORS} colours: {why}; "
            "relax the target or pass --best-effort"
        )
    reason = f"{target.describe()} is out of reach ({why}); best effort: K={k}"
    return KChoice(k, target, cache[k][0], False, tuple(trials), reason), cache[k][1]


def _knee(prepared, original, options, engine, target, progress):
    from .ksweep import DEFAULT_K_VALUES, sweep_prepared

    def relay(stage, done, total):  # the caller follows "choose"
        return None if progress is None else progress("choose", done, total)

    curve = sweep_prepared(prepared, original, list(DEFAULT_K_VALUES), options, engine,
                           with_quality=False, progress=relay)
    ks = [row.k for row in curve.rows]
    trials = tuple((row.k, row.inertia) for row in curve.rows)
    if curve.knee is None:
        k = 64 if ks[-1] > 64 else ks[-1]
        reason = (f"the inertia curve has no clear knee, so K={k} "
                  f"({len(ks)} K tried; give --target-psnr or --max-bytes to steer it)")
    else:
        k = curve.knee
        reason = (f"K={k} is the knee of the inertia curve "
                  f"(Kneedle over {len(ks)} K from {ks[0]} to {ks[-1]})")
    result, _ = quantize_prepared(prepared, options.replace(n_colors=k), engine)
    return KChoice(k, target, result.inertia, True, trials, reason), result
