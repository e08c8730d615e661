"""One record per compression: sizes, ratio, quality, time — as a dict/JSON or text for people."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

__all__ = ["Report", "human_bytes", "plural"]


@dataclass(frozen=True)
class Report:
    """What one compression did. Sizes are exact bytes; times are seconds.

    ``format`` says what was written, from the file's own header: ``"indexed PNG, 4-bit
    palette"``, ``"8-bit greyscale PNG"`` (smaller for a grey palette), ``"JPEG"``...
    ``output`` is ``"<stdout>"`` when the image went to standard output. ``frames`` is the
    number of frames of an animation written whole (``width`` × ``height`` is then each frame's
    canvas, and the bits per pixel count every frame's pixels); 1 for a still.
    """

    input: str
    output: str | None
    width: int
    height: int
    original_bytes: int
    compressed_bytes: int
    k_requested: int
    colors_used: int
    psnr: float | None
    ssim: float | None
    engine: str
    n_iter: int
    seconds: float
    format: str = "PNG"
    delta_e: float | None = None
    notes: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    k_choice: dict | None = None
    frames: int = 1

    @property
    def ratio(self) -> float:
        """Original size / compressed size (×)."""
        return self.original_bytes / self.compressed_bytes if self.compressed_bytes else math.inf

    @property
    def reduction_pct(self) -> float:
        """How much smaller the output is, in percent of the original."""
        return 100.0 * (1.0 - self.compressed_bytes / self.original_bytes)

    @property
    def bits_per_pixel(self) -> float:
        return 8.0 * self.compressed_bytes / (self.width * self.height * max(1, self.frames))

    def to_dict(self) -> dict:
        """Plain JSON-ready dict; an infinite PSNR (lossless) becomes ``None``."""
        record = asdict(self)
        record["notes"] = list(self.notes)
        record["psnr"] = self.psnr if self.psnr is not None and math.isfinite(self.psnr) else None
        record["lossless"] = self.psnr is not None and not math.isfinite(self.psnr)
        record["ratio"] = round(self.ratio, 4)
        record["reduction_pct"] = round(self.reduction_pct, 3)
        record["bits_per_pixel"] = round(self.bits_per_pixel, 4)
        record["seconds"] = round(self.seconds, 4)
        record["timings"] = {k: round(v, 4) for k, v in self.timings.items()}
        record["animated"] = self.frames > 1
        return record

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self) -> str:
        """A few aligned lines for a terminal."""
        if self.psnr is None:
            psnr = "not measured"
        else:
            psnr = "∞ (lossless)" if not math.isfinite(self.psnr) else f"{self.psnr:.2f} dB"
        ssim = "n/a" if self.ssim is None else f"{self.ssim:.4f}"
        delta_e = "" if self.delta_e is None else f", ΔE2000 {self.delta_e:.2f}"
        if self.compressed_bytes <= self.original_bytes:
            change = f"{self.ratio:.2f}× smaller, -{self.reduction_pct:.1f}%"
        else:
            change = f"{1 / self.ratio:.2f}× larger, +{-self.reduction_pct:.1f}%"
        lines = [
            f"{self.input} → {self.output or '(not written)'}",
            f"  size     {self.width}×{self.height}{self._frames_text()}, "
            f"{human_bytes(self.original_bytes)} → "
            f"{human_bytes(self.compressed_bytes)}  ({change}, "
            f"{self.bits_per_pixel:.2f} bits/pixel, {self.format})",
            f"  colours  {self.colors_used} used of K={self.k_requested}",
            f"  quality  PSNR {psnr}, SSIM {ssim}{delta_e}",
            f"  engine   {self.engine}, {plural(self.n_iter, 'iteration')}, {self.seconds:.2f} s",
        ]
        lines += [f"  note     {note}" for note in self.notes]
        return "\n".join(lines)

    def _frames_text(self) -> str:
        return f" × {self.frames} frames (animation)" if self.frames > 1 else ""


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``plural(1, "colour")`` → ``'1 colour'``, ``plural(3, "colour")`` → ``'3 colours'``.

    Parameters
    ----------
    n : int
    noun : str
        The singular.
    nouns : str, optional
        The plural when it is not ``noun + "s"``.
    """
    return f"{n} {noun if n == 1 else nouns or noun + 's'}"


def human_bytes(n: int) -> str:
    """``1234567`` → ``'1.2 MB'`` (binary multiples, as file managers show)."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
