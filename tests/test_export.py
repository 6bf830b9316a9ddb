"""``s2sr export OUT.zarr --cog DIR`` on a default (format 3) store, read back with rasterio."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
import rioxarray  # noqa: F401
import xarray as xr

from s2sr_cloud.cli import main
from s2sr_cloud.io import store


def test_export_cogs_and_format_3_store(tmp_path, capsys, scheduler):
    out = tmp_path / "o.zarr"
    assert main(["run", "--model", "bicubic", "--bands", "B02,B8A,B11", "--no-progress", "--chunk", "120",
                 "--out", str(out), "--scheduler", scheduler]) == 0
    with warnings.catch_warnings():  # consolidated metadata (format 3): no warning, bands in band order
        warnings.simplefilter("error")
        ds = xr.open_zarr(str(out), decode_coords="all")
    assert list(ds.data_vars)[:4] == ["B02", "B8A", "B11", "detail"]
    assert ds["y"].attrs["axis"] == "Y" and ds["time"].attrs["standard_name"] == "time"
    assert [lv["path"] for lv in ds.attrs["multiscales"][0]["datasets"]] == [".", "overviews/2", "overviews/4"]
    capsys.readouterr()
    assert main(["export", str(out), "--cog", str(tmp_path / "cogs")]) == 0
    assert "4 COG(s)" in capsys.readouterr().out
    files = sorted(p.name for p in (tmp_path / "cogs").iterdir())
    assert files == ["o_20200219_B02.tif", "o_20200219_B11.tif", "o_20200219_B8A.tif", "o_20200219_detail.tif"]
    for band in ("B02", "B11"):
        with rasterio.open(tmp_path / "cogs" / f"o_20200219_{band}.tif") as src:
            assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert src.overviews(1) == [2]
            assert src.crs == ds.rio.crs and src.transform.almost_equals(ds.rio.transform())
            assert src.nodata == 65535 and src.dtypes[0] == "uint16"
            assert src.scales[0] == pytest.approx(1e-4) and src.offsets[0] == pytest.approx(-0.1)
            dn = src.read(1)
        refl = np.where(dn == 65535, np.nan, dn * src.scales[0] + src.offsets[0])
        assert np.allclose(refl, ds[band].isel(time=0).values, atol=1e-6, equal_nan=True)
    store.set_status(str(out), "incomplete")  # an unfinished store is not exported
    assert main(["export", str(out), "--cog", str(tmp_path / "again")]) == 7
