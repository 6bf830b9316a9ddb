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
