"""The dask graph: chunk invariance through map_overlap, statistics in the same pass, GPU resource restrictions
seen by the scheduler."""

import time

import dask
import numpy as np
import pytest
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import SchedulerPlugin

from s2sr_cloud.bands import ALL_BANDS
from s2sr_cloud.catalog import search_items
from s2sr_cloud.catalog.server import sample_catalog
from s2sr_cloud.io.load import grid_for, load_reflectance
from s2sr_cloud.model.predictors import BicubicPredictor
from s2sr_cloud.ops.block import BlockSpec, super_resolve_block
from s2sr_cloud.ops.halo import plan_chunks, required_halo
from s2sr_cloud.pipeline.graph import super_resolve
from s2sr_cloud.pipeline.run import compute_statistics


@pytest.fixture(scope="module")
def sample_ds():
    with sample_catalog() as url:
        items = search_items(url, "sentinel-2-l2a")
    grid = grid_for(items, ALL_BANDS, None)
    return load_reflectance(items, grid, 240).persist(scheduler="sync")


def test_loader_keeps_native_grids(sample_ds):
    assert sample_ds.rio.crs.to_epsg() == 32629
    assert sample_ds.sizes == {"time": 1, "y": 240, "x": 240}
    assert [sample_ds[b].attrs["native_factor"] for b in ("B02", "B05", "B01")] == [1, 2, 6]
    b05 = sample_ds.B05.values[0]
    assert np.array_equal(b05[0::2, 0::2], b05[1::2, 1::2], equal_nan=True)  # 20 m pixels replicated, not interpolated


def test_each_chunk_reads_all_its_bands_in_one_task():
    """The SR graph reads a chunk's 12 bands (and its SCL block), scales them to reflectance and stacks them in ONE
    task: 12 band reads and a stack per chunk were 13 tasks (before round 14, each read and its reflectance step
    were two more), each a scheduler round trip. What several chunks share (each band's open reader, the load's
    grid and settings) stays a task of its own, computed once."""
    from collections import Counter

    from dask.utils import key_split

    with sample_catalog() as url:
        items = search_items(url, "sentinel-2-l2a")
    ds = load_reflectance(items, grid_for(items, ALL_BANDS, None), 120)  # lazy: reads from the COGs
    assert Counter(key_split(k) for k in ds["B02"].data.__dask_graph__())["reflectance"] == 4  # as loaded: two steps
    sr = super_resolve(ds, 4, chunk=120)
    graph = sr["B02"].data.__dask_graph__()
    tasks = Counter(key_split(k) for k in graph)
    assert tasks["reflectance"] == 0 and all(tasks[b] == 0 for b in ALL_BANDS), tasks
    assert tasks["s2sr-bands"] == 4 and tasks["s2sr-super-resolve"] == 4, tasks  # 2 x 2 chunks
    reads = [k for k in graph if key_split(k) == "s2sr-bands"]
    shared = {d for k in reads for d in graph[k].dependencies}
    names = {(d[0] if isinstance(d, tuple) else d).rsplit("-", 1)[0] for d in shared}
    assert names >= {f"open-{b}" for b in ALL_BANDS} | {"open-SCL"}, names  # a band's reader: one task, 4 chunks
    assert all(all(d in graph[k].dependencies for k in reads) for d in shared), shared  # each used by all 4


@pytest.mark.parametrize("chunk", [66, 96, 120, 240])
def test_dask_output_matches_whole_array(sample_ds, chunk):
    out = super_resolve(sample_ds, 4, BicubicPredictor(), chunk=chunk, quantize=False).compute(scheduler="sync")
    x = np.stack([sample_ds[b].values for b in ALL_BANDS], axis=1)
    factors = tuple(sample_ds[b].attrs["native_factor"] for b in ALL_BANDS)
    h = required_halo(BicubicPredictor().reach(factors, 4), factors)
    assert out.attrs["chunk_input"][0] == list(plan_chunks(240, chunk, 6, h))
    assert out.sizes["chunk_y"] == len(out.attrs["chunk_input"][0])
    got = np.stack([out[b].values for b in ALL_BANDS], axis=1)
    whole = super_resolve_block(x, BicubicPredictor(), BlockSpec(4, factors, h), pads=0)  # the area as one block
    assert np.nanmax(np.abs(got - whole[:, :12])) <= 1e-5


