"""The floor under ``speedup_2_workers`` on this machine: the same 16 bicubic chunk tasks (SR and store write, as
the pipeline's write tasks run them) on Dask with 1 and with 2 workers, and nothing else: inputs already on the
workers, the store's template made before the clock, no search, read, graph, template or finish. Beside it, in
the same run and alternating with it, ``benchmarks/run.py``'s own job (``end_to_end``: search, COG reads, SR,
statistics, store). N rounds of (pipeline 1 worker, pipeline 2 workers, floor 1 worker, floor 2 workers):

    .venv/bin/python benchmarks/speedup_floor.py 6

What the floor shows: the speedup Dask and this VM allow for this work, however small the pipeline's own share.
``benchmarks/run.py`` measures it too, a floor pair after each bicubic pair (``speedup_2_workers_floor``).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
import run as R  # noqa: E402

SIDE, CHUNK = 480, 120  # benchmarks/run.py's 16-chunk window


def line(tag: str, one: dict, two: dict) -> str:
    return (f"{tag}: 1 worker {one['seconds']:.2f} s, 2 workers {two['seconds']:.2f} s -> "
            f"{one['seconds'] / two['seconds']:.2f}; workers' CPU {one['workers_cpu_s']:.2f} / "
            f"{two['workers_cpu_s']:.2f} s; 2-worker job: client {two['client_cpu_s']:.2f} CPU-s, idle "
            f"{two['idle_core_s']:.2f} core-s")


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    ratios: dict[str, list[float]] = {"pipeline": [], "floor": []}
    with R.served_tile() as catalog:
        geometry = R.window_geometry(R.TILE, 300, 300, SIDE, SIDE)
        p = R.floor_inputs(catalog, geometry, CHUNK)
        for k in range(rounds):
            runs = {"pipeline": [R.end_to_end(catalog, geometry, 4, "bicubic", None, n, chunk=CHUNK) for n in (1, 2)],
                    "floor": [R.floor_job(p, n) for n in (1, 2)]}
            for tag, (one, two) in runs.items():
                ratios[tag].append(one["seconds"] / two["seconds"])
                print(f"round {k + 1}/{rounds}, {line(tag, one, two)}", flush=True)
    for tag, v in ratios.items():
        print(f"{tag}: speedup_2_workers median {np.median(v):.2f}, range {min(v):.2f}-{max(v):.2f} "
              f"({len(v)} pairs)")


if __name__ == "__main__":
    main()
