"""matplotlib figures. Every function returns a ``Figure`` and never calls ``show()``.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot), so they work headless
(the CLI saves them) and inside notebooks alike (a ``Figure`` displays itself). One module per
figure, re-exported here.
"""

from .side_by_side import save_figure, side_by_side

__all__ = ["side_by_side", "save_figure"]
