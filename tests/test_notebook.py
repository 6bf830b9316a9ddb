"""The analysis notebook runs top to bottom on a real run's output."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_notebook_executes_on_a_run(tmp_path, monkeypatch):
    out = tmp_path / "run.zarr"
    r = subprocess.run([sys.executable, "-m", "s2sr_cloud.cli", "run", "--out", str(out), "--chunk", "120",
                        "--no-progress", "--scale", "2", "--ensemble", "1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    nb = nbformat.read(ROOT / "notebooks" / "analysis.ipynb", as_version=4)
    monkeypatch.setenv("S2SR_ZARR", str(out))
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "B12: RMSE" in text and "worst per-chunk consistency RMSE" in text
    assert (tmp_path / "spectra_rmse.png").stat().st_size > 5000
