"""The serial tail of benchmarks/run.py's speedup_2_workers job (bicubic, 16 chunks of 120 px, N workers), 3 runs:
the client's time in the template, the chunk tasks (_run_on_cluster, _finish_writes) and each step of the finish
(done mask, sums, statistics, store.finish with its overview levels).

    .venv/bin/python benchmarks/head_tail.py 2
"""
import sys, tempfile, shutil, time, collections
from pathlib import Path
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
import run as R, s2sr_cloud
from s2sr_cloud.pipeline import write as W
from s2sr_cloud.io import overviews as O
T = collections.Counter()
def wrap(obj, name, tag):
    f = getattr(obj, name)
    def g(*a, **k):
        t0 = time.perf_counter()
        try: return f(*a, **k)
        finally: T[tag] += time.perf_counter() - t0
    setattr(obj, name, g)
for obj, name, tag in ((W.store, "done_mask", "done_mask"), (W.store, "read_chunk_sums", "read_sums"),
                       (W, "compute_statistics", "stats"), (W.store, "finish", "finish"),
                       (W, "_finish_writes", "finish_writes"), (W.store, "write_template", "template"),
                       (O, "write_overviews", "overviews"), (W, "_run_on_cluster", "run_on_cluster")):
    wrap(obj, name, tag)
if __name__ == "__main__":
    with R.served_tile() as catalog:
        g16 = R.window_geometry(R.TILE, 300, 300, 480, 480)
        for rep in range(3):
            with R.cluster(int(sys.argv[1])) as client:
                T.clear()
                out = Path(tempfile.mkdtemp()) / "o.zarr"
                t0 = time.perf_counter()
                ds = s2sr_cloud.load(s2sr_cloud.search(catalog), geometry=g16, chunk=120)
                sr = s2sr_cloud.super_resolve(ds, 4, "bicubic", chunk=120)
                t1 = time.perf_counter()
                s2sr_cloud.write(sr, str(out), client=client)
                print(f"wall {time.perf_counter() - t0:.2f} graph {t1 - t0:.2f}",
                      {k: round(v, 3) for k, v in T.items()}, flush=True)
                shutil.rmtree(out.parent)
