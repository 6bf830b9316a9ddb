"""Overviews (``io/overviews.py``): each level's block means from a pyramid of 2 x 2 sums, on real reflectance with
nodata holes and sides that no level divides."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest
import rasterio
import rioxarray  # noqa: F401 (the .rio accessor)
import xarray as xr

from s2sr_cloud.io import overviews, store

SAMPLE = store.__file__.rsplit("/io/", 1)[0] + "/sample10m"


@pytest.fixture(scope="module")
def field() -> np.ndarray:
    """(1, 901, 653) float32: the embedded sample's B04 (real 10 m reflectance) replicated 4x and cut to odd
    sides, with a nodata hole and a nodata row."""
    with rasterio.open(f"{SAMPLE}/B04.tif") as src:
        dn = src.read(1).astype(np.float32)
    x = np.kron(dn * 1e-4 - 0.1, np.ones((4, 4), np.float32))[:901, :653].copy()
    x[100:230, 300:417] = np.nan
    x[777, :] = np.nan
    return x[None]


def _want(x: np.ndarray, f: int) -> tuple[np.ndarray, np.ndarray]:
    """numpy reference: (sum, count) of the valid pixels over f x f blocks, partial blocks at the ends."""
    t, h, w = x.shape
    hp, wp = -(-h // f) * f, -(-w // f) * f
    p = np.full((t, hp, wp), np.nan)
    p[:, :h, :w] = x
    v = p.reshape(t, hp // f, f, wp // f, f)
    return np.nansum(v, axis=(2, 4)), (~np.isnan(v)).sum(axis=(2, 4))


@pytest.mark.parametrize("chunk", [130, 300, 901])
def test_level_sums_equal_the_block_sums_of_the_full_resolution(field, chunk):
    levels = overviews.level_sums(da.from_array(field, chunks=(1, chunk, chunk)), 5)
    for i, sk in enumerate(levels):
        s, k = sk[:, 0], sk[:, 1]
        f = 2 ** (i + 1)
        ws, wk = _want(field.astype(np.float64), f)
        assert s.shape == ws.shape == k.shape
        assert np.array_equal(k.compute(), wk), f
        assert np.allclose(s.compute(), ws, rtol=1e-12, atol=1e-9), f


def _reaches(arr: da.Array, target: str, stop: set[str]) -> bool:
    """Whether ``arr``'s graph reaches the layer ``target`` without passing through a layer in ``stop``."""
    deps, todo, seen = arr.dask.dependencies, [arr.name], set()
    while todo:
        name = todo.pop()
        if name == target:
            return True
        if name not in seen and name not in stop:
            seen.add(name)
            todo.extend(deps.get(name, ()))
    return False


def test_only_the_first_level_reads_the_full_resolution(field):
    """The levels above 2 are made from the level below, not from the full resolution (which would keep every
    full-resolution block in memory until all levels had read it)."""
    v = da.from_array(field, chunks=(1, 300, 300))
    levels = overviews.level_sums(v, 3)
    for i, sk in enumerate(levels):
        below = {levels[i - 1].name} if i else set()
        assert _reaches(sk, v.name, below) == (i == 0), i


