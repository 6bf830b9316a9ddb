"""Where the end-to-end time of benchmarks/run.py's quick area goes (x4, default model and ensemble, 2 workers):
search, load, graph, the template, the chunk tasks (with the SR task's own parts, timed in the worker) and the
finish (statistics, overviews, consolidation). Two runs, each on a fresh LocalCluster. Usage:

    .venv/bin/python benchmarks/e2e_parts.py
"""
import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402

import s2sr_cloud  # noqa: E402
from s2sr_cloud.io import store  # noqa: E402
from s2sr_cloud.pipeline import write as W  # noqa: E402

T = {}
for _mod, _name in ((W, "_run_on_cluster"), (store, "finish"), (store, "write_template")):
    R.time_calls(_mod, _name, T)

def worker_parts(dask_worker=None):
    from s2sr_cloud.ops import block as B
    return dict(B.TIMINGS)
def worker_timing(dask_worker=None):
    from s2sr_cloud.ops import block as B
    B.set_timing(True)

if __name__ == "__main__":
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(R.range_server(R.TILE))
        catalog = stack.enter_context(R.serve_items(R.tile_items(R.TILE, base)))
        geom = R.window_geometry(R.TILE, 60, 840, 240, 240)
        for rep in range(2):
            T.clear()
            out = Path(tempfile.mkdtemp()) / "o.zarr"
            with R.cluster(2) as client:
                client.run(worker_timing)
                t0 = time.perf_counter()
                items = s2sr_cloud.search(catalog)
                t1 = time.perf_counter()
                ds = s2sr_cloud.load(items, geometry=geom)
                t2 = time.perf_counter()
                sr = s2sr_cloud.super_resolve(ds, 4, "default")
                t3 = time.perf_counter()
                s2sr_cloud.write(sr, str(out), client=client)
                t4 = time.perf_counter()
                parts = [p for p in client.run(worker_parts).values() if p]
            print({"search": round(t1 - t0, 2), "load": round(t2 - t1, 2), "sr_graph": round(t3 - t2, 2),
                   "write": round(t4 - t3, 2), **{k: round(v, 2) for k, v in T.items()},
                   "sr_task_parts": [{k: round(v, 2) for k, v in p.items()} for p in parts]}, flush=True)
            shutil.rmtree(out.parent)
