"""Throughput benchmark of the whole pipeline (issue 12). Ratios measured within one run; readable lines, then
as the LAST line one JSON object.

    python benchmarks/run.py --quick                 # CPU, <= 10 min on 2 cores, real data from ../shared/data
    python benchmarks/run.py                         # + whole decimated tile at default chunking
    python benchmarks/run.py --quick --data sample --device cuda   # what benchmarks/gpu.sh runs

Data: ``tile`` is the whole decimated L2A tile S2A_29RKH_20200219 from ../shared/data (1098 x 1098 at 100 m,
all 12 bands as COGs), served as a STAC item by a real rustac STAC API, its COGs over a loopback HTTP range
server that counts the bytes it sends; ``sample`` is the embedded 240 x 240 crop of the same tile
(s2sr_cloud/sample, needs nothing outside the repository).

Keys: see issue 12. Written to work on the code before this change too (for the "before" column of RESULTS.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import inspect
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import s2sr_cloud  # before torch: it turns on torch's huge-page allocation, as in every pipeline process
import torch
from s2sr_cloud.catalog.server import SAMPLE_DIR, serve_items
from s2sr_cloud.model import nets
from s2sr_cloud.model import predictors as P
from s2sr_cloud.ops import block as B
from s2sr_cloud.ops.halo import plan_chunks, required_halo
from s2sr_cloud.pipeline import graph
from s2sr_cloud.model.registry import default_model

MODEL = default_model()  # the shipped default (s2sr-v2)

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("S2SR_SHARED", ROOT.parent / "shared")) / "data"
TILE = SHARED / "s2a_29rkh_20200219_l2a_decimated"
BANDS = nets.S2_BANDS
ASSETS = {"coastal": "B01", "blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05", "rededge2": "B06",
          "rededge3": "B07", "nir": "B08", "nir08": "B8A", "nir09": "B09", "swir16": "B11", "swir22": "B12"}
# the chunk function as the pipeline calls it: uint16 DN out when quantised (round 11), not decoded on the host
AS_PIPELINE = {"dn": True} if "dn" in inspect.signature(getattr(B, "super_resolve_block_sums", len)).parameters \
    else {}
NEW = hasattr(B, "super_resolve_block_sums")  # this change (torch chunk function) or the code before it
PAIRS = 3  # alternating 1- and 2-worker runs behind speedup_2_workers (bicubic): the median pair's ratio


def say(*a: object) -> None:
    print(*a, flush=True)


# ------------------------------------------------------------------------------------------------ data + servers
@contextlib.contextmanager
def range_server(folder: Path):
    """Static files with HTTP Range on loopback (``benchmarks/range_server.py``), in a process of its own: the
    base URL. ``served_bytes(base)`` gives the body bytes it has sent."""
    import subprocess

    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("range_server.py")), str(folder)],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def served_bytes(base: str, reset: bool = False) -> int:
    """The body bytes the range server at ``base`` has sent (since its last reset); ``reset``: zero them."""
    import urllib.request

    with urllib.request.urlopen(f"{base}/_served_bytes{'?reset=1' if reset else ''}") as r:
        return int(r.read())


@contextlib.contextmanager
def served_tile():
    """The decimated tile as a STAC API (rustac) over its COGs on a loopback range server: the catalog's URL."""
    with range_server(TILE) as base, serve_items(tile_items(TILE, base)) as catalog:
        yield catalog


def tile_items(folder: Path, base_href: str, item_json: Path | None = None) -> list[dict]:
    """The tile's real earth-search v1 item, hrefs and proj:shape/proj:transform rewritten for the local COGs."""
    import rasterio
    from rasterio.warp import transform_geom

    if item_json is None:
        item_json = folder / "S2A_29RKH_20200219_0_L2A.json"
    item = json.loads(item_json.read_text())
    assets = {}
    geom = None
    for key, name in ASSETS.items():
        with rasterio.open(folder / f"{name}.tif") as src:
            a = dict(item["assets"][key])
            a["href"] = f"{base_href}/{name}.tif"
            a["proj:shape"] = [src.height, src.width]
            a["proj:transform"] = list(src.transform)[:6]
            a["gsd"] = float(src.transform.a)
            a["raster:bands"] = [dict(rb, spatial_resolution=float(src.transform.a))
                                 for rb in a.get("raster:bands", [])]
            assets[key] = a
            if geom is None:
                b = src.bounds
                poly = {"type": "Polygon", "coordinates": [[(b.left, b.bottom), (b.right, b.bottom), (b.right, b.top),
                                                            (b.left, b.top), (b.left, b.bottom)]]}
                geom = transform_geom(src.crs, "EPSG:4326", poly)
    ring = np.array(geom["coordinates"][0])
    item["assets"] = assets
    item["geometry"] = {"type": "Polygon", "coordinates": [ring.tolist()]}
    item["bbox"] = [ring[:, 0].min(), ring[:, 1].min(), ring[:, 0].max(), ring[:, 1].max()]
    item["links"] = []
    return [item]


def window_geometry(folder: Path, row0: int, col0: int, rows: int, cols: int) -> dict:
    """lon/lat polygon of a window of the 10 m-band grid (in grid pixels), shrunk 10 m so the grid snaps to it."""
    import rasterio
    from rasterio.warp import transform_geom

    with rasterio.open(folder / "B02.tif") as src:
        t = src.transform
        x0, y0 = t.c + col0 * t.a + 10, t.f + row0 * t.e - 10
        x1, y1 = t.c + (col0 + cols) * t.a - 10, t.f + (row0 + rows) * t.e + 10
        poly = {"type": "Polygon", "coordinates": [[(x0, y1), (x1, y1), (x1, y0), (x0, y0), (x0, y1)]]}
        return transform_geom(src.crs, "EPSG:4326", poly)


