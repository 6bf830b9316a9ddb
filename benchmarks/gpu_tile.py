"""The whole decimated 29RKH tile end to end on one GPU worker (issue 12): pipeline efficiency at tile size, where
one 240 px area is all fixed cost. STAC search (rustac on loopback) -> COG read (loopback range server) -> SR ->
statistics -> Zarr write, on a LocalCluster of ONE single-threaded worker process holding the GPU (dask resource
GPU=1), default chunking, x4, default model; then the bare network forward on the same pixels in memory, chunk
by chunk at the default chunk (the whole tile in one forward does not fit a GPU's memory at the default
ensemble). The SR tasks' own parts are timed inside the workers (summed). Readable lines, then one JSON line.

    python benchmarks/gpu_tile.py                      # cuda, default ensemble and --ensemble 1
    python benchmarks/gpu_tile.py --device cpu --window 240 --ensembles 1   # the same path on CPU, small
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402

import numpy as np  # noqa: E402
import s2sr_cloud  # noqa: E402
import torch  # noqa: E402
from s2sr_cloud.pipeline import graph  # noqa: E402
from distributed import get_task_stream  # noqa: E402
from s2sr_cloud.pipeline.cluster import dask_client  # noqa: E402


def task_prefixes(stream: list[dict]) -> dict[str, dict]:
    """A dask task stream -> per task prefix (read, overlap, SR, write...): count, compute thread-seconds, and the
    first start and last end, in seconds from the first task's start: where an end-to-end run's time goes."""
    from dask.utils import key_split

    from s2sr_cloud.bands import ALL_BANDS

    def prefix(key) -> str:  # odc-stac's read tasks are named by band
        k = key_split(key)
        return "read (B01..B12)" if k in ALL_BANDS else k

    spans = [(prefix(t["key"]), ss["start"], ss["stop"]) for t in stream for ss in t.get("startstops", ())
             if ss.get("action") == "compute"]
    if not spans:
        return {}
    t0 = min(a for _, a, _ in spans)
    out: dict[str, dict] = {}
    for k, a, b in spans:
        v = out.setdefault(k, {"n": 0, "s": 0.0, "first": a - t0, "last": b - t0})
        v["n"] += 1
        v["s"] += b - a
        v["first"], v["last"] = min(v["first"], a - t0), max(v["last"], b - t0)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["s"]))


def worker_timing(on: bool, dask_worker=None):
    from s2sr_cloud.ops import block as B

    before = dict(B.TIMINGS)  # set_timing clears them
    B.set_timing(on)
    return before


def bare_chunks(x: np.ndarray, ensemble: int | None, device: str, chunk: int) -> float:
    """The network alone over the area, chunk by chunk (no halo, no post-processing), after a warm-up."""
    dev = torch.device(device)
    net = R.P.cached_model(R.MODEL, dev)
    xt = torch.from_numpy(np.nan_to_num(x)).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        net(xt[..., :chunk, :chunk], 4, ensemble)
        sync()
        t0 = time.perf_counter()
        for r in range(0, x.shape[-2], chunk):
            for c in range(0, x.shape[-1], chunk):
                net(xt[..., r:r + chunk, c:c + chunk], 4, ensemble)
        sync()
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--window", type=int, help="a window of N x N grid px instead of the whole tile")
    ap.add_argument("--ensembles", default="default,1")
    ap.add_argument("--threads", default="1", help="comma-separated threads per worker to run, e.g. 1,8: the SR "
                    "tasks hold the worker's one GPU (dask resource GPU=1), the other threads read, write and "
                    "make the overviews")
    ap.add_argument("--units", default="1", help="comma-separated GPU resource units per worker to run: at most "
                    "that many SR tasks at once on the GPU; 0: no restriction (gpu=False: every thread runs an SR "
                    "task at once, what s2sr_cloud.super_resolve did before round 9)")
    ap.add_argument("--local", action="store_true", help="also the local cluster `s2sr run` starts "
                    "(pipeline.cluster.dask_client), in its GPU layout (one worker of min(cores, 8) threads, GPU=1) "
                    "and its CPU layout (S2SR_LOCAL_GPU=0: min(cores, 8) single-threaded workers, no restriction)")
    args = ap.parse_args()
    gpu = args.device.startswith("cuda")
    res: dict = {"device": torch.cuda.get_device_name(0) if gpu else "cpu", "torch": torch.__version__}
    chunk = graph.default_chunk(4)
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(R.range_server(R.TILE))
        catalog = stack.enter_context(R.serve_items(R.tile_items(R.TILE, base)))
        geom = R.window_geometry(R.TILE, 0, 0, args.window, args.window) if args.window else None
        t0 = time.perf_counter()
        x = R.load_array(catalog, geom)
        res["load_array_s"] = time.perf_counter() - t0
        print(f"area {x.shape[-2]} x {x.shape[-1]} grid px, 12 bands; default chunk x4 {chunk}", flush=True)
        runs = [(e, int(t), int(u)) for e in args.ensembles.split(",") for t in args.threads.split(",")
                for u in args.units.split(",")]
        if args.local:
            runs += [(e, 0, layout) for e in args.ensembles.split(",") for layout in (1, 0)]
        for ens_s, threads, units in runs:
            ens = None if ens_s == "default" else int(ens_s)
            out = Path(tempfile.mkdtemp(prefix="s2sr-gpu-tile-")) / "out.zarr"
            if threads:
                made = R.cluster(1, gpu or units > 0, threads, max(units, 1))
            else:  # the local cluster of `s2sr run`: GPU layout (units 1) or CPU layout (units 0)
                os.environ["S2SR_LOCAL_GPU"] = str(units)
                made = dask_client()
            with made as client:
                client.run(worker_timing, True)
                t0 = time.perf_counter()
                items = s2sr_cloud.search(catalog)
                ds = s2sr_cloud.load(items, geometry=geom, chunk=chunk)
                sr = s2sr_cloud.super_resolve(ds, 4, "default", ensemble=ens, gpu=None if not threads else units > 0)
                t1 = time.perf_counter()
                with get_task_stream(client=client) as ts:
                    s2sr_cloud.write(sr, str(out), client=client)
                e2e = time.perf_counter() - t0
                tasks = task_prefixes(ts.data)
                parts = [p for p in client.run(worker_timing, False).values() if p]
                workers = len(client.scheduler_info(n_workers=-1)["workers"])
                rss = max(client.run(R.peak_rss_gib).values())
            n_chunks = int(np.prod(sr["chunk_sums"].shape[2:]))
            shutil.rmtree(out.parent, ignore_errors=True)
            bare = bare_chunks(x, ens, args.device, chunk)  # cached_model: the second pass finds the model loaded
            out_mpx = x.shape[-2] * x.shape[-1] * 16 * 12 / 1e6
            r = {"e2e_s": e2e, "graph_s": t1 - t0, "bare_forward_s": bare, "pipeline_efficiency": bare / e2e,
                 "chunks": n_chunks, "out_mpx_all_bands_per_s": out_mpx / e2e, "worker_peak_rss_gib": rss,
                 "sr_task_parts_s": {k: round(sum(p.get(k, 0.0) for p in parts), 3)
                                     for k in (parts[0] if parts else {})},
                 "tile_10980_hours": 10980 ** 2 * 16 * 12 / 1e6 / (out_mpx / e2e) / 3600, "tasks": tasks}
            layout = (f"1 worker x {threads} thread(s), GPU units {units or 'unrestricted'}" if threads else
                      f"s2sr run's local cluster, {'GPU' if units else 'CPU'} layout, {workers} worker(s)")
            res[f"ens_{ens_s}_threads_{threads}_units_{units}" if threads else
                f"ens_{ens_s}_local_{'gpu' if units else 'cpu'}_layout"] = r
            print(f"ensemble {ens_s}, {layout}: end to end {e2e:.1f} s ({n_chunks} chunks; "
                  f"graph {t1 - t0:.1f} s), bare network "
                  f"{bare:.2f} s -> pipeline_efficiency {bare / e2e:.3f}; {out_mpx / e2e:.1f} output Mpx/s (12 bands);"
                  f" worker peak RSS {rss:.2f} GiB; a 10980 px tile at this rate {r['tile_10980_hours']:.2f} h; "
                  f"SR task parts {r['sr_task_parts_s']}", flush=True)
            print("  tasks by prefix (count, compute thread-s, first start .. last end in s from the first task): "
                  + "; ".join(f"{k} {v['n']}, {v['s']:.2f}, {v['first']:.2f}..{v['last']:.2f}"
                              for k, v in tasks.items()), flush=True)
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
