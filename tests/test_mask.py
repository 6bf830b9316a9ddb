"""Cloud-aware processing on real data (issue 10): the SCL mask, empty chunks skipped, valid-pixel statistics, the
median composite. The embedded sample (a 240 x 240 crop of S2A_29RKH_20200219, with its real SCL) and, where
../shared is present, the whole decimated 29RKH tile."""

import copy
import json
import shutil

import dask
import numpy as np
import pystac
import pytest
import rasterio
import xarray as xr

from s2sr_cloud.bands import ALL_BANDS
from s2sr_cloud.catalog import search_items
from s2sr_cloud.catalog.server import SAMPLE_DIR, sample_catalog
from s2sr_cloud.io.load import DEFAULT_MASK_CLASSES, MaskSpec, grid_for, load_reflectance, resolve_mask
from s2sr_cloud.model.predictors import BicubicPredictor
from s2sr_cloud.ops import block as B
from s2sr_cloud.pipeline.graph import super_resolve
from s2sr_cloud.pipeline.summary import RunResult, summary
from s2sr_cloud.pipeline.write import write_output

from .conftest import need_shared

FACTORS = {"B01": 6, "B09": 6, "B05": 2, "B06": 2, "B07": 2, "B8A": 2, "B11": 2, "B12": 2}


@pytest.fixture(scope="module")
def items():
    with sample_catalog() as url:
        return search_items(url, "sentinel-2-l2a")


@pytest.fixture(scope="module")
def masked(items):
    grid = grid_for(items, ALL_BANDS, None)
    return load_reflectance(items, grid, 240).persist(scheduler="sync")


