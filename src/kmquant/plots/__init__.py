"""matplotlib figures. Every function returns a ``Figure`` and never calls ``show()``.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot), so they work headless
(the CLI saves them) and inside notebooks alike (a ``Figure`` displays itself). One module per
figure, re-exported here.
"""

from .compare import compare_figure, largest_error_region
from .scatter import palette_shares, scatter_figure
from .side_by_side import save_figure, side_by_side
from .sweep import sweep_figure

__all__ = [
    "side_by_side", "compare_figure", "largest_error_region", "scatter_figure", "palette_shares",
    "sweep_figure", "save_figure",
]
