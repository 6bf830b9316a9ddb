"""How the 16 SR+write tasks of benchmarks/run.py's speedup_2_workers job split over 2 workers, N runs: tasks and
task seconds per worker (dask task stream), and the scheduler's work-stealing events on them.

    .venv/bin/python benchmarks/steal_split.py bicubic 5
    .venv/bin/python benchmarks/steal_split.py default 2      # s2sr-v2 --ensemble 1
"""
from __future__ import annotations

import collections
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def steals(dask_scheduler) -> list[str]:
    return [str(e)[:160] for e in dask_scheduler.get_events("stealing")]


def main() -> None:
    import run as R
    from distributed import get_task_stream

    import s2sr_cloud

    model, runs = sys.argv[1], int(sys.argv[2])
    ens = None if model == "bicubic" else 1
    with R.served_tile() as catalog:
        g16 = R.window_geometry(R.TILE, 300, 300, 480, 480)
        for _ in range(runs):
            out = Path(tempfile.mkdtemp()) / "o.zarr"
            with R.cluster(2) as client:
                t0 = time.perf_counter()
                with get_task_stream(client) as ts:
                    ds = s2sr_cloud.load(s2sr_cloud.search(catalog), geometry=g16, chunk=120)
                    s2sr_cloud.write(s2sr_cloud.super_resolve(ds, 4, model, chunk=120, ensemble=ens), str(out),
                                     client=client)
                t = time.perf_counter() - t0
                log = client.run_on_scheduler(steals)
            shutil.rmtree(out.parent)
            per: collections.Counter = collections.Counter()
            busy: collections.Counter = collections.Counter()
            for s in ts.data:
                if "s2sr-write" in str(s["key"]):
                    per[s["worker"]] += 1
                    busy[s["worker"]] += sum(x["stop"] - x["start"] for x in s["startstops"]
                                             if x["action"] == "compute")
            moves = [e for e in log if "s2sr-write" in e]
            print(f"wall {t:.2f} s; SR+write tasks per worker {sorted(per.values())}, their seconds "
                  f"{sorted(round(b, 1) for b in busy.values())}; stealing events on them: {len(moves)}", moves,
                  flush=True)


if __name__ == "__main__":
    main()
