"""The curves of a K sweep: elbow with its knee, quality, bytes, and quality per byte."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..ksweep import SweepResult

__all__ = ["sweep_figure"]


def sweep_figure(result: SweepResult, *, title: str = "", width_inches: float = 12.0) -> Figure:
    """Four panels over K (log scale): inertia with the knee marked and the silhouette; PSNR and
    SSIM; PNG size and bits per pixel; and PSNR against PNG size, each point labelled with its K.

    Parameters
    ----------
    result : SweepResult
    title : str
        Shown above the panels (e.g. the file name).
    width_inches : float

    Returns
    -------
    matplotlib.figure.Figure
    """
    ks = result.column("k")
    fig = Figure(figsize=(width_inches, width_inches * 0.7), layout="constrained")
    (elbow, quality), (size, tradeoff) = fig.subplots(2, 2)
    if title:
        fig.suptitle(title)

    inertia = result.column("inertia")
    positive = inertia > 0  # a lossless K has none: no log scale for it
    elbow.plot(ks[positive], inertia[positive], "o-", color="C0", label="inertia")
    elbow.set(xscale="log", yscale="log" if positive.any() else "linear", xlabel="K (colours)",
              ylabel="inertia (sum of squared errors)", title="elbow: distortion vs K")
    if result.knee is not None:
        knee_inertia = inertia[list(ks).index(result.knee)]
        elbow.axvline(result.knee, color="C3", linestyle="--", linewidth=1)
        elbow.plot([result.knee], [knee_inertia], "o", color="C3", markersize=11,
                   markerfacecolor="none", markeredgewidth=2, label=f"knee: K={result.knee}")
    silhouette = result.column("silhouette")
    if np.isfinite(silhouette).any():
        twin = elbow.twinx()
        twin.plot(ks, silhouette, "s:", color="C2", markersize=4,
                  label=f"silhouette ({result.silhouette_sample:,}-pixel sample)")
        twin.set_ylabel("silhouette", color="C2")
        lines = elbow.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        elbow.legend(lines, [line.get_label() for line in lines], fontsize=8, loc="upper right")
    else:
        elbow.legend(fontsize=8)

    psnr = np.where(np.isfinite(result.column("psnr")), result.column("psnr"), np.nan)
    quality.plot(ks, psnr, "o-", color="C1")
    quality.set(xscale="log", xlabel="K (colours)", ylabel="PSNR (dB)", title="quality vs K")
    twin = quality.twinx()
    twin.plot(ks, result.column("ssim"), "s--", color="C4", markersize=4)
    twin.set_ylabel("SSIM", color="C4")
    quality.set_ylabel("PSNR (dB)", color="C1")

    kilobytes = result.column("png_bytes") / 1024
    size.plot(ks, kilobytes, "o-", color="C5")
    size.set(xscale="log", xlabel="K (colours)", ylabel="indexed PNG (KB)", title="size vs K")
    twin = size.twinx()
    twin.plot(ks, result.column("bits_per_pixel"), alpha=0)  # same curve, second scale
    twin.set_ylim(np.array(size.get_ylim()) * 1024 * 8 / (result.width * result.height))
    twin.set_ylabel("bits per pixel")

    tradeoff.plot(kilobytes, psnr, "o-", color="C0")
    for k, x, y in zip(ks, kilobytes, psnr):
        if np.isfinite(y):
            tradeoff.annotate(f"{int(k)}", (x, y), textcoords="offset points", xytext=(4, -10),
                              fontsize=7)
    tradeoff.set(xlabel="indexed PNG (KB)", ylabel="PSNR (dB)",
                 title="quality vs size (labels: K)")
    for ax in (elbow, quality, size, tradeoff):
        ax.grid(True, alpha=0.3)
    return fig