def test_statistics_are_chunking_independent_and_exact(sample_ds):
    a = super_resolve(sample_ds, 4, BicubicPredictor(), chunk=66).compute(scheduler="sync")
    b = super_resolve(sample_ds, 4, BicubicPredictor(), chunk=240)[["chunk_sums"]].compute(scheduler="sync")
    _, ta, sa = compute_statistics(a.chunk_sums.values, list(ALL_BANDS))
    _, tb, sb = compute_statistics(b.chunk_sums.values, list(ALL_BANDS))
    for band in ALL_BANDS:
        assert ta["consistency"][band]["rmse"] < 1e-6
        assert ta["point"][band]["rmse"] == pytest.approx(tb["point"][band]["rmse"], rel=1e-9)
        # direct computation of the point comparison from the output
        y = a[band].values[0].astype(np.float64)
        x = np.repeat(np.repeat(sample_ds[band].values[0].astype(np.float64), 4, 0), 4, 1)
        ok = np.isfinite(x) & np.isfinite(y)  # valid pixels only (the sample's SCL masks clouds and cirrus)
        assert ta["point"][band]["rmse"] == pytest.approx(np.sqrt(np.mean((y - x)[ok] ** 2)), rel=1e-6)
        assert ta["point"][band]["r"] == pytest.approx(np.corrcoef(x[ok], y[ok])[0, 1], rel=1e-6)
    assert sa["point"] == pytest.approx(sb["point"], rel=1e-9) and sa["point"] > 0.1
    assert sa["consistency"] < 1e-3


class RestrictionRecorder(SchedulerPlugin):
    """Runs inside the scheduler: remembers each task's resource restrictions as it is scheduled."""

    name = "restriction-recorder"

    def __init__(self):
        self.seen = {}

    async def start(self, scheduler):
        self.scheduler = scheduler

    def transition(self, key, start, finish, *args, **kwargs):
        ts = self.scheduler.tasks.get(key)
        if ts is not None and finish in ("processing", "no-worker"):
            name = key[0] if isinstance(key, tuple) else key
            self.seen[str(name)] = ts.resource_restrictions


def _restrictions(client):
    return client.run_on_scheduler(lambda dask_scheduler: dict(dask_scheduler.plugins["restriction-recorder"].seen))


@pytest.mark.parametrize("via", ["graph", "api"])
def test_gpu_resource_restriction_reaches_the_scheduler(sample_ds, via):
    """``graph.super_resolve(gpu=True)`` (what ``s2sr run`` calls on a cluster with GPU workers) and the public
    ``s2sr_cloud.super_resolve``, which tells from the active client. The API once never restricted: on one GPU
    worker of 4 threads, 4 SR tasks ran at once on its GPU (benchmarks/RESULTS.md, round 9)."""
    import s2sr_cloud

    before = dask.config.get("optimization.fuse.active", None)
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, resources={"GPU": 1}, dashboard_address=":0",
                          processes=True) as cluster, Client(cluster) as client:
            from s2sr_cloud.pipeline.cluster import has_gpu_workers

            assert has_gpu_workers(client)
            client.register_plugin(RestrictionRecorder())
            ds = sample_ds.chunk({"y": 120, "x": 120})
            if via == "graph":
                out = super_resolve(ds, 2, BicubicPredictor(), chunk=120, gpu=True)
            else:
                out = s2sr_cloud.super_resolve(ds, 2, "bicubic", chunk=120)
            assert dask.config.get("optimization.fuse.active") is False
            client.compute([out.B04.data, out.chunk_sums.data], sync=True)
            seen = _restrictions(client)
        sr = {k: v for k, v in seen.items() if k.startswith("s2sr-super-resolve")}
        assert sr and all(v == {"GPU": 1} for v in sr.values())
        others = {k: v for k, v in seen.items() if not k.startswith("s2sr-super-resolve")}
        assert others and all(not v for v in others.values())  # loading/stats tasks stay unrestricted
    finally:
        dask.config.set({"optimization.fuse.active": before})


