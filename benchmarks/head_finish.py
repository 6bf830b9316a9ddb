"""Where the serial head and finish of benchmarks/run.py's 2-worker bicubic job (16 chunks of 120 px) go, N runs:
the client's search, load and SR graph, the submission, the first task's start; after the last task, the done
mask, the sums, the statistics and ``store.finish`` (seconds from the job's start).

    .venv/bin/python benchmarks/head_finish.py 3
"""
import sys
import tempfile
import shutil
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import distributed  # noqa: E402
import run as R  # noqa: E402
import s2sr_cloud  # noqa: E402
from s2sr_cloud.pipeline import write as W  # noqa: E402

T: dict[str, float] = {}


def wrap(obj, name: str) -> None:
    f = getattr(obj, name)

    def g(*a, **k):
        T[name + "0"] = time.time()
        try:
            return f(*a, **k)
        finally:
            T[name + "1"] = time.time()
    setattr(obj, name, g)


for o, n in ((W.store, "write_template"), (W, "_finish_writes"), (W.store, "finish"), (W, "compute_statistics"),
             (W.store, "read_chunk_sums"), (W.store, "done_mask"), (distributed.Client, "compute")):
    wrap(o, n)


def main() -> None:
    with R.served_tile() as catalog:
        g16 = R.window_geometry(R.TILE, 300, 300, 480, 480)
        for _ in range(int(sys.argv[1])):
            with R.cluster(2) as client:
                out = Path(tempfile.mkdtemp()) / "o.zarr"
                t0 = time.time()
                with distributed.get_task_stream(client) as ts:
                    items = s2sr_cloud.search(catalog)
                    t1 = time.time()
                    ds = s2sr_cloud.load(items, geometry=g16, chunk=120)
                    t2 = time.time()
                    sr = s2sr_cloud.super_resolve(ds, 4, "bicubic", chunk=120)
                    t3 = time.time()
                    s2sr_cloud.write(sr, str(out), client=client)
                t4 = time.time()
                starts = [x["start"] for s in ts.data for x in s["startstops"] if x["action"] == "compute"]
                ends = [x["stop"] for s in ts.data for x in s["startstops"] if x["action"] == "compute"]

                def r(v: float) -> str:
                    return f"{v - t0:.3f}"
                print(f"wall {t4 - t0:.2f}: search {r(t1)}, load {r(t2)}, SR graph {r(t3)}, submitted "
                      f"{r(T['compute0'])}-{r(T['compute1'])}, template {r(T['write_template0'])}-"
                      f"{r(T['write_template1'])}, first task {r(min(starts))} | last task end {r(max(ends))}, "
                      f"waited {r(T['_finish_writes1'])}, done mask {r(T['done_mask0'])}, sums "
                      f"{r(T['read_chunk_sums0'])}-{r(T['read_chunk_sums1'])}, statistics "
                      f"{r(T['compute_statistics0'])}-{r(T['compute_statistics1'])}, store.finish "
                      f"{r(T['finish0'])}-{r(T['finish1'])}", flush=True)
                shutil.rmtree(out.parent)


if __name__ == "__main__":
    main()
