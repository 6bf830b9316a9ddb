"""Shared fixtures: real data from ../shared (or the embedded sample), real servers on loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import pytest

from s2sr_cloud.catalog.server import free_port, sample_items
from s2sr_cloud.testing import ben_item, sample_grid_stack  # noqa: F401  re-exported for the tests

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("S2SR_SHARED", ROOT.parent / "shared")) / "data"

warnings.filterwarnings("ignore", category=PendingDeprecationWarning)


def need_shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (../shared/data)")
    return path


@pytest.fixture(scope="session")
def moto_server():
    """A real S3-compatible server (moto_server) on loopback; yields its endpoint URL."""
    venv_exe = Path(sys.executable).with_name("moto_server")  # the venv's, pinned with s3fs (NOTES.md)
    exe = str(venv_exe) if venv_exe.exists() else shutil.which("moto_server")
    if exe is None:
        pytest.fail("moto_server is not installed: pip install -e '.[test]'")
    port = free_port()
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("moto_server did not start")
            time.sleep(0.1)
        except Exception:  # noqa: BLE001 - an HTTP error means it is up
            break
    yield url
    proc.terminate()
    proc.wait(5)


@pytest.fixture
def s3_env(moto_server, monkeypatch):
    """Environment for s3fs (output) and GDAL (input) to talk to the local S3 server; inherited by workers."""
    host = moto_server.removeprefix("http://")
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION":
                 "us-east-1", "S2SR_S3_ENDPOINT": moto_server, "AWS_S3_ENDPOINT": host, "AWS_HTTPS": "NO",
                 "AWS_VIRTUAL_HOSTING": "FALSE", "AWS_NO_SIGN_REQUEST": "NO"}.items():
        monkeypatch.setenv(k, v)
    return moto_server


def make_bucket(endpoint: str, name: str) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(key="testing", secret="testing", client_kwargs={"endpoint_url": endpoint})
    if not fs.exists(name):
        fs.mkdir(name)


def upload_sample(endpoint: str, bucket: str, prefix: str = "cogs") -> list[dict]:
    """Copy the sample COGs into the bucket; return the sample item(s) with s3:// hrefs."""
    import s3fs

    fs = s3fs.S3FileSystem(key="testing", secret="testing", client_kwargs={"endpoint_url": endpoint})
    make_bucket(endpoint, bucket)
    items = sample_items()
    for item in items:
        for asset in item["assets"].values():
            local = Path(asset["href"].removeprefix("file://"))
            key = f"{bucket}/{prefix}/{local.name}"
            fs.put(str(local), key)
            asset["href"] = f"s3://{key}"
    return items


@pytest.fixture(scope="session")
def dask_cluster():
    """One 2-process LocalCluster shared by the in-process pipeline tests."""
    from s2sr_cloud.pipeline.cluster import dask_client

    with dask_client(n_workers=2) as client:
        yield client


@pytest.fixture
def scheduler(dask_cluster) -> str:
    """The shared cluster's address, for CLI runs (``--scheduler``) in the same process."""
    return dask_cluster.scheduler.address


def write_items(path: Path, items: list[dict]) -> Path:
    path.write_text(json.dumps(items))
    return path


# `make test` runs the suite on 2 pytest-xdist workers (`-n 2 --dist loadgroup`): each test goes to whichever worker
# is free, except the tests of these modules, which share an expensive module-scoped fixture (a real run's store)
# and so run together on one worker, which makes it once. Each worker has its own session fixtures (moto_server,
# the LocalCluster) on ephemeral ports, and its own tmp_path root.
ONE_WORKER_MODULES = ("test_faults", "test_report", "test_stac_out", "test_gdal")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """loadgroup, grouping the modules above: xdist's ``xdist_group`` mark does not reach its scheduler with
    pytest >= 9 (it renames ``item._nodeid``, which pytest 9 no longer reads), so the scope is chosen here."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class OneWorkerModules(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if Path(module).stem in ONE_WORKER_MODULES else super()._split_scope(nodeid)

    return OneWorkerModules(config, log)
