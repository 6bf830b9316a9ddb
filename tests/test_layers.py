"""The import layers (README "Layout") are contracts in pyproject.toml, checked by import-linter: catalog -> io ->
ops -> model -> pipeline/report/training -> api -> cli, ops and model free of dask/xarray/I-O, dask graphs only
in pipeline. Adding an upward import (say, ops importing pipeline) fails this test."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    exe = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "0 broken" in r.stdout
