"""GDAL settings captured from the environment and carried into every read task."""

import pytest

from s2sr_cloud.errors import ConfigError
from s2sr_cloud.io.env import captured_settings


def test_gdal_cachemax_from_the_environment_is_an_integer(monkeypatch):
    """rasterio.Env refuses GDAL_CACHEMAX as a string ("an integer is required" on every read task)."""
    import rasterio

    monkeypatch.setenv("GDAL_CACHEMAX", "64")
    params, _ = captured_settings()
    assert params["GDAL_CACHEMAX"] == 64
    with rasterio.Env(**params):
        pass
    monkeypatch.setenv("GDAL_CACHEMAX", "5%")
    with pytest.raises(ConfigError, match="GDAL_CACHEMAX='5%'.*whole number"):
        captured_settings()


@pytest.mark.parametrize("var,value", [("S2SR_TORCH_THREADS", "two"), ("S2SR_CHUNK_MEMORY_GIB", "-1"),
                                       ("S2SR_CHUNK_MEMORY_GIB", "2,5"), ("S2SR_WRITE_THREADS", "0")])
def test_bad_tuning_variable_is_one_line_error_before_any_work(var, value, monkeypatch, tmp_path, capsys):
    from s2sr_cloud.cli import main

    monkeypatch.setenv(var, value)
    out = tmp_path / "o.zarr"
    rc = main(["run", "--model", "bicubic", "--bands", "B02,B03,B04", "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1, err
    assert f"{var}={value!r}" in lines[0] and "positive" in lines[0]
    assert not out.exists()


_HUGE = """
import s2sr_cloud, torch
x = torch.ones(2 ** 26)  # 256 MiB, touched
print([ln.split()[1] for ln in open("/proc/self/smaps_rollup") if ln.startswith("AnonHugePages")][0])
"""


@pytest.mark.parametrize("preset", [None, "0"])
def test_torch_tensors_get_huge_pages_unless_the_user_says_no(preset):
    """Importing s2sr_cloud turns on torch's huge-page allocation (the forward's page faults cost more than its
    compute on a 2-core VM), before torch's first allocation; THP_MEM_ALLOC_ENABLE=0 set by the user wins."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    mode = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not mode.exists() or "[never]" in mode.read_text():
        pytest.skip("this kernel offers no transparent huge pages")
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"} | (
        {"THP_MEM_ALLOC_ENABLE": preset} if preset else {})
    kib = int(subprocess.run([sys.executable, "-c", _HUGE], env=env, capture_output=True, text=True,
                             check=True).stdout.strip())
    assert (kib >= 128 * 1024) if preset is None else kib == 0, kib


def test_dask_workers_inherit_the_huge_page_setting(dask_cluster):
    import os

    assert set(dask_cluster.run(lambda: os.environ.get("THP_MEM_ALLOC_ENABLE")).values()) == {"1"}
