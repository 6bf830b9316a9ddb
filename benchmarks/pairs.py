"""Alternating 1- and 2-worker runs of the same job, N pairs: each pair's speedup_2_workers, the workers' CPU alone
and together, the ceiling they allow (the 1-worker time over half the 2 workers' CPU seconds: no idle core, no
client), and the 2-worker job's client CPU and idle core-seconds. The same accounting as benchmarks/run.py's
speedup section, on a window of any size (16 chunks of 120 px at 480; 36 at 720).

    .venv/bin/python benchmarks/pairs.py 4 bicubic 480
    .venv/bin/python benchmarks/pairs.py 1 bicubic 720
    .venv/bin/python benchmarks/pairs.py 1 default 480     # s2sr-v2 --ensemble 1
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import run as R  # noqa: E402


def main() -> None:
    pairs, model, side = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    ens = None if model == "bicubic" else 1
    with R.served_tile() as catalog:
        g = R.window_geometry(R.TILE, 300, 300, side, side)
        for _ in range(pairs):
            one = R.end_to_end(catalog, g, 4, model, ens, 1, chunk=120)
            two = R.end_to_end(catalog, g, 4, model, ens, 2, chunk=120)
            print(f"{two['chunks']} chunks: 1 worker {one['seconds']:.2f} s, 2 workers {two['seconds']:.2f} s -> "
                  f"{one['seconds'] / two['seconds']:.2f}; workers' CPU {one['workers_cpu_s']:.2f} / "
                  f"{two['workers_cpu_s']:.2f} s (x{two['workers_cpu_s'] / one['workers_cpu_s']:.2f}) -> ceiling "
                  f"{one['seconds'] / (two['workers_cpu_s'] / 2):.2f}; 2-worker job: client "
                  f"{two['client_cpu_s']:.2f} CPU-s, idle {two['idle_core_s']:.2f} of {2 * two['seconds']:.1f} "
                  "core-s", flush=True)


if __name__ == "__main__":
    main()