@pytest.mark.parametrize("where", ["threads", "cluster"])
def test_write_overviews_gives_block_means_of_the_store(field, tmp_path, where, request, monkeypatch):
    """A small store's levels are computed in this process on threads, a large one's on the cluster (here: the
    same store with the threshold at 0), with the same result."""
    client = request.getfixturevalue("dask_cluster")  # the default scheduler in both cases
    if where == "cluster":
        monkeypatch.setattr(overviews, "LOCAL_BYTES", 0)
    url = str(tmp_path / "o.zarr")
    ny, nx = field.shape[1:]
    ds = xr.Dataset({"B04": (("time", "y", "x"), field)},
                    coords={"time": [np.datetime64("2020-02-19")], "y": 4e6 - np.arange(ny) * 2.5 - 1.25,
                            "x": 5e5 + np.arange(nx) * 2.5 + 1.25}).chunk({"time": 1, "y": 240, "x": 240})
    ds.to_zarr(url, zarr_format=3, consolidated=False, encoding={"B04": {
        "dtype": "uint16", "scale_factor": np.float32(1e-4), "add_offset": np.float32(-0.1),
        "_FillValue": store.FILL_DN}})
    def transitions() -> int:  # task state transitions on the cluster so far (only ever grows)
        return client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter)

    before = transitions()
    meta = overviews.write_overviews(url, ["B04"], 3)
    # measured: 369 transitions when the levels ran on the cluster, 25 (xarray's own small computes) on threads
    assert (transitions() - before > 200) == (where == "cluster"), transitions() - before
    assert [d["scale"] for d in meta["multiscales"][0]["datasets"]] == [1, 2, 4]
    full = xr.open_zarr(url, consolidated=False)["B04"].values.astype(np.float64)  # after the DN rounding
    for f in (2, 4):
        got = xr.open_zarr(url, group=f"{store.OVERVIEWS}/{f}", consolidated=False)["B04"].values
        s, k = _want(full, f)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            want = s / np.where(k > 0, k, np.nan)
        assert got.shape == want.shape == (1, -(-ny // f), -(-nx // f))
        assert np.isnan(got[0, 100 // f + 1, 320 // f]) and np.isnan(want[0, 100 // f + 1, 320 // f])
        assert np.allclose(got, want, atol=0.6e-4, equal_nan=True)  # one rounding to the 1e-4 DN grid
        # exactly: the level's DN are the rounded mean of the stored DN (integer sums, no decode to float and back)
        dn = xr.open_zarr(url, consolidated=False, mask_and_scale=False)["B04"].values
        s_dn, k_dn = _want(np.where(dn == store.FILL_DN, np.nan, dn.astype(np.float64)), f)
        with np.errstate(invalid="ignore", divide="ignore"):
            want_dn = np.where(k_dn > 0, np.rint(s_dn / k_dn), store.FILL_DN)
        got_dn = xr.open_zarr(url, group=f"{store.OVERVIEWS}/{f}", consolidated=False, mask_and_scale=False)
        assert got_dn["B04"].dtype == np.uint16 and np.array_equal(got_dn["B04"].values, want_dn)


@pytest.mark.parametrize("where", ["here", "dask"])
def test_write_overviews_sums_each_block_once(field, tmp_path, monkeypatch, where):
    """Every level's sums are computed once per block, however many levels use them. One store per level (xarray's
    to_zarr each) had dask fuse each level's chain from the full resolution into that level's own tasks: the full
    resolution was summed once per level (on the whole tile: 5 times, 65 s of a 101 s GPU run). A small store's
    levels are made in this process from the whole array: one call each."""
    if where == "dask":
        monkeypatch.setattr(overviews, "LOCAL_BYTES", 0)
    url = str(tmp_path / "o.zarr")
    ny, nx = field.shape[1:]
    ds = xr.Dataset({"B04": (("time", "y", "x"), field)},
                    coords={"time": [np.datetime64("2020-02-19")], "y": 4e6 - np.arange(ny) * 2.5 - 1.25,
                            "x": 5e5 + np.arange(nx) * 2.5 + 1.25}).chunk({"time": 1, "y": 240, "x": 240})
    ds.to_zarr(url, zarr_format=3, consolidated=False)
    calls = {"_first_sums": 0, "_next_sums": 0}
    for name in calls:
        def counted(block, *args, _f=getattr(overviews, name), _n=name):
            calls[_n] += block.size > 0  # not dask's meta calls on empty arrays
            return _f(block, *args)
        monkeypatch.setattr(overviews, name, counted)
    import dask

    with dask.config.set(scheduler="threads"):  # in this process, where the counters are (not a shared cluster)
        meta = overviews.write_overviews(url, ["B04"], 3)
    levels = overviews.level_sums(da.from_array(field, chunks=(1, 240, 240)), 2)
    assert [d["scale"] for d in meta["multiscales"][0]["datasets"]] == [1, 2, 4]
    want = {"_first_sums": levels[0].npartitions, "_next_sums": levels[1].npartitions} if where == "dask" else \
        {"_first_sums": 1, "_next_sums": 1}
    assert calls == want, calls


@pytest.mark.parametrize("fmt", [2, 3])
def test_levels_are_stored_as_the_full_resolution_is(field, tmp_path, fmt):
    """Each level's arrays carry the full-resolution array's dtype, fill value, CF attributes and dimension names,
    and every array of a level (coordinates too) the store's checksum; the time and CRS coordinates are the
    full resolution's own."""
    import zarr

    url = str(tmp_path / "o.zarr")
    ny, nx = field.shape[1:]
    ds = xr.Dataset({"B04": (("time", "y", "x"), field)},
                    coords={"time": [np.datetime64("2020-02-19T11:34:25")], "y": 4e6 - np.arange(ny) * 2.5 - 1.25,
                            "x": 5e5 + np.arange(nx) * 2.5 + 1.25}).chunk({"time": 1, "y": 240, "x": 240})
    ds = ds.rio.write_crs("EPSG:32629")
    ds["B04"].attrs = {"long_name": "B04", "grid_mapping": "spatial_ref"}
    enc = {n: {"compressors": store.compressors(fmt)} for n in ("B04", "time", "x", "y", "spatial_ref")}
    enc["B04"] |= {"dtype": "uint16", "scale_factor": np.float32(1e-4), "add_offset": np.float32(-0.1),
                   "_FillValue": store.FILL_DN}
    ds.to_zarr(url, zarr_format=fmt, consolidated=False, encoding=enc)
    meta = overviews.write_overviews(url, ["B04"], fmt)
    root = zarr.open_group(url, mode="r", use_consolidated=False)
    full = xr.open_zarr(url, consolidated=False, decode_coords="all")
    for level in meta["multiscales"][0]["datasets"][1:]:
        g = root[level["path"]]
        assert sorted(g.array_keys()) == ["B04", "spatial_ref", "time", "x", "y"]
        a, b = root["B04"], g["B04"]
        assert (b.dtype, b.fill_value, b.shape[1:]) == (a.dtype, a.fill_value, tuple(level["shape"]))
        assert dict(b.attrs) == dict(a.attrs) | {"overview_factor": level["scale"]}
        for name in g.array_keys():
            assert repr(g[name].compressors) == repr(root[name].compressors), name  # zstd + checksum
        lv = xr.open_zarr(url, group=level["path"], consolidated=False, decode_coords="all")
        assert lv.rio.crs == full.rio.crs and lv["time"].values[0] == full["time"].values[0]
        assert lv["B04"].dtype == full["B04"].dtype and lv["B04"].attrs["long_name"] == "B04"


def test_levels_made_with_the_template_are_filled_in_place_and_an_append_remakes_them(field, tmp_path, monkeypatch):
    """``create_levels`` (at the template) makes the levels' arrays; ``write_overviews`` then only computes into
    them. A store grown along time (an append) gets its levels made anew, over every time step."""
    url = str(tmp_path / "o.zarr")
    ny, nx = field.shape[1:]

    def step(day: str, values: np.ndarray) -> xr.Dataset:
        return xr.Dataset({"B04": (("time", "y", "x"), values)},
                          coords={"time": [np.datetime64(day)], "y": 4e6 - np.arange(ny) * 2.5 - 1.25,
                                  "x": 5e5 + np.arange(nx) * 2.5 + 1.25}).chunk({"time": 1, "y": 240, "x": 240})

    enc = {"B04": {"dtype": "uint16", "scale_factor": np.float32(1e-4), "add_offset": np.float32(-0.1),
                   "_FillValue": store.FILL_DN}}
    step("2020-02-19", field).to_zarr(url, zarr_format=3, consolidated=False, encoding=enc)
    overviews.create_levels(url, ["B04"], 3)
    made = []
    real = overviews._make_like
    monkeypatch.setattr(overviews, "_make_like", lambda root, groups, jobs: made.extend(
        j[0].rsplit("/", 1)[-1] for j in jobs) or real(root, groups, jobs))
    overviews.write_overviews(url, ["B04"], 3)
    assert made == []  # filled in place
    level = xr.open_zarr(url, group=f"{store.OVERVIEWS}/2", consolidated=False)["B04"]
    assert level.shape == (1, -(-ny // 2), -(-nx // 2)) and np.isfinite(level.values).mean() > 0.9
    later = np.where(np.isnan(field), np.nan, field + 0.01).astype(np.float32)
    step("2020-03-20", later).to_zarr(url, append_dim="time", consolidated=False)
    meta = overviews.write_overviews(url, ["B04"], 3)
    assert "B04" in made and "time" in made  # made anew: the store grew along time
    full = xr.open_zarr(url, consolidated=False)["B04"].values.astype(np.float64)
    for f in [d["scale"] for d in meta["multiscales"][0]["datasets"][1:]]:
        got = xr.open_zarr(url, group=f"{store.OVERVIEWS}/{f}", consolidated=False)
        assert list(got["time"].values) == list(xr.open_zarr(url, consolidated=False)["time"].values)
        s, k = _want(full, f)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            want = s / np.where(k > 0, k, np.nan)
        assert np.allclose(got["B04"].values, want, atol=0.6e-4, equal_nan=True)


def _two_var_store(url: str, field: np.ndarray, chunk: int) -> list[str]:
    """The field as uint16 DN (B04) and as float32 with NaN (detail), chunked as a run's blocks."""
    ny, nx = field.shape[1:]
    ds = xr.Dataset({"B04": (("time", "y", "x"), field), "detail": (("time", "y", "x"), field * 0.5)},
                    coords={"time": [np.datetime64("2020-02-19")], "y": 4e6 - np.arange(ny) * 2.5 - 1.25,
                            "x": 5e5 + np.arange(nx) * 2.5 + 1.25}).chunk({"time": 1, "y": chunk, "x": chunk})
    ds.to_zarr(url, zarr_format=3, consolidated=False, encoding={"B04": {
        "dtype": "uint16", "scale_factor": np.float32(1e-4), "add_offset": np.float32(-0.1),
        "_FillValue": store.FILL_DN}, "detail": {"dtype": "float32"}})
    return ["B04", "detail"]


@pytest.mark.parametrize("where", ["here", "dask", "strips"])
@pytest.mark.parametrize("chunk", [150, 240])
def test_levels_made_by_the_write_tasks_equal_those_made_from_the_store(field, tmp_path, monkeypatch, chunk, where):
    """Each block's task makes the levels whose pixels it holds whole (150 px blocks: level 2; 240 px: 2 and 4),
    and the finish makes the coarser ones from the tasks' sums without reading the full resolution: the levels are
    identical, DN for DN and float for float, to those made from the whole store (a 901 x 653 field with nodata,
    sides that no block or level divides). ``strips``: the tasks make them in strips of the fewest rows (as a
    7320 px x10 block's are made in strips)."""
    import dask
    import zarr

    if where == "dask":
        monkeypatch.setattr(overviews, "LOCAL_BYTES", 0)
    if where == "strips":
        monkeypatch.setattr(overviews, "LEVEL_STRIP_PX", 1)
    ny, nx = field.shape[1:]
    ych, xch = da.core.normalize_chunks(chunk, (ny, nx))
    tasks = overviews.block_levels(ych, xch, ("B04", "detail"))
    assert tasks == overviews.BlockLevels((2,) if chunk == 150 else (2, 4), (chunk, chunk), sums=chunk == 150,
                                          names=("B04", "detail"))
    assert overviews.BlockLevels.from_attrs(tasks.to_attrs()) == tasks
    urls = {k: str(tmp_path / f"{k}.zarr") for k in ("tasks", "whole")}
    names = [_two_var_store(u, field, chunk) for u in urls.values()][0]
    overviews.create_levels(urls["tasks"], names, 3, tasks)
    root = zarr.open_group(urls["tasks"], mode="r+", use_consolidated=False)
    root.attrs[overviews.TASKS_ATTR] = tasks.to_attrs()
    for y0 in np.cumsum((0,) + ych[:-1]):  # what the write tasks do, block by block
        for x0 in np.cumsum((0,) + xch[:-1]):
            for n in names:
                arr = root[n]
                values = arr[0, y0:y0 + chunk, x0:x0 + chunk]
                for path, region, data in overviews.block_level_writes(n, values, overviews.stored_fill(arr), 0,
                                                                        int(y0), int(x0), tasks):
                    root[path][region] = data
    assert (overviews.SUMS_GROUP in root) == tasks.sums
    calls = []
    real = overviews._first_sums
    monkeypatch.setattr(overviews, "_first_sums", lambda b, *a: calls.append(b.size) or real(b, *a))
    with dask.config.set(scheduler="threads"):
        meta = overviews.write_overviews(urls["tasks"], names, 3)
        assert not [c for c in calls if c]  # the full resolution was not read again
        assert overviews.write_overviews(urls["whole"], names, 3) == meta
    got, want = (zarr.open_group(u, mode="r", use_consolidated=False) for u in (urls["tasks"], urls["whole"]))
    assert overviews.SUMS_GROUP not in got
    assert [d["scale"] for d in meta["multiscales"][0]["datasets"]] == [1, 2, 4]
    for f in (2, 4):
        for n in names:
            a, b = got[f"{store.OVERVIEWS}/{f}/{n}"], want[f"{store.OVERVIEWS}/{f}/{n}"]
            assert np.array_equal(a[...], b[...], equal_nan=True), (f, n)
            assert a.chunks == ((1, -(-chunk // f), -(-chunk // f)) if f in tasks.factors else b.chunks)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_run_makes_its_levels_in_the_write_tasks(tmp_path, capsys, scheduler, monkeypatch, request, where):
    """``s2sr run`` at x10 on the sample, 4 x 4 chunks of 60 px: each write task makes levels 2, 4 and 8 of its
    600 px block, the finish makes level 16 from their sums without reading the bands. The levels equal those made
    from the finished store, and the complete store keeps neither the sums nor the task record. On local disk and
    on S3 (moto on loopback: the sums are written and deleted through s3fs)."""
    import shutil

    import zarr

    from s2sr_cloud.cli import main

    from .conftest import make_bucket

    out = str(tmp_path / "o.zarr")
    if where == "s3":
        make_bucket(request.getfixturevalue("s3_env"), "levels-out")
        out = "s3://levels-out/o.zarr"

    calls = []  # the finish's passes over the bands (a 3-D base: the full resolution), on threads or as a graph
    level_sums, here = overviews.level_sums, overviews._levels_here
    monkeypatch.setattr(overviews, "level_sums", lambda v, *a: (
        calls.append("dask") if v.ndim == 3 else None) or level_sums(v, *a))
    monkeypatch.setattr(overviews, "_levels_here", lambda src, *a: (
        calls.append("here") if src.ndim == 3 else None) or here(src, *a))
    monkeypatch.chdir(tmp_path)  # (a remote output's quick-look lands in the working directory)
    rc = main(["run", "--out", out, "--model", "bicubic", "--bands", "B02,B03,B04,B05", "--scale", "10",
               "--chunk", "66", "--mask", "none", "--no-progress", "--scheduler", scheduler])
    assert rc == 0, capsys.readouterr().err
    assert calls == []  # the finish did not read the bands back
    monkeypatch.setattr(overviews, "level_sums", level_sums)  # (not undo(): that would drop the S3 settings too)
    monkeypatch.setattr(overviews, "_levels_here", here)
    root = store._group(out, "r")
    assert root.attrs["chunk_input"] == [[60] * 4, [60] * 4]
    assert overviews.SUMS_GROUP not in root and overviews.TASKS_ATTR not in root.attrs
    assert [d["scale"] for d in root.attrs["multiscales"][0]["datasets"]] == [1, 2, 4, 8, 16]
    assert root[f"{store.OVERVIEWS}/2/B02"].chunks == (1, 300, 300)  # one chunk per block: its task's
    copy = tmp_path / "whole.zarr"
    if where == "s3":
        fs, path = store.filesystem(out)
        fs.get(path, str(copy), recursive=True)
    else:
        shutil.copytree(out, copy)
    names = ["B02", "B03", "B04", "B05", "detail"]
    overviews.write_overviews(str(copy), names, store.zarr_format_of(str(copy)))  # from the store's bands
    whole = zarr.open_group(str(copy), mode="r", use_consolidated=False)
    for f in (2, 4, 8, 16):
        for n in names:
            a, b = root[f"{store.OVERVIEWS}/{f}/{n}"][...], whole[f"{store.OVERVIEWS}/{f}/{n}"][...]
            assert np.array_equal(a, b, equal_nan=True), (f, n)
            assert (a != store.FILL_DN).any() if a.dtype == np.uint16 else np.isfinite(a).any()
