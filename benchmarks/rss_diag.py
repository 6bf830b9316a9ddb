"""Diagnose benchmarks/run.py's rss_ratio_16x: the same bicubic job (chunk 120 px, x4, one single-threaded worker) on
square windows of the whole decimated tile, sampling the worker's RSS every 50 ms and, at each new RSS peak, the
bytes dask holds in worker memory (managed) and its largest keys. Usage (needs ../shared/data):

    .venv/bin/python benchmarks/rss_diag.py 120 480 960      # window sides in input px: 1, 16, 64 chunks
    .venv/bin/python benchmarks/rss_diag.py 420 840 --chunk 420 --model default --ensemble 1   # the CNN: 1, 4
    .venv/bin/python benchmarks/rss_diag.py 1098 --grid 732,366 --model default --scale 10 --workers 2  # x10 default

Each line: wall seconds of the write, the worker's VmHWM (GiB), its sampled RSS peak, the managed MB at that peak
and the keys held then (name, MB)."""
import contextlib, sys, time, threading, tempfile, shutil
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R
import s2sr_cloud

def sampler(dask_worker=None):
    import time
    st = {"managed": 0, "rss": 0, "n": 0, "tasks_in_mem": 0}
    def loop():
        while True:
            try:
                with open("/proc/self/status") as f:
                    for line in f:
                        if line.startswith("VmRSS"):
                            r = int(line.split()[1]) * 1024
                if r > st["rss"]:
                    from dask.sizeof import sizeof
                    data = dict(dask_worker.data)
                    st["rss"] = r
                    st["managed_at_peak"] = sum(sizeof(v) for v in data.values())
                    held = [(str(k if isinstance(k, str) else k[0])[:28], round(sizeof(v) / 1e6, 1))
                            for k, v in data.items()]
                    st["keys_at_peak"] = sorted(held, key=lambda a: -a[1])[:12]
                    st["executing_at_peak"] = [str(k)[:60] for k in dask_worker.state.executing]
            except Exception as e:
                st["err"] = repr(e)
            time.sleep(0.05)
    threading.Thread(target=loop, daemon=True).start()
    dask_worker._diag = st
    return True

def read(dask_worker=None):
    return dict(dask_worker._diag)

def job(catalog, geom, chunk, workers=1, model="bicubic", ensemble=None, scale=4, grid=None):
    out = Path(tempfile.mkdtemp()) / "o.zarr"
    with R.cluster(workers) as client:
        client.run(sampler)
        items = s2sr_cloud.search(catalog)
        ds = s2sr_cloud.load(items, geometry=geom, chunk=chunk)
        if grid:  # an explicit chunk grid (as a store records it): e.g. 732 + 366 px, a full-size chunk with its halo
            from s2sr_cloud.model.predictors import get_predictor
            from s2sr_cloud.pipeline import graph
            sr = graph.super_resolve(ds, scale, get_predictor(model, ensemble=ensemble), grid=(grid, grid))
        else:
            sr = s2sr_cloud.super_resolve(ds, scale, model, chunk=chunk, ensemble=ensemble)
        t0 = time.perf_counter()
        s2sr_cloud.write(sr, str(out), client=client)
        t = time.perf_counter() - t0
        d = max(client.run(read).values(), key=lambda r: r["rss"])  # the worker with the highest peak
        hwm = max(client.run(R.peak_rss_gib).values())
    shutil.rmtree(out.parent, ignore_errors=True)
    return {"s": round(t, 1), "hwm_gib": round(hwm, 3), "rss_sampled_gib": round(d["rss"] / 2**30, 3),
            "managed_at_peak_mb": round(d.get("managed_at_peak", 0) / 1e6, 1), "keys": d.get("keys_at_peak"),
            "exec": d.get("executing_at_peak"), "err": d.get("err")}

if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("sides", type=int, nargs="*", default=[120, 480], help="window sides, input px (>= 1098: the tile)")
    ap.add_argument("--chunk", type=int, default=120)
    ap.add_argument("--model", default="bicubic")
    ap.add_argument("--ensemble", type=int, default=None)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--grid", default=None, help="explicit chunk sides of both axes, e.g. 732,366 (the tile: 1098)")
    args = ap.parse_args()
    grid = tuple(int(v) for v in args.grid.split(",")) if args.grid else None
    folder = R.TILE
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(R.range_server(folder))
        catalog = stack.enter_context(R.serve_items(R.tile_items(folder, base)))
        for side in args.sides:
            g = R.window_geometry(folder, 300, 300, side, side) if side < 1098 else None
            print(side, job(catalog, g, args.chunk, args.workers, args.model, args.ensemble, args.scale, grid),
                  flush=True)