def needed_tile_bytes(folder: Path, row0: int, col0: int, rows: int, cols: int) -> int:
    """Compressed bytes of the full-resolution COG tiles that intersect the window (every band)."""
    import rasterio

    total = 0
    for name in ASSETS.values():
        with rasterio.open(folder / f"{name}.tif") as src:
            f = max(1, round(src.transform.a / 100.0))  # decimated: 10/20/60 m bands at 100/200/600 m
            bh, bw = src.block_shapes[0]
            r0, r1 = row0 // f, -(-(row0 + rows) // f)
            c0, c1 = col0 // f, -(-(col0 + cols) // f)
            for by in range(r0 // bh, (r1 - 1) // bh + 1):
                for bx in range(c0 // bw, (c1 - 1) // bw + 1):
                    total += int(src.get_tag_item(f"BLOCK_SIZE_{bx}_{by}", "TIFF", bidx=1) or 0)
    return total


# --------------------------------------------------------------------------------------------------- helpers
def time_calls(mod, name: str, into: dict[str, float], clock=time.perf_counter, label: str | None = None) -> None:
    """Replace ``mod.name`` by a wrapper that adds each call's wall time (or ``clock``'s, e.g. ``process_cpu_s``)
    to ``into[label or name]``."""
    f = getattr(mod, name)
    key = label or name

    def timed(*a, **k):
        t = clock()
        try:
            return f(*a, **k)
        finally:
            into[key] = into.get(key, 0) + clock() - t
    setattr(mod, name, timed)


def peak_rss_gib() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux keeps ru_maxrss across execve, so a worker or
    subprocess started from a large parent would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


@contextlib.contextmanager
def cluster(n: int, gpu: bool = False, threads: int = 1, units: int = 1):
    """``n`` worker processes of ``threads`` threads; with ``gpu``, each advertises ``units`` GPU resource units
    (``dask-worker --resources GPU=units``): at most that many SR tasks at once on its GPU."""
    import logging

    from distributed import Client, LocalCluster

    from s2sr_cloud.pipeline.cluster import batch_config

    kw = {"resources": {"GPU": units}} if gpu else {}
    with batch_config():  # as the product's local cluster (pipeline.cluster.dask_client)
        c = LocalCluster(n_workers=n, threads_per_worker=threads, processes=True, dashboard_address=":0",
                         silence_logs=logging.CRITICAL, **kw)
    with c, Client(c) as client:
        yield client


def end_to_end(catalog: str, geometry: dict | None, scale: int, model: str, ensemble: int | None, workers: int,
               chunk: int | None = None, gpu: bool = False, grid: tuple[int, ...] | None = None) -> dict:
    """STAC search -> COG read -> SR -> statistics -> Zarr write, on a fresh LocalCluster of ``workers``
    single-threaded processes. Returns seconds, output pixels and the workers' peak RSS. ``grid``: explicit chunk
    sides of both axes (as a store records them), e.g. a full default chunk and the rest of the tile."""
    out = Path(tempfile.mkdtemp(prefix="s2sr-bench-")) / "out.zarr"
    with cluster(workers, gpu) as client:
        cpu0, idle0, wcpu0 = process_cpu_s(), machine_idle_s(), sum(client.run(process_cpu_s).values())
        t0 = time.perf_counter()
        items = s2sr_cloud.search(catalog)
        ds = s2sr_cloud.load(items, geometry=geometry, chunk=chunk or graph.default_chunk(scale))
        if grid:
            sr = graph.super_resolve(ds, scale, P.get_predictor(model, ensemble=ensemble), grid=(grid, grid))
        else:
            sr = s2sr_cloud.super_resolve(ds, scale, model, chunk=chunk, ensemble=ensemble)
        s2sr_cloud.write(sr, str(out), client=client)
        seconds = time.perf_counter() - t0
        client_cpu, idle = process_cpu_s() - cpu0, machine_idle_s() - idle0
        workers_cpu = sum(client.run(process_cpu_s).values()) - wcpu0
        rss = max(client.run(peak_rss_gib).values())
    shutil.rmtree(out.parent, ignore_errors=True)
    return {"seconds": seconds, "out_px": int(ds.sizes["y"] * ds.sizes["x"] * scale * scale), "rss_gib": rss,
            "shape": (int(ds.sizes["y"]), int(ds.sizes["x"])), "chunks": int(np.prod(sr["chunk_sums"].shape[2:])),
            "client_cpu_s": client_cpu, "idle_core_s": idle, "workers_cpu_s": workers_cpu}


def floor_chunk_task(url: str, names: tuple, fused: Any, block: np.ndarray, i: int, j: int, y0: int, x0: int,
                     levels: Any, run: str) -> tuple:
    """What the pipeline's fused write task runs (``write._sr_write_block``): the SR of one chunk and its store
    write (the job's arrays opened once per worker, as ``write_output``'s run key does), without waiting for a
    template."""
    from s2sr_cloud.pipeline import write as W

    y, sums = fused.run(block, 0, i, j)
    return W._write_block(url, {}, names, y, sums, 0, i, j, y0, x0, levels, run)


def floor_inputs(catalog: str, geometry: dict, chunk: int) -> dict | None:
    """For ``floor_job``: the bicubic x4 SR output's layout on ``chunk`` px chunks, its fused SR step and each
    chunk's overlapped input block, read once (None on code without fused write tasks)."""
    import dask

    from s2sr_cloud.io import store

    if not hasattr(graph, "fused_source"):
        return None
    ds = s2sr_cloud.load(s2sr_cloud.search(catalog), geometry=geometry, chunk=chunk)
    sr = s2sr_cloud.super_resolve(ds, 4, "bicubic", chunk=chunk)
    bands = list(sr.attrs["bands"])
    names = store.layer_names(bands, sr)
    fused = graph.fused_source([sr[n].data for n in names])
    padded = fused.blocks([sr[n].data for n in names]).to_delayed(optimize_graph=False)
    with dask.config.set(scheduler="threads"):
        blocks = {(i, j): padded[0, 0, i, j].compute() for i in range(padded.shape[2])
                  for j in range(padded.shape[3])}
    return {"sr": sr, "bands": bands, "names": names, "fused": fused, "blocks": blocks}


def floor_job(p: dict, workers: int) -> dict:
    """The floor under ``speedup_2_workers``: the chunk tasks alone (``floor_chunk_task``) on a fresh cluster of
    ``workers``, inputs scattered to the workers first and the store's template made before the clock: no search,
    read, graph, template or finish. Seconds from submission to the last write, as ``end_to_end``'s fields."""
    import distributed

    from s2sr_cloud.io import overviews, store

    sr, names, keys = p["sr"], p["names"], sorted(p["blocks"])
    ych, xch = sr[names[0]].data.chunks[1], sr[names[0]].data.chunks[2]
    y0s, x0s = np.cumsum((0,) + ych[:-1]), np.cumsum((0,) + xch[:-1])
    levels = overviews.block_levels(ych, xch, (*p["bands"], store.DETAIL))
    folder = tempfile.mkdtemp(prefix="s2sr-floor-")
    url = f"{folder}/out.zarr"
    store.write_template(sr, url, "uint16", dict(sr.attrs), levels)
    with cluster(workers) as client:
        addrs = list(client.nthreads())
        blocks = [client.scatter(p["blocks"][k], workers=[addrs[n % workers]]) for n, k in enumerate(keys)]
        distributed.wait(blocks)
        time.sleep(0.5)  # the cluster settled
        cpu0, idle0, wcpu0 = process_cpu_s(), machine_idle_s(), sum(client.run(process_cpu_s).values())
        t0 = time.perf_counter()
        futures = [client.submit(floor_chunk_task, url, names, p["fused"], b, i, j, int(y0s[i]), int(x0s[j]),
                                 levels, folder, pure=False) for b, (i, j) in zip(blocks, keys, strict=True)]
        distributed.wait(futures)
        seconds = time.perf_counter() - t0
        client_cpu, idle = process_cpu_s() - cpu0, machine_idle_s() - idle0
        workers_cpu = sum(client.run(process_cpu_s).values()) - wcpu0
        failed = [f for f in futures if f.status != "finished"]
        if failed:
            raise RuntimeError(f"{len(failed)} chunk task(s) failed: {failed[0].exception()}")
    shutil.rmtree(folder, ignore_errors=True)
    return {"seconds": seconds, "client_cpu_s": client_cpu, "idle_core_s": idle, "workers_cpu_s": workers_cpu}


def process_cpu_s() -> float:
    """CPU seconds of this process (the client: graph, template, finish, and a LocalCluster's scheduler; in a
    worker, the worker's)."""
    t = os.times()
    return t.user + t.system


def machine_idle_s() -> float:
    """Core-seconds the machine has been idle (Linux /proc/stat: idle + iowait); nan elsewhere."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
        return (int(fields[3]) + int(fields[4])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def load_array(catalog: str, geometry: dict | None) -> np.ndarray:
    items = s2sr_cloud.search(catalog)
    ds = s2sr_cloud.load(items, geometry=geometry)
    return np.stack([ds[b].values for b in BANDS], axis=1).astype(np.float32)  # (T, 12, H, W)


def bare_forward(x: np.ndarray, scale: int, ensemble: int | None, threads: int, device: str) -> float:
    """The network alone on the area in memory (no halo, no tiling, no post-processing), best of 1, on ``threads``
    torch threads. (Through round 5 this called torch.set_num_threads before ``cached_model``, whose first load
    set the process back to S2SR_TORCH_THREADS (1): the bare forward ran on ONE thread against the pipeline's two.)"""
    return bare_forward_windows(x, scale, ensemble, threads, device, side=max(x.shape[-2:]))  # one window: all of x


def bare_forward_windows(x: np.ndarray, scale: int, ensemble: int | None, threads: int, device: str,
                         side: int = 240) -> float:
    """The network alone over the whole of ``x`` in memory, in ``side`` px windows with no overlap (no halo, no
    post-processing, no I/O), on ``threads`` torch threads: the network's own time for the pixels a whole-tile
    end-to-end run produces."""
    P.torch_threads(threads)  # what a task does: cached_model's first load keeps it
    dev = torch.device(device)
    net = P.cached_model(MODEL, dev)
    assert torch.get_num_threads() == min(threads, os.cpu_count() or 1), torch.get_num_threads()
    xt = torch.from_numpy(np.nan_to_num(x)).to(dev)
    total = 0.0
    with torch.inference_mode():
        net(xt[..., :48, :48], scale, ensemble)  # warm-up (kernels, allocator)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        for r in range(0, x.shape[-2], side):
            for c in range(0, x.shape[-1], side):
                t0 = time.perf_counter()
                net(xt[..., r:r + side, c:c + side], scale, ensemble)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                total += time.perf_counter() - t0
    return total


def chunk_parts(x: np.ndarray, scale: int, ensemble: int | None, device: str, core: int | None = None) -> dict:
    """One block through the chunk function with its halo (reflect-padded), one thread: network vs the rest.
    ``core``: the block's core side (the area mirrored to that size; None: the area as it is)."""
    torch.set_num_threads(1)
    p = P.TorchPredictor(MODEL, ensemble=ensemble, device=device)
    f = nets.S2_FACTORS
    h = required_halo(p.reach(f, scale), f)
    if core:
        x = np.pad(x, ((0, 0), (0, 0), (0, core), (0, core)), mode="symmetric")[..., :core, :core]
    xp = np.pad(x, ((0, 0), (0, 0), (h, h), (h, h)), mode="symmetric")
    spec = B.BlockSpec(scale, f, h, quantum=(1e-4, -0.1))
    B.super_resolve_block(xp[..., :h * 2 + 48, :h * 2 + 48], p, spec)  # load + warm-up
    if NEW:
        B.set_timing(True)
        t0 = time.perf_counter()
        B.super_resolve_block_sums(xp, p, spec, **AS_PIPELINE)
        total = time.perf_counter() - t0
        net = B.TIMINGS["network"]
        parts = dict(B.TIMINGS)
        B.set_timing(False)
    else:  # before: the network is TorchPredictor.predict; statistics were a second task (block_sums)
        from s2sr_cloud.ops.stats import block_sums

        spent = [0.0]
        orig = P.TorchPredictor.predict

        def timed(self, *a, **k):
            t = time.perf_counter()
            r = orig(self, *a, **k)
            spent[0] += time.perf_counter() - t
            return r

        P.TorchPredictor.predict = timed
        try:
            t0 = time.perf_counter()
            y = B.super_resolve_block(xp, p, spec)
            block_sums(x, y[:, :12], f, scale)
            total = time.perf_counter() - t0
        finally:
            P.TorchPredictor.predict = orig
        net = spent[0]
        parts = {"network": net}
    return {"total": total, "network": net, "post_fraction": 1 - net / total, "halo": h, "core": x.shape[-1],
            "out_px": x.shape[-2] * x.shape[-1] * scale * scale, "parts": parts}


_JOBS_CODE = """
import json, sys
import numpy as np
sys.path.insert(0, {bench!r})
import run as R
x = np.load({path!r})
out = []
for scale, core, ens in {jobs!r}:
    out.append(R.chunk_parts(x, scale, ens, {device!r}, core=core))
    out[-1]["rss_gib"] = R.peak_rss_gib()
print(json.dumps(out))
"""


def chunk_jobs(x: np.ndarray, lanes: list[list[tuple[int, int | None, int | None]]], device: str = "cpu",
               after_first: Any = None) -> list[list[dict]]:
    """Chunk-function measurements (``chunk_parts``) in fresh single-threaded processes, one per lane, the lanes
    side by side (one per core); each lane runs its (scale, core or None for the area, ensemble) jobs in order.
    A process's peak RSS is that of its largest block (report a default-size block first in its lane).
    ``after_first()`` runs here once the first lane has ended, while the others go on (``side_by_side``)."""
    tmp = Path(tempfile.mkdtemp(prefix="s2sr-bench-"))
    np.save(tmp / "x.npy", x)
    try:
        return side_by_side([_JOBS_CODE.format(bench=str(Path(__file__).parent), path=str(tmp / "x.npy"), jobs=lane,
                                               device=device) for lane in lanes], after_first)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def side_by_side(codes: list[str], after_first: Any = None) -> list:
    """Run each Python ``codes`` in its own fresh process, all at once; the JSON each prints last, in order.
    ``after_first()``: run in this process as soon as the first has ended (on the core it freed)."""
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=ROOT) for code in codes]
    out = []
    try:
        for k, pr in enumerate(procs):
            so, se = pr.communicate()
            if pr.returncode:
                raise RuntimeError(se[-2000:])
            out.append(json.loads(so.strip().splitlines()[-1]))
            if k == 0 and after_first is not None:
                after_first()
    finally:
        for pr in procs:
            if pr.poll() is None:
                pr.kill()
                pr.wait()
    return out


_SCALING_CODE = """
import json, sys, time
import numpy as np
sys.path.insert(0, {bench!r})
import run as R
print(json.dumps(R.chunk_loop(np.load({path!r}), {model!r}, {ensemble!r}, {core!r}, {blocks!r}, {ready!r}, {n!r})))
"""


def chunk_loop(x: np.ndarray, model: str, ensemble: int | None, core: int, blocks: int, ready: str, n: int) -> float:
    """In one single-threaded process: the chunk function (x4, as the pipeline calls it) on the first ``blocks``
    ``core`` px blocks of the area ``x`` with their halo, each output variable compressed with the store's codec
    (the write's own computing), no dask and no I/O. Starts once ``n`` processes are ready (a file each in the
    folder ``ready``: processes side by side start together, after their imports and warm-up); returns its
    seconds."""
    from s2sr_cloud.io.store import compressors

    torch.set_num_threads(1)
    p = P.get_predictor(model, ensemble=ensemble)
    f = nets.S2_FACTORS
    h = required_halo(p.reach(f, 4), f)
    spec = B.BlockSpec(4, f, h, quantum=(1e-4, -0.1))
    xp = np.pad(x, ((0, 0), (0, 0), (h, h), (h, h)), mode="symmetric")
    zstd = compressors(2)[0]  # format 2's numcodecs zstd: format 3's level, in one call
    corners = [(r, c) for r in range(0, x.shape[-2] - core + 1, core) for c in range(0, x.shape[-1] - core + 1, core)]
    B.super_resolve_block_sums(xp[..., :core + 2 * h, :core + 2 * h], p, spec, **AS_PIPELINE)  # load, warm-up
    Path(ready, str(os.getpid())).touch()
    deadline = time.time() + 300  # (another process that failed before this point never comes)
    while len(os.listdir(ready)) < n and time.time() < deadline:
        time.sleep(0.01)
    t0 = time.perf_counter()
    for r, c in corners[:blocks]:
        y, _ = B.super_resolve_block_sums(xp[..., r:r + core + 2 * h, c:c + core + 2 * h], p, spec, **AS_PIPELINE)
        for band in y[0]:
            zstd.encode(np.ascontiguousarray(band))
    return time.perf_counter() - t0


def machine_speedup(x: np.ndarray, model: str, ensemble: int | None, core: int, blocks: int) -> dict:
    """What this machine's 2 cores give the pipeline's own per-chunk computing with nothing shared:
    ``chunk_loop`` in one process alone, then in two processes side by side (each the same blocks) -> their
    throughput ratio. The ceiling of ``speedup_2_workers`` here: on this 2-core VM a pure Python loop scaled
    1.44-2.27 and the network 1.85-2.01 from one minute to the next (round 15, ``benchmarks/cores_kinds.py``)."""
    tmp = Path(tempfile.mkdtemp(prefix="s2sr-bench-"))
    np.save(tmp / "x.npy", x)
    try:
        def run(n: int) -> list[float]:
            ready = tempfile.mkdtemp(dir=tmp)
            return side_by_side([_SCALING_CODE.format(bench=str(Path(__file__).parent), path=str(tmp / "x.npy"),
                                                      model=model, ensemble=ensemble, core=core, blocks=blocks,
                                                      ready=ready, n=n) for _ in range(n)])
        one, two = run(1)[0], run(2)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"one": one, "two": two, "speedup": 2 * one / max(two)}


