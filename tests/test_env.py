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
                                       ("S2SR_CHUNK_MEMORY_GIB", "2,5")])
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
