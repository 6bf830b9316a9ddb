"""Faults with real processes and real servers: a killed job resumes, a killed worker is survived, transient S3
errors through a fault-injecting proxy are retried, a permanently failing chunk is named, two runs cannot share a
store (tests/test_safety.py races real processes for the lease). Every recovered output is compared with a
fault-free run."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zarr

from s2sr_cloud.catalog.server import SAMPLE_DIR, sample_items, serve_items
from s2sr_cloud.cli import main
from s2sr_cloud.config import JobConfig
from s2sr_cloud.errors import OutputError
from s2sr_cloud.io.store import open_output
from s2sr_cloud.pipeline.cluster import dask_client
from s2sr_cloud.pipeline.run import run_job

from .conftest import make_bucket, upload_sample
from .faults import FaultProxy

BANDS = ("B02", "B03", "B04", "B05", "B11")
# no SCL mask: these tests count computed chunks, and the masked sample has an empty one
JOB = ["--bands", ",".join(BANDS), "--chunk", "66", "--scale", "4", "--no-progress", "--mask", "none"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, dask_cluster):
    """The fault-free output of the job every fault test runs (the CLI, in this process, on the shared cluster: a
    process of its own would only add interpreter and LocalCluster start-ups)."""
    out = tmp_path_factory.mktemp("ref") / "ref.zarr"
    assert main(["run", "--out", str(out), *JOB, "--scheduler", dask_cluster.scheduler.address]) == 0
    ref = open_output(str(out)).load()
    ref.attrs["levels"] = _levels(str(out))
    return ref


def _levels(url):
    """Every overview level's raw values (made by the write tasks: 240 px blocks hold levels 2 and 4 whole)."""
    g = zarr.open_group(url, mode="r", use_consolidated=False)
    return {f"{d['path']}/{v}": g[f"{d['path']}/{v}"][...] for d in g.attrs["multiscales"][0]["datasets"][1:]
            for v in (*BANDS, "detail")}


def _same(a, b, url=None):
    """Output ``a`` (at ``url``, for its levels) equals the fault-free reference ``b``."""
    for v in (*BANDS, "detail"):
        assert np.array_equal(a[v].values, b[v].values, equal_nan=True), v
    assert np.array_equal(a["chunk_sums"].values, b["chunk_sums"].values)
    if url is not None:  # a resumed store's levels: its chunks' tasks of both runs, or the finish
        got = _levels(url)
        assert got.keys() == b.attrs["levels"].keys()
        for k, want in b.attrs["levels"].items():
            assert np.array_equal(got[k], want, equal_nan=True), k


def _done(path):
    try:
        return np.asarray(zarr.open_group(str(path), mode="r")["chunk_done"][...])
    except Exception:  # noqa: BLE001 - not created yet
        return None


