"""How far apart the two workers of benchmarks/run.py's 2-worker bicubic job (16 chunks of 120 px) end, with work
stealing every 100 ms (``pipeline.cluster.BATCH_CONFIG``) and every 1 s (Dask's default), N alternating runs:
each job's wall time and the gap between the workers' last task ends (the idle core at the end).

    .venv/bin/python benchmarks/uneven_end.py 8
"""
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import dask  # noqa: E402
import distributed  # noqa: E402
import run as R  # noqa: E402

import s2sr_cloud  # noqa: E402

# "1000ms", not "1s": batch_config overrides a key set to Dask's own default value as not the user's
INTERVALS = ("100ms", "1000ms")


def one_job(catalog: str, geometry: dict, interval: str) -> tuple[float, float]:
    with dask.config.set({"distributed.scheduler.work-stealing-interval": interval}), R.cluster(2) as client:
        out = Path(tempfile.mkdtemp()) / "o.zarr"
        t0 = time.perf_counter()
        with distributed.get_task_stream(client) as ts:
            ds = s2sr_cloud.load(s2sr_cloud.search(catalog), geometry=geometry, chunk=120)
            s2sr_cloud.write(s2sr_cloud.super_resolve(ds, 4, "bicubic", chunk=120), str(out), client=client)
        wall = time.perf_counter() - t0
        shutil.rmtree(out.parent)
    ends: dict[str, float] = {}
    for task in ts.data:
        for part in task["startstops"]:
            if part["action"] == "compute":
                ends[task["worker"]] = max(ends.get(task["worker"], 0.0), part["stop"])
    first, last = sorted(ends.values())
    return wall, last - first


def main() -> None:
    runs: dict[str, list[tuple[float, float]]] = {iv: [] for iv in INTERVALS}
    with R.served_tile() as catalog:
        g = R.window_geometry(R.TILE, 300, 300, 480, 480)
        for _ in range(int(sys.argv[1])):
            for iv in INTERVALS:
                runs[iv].append(one_job(catalog, g, iv))
                print(f"stealing every {iv}: {runs[iv][-1][0]:.2f} s, workers ended {runs[iv][-1][1]:.2f} s apart",
                      flush=True)
    for iv, v in runs.items():
        print(f"stealing every {iv}: wall mean {sum(w for w, _ in v) / len(v):.2f} s; ends apart "
              f"{[round(u, 2) for _, u in v]}, mean {sum(u for _, u in v) / len(v):.3f} s")


if __name__ == "__main__":
    main()
