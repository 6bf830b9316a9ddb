import os
import pytest

from s2sr_cloud.config import JobConfig, load_config
from s2sr_cloud.errors import ConfigError


@pytest.mark.parametrize("bbox", ["1,2,3", "10,5,9,6", "0,0,200,1", "a,b,c,d", "0,0,0,0"])
def test_bad_bbox(bbox):
    with pytest.raises(ConfigError, match="--bbox"):
        load_config(None, {"out": "x.zarr", "bbox": bbox})


@pytest.mark.parametrize("value", ["2020-13-45", "lastmonth", "2020-02-10/2020-02-01", "2020/2021/2022", "/"])
def test_bad_datetime(value):
    with pytest.raises(ConfigError, match="--datetime"):
        load_config(None, {"out": "x.zarr", "datetime": value})


@pytest.mark.parametrize("value", ["2020-02-19", "2020-02-01/2020-02-28", "2020-02-01T00:00:00Z/..",
                                   "../2021-01-01", "2022-01-25T10:00:00+01:00"])
def test_good_datetime(value):
    assert load_config(None, {"out": "x.zarr", "datetime": value}).datetime == value


def test_unknown_band_names_the_choices():
    with pytest.raises(ConfigError, match="unknown band.*B13.*choose from B01"):
        load_config(None, {"out": "x.zarr", "bands": "B02,B13"})


@pytest.mark.parametrize("scale", [0, 1, -4, 17])
def test_scale_bounds(scale):
    with pytest.raises(ConfigError, match="--scale"):
        JobConfig(out="x.zarr", scale=scale)


def test_yaml_and_flags_merge(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text("out: from-file.zarr\nbands: [b02, b03, b04]\nscale: 2\nbbox: [-11.1, 25.0, -11.0, 25.1]\n")
    cfg = load_config(str(job), {"scale": 4, "out": None})
    assert cfg.out == os.path.abspath("from-file.zarr")  # absolute: cluster workers have another cwd
    assert cfg.bands == ("B02", "B03", "B04")
    assert cfg.scale == 4  # the flag wins
    assert cfg.bbox == (-11.1, 25.0, -11.0, 25.1)
    with pytest.raises(AttributeError):
        cfg.scale = 3  # frozen


def test_yaml_unknown_field(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text("out: a.zarr\nscael: 4\n")
    with pytest.raises(ConfigError, match="unknown field.*scael"):
        load_config(str(job), {})


def test_job_spec_changes_with_content_fields():
    a = JobConfig(out="a.zarr")
    assert a.job_spec() == JobConfig(out="b.zarr", overwrite=True).job_spec()  # where/how is not what
    assert a.job_spec() != JobConfig(out="a.zarr", scale=2).job_spec()
