"""Where the CPU goes in benchmarks/run.py's speedup_2_workers job (bicubic, x4, chunk 120, a 480 x 480 px window of
the decimated tile: 16 chunks) on 1 and 2 single-threaded workers: wall seconds, and the CPU seconds of the worker
processes against those of everything else on the machine (this process: client, scheduler, the COG range server;
the nannies; rustac). On a machine of C cores, 2 workers can reach at most C x wall minus the others' CPU.

    .venv/bin/python benchmarks/scaling_cpu.py [pairs] [bicubic|default]
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402

import psutil  # noqa: E402
import s2sr_cloud  # noqa: E402


def cpu_s(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def tree_cpu(pids: set[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            out[pid] = cpu_s(psutil.Process(pid))
    return out


def one(catalog: str, geom: dict, workers: int, model: str = "bicubic") -> dict:
    out = Path(tempfile.mkdtemp(prefix="s2sr-scaling-")) / "out.zarr"
    me = psutil.Process()
    with R.cluster(workers) as client:
        wpids = set(client.run(os.getpid).values())
        others = {p.pid for p in me.children(recursive=True)} - wpids
        before_w, before_o, before_me = tree_cpu(wpids), tree_cpu(others), cpu_s(me)
        t0 = time.perf_counter()
        items = s2sr_cloud.search(catalog)
        ds = s2sr_cloud.load(items, geometry=geom, chunk=120)
        sr = s2sr_cloud.super_resolve(ds, 4, model, chunk=120, ensemble=None if model == "bicubic" else 1)
        s2sr_cloud.write(sr, str(out), client=client)
        wall = time.perf_counter() - t0
        after_w, after_o, after_me = tree_cpu(wpids), tree_cpu(others), cpu_s(me)
    shutil.rmtree(out.parent, ignore_errors=True)
    w = sum(after_w[p] - before_w.get(p, 0.0) for p in after_w)
    o = sum(after_o[p] - before_o.get(p, 0.0) for p in after_o)
    return {"wall": wall, "workers_cpu": w, "others_cpu": o, "client_cpu": after_me - before_me}


if __name__ == "__main__":
    pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    model = sys.argv[2] if len(sys.argv) > 2 else "bicubic"  # or default (at --ensemble 1)
    cores = os.cpu_count() or 1
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(R.range_server(R.TILE))
        catalog = stack.enter_context(R.serve_items(R.tile_items(R.TILE, base)))
        geom = R.window_geometry(R.TILE, 300, 300, 480, 480)
        for _ in range(pairs):
            r = {n: one(catalog, geom, n, model) for n in (1, 2)}
            for n, v in r.items():
                print(f"{n} worker(s): wall {v['wall']:.1f} s; CPU s: workers {v['workers_cpu']:.1f}, client process "
                      f"(scheduler, range server) {v['client_cpu']:.1f}, nannies + rustac {v['others_cpu']:.1f}; "
                      f"busy {(v['workers_cpu'] + v['client_cpu'] + v['others_cpu']) / (cores * v['wall']):.2f} of "
                      f"{cores} cores", flush=True)
            print(f"speedup_2_workers {r[1]['wall'] / r[2]['wall']:.2f}; worker CPU 2 / 1 workers "
                  f"{r[2]['workers_cpu'] / r[1]['workers_cpu']:.2f}", flush=True)
