"""Zarr format 2 stores (``--zarr-format 2``) for GDAL 3.4-3.10 / QGIS, with every data-safety guarantee of format
3: ownership marker and status in ``.zattrs``, fill_value == _FillValue, per-chunk checksums (zstd content
checksum), verify/repair/resume; plus overviews and consolidated metadata."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import rasterio
import rioxarray  # noqa: F401
import xarray as xr

from s2sr_cloud.cli import main
from s2sr_cloud.io import store
from s2sr_cloud.pipeline.verify import verify_store

JOB = ["run", "--model", "bicubic", "--bands", "B02,B8A,B11", "--no-progress", "--chunk", "120",
       "--zarr-format", "2"]


@pytest.fixture(scope="module")
def v2_store(tmp_path_factory, dask_cluster):
    out = tmp_path_factory.mktemp("gdal") / "v2.zarr"
    assert main([*JOB, "--out", str(out), "--scheduler", dask_cluster.scheduler.address]) == 0
    return out


def test_gdal_opens_a_band_of_a_format_2_store(v2_store):
    ds = xr.open_zarr(str(v2_store), decode_coords="all")
    with rasterio.open(f'ZARR:"{v2_store}":/B02') as src:
        assert src.crs == ds.rio.crs and src.crs.to_epsg() == 32629
        assert src.transform.almost_equals(ds.rio.transform())
        assert src.nodata == 65535
        assert src.scales[0] == pytest.approx(1e-4) and src.offsets[0] == pytest.approx(-0.1)
        dn = src.read(1)
    refl = np.where(dn == 65535, np.nan, dn * src.scales[0] + src.offsets[0])
    assert np.allclose(refl, ds["B02"].isel(time=0).values, atol=1e-6, equal_nan=True)


def test_format_2_keeps_marker_fill_value_and_checksums(v2_store):
    attrs = json.loads((v2_store / ".zattrs").read_text())
    assert attrs[store.MARKER] and attrs[store.STATUS] == "complete" and attrs["zarr_format"] == 2
    meta = json.loads((v2_store / "B02" / ".zarray").read_text())
    assert meta["fill_value"] == 65535
    assert meta["compressor"] == {"id": "zstd", "level": 3, "checksum": True}
    assert store.inspect_output(str(v2_store)).state is store.OutputState.OURS
    assert verify_store(str(v2_store), sample=1).ok


def test_open_zarr_quietly_in_band_order_with_cf_axes(v2_store):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_zarr(str(v2_store))
    assert list(ds.data_vars)[:4] == ["B02", "B8A", "B11", "detail"]  # band order, not alphabetical
    for name, axis in (("x", "X"), ("y", "Y"), ("time", "T")):
        assert ds[name].attrs["axis"] == axis and ds[name].attrs["standard_name"]
    assert ds["x"].attrs["units"] == "m"
    assert store.open_output(str(v2_store))["B02"].dtype == np.float32


def test_overviews_are_block_means(v2_store):
    ds = xr.open_zarr(str(v2_store))
    levels = ds.attrs["multiscales"][0]["datasets"]
    assert [lv["scale"] for lv in levels] == [1, 2, 4] and levels[-1]["shape"] == [240, 240]
    full = ds["B11"].isel(time=0).values.astype(np.float64)
    for lv in levels[1:]:
        f = lv["scale"]
        o = xr.open_zarr(str(v2_store), group=lv["path"], decode_coords="all")
        assert o.rio.crs == ds.rio.crs if hasattr(ds, "rio") else True
        n = full.shape[0] // f
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            want = np.nanmean(full.reshape(n, f, n, f), axis=(1, 3))
        got = o["B11"].isel(time=0).values
        assert np.allclose(got, want, atol=0.6e-4, equal_nan=True)  # one rounding to the 1e-4 DN grid
        assert o["x"].values[0] == pytest.approx(ds["x"].values[:f].mean())


def test_format_2_damage_is_found_repaired_and_recomputed(v2_store, tmp_path, capsys, scheduler):
    import shutil

    out = tmp_path / "copy.zarr"
    shutil.copytree(v2_store, out)
    reference = store.open_output(str(out)).load()
    p = out / "B8A" / "0.1.0"
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    p.write_bytes(bytes(raw))
    (out / "B02" / "0.0.1").unlink()
    b02 = xr.open_zarr(str(out), consolidated=False)["B02"].isel(time=0).values  # missing chunk: NaN, not -0.1
    before = reference["B02"].isel(time=0).values
    assert np.isnan(b02[:480, 480:]).all() and np.isfinite(before[:480, 480:]).any()
    assert np.allclose(b02[:480, :480], before[:480, :480], atol=1e-6, equal_nan=True)
    report = verify_store(str(out), sample=0, repair=True)
    assert set(report.bad) == {(0, 1, 0), (0, 0, 1)}, report.lines()
    assert "checksum mismatch" in report.bad[(0, 1, 0)] and "missing" in report.bad[(0, 0, 1)]
    assert not (out / ".zmetadata").exists()  # a store being changed presents no stale consolidated copy
    capsys.readouterr()
    assert main([*JOB, "--out", str(out), "--scheduler", scheduler]) == 0
    assert "2 computed, 2 already done" in capsys.readouterr().out
    assert verify_store(str(out), sample=0).ok
    again = store.open_output(str(out)).load()
    for v in ("B02", "B8A", "B11", "detail"):
        assert np.array_equal(again[v].values, reference[v].values, equal_nan=True), v
