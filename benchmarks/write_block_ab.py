"""A chunk write alone (issue 12, round 15): ``store.write_block`` of one 480 px x4 chunk (13 variables, overview
levels 2, 4 and 8) into a 16-chunk bicubic store of the decimated tile, N times: median time and CPU per write.
The store is made once (by the code on ``PYTHONPATH``) in /tmp/s2sr-write-block-ab.zarr; alternate two codes by
``PYTHONPATH`` (a ``git worktree`` of the other commit):

    .venv/bin/python benchmarks/write_block_ab.py 20
    PYTHONPATH=/tmp/old .venv/bin/python benchmarks/write_block_ab.py 20

A second argument is passed as ``write_block``'s ``run`` (round 19): the writes after the first reuse the arrays it
opened, as a run's chunks on one worker do:

    .venv/bin/python benchmarks/write_block_ab.py 20 run
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
STORE = "/tmp/s2sr-write-block-ab.zarr"


def make_store(url: str) -> None:
    """16 bicubic chunks of 120 px (480 px output chunks) of the decimated tile, written by the pipeline."""
    import run as R

    import s2sr_cloud

    with R.served_tile() as catalog:
        with R.cluster(1) as client:
            ds = s2sr_cloud.load(s2sr_cloud.search(catalog), geometry=R.window_geometry(R.TILE, 300, 300, 480, 480),
                                 chunk=120)
            s2sr_cloud.write(s2sr_cloud.super_resolve(ds, 4, "bicubic", chunk=120), url, client=client)


def main() -> None:
    import zarr

    from s2sr_cloud.io import overviews, store

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    run = {"run": sys.argv[2]} if len(sys.argv) > 2 else {}
    if not Path(STORE).exists():
        make_store(STORE)
    g = zarr.open_group(STORE, mode="r", use_consolidated=False)
    names = tuple([*g.attrs["bands"], store.DETAIL])
    block = np.stack([g[v][0:1, 0:480, 0:480] for v in names], axis=1)  # the stored DN: rewritten as they are
    sums = g[store.SUMS][0:1, :, 0:1, 0:1]
    levels = overviews.BlockLevels((2, 4, 8), (480, 480), False, names)
    times = []
    c0 = os.times()
    for _ in range(n):
        t0 = time.perf_counter()
        with zarr.config.set({"array.write_empty_chunks": True}):
            store.write_block(STORE, {}, names, block, sums, 0, 0, 0, 0, 0, levels, **run)
        times.append(time.perf_counter() - t0)
    c1 = os.times()
    cpu = (c1.user + c1.system - c0.user - c0.system) / n
    what = f"{store.__file__}{' run ' + run['run'] if run else ''}"
    print(f"{what}: write_block median {1000 * float(np.median(times)):.0f} ms, CPU {1000 * cpu:.0f} ms per "
          f"write ({n} writes: {[round(1000 * t) for t in times]})")


if __name__ == "__main__":
    main()
