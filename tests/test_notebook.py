"""The analysis notebook runs top to bottom on a real run's output and shows its figures inline."""

import base64
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from s2sr_cloud.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_notebook_source_uses_inline_figures():
    nb = nbformat.read(ROOT / "notebooks" / "analysis.ipynb", as_version=4)
    src = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "%matplotlib inline" in src and "use('Agg')" not in src and 'use("Agg")' not in src


@pytest.mark.slow
def test_notebook_executes_on_a_run(tmp_path, monkeypatch, scheduler):
    out = os.environ.get("S2SR_NOTEBOOK_STORE")  # reuse a finished store when given
    if not out:
        out = str(tmp_path / "run.zarr")
        # the CLI in this process, on the shared cluster (the notebook is under test here, not the run's process)
        assert main(["run", "--out", out, "--chunk", "120", "--no-progress", "--scale", "2", "--ensemble", "1",
                     "--scheduler", scheduler]) == 0
    nb = nbformat.read(ROOT / "notebooks" / "analysis.ipynb", as_version=4)
    monkeypatch.setenv("S2SR_ZARR", out)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs)
    assert "B12: RMSE" in text and "bicubic" in text and "worst per-chunk consistency RMSE" in text
    # the figures are in the notebook itself: the map comparison, the spectra and the RMSE with intervals
    pngs = [base64.b64decode(o["data"]["image/png"]) for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= 3 and all(p.startswith(b"\x89PNG") and len(p) > 10000 for p in pngs), [len(p) for p in pngs]
