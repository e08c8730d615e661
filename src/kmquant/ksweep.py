"""Quantize one image at many K, to choose K: distortion, silhouette, quality, bytes, time.

The colour histogram is counted once, and each K starts warm from the centres of the K before it
plus new k-means++ centres, so a sweep costs far less than separate runs.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import metrics
from .colorspace import to_working
from .engines import Engine, get_engine
from .errors import InvalidOptionError
from .load import ImageSource, load_image
from .options import MAX_COLORS, Options
from .pipeline import Prepared, prepare, quantize_prepared
from .refine import Progress, report_progress
from .report import plural
from .seeding import extend_centers

__all__ = [
    "SweepRow", "SweepResult", "sweep", "sweep_prepared", "parse_k_values", "find_knee",
    "DEFAULT_K_VALUES",
    "SILHOUETTE_SAMPLE",
]

#: Powers of two and 1.5 × powers of two, 2 to 256: evenly spaced on a log scale, near enough.
DEFAULT_K_VALUES = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
#: Pixels in the seeded sample the silhouette is computed on (it costs O(sample²)).
SILHOUETTE_SAMPLE = 2000


@dataclass(frozen=True)
class SweepRow:
    """The result at one K. ``psnr`` is inf and ``mse`` 0 when the picture is kept exactly."""

    k: int
    colors_used: int
    inertia: float
    silhouette: float | None
    mse: float
    psnr: float
    ssim: float | None
    png_bytes: int
    bits_per_pixel: float
    seconds: float
    n_iter: int


@dataclass(frozen=True)
class SweepResult:
    """A sweep over K.

    Attributes
    ----------
    rows : tuple of SweepRow
        One per K, ascending.
    width, height : int
    silhouette_sample : int
        Pixels the silhouette was computed on (a seeded sample).
    knee : int or None
        K at the knee of the inertia curve (Kneedle, via ``kneed``), if there is one.
    notes : tuple of str
    """

    rows: tuple[SweepRow, ...]
    width: int
    height: int
    silhouette_sample: int
    knee: int | None
    notes: tuple[str, ...] = field(default=())

    def column(self, name: str) -> NDArray[np.float64]:
        """One field of every row as a float array (None → nan)."""
        values = [getattr(row, name) for row in self.rows]
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

    def to_records(self) -> list[dict]:
        """Rows as JSON-ready dicts (an infinite PSNR becomes None)."""
        records = []
        for row in self.rows:
            record = asdict(row)
            record["psnr"] = row.psnr if math.isfinite(row.psnr) else None
            records.append(record)
        return records

    def to_json(self) -> str:
        return json.dumps({
            "width": self.width, "height": self.height, "knee": self.knee,
            "silhouette_sample": self.silhouette_sample, "notes": list(self.notes),
            "rows": self.to_records(),
        }, indent=2)

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(SweepRow.__dataclass_fields__),
                                lineterminator="\n")
        writer.writeheader()
        for record in self.to_records():
            writer.writerow({k: "" if v is None else v for k, v in record.items()})
        return buffer.getvalue()

    def to_text(self) -> str:
        """An aligned table for a terminal."""
        lines = ["    K  colours     inertia  silhouette    PSNR    SSIM    PNG bytes   bpp    time"]
        for r in self.rows:
            sil = "    n/a" if r.silhouette is None else f"{r.silhouette:7.3f}"
            psnr = "    inf" if not math.isfinite(r.psnr) else f"{r.psnr:7.2f}"
            ssim = "   n/a" if r.ssim is None else f"{r.ssim:6.3f}"
            mark = "  ← knee" if r.k == self.knee else ""
            lines.append(f"{r.k:5d} {r.colors_used:8d} {r.inertia:11.4g}     {sil} {psnr} {ssim} "
                         f"{r.png_bytes:12,d} {r.bits_per_pixel:5.2f} {r.seconds:6.2f}s{mark}")
        lines.append(f"silhouette on a seeded sample of {self.silhouette_sample:,} pixels")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def parse_k_values(spec: str | None) -> list[int]:
    """Read a K specification.

    ``None`` or ``""``: :data:`DEFAULT_K_VALUES`. ``"A:B"``: the values of that ladder (powers of
    two and 1.5 × powers of two) from A to B, both ends included. ``"A:B:S"``: A, A+S, … up
    to B. ``"a,b,c"``: those values.

    Raises
    ------
    InvalidOptionError
        Malformed, out of 1..256, or an empty / reversed range.
    """
    if spec is None or not spec.strip():
        return list(DEFAULT_K_VALUES)
    text = spec.strip()
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError
            lo, hi = parts[0], parts[1]
            _check_k(lo, spec)
            _check_k(hi, spec)
            if lo > hi:
                raise InvalidOptionError(
                    f"K range {spec!r} runs backwards; write it low:high, e.g. {hi}:{lo}"
                )
            if len(parts) == 3:
                if parts[2] < 1:
                    raise InvalidOptionError(f"K range step must be at least 1, got {parts[2]}")
                values = list(range(lo, hi + 1, parts[2]))
            else:
                values = [k for k in _geometric_ladder() if lo <= k <= hi]
            values = sorted({lo, hi, *values})
        else:
            values = sorted({int(p) for p in text.split(",") if p.strip()})
            if not values:
                raise ValueError
    except ValueError as exc:
        if isinstance(exc, InvalidOptionError):
            raise
        raise InvalidOptionError(
            f"cannot read K values {spec!r}; write a range 2:256, a stepped range 2:64:2 "
            "or a list 4,8,16"
        ) from None
    for k in values:
        _check_k(k, spec)
    return values


def _check_k(k: int, spec: str) -> None:
    if not 1 <= k <= MAX_COLORS:
        raise InvalidOptionError(f"K must be between 1 and {MAX_COLORS}, got {k} in {spec!r}")


def _geometric_ladder() -> list[int]:
    return [1, *DEFAULT_K_VALUES]


def find_knee(ks: NDArray | list[int], inertia: NDArray | list[float]) -> int | None:
    """K at the knee of the decreasing, convex inertia curve (Kneedle: Satopää et al. 2011).

    Returns None when there are fewer than three points or no knee.
    """
    from kneed import KneeLocator

    ks, inertia = np.asarray(ks, dtype=float), np.asarray(inertia, dtype=float)
    if ks.size < 3 or not np.all(np.isfinite(inertia)) or np.ptp(inertia) == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kneed warns when it finds no knee
        knee = KneeLocator(ks, inertia, curve="convex", direction="decreasing").knee
    return None if knee is None else int(knee)


def sweep(
    image: ImageSource,
    k_values: list[int] | tuple[int, ...] | None = None,
    *,
    options: Options | None = None,
    silhouette_sample: int = SILHOUETTE_SAMPLE,
    with_quality: bool = True,
    progress: Progress = None,
    **fields: Any,
) -> SweepResult:
    """Quantize one image at each K and measure the result.

    Parameters
    ----------
    image : path, bytes, PIL image or (H, W, C) uint8 ndarray
    k_values : sequence of int, optional
        Default :data:`DEFAULT_K_VALUES`. Values above the image's number of colours give the
        exact picture; they are dropped (with a note) but for the first of them.
    options : Options, optional
        Every setting at once (``n_colors`` is ignored: the sweep sets K).
    silhouette_sample : int
        Pixels (a seeded sample) for the silhouette score; 0 skips it.
    with_quality : bool
        Measure silhouette, PSNR, SSIM and PNG bytes (False: inertia only, for the knee).
    progress : callable, optional
        Called as ``progress("sweep", done, total)``; False aborts.
    **fields
        Any field of :class:`kmquant.Options`, applied on top of ``options``.

    Returns
    -------
    SweepResult
    """
    ks = sorted(set(parse_k_values(None) if k_values is None else k_values))
    if not ks:
        raise InvalidOptionError("give at least one K to sweep")
    for k in ks:
        _check_k(k, str(list(ks)))
    options = Options.build(options, **fields).replace(n_colors=ks[0])
    loaded = load_image(image, max_pixels=options.max_pixels, max_memory=options.max_memory,
                        allow_truncated=options.allow_truncated)
    return sweep_prepared(
        prepare(loaded.pixels, options.space), loaded.pixels, ks, options,
        get_engine(options.engine), silhouette_sample=silhouette_sample,
        with_quality=with_quality, progress=progress,
    )


def sweep_prepared(
    prepared: Prepared,
    pixels: NDArray[np.uint8],
    ks: list[int],
    options: Options,
    engine: Engine,
    *,
    silhouette_sample: int = SILHOUETTE_SAMPLE,
    with_quality: bool = True,
    progress: Progress = None,
) -> SweepResult:
    """:func:`sweep` on an image already decoded (``pixels``, (H, W, C)) and prepared."""
    height, width = prepared.shape
    notes = []
    n_colors = prepared.histogram.n_colors
    ks = sorted(set(ks))
    if ks[-1] > n_colors:
        notes.append(f"the image has only {plural(n_colors, 'colour')}: K above {n_colors} gives the same "
                     f"exact picture, so the sweep stops at K={n_colors}")
        ks = sorted({k for k in ks if k < n_colors} | {n_colors})
    size = silhouette_sample if with_quality else 0
    sample_pixels, sample_rows = _silhouette_sample(pixels, size, options.seed, options.space)

    rows = []
    centers = None
    for done, k in enumerate(ks, start=1):
        clock = time.perf_counter()
        start = None
        if centers is not None and not prepared.reserved.size and k < prepared.X.shape[0]:
            start = extend_centers(prepared.X, prepared.counts, centers, k, options.seed + k)
        result, fitted = quantize_prepared(prepared, options.replace(n_colors=k), engine,
                                           start=start)
        centers = fitted if fitted is not None else centers
        data = result.to_png() if with_quality else b""
        seconds = time.perf_counter() - clock
        quality = metrics.Quality(psnr=math.nan)
        if with_quality:
            quality = metrics.measure(pixels, result.palette, result.indices, delta_e=False,
                                      lossless=result.lossless)
        rows.append(SweepRow(
            k=k,
            colors_used=result.colors_used,
            inertia=result.inertia,
            silhouette=_silhouette(sample_pixels, result.indices.reshape(-1)[sample_rows]),
            mse=_mse_of(quality.psnr),
            psnr=math.nan if quality.psnr is None else quality.psnr,
            ssim=quality.ssim,
            png_bytes=len(data),
            bits_per_pixel=8.0 * len(data) / (width * height),
            seconds=seconds,
            n_iter=result.n_iter,
        ))
        report_progress(progress, "sweep", done, len(ks))
    knee = find_knee([r.k for r in rows], [r.inertia for r in rows])
    if len(rows) < 3:
        notes.append("fewer than three K values: no knee can be located")
    elif knee is None:
        notes.append("the inertia curve has no clear knee")
    return SweepResult(tuple(rows), width, height, sample_pixels.shape[0], knee, tuple(notes))


def _mse_of(psnr: float | None) -> float:
    """Mean squared error (8-bit levels²) from a PSNR in dB; 0 for ∞, NaN for NaN."""
    if psnr is None or math.isnan(psnr):
        return math.nan
    return 255.0**2 / 10.0 ** (psnr / 10.0) if math.isfinite(psnr) else 0.0


def _silhouette_sample(
    pixels: NDArray[np.uint8], size: int, seed: int, space: str = "rgb"
) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """A seeded sample of pixels, (m, C) in the working space, and their flat positions (m,)."""
    flat = pixels.reshape(-1, pixels.shape[2])
    m = min(size, flat.shape[0])
    rows = np.sort(np.random.default_rng(seed).choice(flat.shape[0], m, replace=False))
    return to_working(flat[rows], space), rows


def _silhouette(sample: NDArray[np.float64], labels: NDArray[np.uint8]) -> float | None:
    """Mean silhouette of the sample under ``labels``; None where it is undefined (or skipped)."""
    from sklearn.metrics import silhouette_score

    if sample.shape[0] == 0:
        return None
    n_labels = np.unique(labels).size
    if not 2 <= n_labels <= sample.shape[0] - 1:
        return None
    return float(silhouette_score(sample, labels))
