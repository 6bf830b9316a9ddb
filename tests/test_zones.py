"""An area spanning two UTM zones: one output per zone on its native grid (no reprojection), and a STAC
Collection describing the outputs. Real BigEarthNet L2A patches (zones 29N and 34N) served by rustac."""

import json

import numpy as np
import pystac
import pytest
import rasterio

from s2sr_cloud.catalog.server import serve_items
from s2sr_cloud.config import JobConfig
from s2sr_cloud.io.store import open_output
from s2sr_cloud.pipeline.run import run_job

from .conftest import ben_item, need_shared

PATCHES = ("S2A_MSIL2A_20170617T113321_36_85", "S2A_MSIL2A_20170617T113321_4_55",
           "S2B_MSIL2A_20170914T093029_32_39")


def _box(item, pad=0.0):
    w, s, e, n = item["bbox"]
    return [[(w - pad, s - pad), (e + pad, s - pad), (e + pad, n + pad), (w - pad, n + pad), (w - pad, s - pad)]]


@pytest.mark.slow
def test_two_utm_zones_give_two_native_outputs(tmp_path, dask_cluster):
    items = [ben_item(need_shared("bigearthnet", p)) for p in PATCHES]
    # the area: small boxes around one patch in zone 29N and one in zone 34N (the third patch lies outside it)
    area = {"type": "MultiPolygon", "coordinates": [_box(items[0]), _box(items[2])]}
    out = tmp_path / "europe.zarr"
    with serve_items(items) as url:
        cfg = JobConfig(out=str(out), catalog=url, geometry=area, bands=("B02", "B03", "B04", "B05"), scale=2,
                        chunk=60)
        results = run_job(cfg, progress=False, client=dask_cluster)
    assert [r.epsg for r in results] == [32629, 32634]
    for r, item in zip(results, (items[0], items[2]), strict=True):
        assert r.out == str(tmp_path / f"europe_EPSG{r.epsg}.zarr")
        ds = open_output(r.out)
        assert ds.rio.crs.to_epsg() == r.epsg
        assert ds.attrs["stac_items"] == [item["id"]]
        with rasterio.open(item["assets"]["B04"]["href"].removeprefix("file://")) as src:
            native = src.read(1).astype(np.float64) / 1e4
            t = src.transform
        tr = ds.rio.transform()
        assert (tr.c, tr.f, tr.a) == (t.c, t.f, 5.0)  # the patch's own grid, halved: nothing reprojected
        back = ds.B04.values[0].reshape(120, 2, 120, 2).mean(axis=(1, 3))
        assert np.abs(back - native).max() < 1e-5
    coll = pystac.Collection.from_file(str(tmp_path / "europe_stac" / "collection.json"))
    got = sorted((i.properties["proj:code"], i.assets["zarr"].get_absolute_href()) for i in coll.get_items())
    assert got == [("EPSG:32629", str(tmp_path / "europe_EPSG32629.zarr")),
                   ("EPSG:32634", str(tmp_path / "europe_EPSG32634.zarr"))]
    assert json.loads((tmp_path / "europe_stac" / "collection.json").read_text())["extent"]["spatial"]["bbox"]
