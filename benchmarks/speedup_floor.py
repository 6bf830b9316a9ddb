"""The floor under ``speedup_2_workers`` on this machine: the same 16 bicubic chunk tasks (SR and store write, as
the pipeline's write tasks run them) on Dask with 1 and with 2 workers, and nothing else: inputs already on the
workers, the store's template made before the clock, no search, read, graph, template or finish. Beside it, in
the same run and alternating with it, ``benchmarks/run.py``'s own job (``end_to_end``: search, COG reads, SR,
statistics, store). N rounds of (pipeline 1 worker, pipeline 2 workers, floor 1 worker, floor 2 workers):

    .venv/bin/python benchmarks/speedup_floor.py 6

What the floor shows: the speedup Dask and this VM allow for this work, however small the pipeline's own share.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import dask  # noqa: E402
import distributed  # noqa: E402
import numpy as np  # noqa: E402
import run as R  # noqa: E402

import s2sr_cloud  # noqa: E402
from s2sr_cloud.io import overviews, store  # noqa: E402
from s2sr_cloud.pipeline import graph as G  # noqa: E402
from s2sr_cloud.pipeline import write as W  # noqa: E402

SIDE, CHUNK = 480, 120  # benchmarks/run.py's 16-chunk window


def chunk_task(url: str, names: tuple, fused: G.FusedSR, block: np.ndarray, i: int, j: int, y0: int, x0: int,
               levels: overviews.BlockLevels | None) -> tuple:
    """What the pipeline's fused write task runs (``write._sr_write_block``), without waiting for a template."""
    y, sums = fused.run(block, 0, i, j)
    return W._write_block(url, {}, names, y, sums, 0, i, j, y0, x0, levels)


def prepare(catalog: str, geometry: dict) -> dict:
    """The SR output's layout, its fused SR step and each chunk's overlapped input block, read once."""
    ds = s2sr_cloud.load(s2sr_cloud.search(catalog), geometry=geometry, chunk=CHUNK)
    sr = s2sr_cloud.super_resolve(ds, 4, "bicubic", chunk=CHUNK)
    bands = list(sr.attrs["bands"])
    names = store.layer_names(bands, sr)
    fused = G.fused_source([sr[n].data for n in names])
    padded = fused.blocks([sr[n].data for n in names]).to_delayed(optimize_graph=False)
    with dask.config.set(scheduler="threads"):
        blocks = {(i, j): padded[0, 0, i, j].compute() for i in range(padded.shape[2]) for j in range(padded.shape[3])}
    return {"sr": sr, "bands": bands, "names": names, "fused": fused, "blocks": blocks}


def floor_job(p: dict, workers: int) -> dict:
    """The chunk tasks alone on a fresh cluster of ``workers``: seconds from submission to the last write."""
    sr, names, keys = p["sr"], p["names"], sorted(p["blocks"])
    ych, xch = sr[names[0]].data.chunks[1], sr[names[0]].data.chunks[2]
    y0s, x0s = np.cumsum((0,) + ych[:-1]), np.cumsum((0,) + xch[:-1])
    levels = overviews.block_levels(ych, xch, (*p["bands"], store.DETAIL))
    folder = tempfile.mkdtemp(prefix="s2sr-floor-")
    url = f"{folder}/out.zarr"
    store.write_template(sr, url, "uint16", dict(sr.attrs), levels)
    with R.cluster(workers) as client:
        addrs = list(client.nthreads())
        blocks = [client.scatter(p["blocks"][k], workers=[addrs[n % workers]]) for n, k in enumerate(keys)]
        distributed.wait(blocks)
        time.sleep(0.5)  # the cluster settled
        cpu0, idle0 = R.process_cpu_s(), R.machine_idle_s()
        wcpu0 = sum(client.run(R.process_cpu_s).values())
        t0 = time.perf_counter()
        futures = [client.submit(chunk_task, url, names, p["fused"], b, i, j, int(y0s[i]), int(x0s[j]), levels,
                                 pure=False) for b, (i, j) in zip(blocks, keys, strict=True)]
        distributed.wait(futures)
        seconds = time.perf_counter() - t0
        client_cpu, idle = R.process_cpu_s() - cpu0, R.machine_idle_s() - idle0
        workers_cpu = sum(client.run(R.process_cpu_s).values()) - wcpu0
        failed = [f for f in futures if f.status != "finished"]
        if failed:
            raise RuntimeError(f"{len(failed)} chunk task(s) failed: {failed[0].exception()}")
    shutil.rmtree(folder, ignore_errors=True)
    return {"seconds": seconds, "client_cpu_s": client_cpu, "idle_core_s": idle, "workers_cpu_s": workers_cpu}


def line(tag: str, one: dict, two: dict) -> str:
    return (f"{tag}: 1 worker {one['seconds']:.2f} s, 2 workers {two['seconds']:.2f} s -> "
            f"{one['seconds'] / two['seconds']:.2f}; workers' CPU {one['workers_cpu_s']:.2f} / "
            f"{two['workers_cpu_s']:.2f} s; 2-worker job: client {two['client_cpu_s']:.2f} CPU-s, idle "
            f"{two['idle_core_s']:.2f} core-s")


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    ratios: dict[str, list[float]] = {"pipeline": [], "floor": []}
    with R.served_tile() as catalog:
        geometry = R.window_geometry(R.TILE, 300, 300, SIDE, SIDE)
        p = prepare(catalog, geometry)
        for k in range(rounds):
            runs = {"pipeline": [R.end_to_end(catalog, geometry, 4, "bicubic", None, n, chunk=CHUNK) for n in (1, 2)],
                    "floor": [floor_job(p, n) for n in (1, 2)]}
            for tag, (one, two) in runs.items():
                ratios[tag].append(one["seconds"] / two["seconds"])
                print(f"round {k + 1}/{rounds}, {line(tag, one, two)}", flush=True)
    for tag, v in ratios.items():
        print(f"{tag}: speedup_2_workers median {np.median(v):.2f}, range {min(v):.2f}-{max(v):.2f} "
              f"({len(v)} pairs)")


if __name__ == "__main__":
    main()
