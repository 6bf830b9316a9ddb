"""The whole job against real local servers: rustac (STAC API) and moto_server (S3), COGs in the bucket, output
to s3:// and to a local path; bad input through the real CLI."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr

from s2sr_cloud.catalog.server import SAMPLE_DIR, sample_items, serve_items
from s2sr_cloud.config import JobConfig
from s2sr_cloud.errors import OutputError
from s2sr_cloud.io.store import open_output, storage_options
from s2sr_cloud.pipeline.run import run_job

from .conftest import make_bucket, upload_sample

S2SR = [sys.executable, "-m", "s2sr_cloud.cli"]
RGB = "B02,B03,B04,B05,B8A"


def _check_output(ds: xr.Dataset, bands: list[str], scale: int) -> None:
    assert ds.attrs["s2sr_status"] == "complete"
    assert ds.rio.crs.to_epsg() == 32629
    tr = ds.rio.transform()
    assert tr.a == pytest.approx(100 / scale) and tr.c == pytest.approx(283980.0)
    assert ds.attrs["stac_items"] == ["S2A_29RKH_20200219_0_L2A"]
    assert ds.attrs["model"] == "bicubic" and ds.attrs["scale"] == scale
    assert ds["B04"].dtype == np.float32  # stored as uint16 DN (tests/test_safety.py reads the array metadata)
    for b in bands:
        f = {"B05": 2, "B8A": 2}.get(b, 1)
        with rasterio.open(SAMPLE_DIR / f"{b}.tif") as src:
            native = src.read(1).astype(np.float64) * 1e-4
        y = ds[b].values[0].astype(np.float64)
        k = f * scale
        back = y.reshape(y.shape[0] // k, k, y.shape[1] // k, k).mean(axis=(1, 3))
        ok = np.isfinite(back)  # masked footprints (SCL) are fill
        assert ok.mean() > 0.3 and np.abs(back - native)[ok].max() < 1e-5  # the STORED product is consistent
    stats = ds["stats"].sel(comparison="consistency", metric="rmse").values
    assert (stats < 1e-6).all()
    assert ds["chunk_stats"].sizes["chunk_y"] == 2


@pytest.mark.slow
def test_s3_in_s3_out_then_local(s3_env, dask_cluster, tmp_path):
    items = upload_sample(s3_env, "sentinel-cogs")
    assert items[0]["assets"]["blue"]["href"].startswith("s3://sentinel-cogs/")
    make_bucket(s3_env, "results")
    with serve_items(items) as url:
        cfg = JobConfig(out="s3://results/run1.zarr", catalog=url, bands=tuple(RGB.split(",")), scale=2,
                        bbox=(-11.2, 24.9, -10.8, 25.3), datetime="2020-02-01/2020-02-28", max_cloud=20, chunk=120,
                        quicklook=str(tmp_path))
        # the cluster's workers were started WITHOUT the S3 settings: they travel with the tasks
        (res,) = run_job(cfg, progress=False, client=dask_cluster)
        assert res.quicklook and Path(res.quicklook).stat().st_size > 10_000
        ds = open_output("s3://results/run1.zarr")
        _check_output(ds, RGB.split(","), 2)
        import s3fs

        fs = s3fs.S3FileSystem(key="testing", secret="testing", client_kwargs={"endpoint_url": s3_env})
        for key in fs.find("results/run1.zarr"):  # credentials reach no object of the store, attributes or data
            assert b"testing" not in fs.cat(key), key
        local = tmp_path / "run1.zarr"
        run_job(cfg.replace(out=str(local)), progress=False, client=dask_cluster)
        loc = open_output(str(local))
        _check_output(loc, RGB.split(","), 2)
        for b in RGB.split(","):
            assert np.array_equal(loc[b].values, ds[b].values, equal_nan=True)


def _cli(*args, cwd=None, env=None):
    return subprocess.run(S2SR + list(args), capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.mark.slow
def test_cli_default_sample_run_and_refusal_to_overwrite(tmp_path):
    out = tmp_path / "demo.zarr"
    r = _cli("run", "--out", str(out), "--chunk", "120", "--no-progress", "--bands", "B02,B03,B04,B11")
    assert r.returncode == 0, r.stderr
    assert "consistency" in r.stdout and "B11" in r.stdout and "SAM" in r.stdout
    assert (tmp_path / "demo_quicklook.png").exists()
    ds = open_output(str(out))
    assert ds.B11.shape == (1, 960, 960)
    r = _cli("run", "--out", str(out), "--no-progress")  # another job (all bands) against this store
    assert r.returncode == 7 and "was made by a different job" in r.stderr and "--overwrite" in r.stderr
    assert "bands" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert open_output(str(out)).attrs["created"] == ds.attrs["created"]  # untouched
    r = _cli("run", "--out", str(out), "--chunk", "120", "--no-progress", "--bands", "B02,B03,B04,B11")
    assert r.returncode == 0 and "0 computed, 4 already done, 4 in all" in r.stdout  # the same job: nothing to do


@pytest.mark.parametrize("args,code,message", [
    (["--catalog", "http://127.0.0.1:9"], 3, "cannot reach the STAC API"),
    (["--bbox", "0,0,1,1"], 4, "no sentinel-2-l2a scenes"),
    (["--datetime", "2019-01-01/2019-02-01"], 4, "no sentinel-2-l2a scenes"),
    (["--bbox", "10,5,9,6"], 2, "--bbox"),
    (["--datetime", "last tuesday"], 2, "--datetime"),
    (["--bands", "B02,B99"], 2, "unknown band"),
    (["--scale", "1"], 2, "--scale"),
    (["--model", "nope"], 8, "unknown model"),
    (["--ensemble", "3"], 2, "--ensemble must be one of 1, 2, 4, 8"),
    (["--chunk", "60"], 2, "halo"),
])
def test_cli_bad_input_one_line_error(tmp_path, args, code, message):
    out = tmp_path / "x.zarr"
    r = _cli("run", "--out", str(out), "--no-progress", *args)
    assert r.returncode == code, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert not out.exists()  # nothing written


def _items_with(tmp_path, mutate) -> list[dict]:
    items = sample_items()
    mutate(items[0], tmp_path)
    return items


def _drop_asset(item, _):
    del item["assets"]["swir16"]


def _corrupt_cog(item, tmp_path):
    bad = tmp_path / "B03.tif"
    data = (SAMPLE_DIR / "B03.tif").read_bytes()
    bad.write_bytes(data[:2000] + b"\0" * (len(data) - 2000))  # header intact, tiles destroyed
    item["assets"]["green"]["href"] = bad.as_uri()


def test_item_missing_an_asset(tmp_path):
    with serve_items(_items_with(tmp_path, _drop_asset)) as url:
        r = _cli("run", "--out", str(tmp_path / "o.zarr"), "--catalog", url, "--no-progress")
    assert r.returncode == 5 and "no asset for band B11" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.zarr").exists()


def test_unreadable_cog_fails_and_leaves_no_valid_store(tmp_path):
    with serve_items(_items_with(tmp_path, _corrupt_cog)) as url:
        r = _cli("run", "--out", str(tmp_path / "o.zarr"), "--catalog", url, "--no-progress", "--bands",
                 "B02,B03,B04", "--chunk", "120")
    assert r.returncode == 6, r.stderr
    assert "reading an input raster failed" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    with pytest.raises(OutputError, match="incomplete"):
        open_output(str(tmp_path / "o.zarr"))


def test_storage_options_from_environment(monkeypatch):
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("S2SR_S3_ENDPOINT", "http://127.0.0.1:1234")
    assert storage_options("s3://b/k.zarr") == {"max_concurrency": 1,
                                                "client_kwargs": {"endpoint_url": "http://127.0.0.1:1234"}}
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AK")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SK")
    assert storage_options("s3://b/k.zarr")["secret"] == "SK"
    assert storage_options("/tmp/x.zarr") == {}


def _serve_with_ranges(root: Path):
    """A static file server with HTTP Range support (what GDAL's /vsicurl needs), on loopback."""
    import io
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class H(SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *args):
            return None

        def send_head(self):
            rng = self.headers.get("Range")
            path = Path(self.translate_path(self.path))
            if not rng or not path.is_file():
                return super().send_head()
            data = path.read_bytes()
            start, _, end = rng.removeprefix("bytes=").partition("-")
            start, end = int(start), min(int(end) if end else len(data) - 1, len(data) - 1)
            self.send_response(206)
            self.send_header("Content-Type", "image/tiff")
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            return io.BytesIO(data[start:end + 1])

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.slow
def test_cogs_over_http_give_the_same_output(tmp_path, dask_cluster):
    server = _serve_with_ranges(SAMPLE_DIR)
    try:
        items = sample_items()
        port = server.server_address[1]
        for asset in items[0]["assets"].values():
            asset["href"] = f"http://127.0.0.1:{port}/{Path(asset['href']).name}"
        bands = ("B02", "B04", "B11")
        with serve_items(items) as url:
            run_job(JobConfig(out=str(tmp_path / "http.zarr"), catalog=url, bands=bands, scale=2, chunk=120),
                    progress=False, client=dask_cluster)
        run_job(JobConfig(out=str(tmp_path / "file.zarr"), bands=bands, scale=2, chunk=120), progress=False,
                client=dask_cluster)
    finally:
        server.shutdown()
    a, b = open_output(str(tmp_path / "http.zarr")), open_output(str(tmp_path / "file.zarr"))
    for band in bands:
        assert np.array_equal(a[band].values, b[band].values, equal_nan=True)
    assert not np.isnan(a["B02"].values).all()