def test_without_gpu_workers_nothing_is_restricted(dask_cluster, sample_ds):
    from s2sr_cloud.pipeline.cluster import has_gpu_workers

    assert not has_gpu_workers(dask_cluster)
    dask_cluster.register_plugin(RestrictionRecorder())
    import s2sr_cloud

    out = s2sr_cloud.super_resolve(sample_ds.chunk({"y": 120, "x": 120}), 2, "bicubic", chunk=120)  # tells: none
    dask_cluster.compute(out.B04.data, sync=True, optimize_graph=False)  # fusion would rename the SR tasks
    seen = _restrictions(dask_cluster)
    assert any("s2sr-super-resolve" in k for k in seen)
    assert all(not v for v in seen.values())


def test_warm_model_plugin_loads_once_per_worker(dask_cluster):
    from s2sr_cloud.model.predictors import loaded_models
    from s2sr_cloud.pipeline.cluster import WarmModel

    dask_cluster.register_plugin(WarmModel("tiny-test", "cpu"))
    per_worker = dask_cluster.run(loaded_models)
    assert len(per_worker) == 2
    assert all(("tiny-test", "cpu") in v for v in per_worker.values())


def test_cluster_spec_errors_are_clear():
    from s2sr_cloud.errors import ConfigError
    from s2sr_cloud.pipeline.cluster import cluster_client

    with pytest.raises(ConfigError, match="k8s:NAME"):
        with cluster_client("yarn:x"):
            pass
    with pytest.raises(ConfigError, match="dask-gateway|cannot connect"):
        with cluster_client("gateway:nothing-here"):
            pass


@pytest.mark.slow
def test_cnn_output_is_seamless_through_dask(sample_ds):
    """The shipped model through map_overlap in 2 x 2 chunks equals one whole-array pass (no halo beyond the
    area's edges)."""
    from s2sr_cloud.model.predictors import TorchPredictor

    p = TorchPredictor("s2sr-v2", ensemble=1)  # (seams do not depend on the ensemble; 4x faster)
    out = super_resolve(sample_ds, 4, p, chunk=108, quantize=False).compute(scheduler="sync")
    assert out.sizes["chunk_y"] == 2
    got = np.stack([out[b].values for b in ALL_BANDS], axis=1)
    x = np.stack([sample_ds[b].values for b in ALL_BANDS], axis=1)
    factors = tuple(sample_ds[b].attrs["native_factor"] for b in ALL_BANDS)
    h = required_halo(p.reach(factors, 4), factors)
    whole = super_resolve_block(x, p, BlockSpec(4, factors, h), pads=0)  # the area as one block, no outer halo
    assert np.nanmax(np.abs(got - whole[:, :12])) <= 1e-5
    assert float(out.detail.max()) > 1e-3  # the model did add detail, and the detail layer shows it


class HeldResults(SchedulerPlugin):
    """Chunks super-resolved (their ``s2sr-super-resolve`` task done) and not yet written (their ``s2sr-write``
    task not done): the results a worker holds. The most at once, and how many (the new one included) each time a
    chunk's SR task finished (``at_new``)."""

    def __init__(self):
        self.held, self.most, self.at_new = set(), 0, []

    def transition(self, key, start, finish, *args, **kwargs):
        if finish != "memory":
            return
        if isinstance(key, tuple) and str(key[0]).startswith("s2sr-super-resolve"):
            t, _, i, j = key[1:]
            self.held.add((t, i, j))
            self.most = max(self.most, len(self.held))
            self.at_new.append(len(self.held))
        elif isinstance(key, str) and key.startswith("s2sr-write-"):
            t, i, j = map(int, key.split("-")[2:5])
            self.held.discard((t, i, j))


