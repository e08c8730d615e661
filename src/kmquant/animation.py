"""Animations: one palette over all the frames (or one per frame), and every frame's indices.

k-means over all the frames is k-means over their merged colour histogram, which is the histogram
of the frames stacked one below the other into one (F·H, W, C) picture: the still pipeline runs on
that picture unchanged (the lossless shortcut, a given ``palette``, ``keep_colors``, ``-k auto``),
and its indices, cut back into frames, share the palette. Dithering is the one step that must not
see the stack: error diffusion would run from one frame into the next and a Bayer pattern would
shift with each frame's height, so that a still background would flicker. The palette is fitted
without it, and each frame is then dithered to that palette on its own.

With ``per_frame`` every frame gets its own palette instead (only a GIF can hold them).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .engines import Engine, get_engine
from .errors import InvalidOptionError
from .options import Options
from .palette import Quantizer, remap
from .pipeline import Result, prepare, quantize_prepared
from .refine import Progress
from .report import plural

__all__ = ["FramesResult", "quantize_frames", "from_stacked"]


@dataclass(frozen=True)
class FramesResult:
    """Quantized frames: one palette for all of them, or one per frame.

    Attributes
    ----------
    palettes : tuple of (K, C) uint8 ndarray
        One palette (shared by every frame), or one per frame (``per_frame``).
    indices : (F, H, W) uint8 ndarray
        Every frame's indices into its palette.
    inertia : float
        k-means objective, summed over the fits.
    n_iter : int
        k-means iterations, summed over the fits.
    engine : str
    k_requested : int
    timings : dict of str to float
        Seconds per stage, summed over the fits.
    notes : tuple of str
    lossless : bool
        Every frame keeps its exact colours.
    """

    palettes: tuple[NDArray[np.uint8], ...]
    indices: NDArray[np.uint8]
    inertia: float
    n_iter: int
    engine: str
    k_requested: int
    timings: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    lossless: bool = False

    @property
    def shared(self) -> bool:
        """One palette for every frame."""
        return len(self.palettes) == 1

    @property
    def n_frames(self) -> int:
        return int(self.indices.shape[0])

    @property
    def colors_used(self) -> int:
        """Entries of the palette, or of the largest palette of a frame."""
        return max(int(p.shape[0]) for p in self.palettes)

    def palette_of(self, frame: int) -> NDArray[np.uint8]:
        """The palette of frame ``frame``."""
        return self.palettes[0 if self.shared else frame]

    def stacked_indices(self) -> NDArray[np.uint8]:
        """The indices as one (F·H, W) picture (a view)."""
        f, h, w = self.indices.shape
        return self.indices.reshape(f * h, w)

    def to_array(self, channels: int | None = None) -> NDArray[np.uint8]:
        """The quantized frames, (F, H, W, C) uint8, C = ``channels`` (default: the palettes')."""
        c = channels or max(p.shape[1] for p in self.palettes)
        if self.shared:
            return widen(self.palettes[0], c)[self.indices]
        return np.stack([widen(p, c)[i] for p, i in zip(self.palettes, self.indices)])


def quantize_frames(
    frames: NDArray[np.uint8],
    options: Options,
    *,
    engine: Engine | None = None,
    palette: NDArray[np.uint8] | None = None,
    keep_colors: Any = None,
    progress: Progress = None,
) -> FramesResult:
    """Quantize the frames of an animation: one palette over all of them (k-means on their
    merged histogram), or with ``options.per_frame`` one per frame.

    Parameters
    ----------
    frames : (F, H, W, C) uint8 ndarray
        The frames on the full canvas (:attr:`kmquant.load.LoadedFrames.frames`), already
        checked against the limits.
    options : Options
    engine : Engine, optional
        Default: ``options.engine``.
    palette : (K, C) uint8 ndarray, optional
        Map every frame to this palette, kept whole and in order, instead of fitting one.
    keep_colors : (m, C) uint8 array-like or str, optional
        Colours every fitted palette must hold exactly.
    progress : callable, optional

    Returns
    -------
    FramesResult

    Raises
    ------
    InvalidOptionError
        ``per_frame`` with a given ``palette`` (which is one palette for all).
    """
    if frames.ndim != 4 or frames.shape[0] < 1:
        raise InvalidOptionError(f"frames must be an (F, H, W, C) array, got {frames.shape}")
    engine = engine or get_engine(options.engine)
    # each frame was checked against max_pixels as it was decoded; the stack is not one picture.
    # Rate-aware entries are off: a pixel's entry would depend on its neighbours, so a pixel that
    # stays the same could change entry from frame to frame and widen every frame's changed box.
    opts = options.replace(max_pixels=None, rdo=0.0)
    if options.per_frame:
        if palette is not None:
            raise InvalidOptionError(
                "--per-frame fits a palette to each frame and --palette gives one for all of "
                "them; drop one")
        return _per_frame(frames, opts, engine, keep_colors, progress)
    n, height, width, channels = frames.shape
    stacked = frames.reshape(n * height, width, channels)
    fit_opts = opts.replace(dither="none") if opts.dither != "none" else opts
    result = _quantize(stacked, fit_opts, engine, palette, keep_colors, progress)
    return from_stacked(result, frames, opts, progress=progress)


def from_stacked(
    result: Result, frames: NDArray[np.uint8], options: Options, *, progress: Progress = None
) -> FramesResult:
    """The :class:`FramesResult` of a quantization of the stacked frames (as ``-k auto``
    makes it): the indices cut into frames, each frame dithered on its own when
    ``options.dither`` asks for it.

    Parameters
    ----------
    result : Result
        Of the (F·H, W, C) stack of ``frames``.
    frames : (F, H, W, C) uint8 ndarray
    options : Options
    """
    n, height, width, _ = frames.shape
    indices = result.indices.reshape(n, height, width)
    timings = dict(result.timings)
    if options.dither != "none" and not result.lossless and result.palette.shape[0] > 1:
        clock = time.perf_counter()
        each = options.replace(max_pixels=None, rdo=0.0)
        indices = np.stack([remap(frame, result.palette, options=each).indices
                            for frame in frames])
        timings["remap"] = timings.get("remap", 0.0) + time.perf_counter() - clock
    return FramesResult((result.palette,), indices, result.inertia, result.n_iter, result.engine,
                        result.k_requested, timings, result.notes, result.lossless)


def _quantize(
    pixels: NDArray[np.uint8],
    opts: Options,
    engine: Engine,
    palette: NDArray[np.uint8] | None,
    keep_colors: Any,
    progress: Progress,
) -> Result:
    """One picture quantized as :func:`kmquant.job.compress` quantizes a still."""
    if palette is not None:
        return remap(pixels, palette, options=opts, progress=progress)
    if keep_colors is not None:
        quantizer = Quantizer(opts, keep_colors=keep_colors).fit(pixels, progress=progress)
        return quantizer.remap(pixels, progress=progress)
    result, _ = quantize_prepared(prepare(pixels, opts.space), opts, engine, progress=progress)
    return result


def _per_frame(
    frames: NDArray[np.uint8], opts: Options, engine: Engine, keep_colors: Any,
    progress: Progress,
) -> FramesResult:
    """Every frame quantized on its own, with its own palette."""
    results = [_quantize(frame, opts, engine, None, keep_colors, progress) for frame in frames]
    timings: dict[str, float] = {}
    for result in results:
        for stage, seconds in result.timings.items():
            timings[stage] = timings.get(stage, 0.0) + seconds
    exact = sum(result.lossless for result in results)
    notes = _unique(note for result in results if not result.lossless for note in result.notes)
    if exact:
        notes.append(f"{plural(exact, 'frame')} of {len(results)} had no more than "
                     f"K={opts.n_colors} colours and kept them exactly")
    indices = np.stack([result.indices for result in results])
    return FramesResult(tuple(result.palette for result in results), indices,
                        sum(result.inertia for result in results),
                        sum(result.n_iter for result in results), results[0].engine,
                        opts.n_colors, timings, tuple(notes), exact == len(results))


def _unique(notes: Any) -> list[str]:
    seen: list[str] = []
    for note in notes:
        if note not in seen:
            seen.append(note)
    return seen


def widen(palette: NDArray[np.uint8], channels: int) -> NDArray[np.uint8]:
    """A (K, C) palette as (K, ``channels``): grey repeated into RGB, opaque alpha added."""
    if palette.shape[1] == channels:
        return palette
    if palette.shape[1] == 1:
        palette = np.repeat(palette, 3, axis=1)
    if channels == 4 and palette.shape[1] == 3:
        palette = np.column_stack([palette, np.full(len(palette), 255, np.uint8)])
    return np.ascontiguousarray(palette)


def frame_durations_note(durations: Sequence[float], fmt: str) -> str | None:
    """What the output's timing does to the durations, when it cannot hold them exactly (GIF
    keeps hundredths of a second), else None."""
    if fmt != "GIF" or all(float(d) % 10 == 0 for d in durations):
        return None
    return ("GIF keeps frame durations in hundredths of a second: durations rounded to the "
            "nearest 10 ms")
