"""Where a whole-tile run spends its worker time OUTSIDE the network (issue 12: on an H100 the SR tasks took
3.3 s of a 101.5 s whole-tile run). The decimated 29RKH tile end to end, x4, default chunking, on a LocalCluster
of single-threaded workers; the dask task stream summed by task prefix, and the client-side steps timed.

    .venv/bin/python benchmarks/tile_tasks.py --model bicubic --workers 1
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402

import s2sr_cloud  # noqa: E402
from distributed import get_task_stream  # noqa: E402
from s2sr_cloud.io import store  # noqa: E402
from s2sr_cloud.pipeline import graph  # noqa: E402
from s2sr_cloud.pipeline import write as W  # noqa: E402

STEPS: dict[str, float] = {}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="bicubic")
    ap.add_argument("--ensemble", type=int)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--window", type=int, help="N x N grid px instead of the whole tile")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--chunk", type=int, help="input px per chunk side (default: the memory budget's)")
    ap.add_argument("--offset", type=int, default=0, help="the window's first row and column")
    args = ap.parse_args()
    for mod, name in ((W, "_run_on_cluster"), (store, "finish"), (store, "write_template")):
        R.time_calls(mod, name, STEPS)
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(R.range_server(R.TILE))
        catalog = stack.enter_context(R.serve_items(R.tile_items(R.TILE, base)))
        geom = (R.window_geometry(R.TILE, args.offset, args.offset, args.window, args.window) if args.window
                else None)
        out = Path(tempfile.mkdtemp(prefix="s2sr-tile-tasks-")) / "out.zarr"
        with R.cluster(args.workers, args.device.startswith("cuda")) as client:
            t0 = time.perf_counter()
            with get_task_stream(client) as ts:
                items = s2sr_cloud.search(catalog)
                ds = s2sr_cloud.load(items, geometry=geom, chunk=args.chunk or graph.default_chunk(4))
                sr = s2sr_cloud.super_resolve(ds, 4, args.model, ensemble=args.ensemble, chunk=args.chunk)
                s2sr_cloud.write(sr, str(out), client=client)
            total = time.perf_counter() - t0
        by = collections.defaultdict(lambda: [0, 0.0])
        for t in ts.data:
            name = t["key"][0] if isinstance(t["key"], tuple) else t["key"]
            prefix = str(name).rsplit("-", 1)[0]
            comp = sum(s["stop"] - s["start"] for s in t["startstops"] if s["action"] == "compute")
            by[prefix][0] += 1
            by[prefix][1] += comp
        shutil.rmtree(out.parent, ignore_errors=True)
    print(f"total {total:.1f} s, {args.workers} worker(s), model {args.model}; client steps "
          + ", ".join(f"{k} {v:.1f}" for k, v in STEPS.items()))
    print(f"worker compute: {sum(v[1] for v in by.values()):.1f} s in {sum(v[0] for v in by.values())} tasks")
    for prefix, (n, s) in sorted(by.items(), key=lambda kv: -kv[1][1])[:25]:
        print(f"  {s:8.2f} s  {n:5d}  {prefix}")
    print("most tasks: " + ", ".join(f"{p} {n} ({s:.2f} s)" for p, (n, s) in
                                     sorted(by.items(), key=lambda kv: -kv[1][0])[:10]))


if __name__ == "__main__":
    main()