class SlowBicubic(BicubicPredictor):
    """Bicubic whose SR task takes 0.2 s: like the CNN's (10-40 s on CPU, 1-2 s on a GPU), far longer than the
    scheduler's messages. (With bicubic's few-millisecond tasks, the order was decided by the race between a free
    worker starting its next SR task and the scheduler sending the finished one's write.)"""

    def predict_bands_t(self, *args, **kwargs):  # what the chunk function calls, once per block
        time.sleep(0.2)
        return super().predict_bands_t(*args, **kwargs)


def _held_results(sample_ds, out: str, priority: bool, fused: bool = False) -> tuple[int, float, int]:
    """One 16-chunk write on one single-threaded worker: the most SR results held at once, the mean held each
    time a new one was made, and the SR tasks run on their own. ``priority`` False: the consuming tasks get no
    priority. ``fused`` False: SR and write in separate tasks, as on GPU workers."""
    from s2sr_cloud.pipeline import graph, write

    with pytest.MonkeyPatch.context() as mp:
        if not priority:
            mp.setattr(graph, "DOWNSTREAM_PRIORITY", 0)
            mp.setattr(write, "DOWNSTREAM_PRIORITY", 0)
        if not fused:
            mp.setattr(write, "fused_source", lambda arrays: None)
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
                Client(cluster) as client:
            client.register_plugin(HeldResults())
            sr = super_resolve(sample_ds, 2, SlowBicubic(), chunk=60)
            assert sr.sizes["chunk_y"] * sr.sizes["chunk_x"] == 16
            write.write_output(sr, out, client=client)
            return client.run_on_scheduler(lambda dask_scheduler: [
                (p.most, sum(p.at_new) / max(1, len(p.at_new)), len(p.at_new)) for p in dask_scheduler.plugins.values()
                if type(p).__name__ == "HeldResults"][0])


def test_a_template_that_fails_stops_the_write_tasks_already_running(sample_ds, tmp_path, monkeypatch):
    """On a cluster the write tasks (each super-resolving its chunk) run while the client writes the store's
    template. When the template fails after creating the store, the running tasks learn it at their write: none
    writes a chunk into the half-made store, and none waits for the template that never comes."""
    from s2sr_cloud.errors import OutputError
    from s2sr_cloud.io import store
    from s2sr_cloud.pipeline import write

    real = store.write_template

    def half_made(*args, **kwargs):
        time.sleep(0.5)  # the workers are super-resolving their first chunks meanwhile
        real(*args, **kwargs)  # the store and its arrays exist
        raise OutputError("cannot create the output store (test): check that the location is writable")

    monkeypatch.setattr(store, "write_template", half_made)
    out = tmp_path / "half.zarr"
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        sr = super_resolve(sample_ds, 2, SlowBicubic(), chunk=60)
        with pytest.raises(OutputError, match="cannot create the output store"):
            write.write_output(sr, str(out), client=client)
        def running() -> int:  # tasks still on the worker's threads (cancelled ones too)
            return sum(client.run(lambda dask_worker: len(dask_worker.active_threads)).values())

        deadline = time.monotonic() + 30
        while running() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not running()  # none waits for the template (TEMPLATE_WAIT_S, 300 s)
    assert (out / "B02").is_dir()  # the half-made store
    assert not store.done_mask(str(out)).any()
    written = [v for v in (*ALL_BANDS, store.DETAIL, store.SUMS) if (out / v / "c").exists()]
    assert (out / store.DETAIL).is_dir() and not written  # (the template writes only the coordinates' chunks)


class FailingBicubic(BicubicPredictor):
    def predict_bands_t(self, *args, **kwargs):
        raise RuntimeError("model failed (test)")


def test_failed_chunks_leave_no_template_variable_on_the_scheduler(sample_ds, tmp_path):
    """A run whose template was written but whose chunks failed reports them, and deletes the Variable that told
    its tasks about the template: a long-lived scheduler (Kubernetes runs) must not gather one per failed run."""
    from s2sr_cloud.errors import OutputError
    from s2sr_cloud.pipeline import write

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        sr = super_resolve(sample_ds, 2, FailingBicubic(), chunk=120)
        with pytest.raises(OutputError, match="4 of 4 chunk"):
            write.write_output(sr, str(tmp_path / "o.zarr"), client=client, retries=0)
        left = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.extensions["variables"].variables))
        assert not [v for v in left if v.startswith("s2sr-template-")], left


