"""Scheduled runs (issue 13): relative windows resolved against --now, dated output templates, and a rolling store
grown with --append-time, against a real rustac STAC API holding the real sample scene at three dates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from s2sr_cloud.catalog.server import sample_items, serve_items
from s2sr_cloud.cli import main
from s2sr_cloud.config import JobConfig, load_config
from s2sr_cloud.errors import ConfigError
from s2sr_cloud.pipeline.plan import plan_job
from s2sr_cloud.pipeline.verify import verify_store
from s2sr_cloud.timewindow import resolve

QUICK = ["--model", "bicubic", "--bands", "B02,B03,B04", "--no-progress", "--chunk", "120"]
DATES = ("2024-04-15", "2024-05-10", "2024-06-20")


def _items() -> list[dict]:
    base, out = sample_items()[0], []
    for d in DATES:
        it = json.loads(json.dumps(base))
        it["id"] = f"S2A_29RKH_{d.replace('-', '')}_0_L2A"
        it["properties"]["datetime"] = f"{d}T11:34:25Z"
        out.append(it)
    return out


@pytest.fixture(scope="module")
def catalog():
    with serve_items(_items()) as url:
        yield url


def run(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["run", *args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("expr,now,interval", [
    ("last-month", "2024-06-03T05:00:00Z", "2024-05-01T00:00:00Z/2024-05-31T23:59:59Z"),
    ("last-month", "2024-01-15", "2023-12-01T00:00:00Z/2023-12-31T23:59:59Z"),
    ("last-7-days", "2024-07-03T05:00:00Z", "2024-06-26T00:00:00Z/2024-07-02T23:59:59Z"),
    ("yesterday", "2024-03-01", "2024-02-29T00:00:00Z/2024-02-29T23:59:59Z"),
    ("P1M/..", "2024-03-31T12:00:00Z", "2024-02-29T12:00:00Z/2024-03-31T12:00:00Z"),
    ("P7D/2024-06-30", "2030-01-01", "2024-06-24T00:00:00Z/2024-06-30T23:59:59Z"),
    ("2024-06-01/P1M", "2030-01-01", "2024-06-01T00:00:00Z/2024-06-30T23:59:59Z"),
])
def test_relative_windows_resolve_against_now(expr, now, interval):
    from s2sr_cloud.timewindow import parse_now

    assert resolve(expr, parse_now(now)).interval() == interval
    cfg = JobConfig(out="x.zarr", datetime=expr, now=now)
    assert cfg.datetime == interval and cfg.datetime_expr == expr
    assert cfg.job_spec()["datetime"] == interval


def test_bad_windows_and_templates_are_one_line_errors():
    for bad in ("lastmonth", "P1M/P2M", "P/..", "2024-13-01/P1M"):
        with pytest.raises(ConfigError, match="--datetime"):
            JobConfig(out="x.zarr", datetime=bad, now="2024-06-01")
    with pytest.raises(ConfigError, match="uses {start} but the time window has no start"):
        JobConfig(out="x-{start:%Y}.zarr")
    with pytest.raises(ConfigError, match="bad template"):
        JobConfig(out="x-{nope}.zarr", datetime="last-month")
    with pytest.raises(ConfigError, match="--now"):
        load_config(None, {"out": "x.zarr", "datetime": "last-month", "now": "June"})


def test_relative_window_selects_exactly_the_expected_items(catalog, tmp_path):
    for now, want in (("2024-05-03", [0]), ("2024-06-03", [1]), ("2024-07-03", [2]), ("2024-08-03", [])):
        cfg = JobConfig(out=str(tmp_path / "o-{start:%Y-%m}.zarr"), catalog=catalog, datetime="last-month", now=now,
                        model="bicubic", bands=("B02", "B03", "B04"))
        if not want:
            from s2sr_cloud.errors import NoScenesError

            with pytest.raises(NoScenesError):
                plan_job(cfg)
            continue
        plan = plan_job(cfg)
        got = [it.id for z in plan.zones for it in z.items]
        assert got == [_items()[i]["id"] for i in want]
        assert plan.zones[0].out == str(tmp_path / f"o-{DATES[want[0]][:7]}.zarr")


def test_three_month_schedule_dated_stores_and_a_rolling_store(catalog, tmp_path, capsys, scheduler):
    dated = str(tmp_path / "dated-{start:%Y-%m}.zarr")
    rolling = tmp_path / "rolling.zarr"
    common = [*QUICK, "--catalog", catalog, "--scheduler", scheduler]
    snapshots = []
    for k, now in enumerate(("2024-05-01", "2024-06-01", "2024-07-01")):
        rc, text, err = run(capsys, *common, "--datetime", "last-month", "--now", now, "--out", dated)
        assert rc == 0, err
        month = DATES[k][:7]
        ds = xr.open_zarr(str(tmp_path / f"dated-{month}.zarr"), consolidated=False)
        assert list(ds.attrs["stac_items"]) == [_items()[k]["id"]] and ds.attrs["datetime_expr"] == "last-month"
        rc, text, err = run(capsys, *common, "--datetime", "P45D/..", "--now", now, "--append-time", "--out",
                            str(rolling))
        assert rc == 0, err
        ds = xr.open_zarr(str(rolling), consolidated=False)
        assert ds.sizes["time"] == k + 1
        assert [str(t)[:10] for t in ds.time.values] == list(DATES[:k + 1])
        assert [r["items"] for r in ds.attrs["runs"]] == [[_items()[i]["id"]] for i in range(k + 1)]
        assert f"chunks:   4 computed, {4 * k} already done, {4 * (k + 1)} in all" in text
        # nothing already written is touched: every chunk object of the earlier dates keeps its bytes
        for old in snapshots:
            for path, data in old.items():
                assert Path(path).read_bytes() == data, path
        snapshots.append({str(p): p.read_bytes() for p in rolling.glob("B0*/c/*/*/*")
                          if p.parts[-3] == str(k)})
        assert snapshots[-1]
    assert verify_store(str(rolling)).ok
    # a re-run of the last month adds nothing; an older scene cannot be appended
    rc, text, _ = run(capsys, *common, "--datetime", "P45D/..", "--now", "2024-07-01", "--append-time", "--out",
                      str(rolling))
    assert rc == 0 and "chunks:   0 computed, 12 already done, 12 in all" in text
    rc, _, err = run(capsys, *common, "--datetime", "P45D/..", "--now", "2024-07-01", "--append-time", "--bands",
                     "B02,B03,B04,B08", "--out", str(rolling))
    assert rc == 7 and "different job" in err


@pytest.mark.slow
def test_killed_incremental_run_resumes(catalog, tmp_path, capsys, scheduler):
    out = tmp_path / "rolling.zarr"
    job = ["--model", "bicubic", "--bands", "B02,B03,B04", "--no-progress", "--chunk", "60", "--catalog", catalog,
           "--datetime", "P45D/..", "--append-time", "--out", str(out)]
    # the first date and the resume: the CLI in this process on the shared cluster; the killed run: a process of
    # its own, with its own LocalCluster, killed with its workers
    rc, _, err = run(capsys, *job, "--now", "2024-05-01", "--scheduler", scheduler)
    assert rc == 0, err
    first = {str(p): p.read_bytes() for p in out.glob("B0*/c/0/*/*")}
    proc = subprocess.Popen([sys.executable, "-m", "s2sr_cloud.cli", "run", *job, "--now", "2024-06-01"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 180
    done = None
    while time.monotonic() < deadline:
        try:
            d = np.asarray(zarr.open_group(str(out), mode="r")["chunk_done"][...])
            if d.shape[0] == 2 and 1 <= d[1].sum() < d[1].size:
                done = int(d[1].sum())
                break
        except Exception:  # noqa: BLE001 - the store is being grown
            pass
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert done is not None
    after_kill = int(np.asarray(zarr.open_group(str(out), mode="r")["chunk_done"][...])[1].sum())
    assert after_kill < 16
    assert xr.open_zarr(str(out), consolidated=False).attrs["s2sr_status"] == "incomplete"
    rc, text, err = run(capsys, *job, "--now", "2024-06-01", "--scheduler", scheduler)
    assert rc == 0, err
    d = np.asarray(zarr.open_group(str(out), mode="r")["chunk_done"][...])
    assert d.all() and d.shape == (2, 4, 4)
    assert f"chunks:   {16 - after_kill} computed, {16 + after_kill} already done, 32 in all" in text
    assert all(Path(p).read_bytes() == b for p, b in first.items())
    ds = xr.open_zarr(str(out), consolidated=False)
    assert "append_pending" not in ds.attrs and ds.attrs["s2sr_status"] == "complete"
    assert verify_store(str(out)).ok