def _expected_bad(scl: np.ndarray, classes, up: int, f: int) -> np.ndarray:
    """Grid-pixel mask from the SCL values: SCL (native 20 m) replicated onto the grid, then any masked grid pixel
    masks its band's whole native footprint."""
    bad = np.repeat(np.repeat(np.isin(scl, classes), up, 0), up, 1)
    h, w = bad.shape
    fp = bad.reshape(h // f, f, w // f, f).any(axis=(1, 3))
    return np.repeat(np.repeat(fp, f, 0), f, 1)


def test_sample_scl_masks_what_it_should(masked):
    with rasterio.open(SAMPLE_DIR / "SCL.tif") as src:
        scl = src.read(1)
    assert set(np.unique(scl)) == {5, 8, 9, 10}  # bare soil, cloud medium/high probability, thin cirrus
    assert masked.attrs["mask"]["classes"] == list(DEFAULT_MASK_CLASSES)
    for b in ALL_BANDS:
        bad = _expected_bad(scl, DEFAULT_MASK_CLASSES, 2, FACTORS.get(b, 1))
        got = np.isnan(masked[b].values[0])
        assert np.array_equal(got, bad), b
    # masked where SCL says cloud/cirrus, kept over bare soil
    b02 = masked.B02.values[0]
    scl_grid = np.repeat(np.repeat(scl, 2, 0), 2, 1)
    assert np.isnan(b02[np.isin(scl_grid, (8, 9, 10))]).all()
    assert np.isfinite(b02[scl_grid == 5]).all()


def test_mask_classes_and_none(items):
    grid = grid_for(items, ("B02", "B8A"), None)
    only_high = load_reflectance(items, grid, 240, mask_classes=(9,)).compute(scheduler="sync")
    with rasterio.open(SAMPLE_DIR / "SCL.tif") as src:
        scl = src.read(1)
    assert np.array_equal(np.isnan(only_high.B02.values[0]), np.repeat(np.repeat(scl == 9, 2, 0), 2, 1))
    none = load_reflectance(items, grid, 240, mask="none").compute(scheduler="sync")
    assert not np.isnan(none.B02.values).any() and none.attrs["mask"]["mode"] == "none"
    # an item without SCL (L1C): nothing masked, and the summary says why
    l1c = [it.clone() for it in items]
    for it in l1c:
        it.assets.pop("scl")
    spec = resolve_mask(l1c, "scl")
    assert spec.mode == "none" and "no SCL" in spec.note
    assert MaskSpec.from_attrs(spec.attrs()) == spec


class CountingBicubic(BicubicPredictor):
    calls: list[int] = []

    def predict_bands_t(self, *args, **kwargs):  # what the chunk function calls, once per block
        CountingBicubic.calls.append(1)
        return super().predict_bands_t(*args, **kwargs)


def _cores_empty(ds, ych, xch) -> np.ndarray:
    x = np.stack([ds[b].values[0] for b in ds.data_vars if ds[b].dims == ("time", "y", "x")])
    y0s, x0s = np.cumsum([0, *ych[:-1]]), np.cumsum([0, *xch[:-1]])
    return np.array([[np.isnan(x[:, a:a + h, c:c + w]).all() for c, w in zip(x0s, xch)] for a, h in zip(y0s, ych)])


def test_empty_chunks_skipped_and_counted_and_invariant(masked, tmp_path):
    # an all-nodata chunk besides the cloud-masked ones: blank out the lower right 48 x 48 input pixels. Without
    # the 60 m bands the halo (20 px) allows 48-px chunks, fine enough for a chunk the clouds empty entirely.
    bands = tuple(b for b in ALL_BANDS if b not in ("B01", "B09"))
    ds = masked[list(bands)].copy(deep=True).compute()
    for b in bands:
        ds[b].values[0, 192:, 192:] = np.nan
    out = super_resolve(ds, 4, CountingBicubic(), chunk=48, quantize=False)
    ych, xch = (list(v) for v in out.attrs["chunk_input"])
    empty = _cores_empty(ds, ych, xch)
    assert empty[-1, -1] and 2 <= empty.sum() < empty.size
    CountingBicubic.calls.clear()
    with dask.config.set(scheduler="sync"):
        rep = write_output(out, str(tmp_path / "m.zarr"), dtype="float32")
    # the model ran once per non-empty chunk, never for an empty one
    assert len(CountingBicubic.calls) == empty.size - empty.sum()
    assert rep.chunks_empty == empty.sum() and rep.chunks_computed == empty.size
    store = xr.open_zarr(tmp_path / "m.zarr", consolidated=False)
    assert np.isnan(store.B02.values[0, 192 * 4:, 192 * 4:]).all()
    assert int(store.attrs["chunks_empty"]) == empty.sum()
    # partly masked chunks: the same output whatever the chunking
    whole = super_resolve(ds, 4, BicubicPredictor(), chunk=240, quantize=False).compute(scheduler="sync")
    for b in ("B02", "B05", "B11"):
        a, w = store[b].values, whole[b].values
        assert np.array_equal(np.isnan(a), np.isnan(w)), b
        assert np.nanmax(np.abs(a - w)) <= 1e-6, b
    text = summary(RunResult(out=str(tmp_path / "m.zarr"), items=["x"], bands=list(bands), scale=4, seconds=1,
                             area_km2=1, output_bytes=1, shape=(1, 960, 960), stats=rep.table, sam=rep.sam,
                             chunks_total=rep.chunks_total, chunks_computed=rep.chunks_computed))
    assert f"chunks:   {empty.size - empty.sum()} computed, {empty.sum()} empty" in text
    assert "mask:     scl: classes 0,1,3,8,9,10" in text and "% of the input pixels masked" in text
    assert "point, bicubic reference" in text and "nan deg" not in text


def test_empty_block_never_reaches_the_predictor():
    spec = B.BlockSpec(4, (1, 2, 6), 12)
    block = np.full((1, 3, 48, 48), np.nan, np.float32)
    block[:, :, :12] = 0.1  # valid values in the halo only: still empty
    CountingBicubic.calls.clear()
    y, sums = B.super_resolve_block_sums(block, CountingBicubic(), spec)
    assert not CountingBicubic.calls and np.isnan(y).all() and y.shape == (1, 4, 96, 96)
    assert sums[..., 0].sum() == 0 and (sums[:, :, :3, -1] == 24 * 24).all()


def test_masked_statistics_equal_hand_computed(masked, tmp_path):
    out = super_resolve(masked, 4, BicubicPredictor(), chunk=96, quantize=False)
    with dask.config.set(scheduler="sync"):
        rep = write_output(out, str(tmp_path / "s.zarr"), dtype="float32")
    res = xr.open_zarr(tmp_path / "s.zarr", consolidated=False)
    for b in ("B02", "B8A", "B09"):
        f = FACTORS.get(b, 1)
        x = masked[b].values[0].astype(np.float64)
        y = res[b].values[0].astype(np.float64)
        # point: every output pixel vs the input pixel containing it, valid pairs only
        xp = np.repeat(np.repeat(x, 4, 0), 4, 1)
        ok = np.isfinite(xp) & np.isfinite(y)
        d = y[ok] - xp[ok]
        assert ok.sum() == np.isfinite(x).sum() * 16  # masked footprints are left out, nothing else
        assert rep.table["point"][b]["n"] == ok.sum()
        assert rep.table["point"][b]["rmse"] == pytest.approx(np.sqrt((d ** 2).mean()), rel=1e-6)
        assert rep.table["point"][b]["bias"] == pytest.approx(d.mean(), rel=1e-5, abs=1e-12)
        assert rep.table["point"][b]["r"] == pytest.approx(np.corrcoef(xp[ok], y[ok])[0, 1], rel=1e-9)
        # consistency: output averaged over each native footprint vs the input
        k = 4 * f
        h, w = y.shape[0] // k, y.shape[1] // k
        means = np.repeat(np.repeat(y.reshape(h, k, w, k).mean(axis=(1, 3)), f, 0), f, 1)
        okc = np.isfinite(means) & np.isfinite(x)
        assert rep.table["consistency"][b]["n"] == okc.sum() == np.isfinite(x).sum()
        assert rep.table["consistency"][b]["rmse"] == pytest.approx(
            np.sqrt(((means[okc] - x[okc]) ** 2).mean()), abs=1e-9)
        assert int(res.invalid_pixels.sel(band=b)) == np.isnan(x).sum()
        assert res.stats_n.sel(comparison="point", band=b) == ok.sum()
    frac = np.mean([np.isnan(masked[b].values).mean() for b in ALL_BANDS])
    assert rep.masked_fraction == pytest.approx(frac, rel=1e-12)
    assert res.attrs["masked_fraction"] == pytest.approx(frac, rel=1e-12)


def test_statistics_are_labelled(masked, tmp_path):
    out = super_resolve(masked[["B02", "B03", "B04"]], 2, BicubicPredictor(), chunk=120)
    with dask.config.set(scheduler="sync"):
        write_output(out, str(tmp_path / "l.zarr"))
    res = xr.open_zarr(tmp_path / "l.zarr", consolidated=False)
    for v in ("stats", "sam_deg", "chunk_stats", "chunk_sam_deg", "stats_n", "chunk_stats_n"):
        assert res[v].attrs["long_name"] and "units" in res[v].attrs, v
    assert "output minus input" in res.stats.attrs["definition"].replace("(output - input)", "output minus input")
    assert list(res.comparison.values) == ["consistency", "point", "point_bicubic"]
    # chunk centres in the store CRS
    assert res.chunk_x.values.tolist() == pytest.approx(
        [float(res.x.values[:240].mean()), float(res.x.values[240:].mean())])
    assert res.chunk_y.attrs["units"] == "m"
    assert res["sum"].values[0] == "consistency/B02/n" and len(res["sum"]) == res.chunk_sums.sizes["sum"]


def _two_dates(items, tmp_path):
    """The real sample item twice: as acquired, and five days later with its SCL turned upside down (so each pixel
    is valid on 0, 1 or 2 dates)."""
    with rasterio.open(SAMPLE_DIR / "SCL.tif") as src:
        profile, scl = src.profile, src.read(1)
    folder = tmp_path / "d2"
    shutil.copytree(SAMPLE_DIR, folder)
    with rasterio.open(folder / "SCL2.tif", "w", **profile) as dst:
        dst.write(scl[::-1].copy(), 1)
    d = json.loads((SAMPLE_DIR / "item.json").read_text())
    d["links"] = []
    for asset in d["assets"].values():
        asset["href"] = str(SAMPLE_DIR / asset["href"].split("/")[-1])
    a = pystac.Item.from_dict(copy.deepcopy(d))
    d["id"] = d["id"].replace("20200219", "20200224")
    d["properties"]["datetime"] = d["properties"]["datetime"].replace("2020-02-19", "2020-02-24")
    d["assets"]["scl"]["href"] = str(folder / "SCL2.tif")
    b = pystac.Item.from_dict(d)
    return [a, b], scl


def test_median_composite_of_two_dates(items, tmp_path):
    two, scl = _two_dates(items, tmp_path)
    grid = grid_for(two, ("B02", "B05"), None)
    per_date = load_reflectance(two, grid, 240).compute(scheduler="sync")
    assert per_date.sizes["time"] == 2
    comp = load_reflectance(two, grid, 240, composite="median").compute(scheduler="sync")
    assert comp.sizes["time"] == 1 and comp.attrs["composite_items"] == [it.id for it in two]
    good = lambda s: ~np.repeat(np.repeat(np.isin(s, DEFAULT_MASK_CLASSES), 2, 0), 2, 1)  # noqa: E731
    count = good(scl).astype(int) + good(scl[::-1]).astype(int)
    assert np.array_equal(comp.obs_count.values[0], count)
    assert set(np.unique(count)) == {0, 1, 2}
    med = np.nanmedian(per_date.B02.values, axis=0)
    assert np.array_equal(np.isnan(comp.B02.values[0]), count == 0)
    assert np.allclose(comp.B02.values[0], med, equal_nan=True)
    # the model runs once, on the composite
    out = super_resolve(comp, 2, BicubicPredictor(), chunk=120, quantize=True)
    assert out.sizes["time"] == 1 and out.attrs["composite_items"] == [it.id for it in two]
    # the count layer reaches the store on the output grid (each output pixel: its input pixel's count), is
    # covered by the chunk checksums, and reads back as counts
    import zarr

    from s2sr_cloud.io.store import open_output
    from s2sr_cloud.pipeline.verify import verify_store
    from s2sr_cloud.pipeline.write import write_output

    url = str(tmp_path / "composite.zarr")
    with dask.config.set(scheduler="sync"):
        write_output(out, url)
    stored = zarr.open_group(url, mode="r")["obs_count"]
    assert stored.dtype == np.uint16 and np.array_equal(stored[0], np.repeat(np.repeat(count, 2, 0), 2, 1))
    assert np.array_equal(open_output(url).obs_count.values[0], np.repeat(np.repeat(count, 2, 0), 2, 1))
    rep = verify_store(url, sample=0)  # (written without `s2sr run`: no job attributes)
    assert not rep.bad and rep.chunks == 4 and all("job_spec" in p or "stac_items" in p for p in rep.problems)
    g = zarr.open_group(url, mode="r+")
    g["obs_count"][0, :120, :120] = 2  # a count changed after the write: the chunk checksum catches it
    assert list(verify_store(url, sample=0).bad) == [(0, 0, 0)]


def _tile_item(folder) -> pystac.Item:
    """The whole decimated tile's real earth-search item, hrefs and grids patched for the local COGs."""
    d = json.loads((folder / "S2A_29RKH_20200219_0_L2A.json").read_text())
    for key, asset in d["assets"].items():
        name = asset["href"].split("/")[-1].split(".")[0]
        path = folder / f"{name}.tif"
        if not path.exists():
            continue
        with rasterio.open(path) as src:
            asset["href"] = str(path)
            asset["proj:shape"] = [src.height, src.width]
            asset["proj:transform"] = list(src.transform)[:6]
            for rb in asset.get("raster:bands", []):
                rb["spatial_resolution"] = float(src.transform.a)
    d["assets"] = {k: v for k, v in d["assets"].items() if v["href"].startswith("/")}
    d["links"] = []
    return pystac.Item.from_dict(copy.deepcopy(d))


def test_whole_tile_scl_mask():
    folder = need_shared("s2a_29rkh_20200219_l2a_decimated")
    item = _tile_item(folder)
    assert "scl" in item.assets
    grid = grid_for([item], ("B02",), None)
    ds = load_reflectance([item], grid, 1098).compute(scheduler="sync")
    with rasterio.open(folder / "SCL.tif") as src:
        scl = src.read(1)
    bad = np.repeat(np.repeat(np.isin(scl, DEFAULT_MASK_CLASSES), 2, 0), 2, 1)[:1098, :1098]
    with rasterio.open(folder / "B02.tif") as src:
        bad |= src.read(1) == 0
    assert np.array_equal(np.isnan(ds.B02.values[0]), bad)
    assert 0.01 < bad.mean() < 0.2  # 4.1% of the tile: cloud 8/9 and thin cirrus 10


def test_reflectance_block_scales_masks_and_keeps_whole_footprints():
    """The loader's one task per block (numpy in, numpy out): per-time scale and offset, nodata and masked SCL
    classes to NaN, and for a 20 m band (factor 2) a pixel stays only where its whole 2 x 2 footprint is clear."""
    from s2sr_cloud.io.load import _reflectance_block

    dn = np.full((2, 4, 4), 1000, np.uint16)
    dn[0, 0, 0] = 0  # nodata
    scl = np.full((2, 4, 4), 4, np.uint16)
    scl[1, 2, 3] = 9  # cloud (high probability), one 10 m pixel of the lower right footprint at t=1
    kw = dict(scale=np.array([1e-4, 2e-4], np.float32), offset=np.array([-0.1, 0.0], np.float32), nodata=0,
              classes=np.array([8, 9, 10], np.uint16))
    y1 = _reflectance_block(dn, scl, factor=1, **kw)
    assert y1.dtype == np.float32
    assert np.isnan(y1[0, 0, 0]) and np.isnan(y1[1, 2, 3]) and np.isnan(y1).sum() == 2
    assert y1[0, 1, 1] == np.float32(1000) * np.float32(1e-4) + np.float32(-0.1)
    assert y1[1, 0, 0] == np.float32(1000) * np.float32(2e-4)
    y2 = _reflectance_block(dn, scl, factor=2, **kw)
    assert np.isnan(y2[1, 2:, 2:]).all() and np.isnan(y2[0, :2, :2]).all() and np.isnan(y2).sum() == 8
    # the time steps of a later block take their own scale (block_info's array location)
    later = _reflectance_block(dn[1:], scl[1:], factor=1, block_info={0: {"array-location": [(1, 2), (0, 4), (0, 4)]}},
                               **kw)
    assert np.array_equal(later, y1[1:], equal_nan=True)
    plain = dn.astype(np.float32) * kw["scale"][:, None, None] + kw["offset"][:, None, None]
    assert np.array_equal(_reflectance_block(dn, None, factor=2, **kw), np.where(dn == 0, np.nan, plain),
                          equal_nan=True)  # no SCL: nodata alone, no footprint rule