@pytest.mark.slow
def test_killed_job_resumes_and_recomputes_only_missing_chunks(tmp_path, reference, scheduler, capsys, monkeypatch):
    out = tmp_path / "o.zarr"
    env = dict(os.environ, S2SR_LOCK_TTL="2")
    proc = subprocess.Popen([sys.executable, "-m", "s2sr_cloud.cli", "run", "--out", str(out), *JOB],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        d = _done(out)
        if d is not None and 1 <= d.sum() < d.size:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the client and its LocalCluster workers, mid-run
    proc.wait()
    d = _done(out)
    done_before = int(d.sum())
    assert 1 <= done_before < d.size
    print(f"job killed with {done_before} of {d.size} chunks done")
    with pytest.raises(OutputError, match="incomplete"):
        open_output(str(out))
    time.sleep(2.5)  # the killed run's lease expires
    # the resume: the real CLI again, in this process on the shared cluster (the killed one was a process of its own)
    monkeypatch.setenv("S2SR_LOCK_TTL", "2")
    capsys.readouterr()
    rc = main(["run", "--out", str(out), *JOB, "--scheduler", scheduler])
    stdout, stderr = capsys.readouterr()
    assert rc == 0, stderr
    total = d.size
    assert f"{total - done_before} computed, {done_before} already done, {total} in all" in stdout
    _same(open_output(str(out)), reference, str(out))


@pytest.mark.slow
def test_killed_worker_is_survived(tmp_path, reference):
    out = tmp_path / "o.zarr"
    cfg = JobConfig(out=str(out), bands=BANDS, chunk=66, scale=4, mask="none")
    killed = []
    with dask_client(n_workers=2) as client:
        pids = list(client.run(os.getpid).values())

        def killer():
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                d = _done(out)
                if d is not None and d.sum() >= 1:
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append(int(d.sum()))
                    return
                time.sleep(0.02)

        t = threading.Thread(target=killer)
        t.start()
        (res,) = run_job(cfg, progress=False, client=client)
        t.join()
    assert killed and killed[0] < res.chunks_total  # the worker died while chunks were still pending
    _same(open_output(str(out)), reference, str(out))


@pytest.mark.slow
def test_transient_s3_errors_are_retried(s3_env, tmp_path, reference, monkeypatch, dask_cluster):
    monkeypatch.chdir(tmp_path)  # the quick-look of a remote output lands in the working directory
    items = upload_sample(s3_env, "faulty-cogs")
    make_bucket(s3_env, "faulty-out")
    # 3 % of the ~2100 store requests (s3fs: ~60 faults, some 30 of each kind; each fault costs a botocore backoff
    # of ~0.5 s, which made 15 % take 2 min) and 15 % of GDAL's ~80 COG reads: both clients are hit on every run
    # (asserted below)
    with FaultProxy(s3_env, rate=0.03, seed=1, gdal_rate=0.15) as proxy:
        # reads (GDAL) and writes (s3fs) both go through the proxy
        monkeypatch.setenv("S2SR_S3_ENDPOINT", proxy.url)
        monkeypatch.setenv("AWS_S3_ENDPOINT", proxy.url.removeprefix("http://"))
        monkeypatch.setenv("GDAL_HTTP_RETRY_DELAY", "0.1")  # (the default 1 s, doubled per retry, only slows the test)
        with serve_items(items) as url:
            cfg = JobConfig(out="s3://faulty-out/o.zarr", catalog=url, bands=BANDS, chunk=66, scale=4, mask="none")
            # the shared cluster: its workers get the endpoint and the GDAL settings with the tasks
            run_job(cfg, progress=False, client=dask_cluster)
        counts = dict(proxy.counts)
    print(f"fault proxy: {counts}")
    assert counts["503"] > 5 and counts["reset"] > 5, counts
    assert counts["gdal"] > 0 and counts["s3fs"] > 5, counts  # reads and writes alike
    monkeypatch.setenv("S2SR_S3_ENDPOINT", s3_env)
    res = open_output("s3://faulty-out/o.zarr").load()
    assert res.attrs["catalog"] == url
    _same(res, reference)


def test_permanently_failing_chunk_is_named_and_the_rest_stays_done(tmp_path):
    items = sample_items()
    bad = tmp_path / "B04.tif"
    data = bytearray((SAMPLE_DIR / "B04.tif").read_bytes())
    data[-20000:] = b"\0" * 20000  # destroy the last tiles of the COG only
    bad.write_bytes(bytes(data))
    items[0]["assets"]["red"]["href"] = bad.as_uri()
    out = tmp_path / "o.zarr"
    with serve_items(items) as url:
        # 60-pixel chunks: the chunks of the upper-left never read the destroyed lower-right COG tile
        r = subprocess.run([sys.executable, "-m", "s2sr_cloud.cli", "run", "--out", str(out), "--catalog", url,
                            *JOB, "--chunk", "60"], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert len(r.stderr.strip().splitlines()) == 1
    assert "reading an input raster failed" in r.stderr and "first (time 0, chunk_y" in r.stderr
    d = _done(out)
    assert 0 < d.sum() < d.size  # everything else is done and resumable
    with pytest.raises(OutputError, match="incomplete"):
        open_output(str(out))
