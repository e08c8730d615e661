"""The walkthrough notebook runs from top to bottom (so it can never rot)."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parents[1] / "examples" / "walkthrough.ipynb"


def test_walkthrough_executes_and_shows_its_figures(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 4  # side by side, comparison, scatter, sweep curves
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "sample.png: 768×512 pixels" in text
    assert "PSNR ≥ 32 dB" in text and "K=" in text
