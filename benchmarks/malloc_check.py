"""The chunk function in a dask worker, with and without ``s2sr_cloud._process.tune_malloc`` (dask's nanny starts
workers with MALLOC_TRIM_THRESHOLD_=65536, which fixes glibc's mmap threshold at 128 KiB). The quick area of
benchmarks/run.py, x4, default model and ensemble, 2 torch threads, one worker busy; the two settings alternate,
each on a fresh 2-process LocalCluster. "dask" reproduces dask's setting by presetting MALLOC_MMAP_THRESHOLD_ to
128 KiB, the value it then keeps (tune_malloc leaves a preset threshold alone). Usage:

    .venv/bin/python benchmarks/malloc_check.py [repeats]
"""
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402


def chunk_function(x: np.ndarray) -> dict:
    import resource

    import torch
    from s2sr_cloud import _process
    from s2sr_cloud.model import nets
    from s2sr_cloud.model import predictors as P
    from s2sr_cloud.ops import block as B
    from s2sr_cloud.ops.halo import required_halo

    P.torch_threads(2)
    p = P.TorchPredictor(R.MODEL)
    f = nets.S2_FACTORS
    spec = B.BlockSpec(4, f, required_halo(p.reach(f, 4), f), quantum=(1e-4, -0.1))
    B.super_resolve_block_sums(x[..., :60, :60], p, spec, pads=0)  # model load, warm-up
    B.set_timing(True)
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    B.super_resolve_block_sums(x, p, spec, pads=0)
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    out = {"seconds": t1 - t0, "user": r1.ru_utime - r0.ru_utime, "sys": r1.ru_stime - r0.ru_stime,
           "network": B.TIMINGS["network"], "tuned": _process.tuned, "threads": torch.get_num_threads()}
    B.set_timing(False)
    return out


def main() -> None:
    import contextlib
    import os

    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(R.range_server(R.TILE))
        catalog = stack.enter_context(R.serve_items(R.tile_items(R.TILE, base)))
        x = R.load_array(catalog, R.window_geometry(R.TILE, 60, 840, 240, 240))
    for rep in range(repeats):
        for name in ("dask", "tuned"):
            # the nanny puts its pre-spawn-environ into this process's environment, and workers inherit it
            if name == "dask":
                os.environ["MALLOC_MMAP_THRESHOLD_"] = "131072"
            else:
                os.environ.pop("MALLOC_MMAP_THRESHOLD_", None)
            with R.cluster(2) as client:
                client.run(lambda: sys.path.insert(0, str(Path(__file__).resolve().parent)))
                r = client.submit(chunk_function, x).result()
            R.say(f"{name:5s} (tune_malloc applied: {r['tuned']}): chunk function {r['seconds']:.2f} s, network "
                  f"{r['network']:.2f} s, user {r['user']:.1f} s, sys {r['sys']:.1f} s, torch threads {r['threads']}")


if __name__ == "__main__":
    main()