def halo_overhead(scale: int, n: int = 10980) -> float:
    """Band-pixels pushed through the networks / band-pixels kept, at default chunking on a whole-tile grid,
    counting every level of tiling (S2SRNet: the 12-band band-SR network plus the 20 m sharpening network,
    counted by its 6 output bands)."""
    p = P.TorchPredictor(MODEL)
    f = nets.S2_FACTORS
    h = required_halo(p.reach(f, scale), f)
    chunks = plan_chunks(n - n % 6, graph.default_chunk(scale), 6, h)
    fed = kept = 0.0
    last = len(chunks) - 1
    for iy, cy in enumerate(chunks):
        for ix, cx in enumerate(chunks):
            kept += 18 * cy * cx
            if hasattr(nets, "s2srnet_windows"):  # each group on its own window (the chunk function's crops)
                net = P._arch_instance(MODEL)
                if hasattr(graph, "block_pads"):  # no halo beyond the tile's edges: the pipeline's own rule
                    pads = graph.block_pads(h, {0: {"chunk-location": (0, 0, iy, ix),
                                                    "num-chunks": (1, 1, last + 1, last + 1)}})
                else:
                    pads = (h,) * 4
                win = nets.s2srnet_windows(net, {ff: tuple(p - B.post_reach(ff) if p else 0 for p in pads)
                                                 for ff in set(f)})

                def px(a) -> int:
                    a = (a,) * 4 if isinstance(a, int) else a
                    return ((cy + pads[0] + pads[1] - a[0] - a[1])
                            * (cx + pads[2] + pads[3] - a[2] - a[3]))

                fed += 4 * px(win["sr1"]) + 6 * px(win["sr2"]) + 2 * px(win["sr6"]) + 6 * px(win["sharpen20"])
            elif NEW:  # the code before per-group crops: every group's band-SR window started at the same a
                net = P._arch_instance(MODEL)
                m = max(B.post_reach(ff) for ff in f)
                crop = h - m
                rs = net.sr.reach()
                a = nets._start(crop, rs)
                win = (cy + 2 * (h - a)) * (cx + 2 * (h - a))
                fed += 12 * win
                b = nets._start(a, nets.project_reach(2) + net.sharpen20.reach())
                fed += 6 * (cy + 2 * (h - b)) * (cx + 2 * (h - b))
            else:  # one block (core + 2 halo), cut into 480-pixel tiles with the receptive field around each
                rf = 60
                for ty in plan_tiles(cy + 2 * h, 480):
                    for tx in plan_tiles(cx + 2 * h, 480):
                        fed += 18 * (ty + 2 * rf) * (tx + 2 * rf)
    return fed / kept


