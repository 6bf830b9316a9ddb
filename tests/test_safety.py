"""Never lose, mix or silently corrupt data. Each test here reproduces a way the tool used to destroy or corrupt a
user's data (issue 8) and asserts the new behaviour: the exit code, the one-line message, and that nothing was
written or deleted. Real runs against the embedded sample served by rustac, real moto S3, real processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from s2sr_cloud.catalog.server import sample_items, serve_items
from s2sr_cloud.cli import main
from s2sr_cloud.errors import OutputError
from s2sr_cloud.io import store
from s2sr_cloud.io.lease import Lease
from s2sr_cloud.pipeline.verify import verify_store

from .conftest import make_bucket

QUICK = ["--model", "bicubic", "--bands", "B02,B03,B04", "--no-progress"]


def s2sr(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["run", *args] if args and args[0] not in ("verify",) else list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    return lines[0]


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# ---- ownership of paths ---------------------------------------------------------------------------------------
def test_foreign_folder_is_refused_and_kept(tmp_path, capsys):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.txt").write_text("precious")
    for extra in ([], ["--overwrite"]):
        rc, _, err = s2sr(capsys, *QUICK, "--out", str(victim), *extra)
        assert rc == 7
        assert "holds a folder with 1 entry (thesis.txt) not made by s2sr-cloud" in _one_line(err)
        assert (victim / "thesis.txt").read_text() == "precious" and len(list(victim.iterdir())) == 1


def test_working_directory_and_files_are_refused(tmp_path, capsys, monkeypatch):
    (tmp_path / "keep.txt").write_text("x")
    monkeypatch.chdir(tmp_path)
    rc, _, err = s2sr(capsys, *QUICK, "--out", ".", "--overwrite")
    assert rc == 7 and "not made by s2sr-cloud" in _one_line(err)
    rc, _, err = s2sr(capsys, *QUICK, "--out", "keep.txt", "--overwrite")
    assert rc == 7 and "holds a file" in _one_line(err)
    assert sorted(os.listdir(tmp_path)) == ["keep.txt"]
    rc, _, err = s2sr(capsys, *QUICK, "--out", "keep.txt/x.zarr")
    assert rc == 7 and "is a file, not a folder" in _one_line(err)


def test_s3_prefix_with_other_data_is_refused_and_kept(s3_env, capsys):
    import s3fs

    make_bucket(s3_env, "team2")
    fs = s3fs.S3FileSystem(key="testing", secret="testing", client_kwargs={"endpoint_url": s3_env})
    fs.pipe("team2/data/dataset/part-0.parquet", b"PAR1")
    for extra in ([], ["--overwrite"]):
        rc, _, err = s2sr(capsys, *QUICK, "--out", "s3://team2/data", *extra)
        assert rc == 7 and "(dataset) not made by s2sr-cloud" in _one_line(err)
    assert fs.cat("team2/data/dataset/part-0.parquet") == b"PAR1"
    rc, _, err = s2sr(capsys, *QUICK, "--out", "s3://no-such-bucket-x/x.zarr")
    assert rc == 7 and "bucket no-such-bucket-x does not exist" in _one_line(err)


@pytest.mark.parametrize("out,message", [("s3://", "name a bucket and key"), ("s3://bucket", "bucket root"),
                                         ("http://example.com/x.zarr", "cannot write over HTTP")])
def test_unusable_output_urls(capsys, out, message):
    rc, _, err = s2sr(capsys, *QUICK, "--out", out)
    assert rc == 2 and message in _one_line(err)


# ---- overwrite: build beside, then swap -------------------------------------------------------------------------
def test_overwrite_keeps_the_old_store_until_the_new_one_is_complete(tmp_path, capsys, scheduler):
    out = tmp_path / "o.zarr"
    rc, _, err = s2sr(capsys, *QUICK, "--out", str(out), "--chunk", "120", "--scheduler", scheduler)
    assert rc == 0, err
    before = store.open_output(str(out))["B02"].values
    # an invalid model/scale combination is refused before anything is touched (exit 8, not 7)
    rc, _, err = s2sr(capsys, "--scale", "5", "--bands", "B02,B03,B04", "--model", "tiny-test", "--out",
                      str(out), "--overwrite", "--no-progress")
    assert rc == 8 and "supports --scale" in _one_line(err)
    rc, _, err = s2sr(capsys, "--scale", "3", "--out", str(out), "--overwrite", "--no-progress")
    assert rc == 8, err
    assert np.array_equal(store.open_output(str(out))["B02"].values, before, equal_nan=True)
    # a real replacement: x2 instead of x4, swapped in only when complete
    rc, out_text, err = s2sr(capsys, *QUICK, "--out", str(out), "--chunk", "120", "--scale", "2", "--overwrite",
                             "--scheduler", scheduler)
    assert rc == 0, err
    assert "(replace)" in out_text
    assert store.open_output(str(out)).attrs["scale"] == 2
    assert not Path(str(out) + ".s2sr-new").exists() and not Path(str(out) + ".s2sr-old").exists()


@pytest.mark.slow
def test_sigterm_during_overwrite_leaves_the_previous_store_complete(tmp_path, capsys, scheduler):
    out = tmp_path / "o.zarr"
    job = [*QUICK, "--out", str(out), "--chunk", "60"]
    # the previous store: the CLI in this process on the shared cluster; the run stopped by SIGTERM: a process
    rc, _, err = s2sr(capsys, *job, "--scheduler", scheduler)
    assert rc == 0, err
    before = _tree(out)
    proc = subprocess.Popen([sys.executable, "-m", "s2sr_cloud.cli", "run", *job, "--scale", "2", "--overwrite"],
                            stderr=subprocess.PIPE, text=True)
    staging = Path(str(out) + ".s2sr-new")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if np.asarray(zarr.open_group(str(staging), mode="r")["chunk_done"][...]).sum() >= 1:
                break
        except Exception:  # noqa: BLE001 - not created yet
            pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM; the lease is released" in err
    assert _tree(out) == before  # byte for byte: the complete previous product is untouched
    assert store.open_output(str(out)).attrs["scale"] == 4
    assert not Path(str(out) + ".lock").exists()  # released: a re-run starts at once


# ---- resume keyed on content ------------------------------------------------------------------------------------
def test_resume_refuses_when_the_search_returns_other_scenes(tmp_path, capsys, scheduler):
    items = sample_items()
    later = json.loads(json.dumps(items[0]))
    later["id"] = later["id"] + "-REPROCESSED"
    later["properties"]["datetime"] = "2020-02-20T11:21:09Z"
    out = tmp_path / "o.zarr"
    with serve_items(items) as url:
        rc, _, err = s2sr(capsys, *QUICK, "--catalog", url, "--out", str(out), "--chunk", "120",
                          "--scheduler", scheduler)
        assert rc == 0, err
        rc, _, err = s2sr(capsys, *QUICK, "--catalog", url, "--out", str(out), "--chunk", "120", "--limit", "5",
                          "--scheduler", scheduler)
        assert rc == 7 and "limit" in _one_line(err)
    before = _tree(out)
    with serve_items([*items, later]) as url:
        rc, _, err = s2sr(capsys, *QUICK, "--catalog", url, "--out", str(out), "--chunk", "120",
                          "--scheduler", scheduler)
    assert rc == 7
    assert "the scenes: 1 new" in _one_line(err) and "-REPROCESSED" in err
    updated = json.loads(json.dumps(items[0]))
    updated["properties"]["updated"] = "2030-01-01T00:00:00Z"
    with serve_items([updated]) as url:
        rc, _, err = s2sr(capsys, *QUICK, "--catalog", url, "--out", str(out), "--chunk", "120",
                          "--scheduler", scheduler)
    assert rc == 7 and "1 updated" in _one_line(err)
    assert _tree(out) == before


def _plan_before_equal_chunks(n: int, chunk: int, align: int, minimum: int) -> tuple[int, ...]:
    """``ops.halo.plan_chunks`` up to round 7: full chunks, a short rest merged into the last."""
    from s2sr_cloud.ops.halo import full_chunks, round_up

    return full_chunks(n, round_up(chunk, align), minimum)


def test_a_store_begun_on_another_chunk_grid_is_continued_on_it(tmp_path, capsys, scheduler, monkeypatch):
    """An unfinished store made by an older version (another chunk plan) is resumed on the grid it records, and
    a write on a different grid is refused: chunks cut anew would overlap the written ones and the done marks would
    name other pixels."""
    import s2sr_cloud.pipeline.graph as graph
    from s2sr_cloud.api import input_for, super_resolve
    from s2sr_cloud.pipeline.write import write_output

    out = tmp_path / "o.zarr"
    args = (*QUICK, "--out", str(out), "--chunk", "100", "--mask", "none", "--scheduler", scheduler)
    with monkeypatch.context() as m:
        m.setattr(graph, "plan_chunks", _plan_before_equal_chunks)
        rc, _, err = s2sr(capsys, *args)
        assert rc == 0, err
    old_grid = store.read_attrs(str(out))["chunk_input"]
    assert old_grid == [[100, 100, 40], [100, 100, 40]]  # this version plans 80, 80, 80
    reference = store.open_output(str(out)).load()
    g = zarr.open_group(str(out), mode="r+")  # as a run killed with the second row of chunks not written leaves it
    g[store.DONE][0, 1, :] = 0
    store.set_status(str(out), "incomplete")
    before = _tree(out)
    sr = super_resolve(input_for(reference), 4, "bicubic", chunk=100)
    assert sr.attrs["chunk_input"] == [[80, 80, 80], [80, 80, 80]]
    with pytest.raises(OutputError, match="another chunk grid"):
        write_output(sr, str(out), resume=True)
    assert _tree(out) == before
    rc, stdout, err = s2sr(capsys, *args)
    assert rc == 0, err
    assert "3 computed, 6 already done, 9 in all" in stdout
    assert store.read_attrs(str(out))["chunk_input"] == old_grid
    got = store.open_output(str(out))
    for v in ("B02", "B03", "B04", "detail"):
        assert np.array_equal(got[v].values, reference[v].values, equal_nan=True), v



def test_a_store_begun_under_another_memory_budget_is_resumed_not_refused(tmp_path, capsys, scheduler,
                                                                          monkeypatch):
    """Without --chunk the chunk side comes from the memory budget, which changes with S2SR_CHUNK_MEMORY_GIB and
    between versions. A run interrupted under one budget and run again under another is resumed on its own chunk
    grid (not called "another job", whose remedy --overwrite would discard the work done); the result is the
    uninterrupted run's. An explicit other --chunk is still another job."""
    out = tmp_path / "o.zarr"
    args = (*QUICK, "--out", str(out), "--mask", "none", "--scheduler", scheduler)
    monkeypatch.setenv("S2SR_CHUNK_MEMORY_GIB", "0.5062")  # x4: 108 px -> 80, 80, 80
    rc, _, err = s2sr(capsys, *args)
    assert rc == 0, err
    attrs = store.read_attrs(str(out))
    assert attrs["job_spec"]["chunk"] == 108 and attrs["chunk_input"] == [[80, 80, 80], [80, 80, 80]]
    reference = store.open_output(str(out)).load()
    g = zarr.open_group(str(out), mode="r+")  # as a run killed with the second row of chunks not written leaves it
    g[store.DONE][0, 1, :] = 0
    store.set_status(str(out), "incomplete")
    monkeypatch.setenv("S2SR_CHUNK_MEMORY_GIB", "0.511")  # x4: 144 px -> 120, 120
    rc, stdout, err = s2sr(capsys, *args)
    assert rc == 0, err
    assert "3 computed, 6 already done, 9 in all" in stdout
    attrs = store.read_attrs(str(out))
    assert attrs["job_spec"]["chunk"] == 108 and attrs["chunk_input"] == [[80, 80, 80], [80, 80, 80]]
    got = store.open_output(str(out))
    for v in ("B02", "B03", "B04", "detail"):
        assert np.array_equal(got[v].values, reference[v].values, equal_nan=True), v
    before = _tree(out)
    rc, _, err = s2sr(capsys, *args, "--chunk", "126")
    assert rc == 7 and "different job (chunk differ)" in _one_line(err)
    assert _tree(out) == before