def test_a_finished_block_is_written_before_the_next_is_made(sample_ds, tmp_path):
    """Worker memory must not grow with the area: on one single-threaded worker, finished blocks are written (and
    released) as they come, not after more SR tasks. On CPU workers each write task super-resolves its own chunk
    (``graph.FusedSR``), the first ones while the store's template is written: no SR task runs on its own, no
    finished block is held between tasks. With SR and write in separate tasks (GPU workers), without the priority
    of the consuming tasks
    (the control runs, in the same test so under the same load), dask ran SR tasks ahead and held more finished
    blocks."""
    most, _, alone = _held_results(sample_ds, str(tmp_path / "fused.zarr"), True, fused=True)
    assert most == 0 and alone == 0  # 16 fused SR + write tasks, submitted with the template on its way
    runs = {p: [_held_results(sample_ds, str(tmp_path / f"{p}{i}.zarr"), p) for i in range(2)] for p in (True, False)}
    # some lookahead is inherent (a free worker starts its next ready SR task before the scheduler has sent the
    # finished block's consumers). Measured with 0.2 s SR tasks, counting chunks super-resolved and not yet
    # written, 4 runs each, idle: the most held 2-3 with the priority, 6 without; the mean held at each new result
    # 1.56-1.69 with, 2.94 without. (Writing the SR task's block with no stacking tasks in between held 4-5 with
    # the priority and 4-6 without: the priority stopped working, so the stacked block stays.)
    assert max(most for most, _, _ in runs[True]) <= 3, runs
    mean = {p: sum(m for _, m, _ in r) / len(r) for p, r in runs.items()}
    assert mean[True] < mean[False], runs


@pytest.mark.parametrize("env", ["1", "0"])
def test_local_cluster_on_a_gpu_machine_gives_the_gpu_to_one_worker(monkeypatch, env):
    """`s2sr run` without --scheduler on a machine with a CUDA GPU: one worker process of as many threads holds
    the GPU (GPU=1), not one single-threaded process per core each running an SR task on it at once.
    ``S2SR_LOCAL_GPU=0`` keeps the CPU layout. (The GPU is faked in this process; the workers run on CPU.)"""
    import torch

    from s2sr_cloud.pipeline.cluster import dask_client, has_gpu_workers, local_gpu

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("S2SR_LOCAL_GPU", env)
    assert local_gpu() is (env == "1")
    with dask_client(n_workers=2) as client:
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        layout = sorted((w["nthreads"], w.get("resources", {}).get("GPU", 0)) for w in workers)
        assert has_gpu_workers(client) is (env == "1")
    assert layout == ([(2, 1)] if env == "1" else [(1, 0), (1, 0)])


def test_local_cluster_runs_without_dashboard_chores_unless_the_user_configured_them(monkeypatch):
    """``dask_client``'s LocalCluster gets ``BATCH_CONFIG`` (no worker profiler, slower ticks and monitors: an idle
    2-worker cluster used 0.11-0.12 cores with Dask's defaults), in the workers too; a key the user's Dask config
    sets (as a YAML file or a ``DASK_*`` variable would) keeps the user's value."""
    import dask

    from s2sr_cloud.pipeline.cluster import BATCH_CONFIG, batch_config, dask_client

    def seen() -> dict:
        return {k: dask.config.get(k) for k in BATCH_CONFIG}

    with dask.config.set({"distributed.admin.tick.interval": "50ms"}):
        with dask_client(n_workers=1) as client:
            (worker,) = client.run(seen).values()
            scheduler = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler._tick_interval)
    assert worker == {**BATCH_CONFIG, "distributed.admin.tick.interval": "50ms"}
    assert worker["distributed.worker.profile.enabled"] is False
    assert scheduler == 0.05  # the user's, not ours
    with dask_client(n_workers=1) as client:
        assert client.run_on_scheduler(lambda dask_scheduler: dask_scheduler._tick_interval) == 0.5
        assert client.run_on_scheduler(  # work stealing every 100 ms, not Dask's 1 s
            lambda dask_scheduler: dask_scheduler.extensions["stealing"]._callback_time) == 0.1
    assert dask.config.get("distributed.worker.profile.enabled") is True  # only the cluster got it
    # a DASK_* variable that asks for Dask's own default (the profiler on, for the dashboard) is the user's too
    monkeypatch.setenv("DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED", "True")
    with batch_config():
        assert dask.config.get("distributed.worker.profile.enabled") is True
        assert dask.config.get("distributed.admin.tick.interval") == "500ms"


