"""The Python API shares the CLI's configuration, plan and execution (issue 9): same validation, same defaults."""

import numpy as np
import pytest

import s2sr_cloud
from s2sr_cloud.errors import ConfigError, OutputError


def test_super_resolve_says_what_it_takes():
    with pytest.raises(ConfigError, match="takes the Dataset that s2sr_cloud.load returns"):
        s2sr_cloud.super_resolve(np.zeros((8, 8)))


def test_run_validates_like_the_cli(tmp_path):
    with pytest.raises(ConfigError, match="--scale must be an integer from 2 to 16"):
        s2sr_cloud.run(out=str(tmp_path / "o.zarr"), scale=40)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("x")
    with pytest.raises(OutputError, match="not made by s2sr-cloud"):
        s2sr_cloud.run(out=str(tmp_path / "busy"), model="bicubic", bands="B02,B03,B04")


def test_run_executes_the_plan(tmp_path, dask_cluster):
    (res,) = s2sr_cloud.run(out=str(tmp_path / "o.zarr"), model="bicubic", bands="B02,B03,B04", chunk=120,
                            scheduler=dask_cluster.scheduler.address)
    assert res.chunks_computed == 4 and res.action == "create"
    assert s2sr_cloud.open_output(res.out)["B02"].shape == (1, 960, 960)