# ---- integrity ----------------------------------------------------------------------------------------------------
def test_fill_value_is_the_cf_fill_value(tmp_path, capsys, scheduler):
    out = tmp_path / "o.zarr"
    assert s2sr(capsys, *QUICK, "--out", str(out), "--chunk", "120", "--mask", "none", "--scheduler",
                scheduler)[0] == 0
    meta = json.loads((out / "B02" / "zarr.json").read_text())
    assert meta["data_type"] == "uint16" and meta["fill_value"] == 65535 == meta["attributes"]["_FillValue"]
    assert [c["name"] for c in meta["codecs"]][-1] == "crc32c"
    (out / "B02" / "c" / "0" / "0" / "1").unlink()  # a deleted chunk reads as missing data, not as -0.1
    import xarray as xr

    b02 = xr.open_zarr(str(out), consolidated=False)["B02"].isel(time=0).values
    assert np.isnan(b02[:480, 480:]).all() and np.isfinite(b02[:480, :480]).all()


def test_verify_names_corrupted_chunks_and_repair_recomputes_exactly_those(tmp_path, capsys, scheduler):
    out = tmp_path / "o.zarr"
    job = [*QUICK, "--out", str(out), "--chunk", "60", "--scheduler", scheduler]
    assert s2sr(capsys, *job)[0] == 0
    reference = store.open_output(str(out)).load()
    assert verify_store(str(out)).ok
    # 1) 64 flipped bytes, 2) a deleted chunk, 3) a chunk copied over another
    p = out / "B03" / "c" / "0" / "1" / "2"
    raw = bytearray(p.read_bytes())
    for k in range(64):
        raw[len(raw) // 3 + k] ^= 0xFF
    p.write_bytes(bytes(raw))
    (out / "B04" / "c" / "0" / "3" / "3").unlink()
    shutil.copy(out / "B02" / "c" / "0" / "0" / "0", out / "B02" / "c" / "0" / "2" / "1")
    rc, text, _ = s2sr(capsys, "verify", str(out), "--sample", "0")
    assert rc == 9
    assert "16 chunk(s) read, 3 bad" in text
    assert "(time 0, chunk_y 1, chunk_x 2): B03: checksum mismatch" in text
    assert "(time 0, chunk_y 3, chunk_x 3): B04: chunk object missing" in text
    assert "(time 0, chunk_y 2, chunk_x 1): content differs" in text
    assert s2sr(capsys, "verify", str(out), "--repair", "--sample", "0")[0] == 9
    with pytest.raises(OutputError, match="incomplete"):
        store.open_output(str(out))
    rc, text, err = s2sr(capsys, *job)
    assert rc == 0, err
    assert "chunks:   3 computed, 13 already done, 16 in all" in text
    assert verify_store(str(out)).ok
    again = store.open_output(str(out)).load()
    for v in ("B02", "B03", "B04", "detail", "chunk_sums"):
        assert np.array_equal(again[v].values, reference[v].values, equal_nan=True), v


def test_open_output_refuses_foreign_and_unfinished(tmp_path):
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "a.txt").write_text("x")
    with pytest.raises(OutputError, match="not an s2sr-cloud store"):
        store.open_output(str(tmp_path / "f"))