def test_the_write_takes_sr_blocks_whole_and_honours_changed_layers(sample_ds, tmp_path):
    """``write_output`` writes the SR output's blocks as they are when the Dataset's layers are all its slices
    (``graph.layer_source``; no slicing into 13 layers and stacking back), and the layers themselves as soon as one
    was changed: what is stored is what the Dataset holds."""
    import xarray as xr

    from s2sr_cloud.io.store import layer_names
    from s2sr_cloud.pipeline.graph import layer_source
    from s2sr_cloud.pipeline.write import write_output

    sr = super_resolve(sample_ds.chunk({"y": 120, "x": 120}), 2, BicubicPredictor(), chunk=120)
    names = layer_names(list(sr.attrs["bands"]), sr)
    assert layer_source([sr[n].data for n in names]) is not None
    write_output(sr, str(tmp_path / "a.zarr"))
    changed = sr.copy()
    changed["B04"] = changed["B04"] * 0 + 0.25
    assert layer_source([changed[n].data for n in names]) is None
    write_output(changed, str(tmp_path / "b.zarr"))
    a, b = xr.open_zarr(tmp_path / "a.zarr"), xr.open_zarr(tmp_path / "b.zarr")
    ok = np.isfinite(sr["B04"].values)  # masked input pixels stay NaN
    assert ok.mean() > 0.3 and np.allclose(b["B04"].values[ok], 0.25, atol=1e-4)
    assert np.allclose(a["B04"].values, sr["B04"].values, atol=1e-6, equal_nan=True)  # the uint16 store's decode
    assert float(a["B04"].std()) > 0.01
    for name in names:
        if name != "B04":
            assert np.array_equal(a[name].values, b[name].values, equal_nan=True)


def test_write_tasks_that_super_resolve_their_chunk_store_the_same(sample_ds, tmp_path, monkeypatch):
    """On CPU each write task super-resolves its own chunk (``graph.FusedSR``): the store is the one separate SR and
    write tasks make, array for array (bands, detail, statistics sums, CRCs, overviews). A graph for GPU workers
    keeps its SR tasks (they alone hold the GPU resource)."""
    import zarr

    from s2sr_cloud.io.store import layer_names
    from s2sr_cloud.pipeline import write

    sr = super_resolve(sample_ds, 4, BicubicPredictor(), chunk=120)
    names = layer_names(list(sr.attrs["bands"]), sr)
    assert write.fused_source([sr[n].data for n in names]) is not None
    gpu = super_resolve(sample_ds, 4, BicubicPredictor(), chunk=120, gpu=True)
    assert write.fused_source([gpu[n].data for n in names]) is None
    with dask.config.set(scheduler="threads"):
        write.write_output(sr, str(tmp_path / "fused.zarr"))
        monkeypatch.setattr(write, "fused_source", lambda arrays: None)
        write.write_output(sr, str(tmp_path / "apart.zarr"))
    a, b = zarr.open_group(str(tmp_path / "fused.zarr"), mode="r"), zarr.open_group(str(tmp_path / "apart.zarr"),
                                                                                     mode="r")
    seen = 0
    for path, arr in a.arrays():
        assert np.array_equal(arr[...], b[path][...], equal_nan=True), path
        seen += 1
    for path, group in a.groups():
        for sub, arr in group.arrays():
            assert np.array_equal(arr[...], b[path][sub][...], equal_nan=True), f"{path}/{sub}"
            seen += 1
    assert seen > 2 * len(names)  # the layers, their overviews, the sums and marks


