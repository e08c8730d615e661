import io

import numpy as np
from PIL import Image

from kmquant.ksweep import sweep
from kmquant.plots import save_figure, sweep_figure


def test_sweep_figure_draws_every_curve_and_marks_the_knee(tmp_path, crop_pixels):
    result = sweep(crop_pixels, [2, 4, 8, 16, 32, 64], silhouette_sample=300)
    fig = sweep_figure(result, title="crop")
    elbow = fig.axes[0]
    inertia_line = elbow.get_lines()[0]
    assert np.array_equal(inertia_line.get_xdata(), result.column("k"))
    assert np.allclose(inertia_line.get_ydata(), result.column("inertia"))
    if result.knee is not None:
        assert any(f"knee: K={result.knee}" == line.get_label() for line in elbow.get_lines())
    titles = [ax.get_title() for ax in fig.axes]
    for expected in ("elbow: distortion vs K", "quality vs K", "size vs K",
                     "quality vs size (labels: K)"):
        assert expected in titles
    tradeoff = fig.axes[titles.index("quality vs size (labels: K)")]
    assert [t.get_text() for t in tradeoff.texts] == ["2", "4", "8", "16", "32", "64"]
    path = save_figure(fig, tmp_path / "sweep.png")
    with Image.open(path) as im:
        assert im.size == (1200, 840)


def test_sweep_figure_without_silhouette(crop_pixels):
    result = sweep(crop_pixels, [2, 8], silhouette_sample=0)
    fig = sweep_figure(result)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert buffer.getvalue()[:4] == b"\x89PNG"