def test_truncated_zarr_json_is_not_called_another_job(tmp_path, capsys):
    out = tmp_path / "o.zarr"
    out.mkdir()
    (out / "zarr.json").write_text('{"zarr_format": 3, "node_ty')
    rc, _, err = s2sr(capsys, *QUICK, "--out", str(out))
    assert rc == 7 and "cannot be parsed (damaged or truncated)" in _one_line(err)


# ---- the lease ----------------------------------------------------------------------------------------------------
def test_release_only_deletes_our_own_lease(tmp_path):
    url = str(tmp_path / "x.zarr")
    a = Lease(url, ttl=0.2)
    a.acquire()
    a._stop.set()  # a stalled run: no more heartbeats
    time.sleep(0.3)
    b = Lease(url, ttl=30)
    b.acquire()  # takes over the expired lease
    a.release()  # the stalled run wakes up and releases: must not remove b's lease
    with pytest.raises(OutputError, match="another run"):
        Lease(url, ttl=30).acquire()
    with pytest.raises(OutputError, match="lost its lease"):
        a.check()
    b.release()
    Lease(url, ttl=30).acquire()


def test_lease_of_a_dead_process_on_this_host_is_taken_at_once(tmp_path):
    url = str(tmp_path / "x.zarr")
    proc = subprocess.run([sys.executable, "-c", "import sys; from s2sr_cloud.io.lease import Lease; "
                           f"Lease({url!r}, ttl=3600).acquire(); sys.stdout.write('held')"],
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout == "held"  # exited without releasing: its PID is gone, its lease says 1 hour
    b = Lease(url, ttl=30)
    b.acquire()
    b.release()


def _race(path: str, barrier, results, trials: int) -> None:
    for k in range(trials):
        barrier.wait()
        try:
            lease = Lease(f"{path}/t{k}.zarr", ttl=600)
            lease.acquire()
            lease._stop.set()
            results.put((k, os.getpid()))
        except OutputError:
            pass
        barrier.wait()


def test_racing_takeover_of_an_expired_lease_has_one_winner(tmp_path):
    trials, racers = 30, 6
    for k in range(trials):  # an expired lease of a run on another host
        (tmp_path / f"t{k}.zarr.lock").write_text(json.dumps({"host": "elsewhere", "pid": 1, "token": "x",
                                                              "expires": 0}))
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(racers), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(tmp_path), barrier, results, trials)) for _ in range(racers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    winners: dict[int, int] = {}
    while not results.empty():
        k, _ = results.get()
        winners[k] = winners.get(k, 0) + 1
    assert winners == {k: 1 for k in range(trials)}


def test_s3_lease_is_exclusive_owner_checked_and_taken_over_conditionally(s3_env):
    make_bucket(s3_env, "locks")
    a = Lease("s3://locks/x.zarr", ttl=0.5)
    a.acquire()
    a._stop.set()
    with pytest.raises(OutputError, match="another run"):
        Lease("s3://locks/x.zarr", ttl=30).acquire()
    time.sleep(0.6)
    b = Lease("s3://locks/x.zarr", ttl=30)
    b.acquire()
    a.release()  # not a's any more
    assert b.owned()
    with pytest.raises(OutputError, match="lost its lease"):
        a.check()
    b.release()
    assert not Lease("s3://locks/x.zarr").fs.exists("locks/x.zarr.lock")


@pytest.mark.slow
def test_two_concurrent_runs_one_is_refused(tmp_path):
    out = tmp_path / "o.zarr"
    job = [sys.executable, "-m", "s2sr_cloud.cli", "run", *QUICK, "--out", str(out), "--chunk", "60"]
    first = subprocess.Popen(job, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not Path(str(out) + ".lock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = subprocess.run(job, capture_output=True, text=True, timeout=300)
    assert second.returncode == 7 and "another run" in _one_line(second.stderr)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert verify_store(str(out), sample=0).ok


# ---- size and plan before compute ---------------------------------------------------------------------------------
def test_huge_item_is_refused_before_anything_is_written(tmp_path, capsys):
    items = sample_items()
    huge = json.loads(json.dumps(items[0]))
    for a in huge["assets"].values():
        if "proj:shape" in a:
            a["proj:shape"] = [79999200 // int(a["proj:transform"][0]), 79999200 // int(a["proj:transform"][0])]
    huge["bbox"] = [-180, -80, 180, 80]
    huge["geometry"] = {"type": "Polygon", "coordinates": [[[-180, -80], [180, -80], [180, 80], [-180, 80],
                                                             [-180, -80]]]}
    out = tmp_path / "o.zarr"
    with serve_items([huge]) as url:
        t0 = time.monotonic()
        rc, _, err = s2sr(capsys, *QUICK, "--catalog", url, "--out", str(out))
    assert rc == 2 and "above --max-output-gb 64" in _one_line(err)
    assert time.monotonic() - t0 < 60 and not out.exists()


def test_dry_run_and_truncated_search(tmp_path, capsys):
    items = sample_items()
    more = []
    for k in range(3):
        it = json.loads(json.dumps(items[0]))
        it["id"] += f"-{k}"
        it["properties"]["datetime"] = f"2020-02-1{k}T11:21:09Z"
        more.append(it)
    with serve_items(more) as url:
        rc, text, err = s2sr(capsys, *QUICK, "--catalog", url, "--out", str(tmp_path / "o.zarr"), "--limit", "2",
                             "--dry-run")
    assert rc == 0, err
    assert "scenes:   2 (the search matched more: raise --limit above 2)" in text
    assert "(create) 2 x 960 x 960" in text and "chunks:" in text
    assert "halo:" in text and "GiB per chunk task" in text and "compute: no network (bicubic)" in text
    assert not (tmp_path / "o.zarr").exists()


def test_dry_run_estimates_the_model_cost(capsys):
    """The default model's estimate: FLOPs counted from the network itself, the halo overhead and core-hours."""
    import re

    from s2sr_cloud.pipeline.plan import network_flops_per_output_px
    from s2sr_cloud.model.predictors import get_predictor
    from s2sr_cloud.bands import FACTORS_10M

    rc, text, err = s2sr(capsys, "--scale", "4", "--ensemble", "1", "--out", "unused.zarr", "--dry-run")
    assert rc == 0, err
    flops = float(re.search(r"compute: (\d+) kFLOP per output px", text).group(1)) * 1e3
    assert flops == pytest.approx(network_flops_per_output_px(get_predictor("default", ensemble=1), FACTORS_10M, 4),
                                  rel=0.01)
    overhead = float(re.search(r"each block reads ([\d.]+)x", text).group(1))
    assert overhead == 1.0 and "CPU core-hours" in text  # one chunk: no halo beyond the area's edges
    rc, text, err = s2sr(capsys, "--scale", "4", "--ensemble", "1", "--chunk", "120", "--out", "unused.zarr",
                         "--dry-run")
    assert rc == 0, err
    assert "chunks:  4 of up to 120 x 120 input px" in text
    overhead = float(re.search(r"each block reads ([\d.]+)x", text).group(1))
    assert overhead == pytest.approx(((120 + 108) * 2 / 240) ** 2, abs=0.005)  # 108 px halo on inner sides only


# ---- one line for every error ------------------------------------------------------------------------------------
YAML_CASES = [
    ("1: x\nout: o.zarr\n", 2, "field names must be text"),
    ("out: o.zarr\nbbox: {a: 1}\n", 2, "bbox must be four numbers"),
    ("out: o.zarr\nbbox: 'x,y'\n", 2, "is not four comma-separated numbers"),
    ("out: o.zarr\nbbox: 5\n", 2, "bbox must be four numbers"),
    ("out: o.zarr\nmax_cloud: lots\n", 2, "max_cloud must be a number"),
    ("out: o.zarr\nchunk: big\n", 2, "chunk must be an integer"),
    ("out: o.zarr\nbands: 5\n", 2, "bands must be a list"),
    ("out: 12\n", 2, "out must be a string"),
    ("out: o.zarr\ngeometry: [1, 2]\n", 2, "expected a GeoJSON object"),
]


@pytest.mark.parametrize("text,code,message", YAML_CASES)
def test_bad_yaml_gives_one_line(tmp_path, capsys, text, code, message):
    cfg = tmp_path / "job.yaml"
    cfg.write_text(text)
    rc, _, err = s2sr(capsys, "--config", str(cfg))
    assert rc == code and message in _one_line(err)


def test_non_utf8_yaml(tmp_path, capsys):
    cfg = tmp_path / "job.yaml"
    cfg.write_bytes(b"out: \xff\xfe.zarr\n")
    rc, _, err = s2sr(capsys, "--config", str(cfg))
    assert rc == 2 and "not UTF-8" in _one_line(err)


GEOJSON_CASES = [
    ([{"type": "Polygon"}], "got a list"),
    ({"type": "Feature", "geometry": None, "properties": {}}, "has no geometry"),
    ({"type": "Point", "coordinates": [-9, 38]}, "got Point (a point or line has no area"),
]


@pytest.mark.parametrize("obj,message", GEOJSON_CASES)
def test_bad_geojson_gives_one_line(tmp_path, capsys, obj, message):
    g = tmp_path / "area.geojson"
    g.write_text(json.dumps(obj))
    rc, _, err = s2sr(capsys, *QUICK, "--geometry", str(g), "--out", str(tmp_path / "o.zarr"))
    assert rc == 2 and message in _one_line(err)


FLAG_CASES = [
    (["--scheduler", "not a url"], 2, "is not a Dask scheduler address"),
    (["--chunk", "99999999999999999999"], 2, "chunk must be an integer"),
    (["--chunk", "999999"], 2, "--chunk must be from 16 to 100000"),
    (["--limit", "0"], 2, "--limit must be a positive number"),
    (["--bbox", "170,-10,-170,10"], 2, "crosses the antimeridian"),
    (["--ensemble", "4"], 2, "has no self-ensemble"),
]


@pytest.mark.parametrize("flags,code,message", FLAG_CASES)
def test_bad_flags_give_one_line(tmp_path, capsys, flags, code, message):
    rc, _, err = s2sr(capsys, *QUICK, *flags, "--out", str(tmp_path / "o.zarr"))
    assert rc == code and message in _one_line(err)
    assert not (tmp_path / "o.zarr").exists()


def test_quicklook_location_is_checked_before_compute(tmp_path, capsys):
    (tmp_path / "file.txt").write_text("x")
    rc, _, err = s2sr(capsys, *QUICK, "--quicklook", str(tmp_path / "file.txt" / "q.png"), "--out",
                      str(tmp_path / "o.zarr"))
    assert rc == 2 and "is not a writable folder" in _one_line(err)
    assert not (tmp_path / "o.zarr").exists()


def test_negative_bbox_and_world_bbox_work(tmp_path, capsys):
    # the sample is near lon -11: a bbox starting with '-' parses without '=', a world bbox overlaps it
    for bbox in ("-11.1,25.05,-10.95,25.2", "-180,-90,180,90"):
        rc, text, err = s2sr(capsys, *QUICK, "--bbox", bbox, "--out", str(tmp_path / "o.zarr"), "--dry-run")
        assert rc == 0, err
        assert "zone EPSG:" in text


def test_non_raster_asset_gives_one_line(tmp_path, capsys):
    items = sample_items()
    for a in items[0]["assets"].values():
        a["type"] = "image/png"
    with serve_items(items) as url:
        rc, _, err = s2sr(capsys, *QUICK, "--catalog", url, "--out", str(tmp_path / "o.zarr"))
    assert rc == 5 and "is image/png, not a GeoTIFF/COG" in _one_line(err)


# ---- secrets --------------------------------------------------------------------------------------------------------
def test_credentials_in_a_catalog_url_never_reach_the_store_or_errors(tmp_path, capsys, scheduler):
    out = tmp_path / "o.zarr"
    with serve_items(sample_items()) as url:
        secret_url = url.replace("http://", "http://alice:s3cr3t-token@")
        rc, _, err = s2sr(capsys, *QUICK, "--catalog", secret_url, "--out", str(out), "--chunk", "120",
                          "--scheduler", scheduler)
    assert rc == 0, err
    for path in out.rglob("*"):
        if path.is_file():
            assert b"s3cr3t" not in path.read_bytes(), path
    for path in tmp_path.rglob("*.json"):
        assert "s3cr3t" not in path.read_text(), path
    rc, _, err = s2sr(capsys, *QUICK, "--catalog", "http://bob:hunter2@127.0.0.1:9/stac", "--out",
                      str(tmp_path / "p.zarr"))
    assert rc == 3 and "hunter2" not in err and "***@127.0.0.1" in _one_line(err)


def test_dotted_output_names_get_their_own_stac_collections(tmp_path, capsys, scheduler, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("berlin.2024.zarr", "paris.2024.zarr"):
        rc, _, err = s2sr(capsys, *QUICK, "--out", name, "--chunk", "120", "--scheduler", scheduler)
        assert rc == 0, err
    assert not (tmp_path / "collection.json").exists()
    for name in ("berlin.2024", "paris.2024"):
        coll = json.loads((tmp_path / f"{name}_stac" / "collection.json").read_text())
        assert coll["id"] == name


def test_overwrite_on_s3_swaps_only_when_complete(s3_env, capsys, scheduler, tmp_path, monkeypatch):
    import s3fs

    monkeypatch.chdir(tmp_path)  # the quick-look of a remote output lands in the working directory
    make_bucket(s3_env, "results")
    fs = s3fs.S3FileSystem(key="testing", secret="testing", client_kwargs={"endpoint_url": s3_env})
    url = "s3://results/area.zarr"
    job = [*QUICK, "--out", url, "--scheduler", scheduler]
    # (the fewest chunks that show it: every S3 request to moto costs, and a run makes ~40 per chunk)
    rc, _, err = s2sr(capsys, *job, "--chunk", "120")  # 2 x 2 output chunks
    assert rc == 0, err
    assert store.open_output(url).attrs["scale"] == 4
    assert fs.exists("results/area.zarr/B02/c/0/1/1")
    rc, text, err = s2sr(capsys, *job, "--chunk", "240", "--scale", "2", "--overwrite")  # 1 x 1 chunk
    assert rc == 0, err
    assert "(replace)" in text
    new = store.open_output(url)
    assert new.attrs["scale"] == 2 and new["B02"].shape == (1, 480, 480)
    assert not fs.exists("results/area.zarr.s2sr-new")
    # no object of the replaced store is left behind: its 2 x 2 chunk grid had chunks the new 1 x 1 grid lacks
    keys = {k.removeprefix("results/area.zarr/") for k in fs.find("results/area.zarr")}
    assert not any(k.startswith(("B02/c/0/1/", "B02/c/0/0/1")) for k in keys)
    assert "B02/c/0/0/0" in keys
    assert verify_store(url, sample=0).ok


def test_a_chunk_whose_write_fails_part_way_is_not_marked_done_and_is_rewritten_whole(tmp_path, capsys, scheduler):
    """``store.write_block`` writes a chunk's arrays together (the bands, the detail layer and their overview
    levels): when one of those writes fails (here a real OS error: a folder where a level's chunk file goes), the
    chunk raises and stays not done; written again, it equals the first run's."""
    from s2sr_cloud.io import overviews

    out = tmp_path / "o.zarr"
    rc, _, err = s2sr(capsys, *QUICK, "--out", str(out), "--chunk", "120", "--mask", "none", "--scheduler",
                      scheduler)
    assert rc == 0, err
    reference = _tree(out)
    g = zarr.open_group(str(out), mode="r+", use_consolidated=False)
    names = store.layer_names(store.read_attrs(str(out))["bands"], g)
    full = g[names[0]]
    assert full.chunks[1:] == (480, 480) and full.shape[1:] == (960, 960)
    levels = overviews.block_levels((480, 480), (480, 480), names)
    assert levels is not None and levels.factors[0] == 2
    block = np.stack([g[n][0:1, 0:480, 480:960] for n in names], axis=1)
    sums = g[store.SUMS][0:1, :, 0:1, 1:2]
    g[store.DONE][0, 0, 1] = 0
    level_chunk = out / store.OVERVIEWS / "2" / "B04" / "c" / "0" / "0" / "1"
    level_chunk.unlink()
    (level_chunk / "in-the-way").mkdir(parents=True)
    with pytest.raises(OSError):
        store.write_block(str(out), {}, names, block, sums, 0, 0, 1, 0, 480, levels)
    assert g[store.DONE][0, 0, 1] == 0
    shutil.rmtree(level_chunk)
    assert store.write_block(str(out), {}, names, block, sums, 0, 0, 1, 0, 480, levels) == (0, 0, 1)
    assert _tree(out) == reference


def test_a_runs_chunk_writes_open_the_arrays_once_and_a_new_run_opens_them_again(tmp_path, capsys, monkeypatch):
    """``store.write_block`` with a run key reuses the arrays an earlier chunk of the same run opened in this process
    (their metadata cannot change within a run); another run opens them again, so a store rewritten between runs
    (here: the band array made again with another chunking) is written with its own metadata, not a stale one."""
    from s2sr_cloud.io import overviews

    out = tmp_path / "o.zarr"
    rc, _, err = s2sr(capsys, *QUICK, "--out", str(out), "--chunk", "120", "--mask", "none")
    assert rc == 0, err
    reference = _tree(out)
    g = zarr.open_group(str(out), mode="r+", use_consolidated=False)
    names = store.layer_names(store.read_attrs(str(out))["bands"], g)
    levels = overviews.block_levels((480, 480), (480, 480), names)
    blocks = {(i, j): (np.stack([g[n][0:1, 480 * i:480 * (i + 1), 480 * j:480 * (j + 1)] for n in names], axis=1),
                       g[store.SUMS][0:1, :, i:i + 1, j:j + 1]) for i in (0, 1) for j in (0, 1)}
    opened: list[list[str]] = []
    real_open = store._open_arrays
    monkeypatch.setattr(store, "_open_arrays", lambda url, opts, paths, optional=(): opened.append(paths) or
                        real_open(url, opts, paths, optional))
    for (i, j), (block, sums) in blocks.items():
        assert store.write_block(str(out), {}, names, block, sums, 0, i, j, 480 * i, 480 * j, levels,
                                 run="run-1") == (0, i, j)
    assert len(opened) == 1 and set(names) <= set(opened[0])  # the first chunk opened them; the other three not
    assert _tree(out) == reference
    # another run, after the band array was made again with 240 px chunks: opened again and written as it now is
    old = g[names[0]]
    zarr.create_array(str(out), name=names[0], shape=old.shape, chunks=(1, 240, 240), dtype=old.dtype,
                      fill_value=old.fill_value, attributes=dict(old.attrs),
                      dimension_names=old.metadata.dimension_names, overwrite=True)
    block, sums = blocks[(1, 1)]
    store.write_block(str(out), {}, names, block, sums, 0, 1, 1, 480, 480, levels, run="run-2")
    assert len(opened) == 2
    again = zarr.open_group(str(out), mode="r", use_consolidated=False)[names[0]]
    assert again.chunks == (1, 240, 240)
    np.testing.assert_array_equal(again[0:1, 480:960, 480:960], block[:, 0])
    assert (out / names[0] / "c" / "0" / "3" / "3").is_file()  # the 240 px grid's chunk, not the 480 px grid's


def test_s3_reads_are_single_gets(s3_env, monkeypatch):
    """s3fs asked each object's size (a HEAD) before reading it whole, with its default max_concurrency: 32% of a
    job's S3 requests (benchmarks/s3_requests.py). The store's own options read an object with one GET."""
    import s3fs

    make_bucket(s3_env, "gets")
    url = "s3://gets/a.zarr"
    arr = zarr.create_array(url, shape=(4, 4), chunks=(4, 4), dtype="uint16",
                            storage_options=store.storage_options(url))
    arr[:] = np.arange(16, dtype="uint16").reshape(4, 4)
    calls: list[str] = []
    for name in ("_info", "_cat_file"):
        real = getattr(s3fs.S3FileSystem, name)

        async def counted(self, *a, _real=real, _name=name, **k):
            calls.append(_name)
            return await _real(self, *a, **k)

        monkeypatch.setattr(s3fs.S3FileSystem, name, counted)
    got = zarr.open_array(url, mode="r", storage_options=store.storage_options(url))[:]
    np.testing.assert_array_equal(got, np.arange(16).reshape(4, 4))
    assert "_cat_file" in calls and "_info" not in calls  # (zarr reads the metadata documents and the chunk)