def test_quantised_output_written_to_uint16_and_float_stores(sample_ds, tmp_path):
    """The SR tasks of a quantised output return uint16 DN; the layers read as reflectance all the same, a uint16
    store takes the DN as they are and a float32 store the decoded values (DN written there as reflectance would
    be 1e4 times too large: the encoder refuses them)."""
    import xarray as xr

    from s2sr_cloud.pipeline import write

    out = super_resolve(sample_ds, 4, BicubicPredictor(), chunk=120, quantize=True)
    assert write.layer_source([out[n].data for n in (*ALL_BANDS, "detail")]).dtype == np.uint16
    ref = out.compute(scheduler="sync")
    assert ref.B02.dtype == np.float32 and 0.0 < float(ref.B02.mean()) < 0.5
    with dask.config.set(scheduler="sync"):
        for dtype in ("uint16", "float32"):
            write.write_output(out, str(tmp_path / f"{dtype}.zarr"), dtype=dtype)
            st = xr.open_zarr(tmp_path / f"{dtype}.zarr", consolidated=False)
            for b in ("B02", "B05", "B01", "detail"):
                if dtype == "float32":
                    assert np.array_equal(st[b].values, ref[b].values, equal_nan=True), b
                else:  # CF-decoded with the float32 scale and offset
                    assert np.nanmax(np.abs(st[b].values - ref[b].values)) < 1e-6, b


def test_default_chunks_come_from_the_memory_budget_up_to_the_cap(monkeypatch):
    """Default chunk sides: the budget's (34 B per output pixel of 12 bands + detail beside 0.5 GiB,
    S2SR_CHUNK_MEMORY_GIB, 2.2 GiB by default), a multiple of 6, at most 798 input px (larger chunks ran slower per
    pixel on CPU): x4 at the cap, x10 732 px, the smallest x10 chunk of a whole tile whose halo costs <= 1.25x
    (10980 px in 15 chunks of 732; 16 chunks cost 1.255x); a smaller budget shrinks x10, a larger one cannot pass
    the cap."""
    from s2sr_cloud.pipeline import graph

    monkeypatch.delenv("S2SR_CHUNK_MEMORY_GIB", raising=False)
    assert (graph.default_chunk(4), graph.default_chunk(10)) == (798, 732)
    need = graph.CHUNK_FIXED_GIB * 2**30 + (732 * 10) ** 2 * graph.BYTES_PER_OUTPUT_PX
    assert need <= 2.2 * 2**30 < graph.CHUNK_FIXED_GIB * 2**30 + (738 * 10) ** 2 * graph.BYTES_PER_OUTPUT_PX
    monkeypatch.setenv("S2SR_CHUNK_MEMORY_GIB", "1.0")
    assert (graph.default_chunk(4), graph.default_chunk(10)) == (798, 396)
    monkeypatch.setenv("S2SR_CHUNK_MEMORY_GIB", "0.6")
    assert (graph.default_chunk(4), graph.default_chunk(10)) == (444, 174)
    monkeypatch.setenv("S2SR_CHUNK_MEMORY_GIB", "64")
    assert (graph.default_chunk(4), graph.default_chunk(10)) == (798, 798)


def test_a_user_config_that_fuses_delayed_graphs_does_not_break_the_write(tmp_path):
    """``optimization.fuse.delayed: True`` (a dask setting a user may have) made every write fail with dask's
    TypeError (unhashable type: 'list'); the write turns it off for its own tasks."""
    import s2sr_cloud
    from s2sr_cloud.io import store

    sr = s2sr_cloud.super_resolve(s2sr_cloud.load(s2sr_cloud.search("sample"), chunk=120), 4, "bicubic", chunk=120)
    with dask.config.set({"optimization.fuse.delayed": True, "scheduler": "sync"}):
        s2sr_cloud.write(sr, str(tmp_path / "o.zarr"))
        assert dask.config.get("optimization.fuse.delayed") is True  # the user's setting is left as it was
    assert store.inspect_output(str(tmp_path / "o.zarr")).complete
