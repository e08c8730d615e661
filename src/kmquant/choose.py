"""Choose K for a target: the smallest K that reaches a quality, the largest that fits a size,
or the knee of the distortion curve.

Quality and size grow with K (nearly monotonically), so a binary search over 1..256 finds the
answer in about eight quantizations instead of 256; the histogram is counted once for all of them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from . import metrics
from .engines import Engine
from .errors import InvalidOptionError, QualityTooLowError, TargetUnreachableError
from .options import MAX_COLORS, Options
from .pipeline import Prepared, Result, quantize_prepared
from .refine import Progress, report_progress

__all__ = ["Target", "KChoice", "choose_k", "parse_bytes", "parse_quality", "quality_to_mse",
           "mse_to_quality", "TARGET_KINDS"]

TARGET_KINDS = ("psnr", "ssim", "ssimulacra2", "quality", "max_bytes", "knee")
#: Floyd–Steinberg strength of the last try for a SSIMULACRA2 target no K reaches otherwise:
#: on kodim23 at 256 colours 0.8 scored highest (0.5: 66.7, 0.7: 68.6, 0.8: 69.3, 0.9: 68.5,
#: 1.0: 61.5; dither on: 63.2).
FALLBACK_FS_STRENGTH = 0.8


def quality_to_mse(quality: float) -> float:
    """The mean squared error per channel (8-bit levels) that pngquant's quality 0–100 allows.

    pngquant (libimagequant) turns its ``--quality`` into a largest mean squared error by a
    curve tuned to feel like JPEG's quality scale, and reports that error in its own units; on
    the Kodak photos its reports times two are the per-channel MSE of its output to within 2 %.
    This is that curve in our units: 0 allows anything, 100 nothing (lossless).

    Parameters
    ----------
    quality : float
        0 to 100.

    Returns
    -------
    float
        ``inf`` for 0, 0 for 100.
    """
    if quality <= 0:
        return math.inf
    if quality >= 100:
        return 0.0
    low = max(0.0, 0.016 / (0.001 + quality) - 0.001)  # steeper at the very lowest qualities
    return (low + 2.5 / (210.0 + quality) ** 1.2 * (100.1 - quality) / 100.0) * 65536.0 / 3.0


def mse_to_quality(mse: float) -> float:
    """The pngquant quality (0–100) whose :func:`quality_to_mse` is ``mse`` (the inverse)."""
    if mse <= 0:
        return 100.0
    lo, hi = 0.0, 100.0  # quality_to_mse falls as quality rises
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if quality_to_mse(mid) > mse else (lo, mid)
    return (lo + hi) / 2


def parse_quality(text: str) -> tuple[int, int]:
    """``"65-80"`` → (65, 80); ``"80"`` or ``"-80"`` → (0, 80), as pngquant reads ``--quality``.

    Raises
    ------
    InvalidOptionError
    """
    parts = text.strip().split("-")
    try:
        if len(parts) > 2 or not parts[-1].strip():
            raise ValueError(text)
        low = int(parts[0]) if len(parts) == 2 and parts[0].strip() else 0
        high = int(parts[-1])
    except ValueError:
        raise InvalidOptionError(
            f"--quality takes MIN-MAX from 0 to 100 (e.g. 65-80) or MAX, got {text!r}") from None
    if not 0 <= low <= high <= 100:
        raise InvalidOptionError(f"--quality needs 0 <= MIN <= MAX <= 100, got {text!r}")
    return low, high


@dataclass(frozen=True)
class Target:
    """What ``-k auto`` aims at.

    Attributes
    ----------
    kind : str
        ``psnr`` (dB, at least), ``ssim`` (at least, 0..1), ``ssimulacra2`` (at least, up to
        100), ``quality`` (pngquant's 0–100 scale, see :func:`quality_to_mse`), ``max_bytes``
        (indexed-PNG bytes, at most) or ``knee`` (the elbow of the inertia curve).
    value : float or None
        The target (for ``quality``, MAX: the fewest colours that reach it); None for ``knee``.
    minimum : float or None
        ``quality`` only: MIN; when even 256 colours stay below it, :class:`QualityTooLowError`.
    dithers : tuple of str
        Dithering methods to try, keeping the smallest file that meets the target (e.g.
        ``("none", "on")``); empty: the options' own.
    """

    kind: str = "knee"
    value: float | None = None
    minimum: float | None = None
    dithers: tuple[str, ...] = ()

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
        if self.kind == "ssimulacra2" and not value <= 100:
            raise InvalidOptionError(f"--target-ssimulacra2 goes up to 100, got {value}")
        if self.kind == "quality" and not 0 <= (self.minimum or 0) <= value <= 100:
            raise InvalidOptionError(
                f"--quality needs 0 <= MIN <= MAX <= 100, got {self.minimum}-{value}")
        if self.kind == "psnr" and value <= 0:
            raise InvalidOptionError(f"--target-psnr must be a positive number of dB, got {value}")
        if self.kind == "max_bytes" and value < 1:
            raise InvalidOptionError(f"--max-bytes must be at least 1 byte, got {value}")

    def describe(self) -> str:
        if self.kind == "psnr":
            return f"PSNR ≥ {self.value:g} dB"
        if self.kind == "ssim":
            return f"SSIM ≥ {self.value:g}"
        if self.kind == "ssimulacra2":
            return f"SSIMULACRA2 ≥ {self.value:g}"
        if self.kind == "quality":
            return f"quality ≥ {self.value:g}"
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
    dither : str or None
        The dithering method chosen with K, when the target tried several.
    rdo : float or None
        The rate-aware strength of the result, when it differs from the options'.
    dither_strength : float or None
        The dithering strength of the result, when it differs from the options'.
    """

    k: int
    target: Target
    achieved: float
    met: bool
    trials: tuple[tuple[int, float], ...] = field(default=())
    reason: str = ""
    dither: str | None = None
    rdo: float | None = None
    dither_strength: float | None = None

    def applied(self, options: Options) -> Options:
        """``options`` with what the choice settled: K, and the dithering and rate-aware
        strength of the result where the search picked them."""
        return options.replace(
            n_colors=self.k, dither=self.dither or options.dither,
            rdo=options.rdo if self.rdo is None else self.rdo,
            dither_strength=self.dither_strength or options.dither_strength)

    def to_dict(self) -> dict:
        return {
            "k": self.k, "target": self.target.kind, "target_value": self.target.value,
            "achieved": None if not math.isfinite(self.achieved) else self.achieved,
            "met": self.met, "trials": [[k, v if math.isfinite(v) else None] for k, v in self.trials],
            "reason": self.reason, "dither": self.dither, "rdo": self.rdo,
            "dither_strength": self.dither_strength,
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
    trials: list[tuple[int, float]] = []
    top = min(MAX_COLORS, prepared.histogram.n_colors)  # more colours than the image has: same
    if target.kind == "max_bytes":
        return _largest_fitting(prepared, target, options, engine, top, trials, best_effort,
                                progress)
    dithers = target.dithers or (options.dither,)
    found: list[tuple[int, float, Result, str, float]] = []
    best_top: tuple[float, Result, str, float] | None = None
    scorer: metrics.Ssimulacra2 | None = None
    # Rate-aware entries give smaller files for the same look up to some quality, but cap the
    # quality 256 colours reach: when no K meets the target with them, try again without. For
    # the smallest file (SSIMULACRA2), half the strength is tried too: near high scores it wins
    # on some pictures (on the Kodak photos at 70: 3 % smaller on kodim08, 9 % on kodim22).
    rounds = [[options.rdo], [0.0]] if options.rdo else [[0.0]]
    if target.kind == "ssimulacra2" and options.rdo:
        rounds[0].append(options.rdo / 2)
    for strengths in rounds:
        hint: int | None = None
        for rdo in strengths:
            for method in dithers:
                search = _Search(prepared, original, target,
                                 options.replace(dither=method, rdo=rdo), engine, trials,
                                 progress, 9 * len(dithers) * len(strengths), scorer)
                k = search.smallest(top, hint)
                scorer = search.scorer
                if k is None:
                    if best_top is None or search.value(top) > best_top[0]:
                        best_top = (search.value(top), search.result(top), method, rdo)
                    continue
                found.append((k, search.value(k), search.result(k), method, rdo))
                hint = k
        if found:
            break
    if not found and target.kind == "ssimulacra2" and target.dithers:
        # Out of reach with 256 colours: the closest file may come from plain error diffusion
        # at part strength (kodim23 at 256 colours: 69.3 against 63.2 with dither on).
        search = _Search(prepared, original, target,
                         options.replace(dither="fs", dither_strength=FALLBACK_FS_STRENGTH,
                                         rdo=0.0), engine, trials, progress, len(trials) + 1,
                         scorer)
        if search.ok(top):
            found.append((top, search.value(top), search.result(top), "fs", 0.0))
        elif best_top is None or search.value(top) > best_top[0]:
            best_top = (search.value(top), search.result(top), "fs", 0.0)
    if not found:
        assert best_top is not None
        value, result, method, rdo = best_top
        changed = rdo if rdo != options.rdo else None
        if target.kind == "quality" and value >= (target.minimum or 0):
            reason = (f"K={top} reaches quality {value:.0f}, short of {target.value:g} but not "
                      f"below the minimum {target.minimum or 0:g}")
            return KChoice(top, target, value, True, tuple(trials), reason,
                           method if target.dithers else None, changed,
                           _strength(method, options)), result
        why = f"K={top} reaches only {_shown(target, value)}"
        if target.kind == "quality" and not best_effort:
            raise QualityTooLowError(
                f"quality {value:.0f} is below the minimum {target.minimum or 0:g} even with "
                f"{top} colours; nothing written (lower MIN, or pass --best-effort)")
        choice, _ = _unreachable(target, top, {top: (value, result)}, trials, best_effort, why)
        return replace(choice, dither=method if target.dithers else None, rdo=changed,
                       dither_strength=_strength(method, options)), result
    sizes = [len(result.to_png()) for _, _, result, _, _ in found]
    best = min(range(len(found)), key=lambda i: sizes[i])
    k, value, result, method, rdo = found[best]
    reason = (f"K={k} is the smallest K with {target.describe()} ({_shown(target, value)}; "
              f"{len(trials)} K tried)")
    if target.dithers or len(found) > 1:
        others = ", ".join(
            f"{_lever(m, r, target, options)}: K={kk}, {sizes[i]:,} bytes"
            for i, (kk, _, _, m, r) in enumerate(found) if i != best)
        reason = (f"K={k} with {_lever(method, rdo, target, options)} is the smallest file with "
                  f"{target.describe()} ({_shown(target, value)}, {sizes[best]:,} bytes"
                  f"{'; ' + others if others else ''}; {len(trials)} K tried)")
    if rdo == 0 and options.rdo:
        reason += f"; rate-aware entries off (with them no K reached {target.describe()})"
    return KChoice(k, target, value, True, tuple(trials), reason,
                   method if target.dithers else None,
                   rdo if rdo != options.rdo else None, _strength(method, options)), result


def _strength(method: str, options: Options) -> float | None:
    """The dithering strength of a candidate, when it is not the options' (the last try)."""
    if method == "fs" and options.dither != "fs" and (
            FALLBACK_FS_STRENGTH != options.dither_strength):
        return FALLBACK_FS_STRENGTH
    return None


def _lever(method: str, rdo: float, target: Target, options: Options) -> str:
    """How a candidate differs from the options, for the reasons: ``dither on, rdo 2``."""
    parts = [f"dither {method}"] if target.dithers else []
    if rdo != options.rdo:
        parts.append(f"rdo {rdo:g}")
    return ", ".join(parts) or "the options given"


def _shown(target: Target, value: float) -> str:
    """A measured value with its name, for the reasons."""
    if math.isinf(value):
        return "lossless"
    unit = " dB" if target.kind == "psnr" else ""
    name = {"psnr": "PSNR", "ssim": "SSIM", "ssimulacra2": "SSIMULACRA2",
            "quality": "quality"}[target.kind]
    return f"{name} {value:.4g}{unit}"


class _Search:
    """Quantize at a K and measure it against a quality target, each K once."""

    def __init__(self, prepared: Prepared, original: NDArray[np.uint8], target: Target,
                 options: Options, engine: Engine, trials: list[tuple[int, float]],
                 progress: Progress, expected: int,
                 scorer: metrics.Ssimulacra2 | None = None) -> None:
        self.prepared, self.original, self.target = prepared, original, target
        self.options, self.engine, self.trials = options, engine, trials
        self.progress, self.expected = progress, expected
        self.cache: dict[int, tuple[float, Result]] = {}
        self.scorer = scorer  # the original's half of SSIMULACRA2, shared between searches

    def value(self, k: int) -> float:
        if k not in self.cache:
            result, _ = quantize_prepared(self.prepared, self.options.replace(n_colors=k),
                                          self.engine)
            self.cache[k] = (self._measure(result), result)
            self.trials.append((k, self.cache[k][0]))
            report_progress(self.progress, "choose", len(self.trials),
                            max(self.expected, len(self.trials)))
        return self.cache[k][0]

    def result(self, k: int) -> Result:
        self.value(k)
        return self.cache[k][1]

    def ok(self, k: int) -> bool:
        goal = self.target.value
        assert goal is not None
        return self.value(k) >= goal

    def smallest(self, top: int, hint: int | None = None) -> int | None:
        """The smallest K in 1..top that meets the target (None if not even ``top`` does).

        Quality grows with K (nearly monotonically), so a binary search; ``hint``, a K found
        for another dithering, splits the range first.
        """
        lo, hi = 0, top  # invariant: not ok(lo) (K = 0 never is), ok(hi)
        if hint is not None and 1 <= hint < top:
            if self.ok(hint):
                hi = hint
            else:
                lo = hint
        if hi == top and not self.ok(top):
            return None
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if self.ok(mid) else (mid, hi)
        return hi

    def _measure(self, result: Result) -> float:
        kind = self.target.kind
        if kind == "ssimulacra2":
            if result.lossless:
                return 100.0
            if self.scorer is None:
                self.scorer = metrics.Ssimulacra2(self.original)
            return self.scorer.score(result.to_array())
        quality = metrics.measure(self.original, result.palette, result.indices,
                                  psnr=kind in ("psnr", "quality"), ssim=kind == "ssim",
                                  delta_e=False, lossless=result.lossless)
        got = quality.ssim if kind == "ssim" else quality.psnr
        if got is None:
            return -math.inf
        if kind == "quality":
            return 100.0 if math.isinf(got) else mse_to_quality(255.0**2 / 10 ** (got / 10))
        return got


def _largest_fitting(prepared, target, options, engine, top, trials, best_effort, progress):
    """``max_bytes``: the largest K whose indexed PNG fits."""
    cache: dict[int, tuple[float, Result]] = {}
    goal = target.value

    def measure(k: int) -> float:
        if k not in cache:
            result, _ = quantize_prepared(prepared, options.replace(n_colors=k), engine)
            cache[k] = (float(len(result.to_png())), result)
            trials.append((k, cache[k][0]))
            report_progress(progress, "choose", len(trials), 9)
        return cache[k][0]

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
    return KChoice(k, target, cache[k][0], True, tuple(trials), reason), cache[k][1]


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