def plan_tiles(n: int, size: int) -> list[int]:
    return [min(size, n - i) for i in range(0, n, size)]


def flops_per_output_px(scale: int, ensemble: int | None, device: str) -> float:
    """The count ``s2sr run --dry-run`` prints (pipeline/plan.py), for the default model."""
    from s2sr_cloud.pipeline.plan import network_flops_per_output_px

    return network_flops_per_output_px(P.TorchPredictor(MODEL, ensemble=ensemble, device=device), nets.S2_FACTORS,
                                       scale)


def autocast_psnr_delta(device: str) -> dict:
    """Wald's protocol x2 on the embedded sample (NOT held out: the tile was in band-SR training): degrade every
    band 2x on its native grid, super-resolve back with fp32 and with bf16 autocast (consistency layer included),
    PSNR of the 10 m bands against the original. Returns both PSNRs and the change."""
    from s2sr_cloud.testing import sample_grid_stack

    x, f = sample_grid_stack(BANDS)
    lo = np.stack([np.repeat(np.repeat(x[0, c, ::fc, ::fc].reshape(240 // fc // 2, 2, 240 // fc // 2, 2)
                                       .mean(axis=(1, 3)), fc, 0), fc, 1) for c, fc in enumerate(f)])[None]
    out = {}
    for amp in (False, True):
        p = P.TorchPredictor(MODEL, device=device, autocast=amp)
        h = required_halo(p.reach(f, 2), f)
        y = B.super_resolve_block(np.pad(lo, ((0, 0), (0, 0), (h, h), (h, h)), mode="symmetric"), p,
                                  B.BlockSpec(2, f, h))
        i10 = [BANDS.index(b) for b in ("B02", "B03", "B04", "B08")]
        mse = float(np.mean((y[0, i10].astype(np.float64) - x[0, i10]) ** 2))
        out["bf16" if amp else "fp32"] = 10 * math.log10(1 / mse)
    out["delta_db"] = out["bf16"] - out["fp32"]
    return out


def subprocess_json(code: str) -> dict:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------------ main
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", choices=("tile", "sample"), default="tile")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    dev = args.device
    gpu = dev.startswith("cuda")
    if args.data == "tile" and not TILE.exists():
        sys.exit(f"{TILE} not found: use --data sample")
    res: dict = {"code": "after (torch chunk function)" if NEW else "before", "device": dev,
                 "torch": torch.__version__, "cores": os.cpu_count(), "quick": args.quick, "data": args.data}
    if gpu:
        res["gpu"] = torch.cuda.get_device_name(0)
    say(f"s2sr-cloud throughput benchmark ({res['code']}), device {dev}, {os.cpu_count()} cores, data {args.data}")
    ens_cheap = 1  # the cheap setting for the parts that only need a fixed model (RSS, per-part times)
    folder = TILE if args.data == "tile" else SAMPLE_DIR
    n = 240  # quick area side, grid pixels (the sample's size)
    row0, col0 = (60, 840) if args.data == "tile" else (0, 0)  # the window the sample was cut from
    with contextlib.ExitStack() as stack:
        if args.data == "tile":
            base = stack.enter_context(range_server(folder))
            items = tile_items(folder, base)
            catalog = stack.enter_context(serve_items(items))
            geom = window_geometry(folder, row0, col0, n, n)
        else:
            from s2sr_cloud.catalog.server import sample_items

            base = stack.enter_context(range_server(folder))
            items = sample_items()
            for it in items:
                for a in it["assets"].values():
                    a["href"] = f"{base}/{Path(a['href'].removeprefix('file://')).name}"
            catalog = stack.enter_context(serve_items(items))
            geom = None

        # 1. pipeline efficiency: end to end vs the bare network, default model and settings, same threads
        x = load_array(catalog, geom)
        say(f"area: {x.shape[-2]} x {x.shape[-1]} input px (12 bands), x4 -> {x.shape[-2] * 4} x {x.shape[-1] * 4}")
        workers = 1 if gpu else args.workers
        t_bare = bare_forward(x, 4, None, workers, dev)
        served_bytes(base, reset=True)
        e2e = end_to_end(catalog, geom, 4, "default", None, workers, gpu=gpu)
        read = served_bytes(base)
        res["pipeline_efficiency"] = t_bare / e2e["seconds"]
        say(f"bare network forward (default ensemble, {workers} thread(s), in memory): {t_bare:.1f} s")
        say(f"end to end (search, COG read, SR, statistics, Zarr write; {workers} worker(s), {e2e['chunks']} "
            f"chunk(s)): {e2e['seconds']:.1f} s -> pipeline_efficiency {res['pipeline_efficiency']:.2f}")
        res["e2e_seconds_x4"] = e2e["seconds"]
        res["bare_seconds_x4"] = t_bare
        need = needed_tile_bytes(folder, row0, col0, x.shape[-2], x.shape[-1])
        res["io_ratio"] = read / need if need else None
        say(f"COG bytes read {read / 1e6:.2f} MB / compressed bytes of the tiles the area needs {need / 1e6:.2f} MB"
            f" -> io_ratio {res['io_ratio']:.2f}")
        core_s = e2e["seconds"] * (1 if gpu else workers)
        res["tile_core_hours_x4"] = 10980**2 * 16 / (e2e["out_px"] / core_s) / 3600
        say(f"projected {'GPU' if gpu else 'core'}-hours for a 10980 x 10980 tile at x4 (this area's end-to-end rate,"
            f" default ensemble): {res['tile_core_hours_x4']:.1f}")

        # 2. the chunk function, one thread per process: one block of the DEFAULT chunk size at x4 and at x10 for
        # the peak RSS, the two processes side by side (with --quick at --ensemble 1: the default ensemble would
        # take ~4x longer; memory barely depends on it); then, in one process ALONE on the machine (a second job
        # beside it competes for memory bandwidth: the memory-bound post-processing ran 1.4-2x slower beside the
        # other lane), the share of time outside the network and the throughput per core at the default model and
        # ensemble (the area's 240 px at x4, 120 px at x10, with their halos)
        ens_blk = ens_cheap if args.quick else None
        d4, d10 = graph.default_chunk(4), graph.default_chunk(10)
        jobs = [[(4, d4, ens_blk)], [(10, d10, ens_blk)]]
        small = 120  # 1x: one 120 px chunk; 16x: 480 x 480 px, 16 chunks (a window well inside the tile)
        g1 = window_geometry(folder, 300, 300, small, small) if args.data == "tile" else None
        g16 = window_geometry(folder, 300, 300, small * 4, small * 4) if args.data == "tile" else None
        memory: dict[str, dict] = {}  # section 5's peak-RSS-only jobs: made on the core the x4 lane frees (the x10
        # lane runs 2-3x longer), which took --quick to 9 min 42 s on a slow VM when made after it (round 18)

        def memory_jobs() -> None:
            if g1 is None:
                return
            # rss_ratio_16x: 3 x 3 chunks of 60 px (bicubic's halo: 60 px) against 12 x 12, so the 1x area's
            # middle block carries the same halo as the 16x area's inner blocks. The one-chunk area of rounds 4-9
            # (rss_ratio_16x_one_chunk) has no halo at all: its ratio counted the inner blocks' halo (blocks of
            # 120^2 against 240^2 px), not the area
            for key, side, chunk in (("a1", 3 * 60, 60), ("a16", 12 * 60, 60), ("r1", small, small)):
                memory[key] = end_to_end(catalog, window_geometry(folder, 300, 300, side, side), 4, "bicubic", None,
                                         1, chunk=chunk)

        lanes = chunk_jobs(x, jobs if not gpu else [sum(jobs, [])], dev,  # one GPU: one lane
                           after_first=memory_jobs if not gpu else None)
        if gpu:
            memory_jobs()
        blocks = {4: lanes[0][0], 10: lanes[-1][-1]}
        alone = chunk_jobs(x, [[(4, None, None), (10, 120, None)]], dev)[0]
        for scale, cp in ((4, alone[0]), (10, alone[1])):
            res[f"mpx_per_core_s_x{scale}"] = cp["out_px"] / 1e6 / cp["total"]
            res[f"post_fraction_x{scale}"] = cp["post_fraction"]
            say(f"chunk function x{scale}, {cp['core']} px core + halo {cp['halo']}, default ensemble, 1 thread, "
                f"alone: {cp['total']:.1f} s, network {cp['network']:.1f} s, post_fraction {cp['post_fraction']:.3f}, "
                f"{res[f'mpx_per_core_s_x{scale}']:.4f} output Mpx (12 bands) per core-second; parts "
                + ", ".join(f"{k} {v:.2f}" for k, v in cp["parts"].items()))
        res["post_fraction"] = max(res["post_fraction_x4"], res["post_fraction_x10"])
        for scale, b in blocks.items():
            res[f"chunk_rss_gib_x{scale}"] = b["rss_gib"]
            res[f"post_fraction_default_chunk_x{scale}"] = b["post_fraction"]
            say(f"default chunk x{scale}: core {b['core']} + halo {b['halo']} px, ensemble {ens_blk or 'default'}, "
                f"1 thread: {b['total']:.1f} s, network {b['network']:.1f} s, post_fraction "
                f"{b['post_fraction']:.3f}; peak RSS of the process {b['rss_gib']:.2f} GiB; parts "
                + ", ".join(f"{k} {v:.2f}" for k, v in b["parts"].items()))

        # 3. halo overhead at default chunking on a whole-tile grid (arithmetic of the code's own plan)
        for scale in (4, 10):
            res[f"halo_overhead_x{scale}"] = halo_overhead(scale)
            say(f"halo overhead x{scale}: default chunk {graph.default_chunk(scale)} px, whole 10980 px tile: "
                f"{res[f'halo_overhead_x{scale}']:.3f}")

        # 4. memory: peak worker RSS (the e2e run above; the default-size blocks; the whole tile without --quick)
        res["peak_rss_gib"] = max(e2e["rss_gib"], *(b["rss_gib"] for b in blocks.values()))
        say(f"peak RSS: e2e x4 worker {e2e['rss_gib']:.2f} GiB ({e2e['chunks']} chunk(s)); default-size block x4 "
            f"{blocks[4]['rss_gib']:.2f} GiB, x10 {blocks[10]['rss_gib']:.2f} GiB")
        if not args.quick and args.data == "tile":
            big = end_to_end(catalog, None, 4, "default", ens_cheap, args.workers)
            res["peak_rss_gib_whole_tile"] = big["rss_gib"]
            res["whole_tile_seconds_ens1_x4"] = big["seconds"]
            say(f"whole decimated tile x4 --ensemble 1 default chunking: {big['seconds']:.0f} s, peak worker RSS "
                f"{big['rss_gib']:.2f} GiB, {big['chunks']} chunks")
            # the same pixels through the bare network (240 px windows, no halo), same threads: the end-to-end run
            # against its network at tile scale, where chunks overlap each other's reads and writes
            t_net = bare_forward_windows(load_array(catalog, None), 4, ens_cheap, args.workers, dev)
            res["pipeline_efficiency_whole_tile_ens1"] = t_net / big["seconds"]
            say(f"whole decimated tile, bare network in 240 px windows ({args.workers} threads, --ensemble 1): "
                f"{t_net:.0f} s -> pipeline efficiency at tile scale {res['pipeline_efficiency_whole_tile_ens1']:.2f}")
            res["peak_rss_gib"] = max(res["peak_rss_gib"], big["rss_gib"])
            # dask workers at the default x10 chunk (--ensemble 1): 2 x 2 chunks of it from the tile, or, when two
            # do not fit, the whole tile on the grid of one default chunk and the rest (732 + 366 px: the first
            # chunk full-size with its halo on two sides). A worker holds the chunk function's peak plus what dask
            # and the write keep. (x4's default chunk, 798 px, needs a 1596 px area: larger than the decimated tile)
            d = graph.default_chunk(10)
            if 2 * d <= 1098 - 60 or 1098 - d >= 108:
                geom, grid = ((window_geometry(folder, 60, 60, 2 * d, 2 * d), None) if 2 * d <= 1098 - 60
                              else (None, (d, 1098 - d)))
                d10 = end_to_end(catalog, geom, 10, "default", ens_cheap, args.workers, grid=grid)
                res["peak_rss_gib_workers_x10_default_chunks"] = d10["rss_gib"]
                res["peak_rss_gib"] = max(res["peak_rss_gib"], d10["rss_gib"])
                say(f"x10, --ensemble 1, default chunks ({d10['chunks']} of {graph.default_chunk(10)} px), "
                    f"{args.workers} workers: {d10['seconds']:.0f} s, peak worker RSS {d10['rss_gib']:.2f} GiB")
        # 5. memory and speed as the area and the workers grow (same window, 16 chunks of 120 px). Bicubic leaves
        # the pipeline's own work alone (scheduler, reads, writes). The default model (at --ensemble 1, to keep
        # the run short: the ensemble repeats the same network per chunk) gives speedup_2_workers_default_model,
        # the job a user runs; not its RSS ratio: its one-chunk area has no halo (an area edge on every side) while
        # the 16 chunks' inner blocks carry 108 px of it, so the ratio would measure the halo, not the area.
        if g1 is not None:
            a1, a16, r1 = memory["a1"], memory["a16"], memory["r1"]  # (made during section 2)
            res["rss_ratio_16x"] = a16["rss_gib"] / a1["rss_gib"]
            say(f"bicubic, chunk 60: peak worker RSS {a1['rss_gib']:.3f} GiB for {a1['shape']} "
                f"({a1['chunks']} chunks), {a16['rss_gib']:.3f} GiB for {a16['shape']} ({a16['chunks']} chunks) -> "
                f"rss_ratio_16x {res['rss_ratio_16x']:.2f}")
            r16 = end_to_end(catalog, g16, 4, "bicubic", None, 1, chunk=small)  # alone: pair 1's 1-worker time
            res["rss_ratio_16x_one_chunk"] = r16["rss_gib"] / r1["rss_gib"]
            say(f"bicubic, chunk {small}: peak worker RSS {r1['rss_gib']:.3f} GiB for {r1['shape']} "
                f"({r1['chunks']} chunk), {r16['rss_gib']:.3f} GiB for {r16['shape']} ({r16['chunks']} chunks) -> "
                f"rss_ratio_16x_one_chunk {res['rss_ratio_16x_one_chunk']:.2f}")
            if not gpu:
                x16 = load_array(catalog, g16)
                # (the machine's reference on 8 and 2 blocks: 16 and 4 took --quick to 9 min 53 s on a slow VM)
                # 1 and 2 workers alternating, PAIRS times for bicubic (its 2-worker job is 5-7 s: one run's ratio
                # swung 1.20-1.87 within minutes on this VM, round 17): the median pair's ratio
                # the floor under the bicubic ratio: the same chunk tasks alone (``floor_job``), a pair after each
                # of its pairs
                floor = floor_inputs(catalog, g16, small)
                floors: list[float] = []
                for model, ens, tag, one, blocks, pairs in (("bicubic", None, "", r16, 8, PAIRS),
                                                            ("default", ens_cheap, "_default_model", None, 2, 1)):
                    ratios, runs = [], []
                    for k in range(pairs):
                        one = one if k == 0 and one else end_to_end(catalog, g16, 4, model, ens, 1, chunk=small)
                        two = end_to_end(catalog, g16, 4, model, ens, 2, chunk=small)
                        ratios.append(one["seconds"] / two["seconds"])
                        runs.append((one, two))
                        if not tag and floor is not None:
                            f1, f2 = floor_job(floor, 1), floor_job(floor, 2)
                            floors.append(f1["seconds"] / f2["seconds"])
                            say(f"  the floor, the same 16 chunk tasks alone (inputs on the workers, no search, read, "
                                f"graph, template or finish): 1 worker {f1['seconds']:.2f} s, 2 workers "
                                f"{f2['seconds']:.2f} s -> {floors[-1]:.2f}; its 2-worker job: client "
                                f"{f2['client_cpu_s']:.2f} CPU-s, idle {f2['idle_core_s']:.2f} core-s")
                        # the ceiling: the 2-worker job with its workers' CPU alone, spread evenly over both cores (no
                        # idle core, no client): the 1-worker time over half the 2 workers' CPU seconds
                        ceiling = one["seconds"] / (two["workers_cpu_s"] / 2)
                        say(f"{model}{' --ensemble 1' if ens else ''}, 16 chunks, pair {k + 1}/{pairs}: 1 worker "
                            f"{one['seconds']:.1f} s, 2 workers {two['seconds']:.1f} s -> {ratios[-1]:.2f}. The "
                            f"workers' CPU: {one['workers_cpu_s']:.1f} s alone, {two['workers_cpu_s']:.1f} s "
                            f"together (x{two['workers_cpu_s'] / one['workers_cpu_s']:.2f}) -> ceiling {ceiling:.2f}; "
                            f"the 2-worker job's {2 * two['seconds']:.1f} core-s also held the client (scheduler, "
                            f"graph, template, finish) {two['client_cpu_s']:.2f} CPU-s and {two['idle_core_s']:.2f} "
                            "idle core-s")
                    res[f"speedup_2_workers{tag}"] = float(np.median(ratios))
                    if not tag and floors:
                        res["speedup_2_workers_floor"] = float(np.median(floors))
                        res["speedup_2_workers_floor_pairs"] = [round(r, 3) for r in floors]
                        say(f"bicubic, 16 chunks: the floor under speedup_2_workers "
                            f"{res['speedup_2_workers_floor']:.2f} (median of {len(floors)}): what Dask on this "
                            "machine gives the chunk work alone")
                    if pairs > 1:
                        res[f"speedup_2_workers{tag}_pairs"] = [round(r, 3) for r in ratios]
                    one, two = runs[int(np.argsort(ratios)[len(ratios) // 2])]  # the median pair
                    res[f"speedup_2_workers{tag}_ceiling"] = one["seconds"] / (two["workers_cpu_s"] / 2)
                    res[f"speedup_2_workers{tag}_workers_cpu_ratio"] = two["workers_cpu_s"] / one["workers_cpu_s"]
                    res[f"speedup_2_workers{tag}_client_cpu_share"] = two["client_cpu_s"] / (2 * two["seconds"])
                    res[f"speedup_2_workers{tag}_idle_share"] = two["idle_core_s"] / (2 * two["seconds"])
                    say(f"{model}{' --ensemble 1' if ens else ''}, 16 chunks: speedup_2_workers{tag} "
                        f"{res[f'speedup_2_workers{tag}']:.2f} (median of {pairs}); that pair's ceiling "
                        f"{res[f'speedup_2_workers{tag}_ceiling']:.2f} (the same work took "
                        f"x{res[f'speedup_2_workers{tag}_workers_cpu_ratio']:.2f} the workers' CPU on 2 workers); in "
                        f"its 2-worker job the client took {res[f'speedup_2_workers{tag}_client_cpu_share']:.1%} "
                        f"of the 2 cores and they idled {res[f'speedup_2_workers{tag}_idle_share']:.1%}")
                    # the machine's own 2-core scaling of the same per-chunk computing, nothing shared, right after
                    m = machine_speedup(x16, model, ens, small, blocks)
                    res[f"machine_speedup_2_procs{tag}"] = m["speedup"]
                    res[f"speedup_2_workers{tag}_of_machine"] = res[f"speedup_2_workers{tag}"] / m["speedup"]
                    say(f"  the same chunk function and compression, {blocks} blocks, no dask, no I/O: 1 process "
                        f"{m['one']:.1f} s, 2 side by side {max(m['two']):.1f} s -> this machine's 2-process "
                        f"speedup {m['speedup']:.2f}; speedup_2_workers{tag} is "
                        f"{res[f'speedup_2_workers{tag}_of_machine']:.2f} of it")
        # 6. model FLOPs
        res["flops_per_output_px_x4"] = flops_per_output_px(4, None, dev)
        say(f"{MODEL} FLOPs per output pixel at x4, default ensemble (convolutions/matmuls counted by torch): "
            f"{res['flops_per_output_px_x4']:.3g}")
        if gpu and NEW:
            a = autocast_psnr_delta(dev)
            res["autocast_bf16_psnr_delta_db"] = a["delta_db"]
            say(f"bf16 autocast, Wald x2 on the embedded sample (10 m bands, not held out): PSNR fp32 "
                f"{a['fp32']:.3f} dB, bf16 {a['bf16']:.3f} dB, change {a['delta_db']:+.4f} dB "
                f"({'within' if abs(a['delta_db']) <= 0.01 else 'NOT within'} 0.01 dB)")
        if gpu:
            res["gpu_out_mpx_per_s_x4"] = e2e["out_px"] / 1e6 / e2e["seconds"]
    keys = ["pipeline_efficiency", "post_fraction", "halo_overhead_x4", "halo_overhead_x10", "peak_rss_gib",
            "rss_ratio_16x", "speedup_2_workers", "io_ratio", "mpx_per_core_s_x4", "mpx_per_core_s_x10",
            "flops_per_output_px_x4", "tile_core_hours_x4"]
    out = {k: (round(res[k], 4) if isinstance(res.get(k), float) else res.get(k)) for k in keys}
    out.update({k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items() if k not in out})
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
