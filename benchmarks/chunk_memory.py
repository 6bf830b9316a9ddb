"""Peak RSS of the chunk function, part by part: one block of ``core`` input px (the embedded sample mirrored to
that size) with its halo, on one thread, sampled every 3 ms while each part runs (network, consistency, detail,
statistics). Prints one JSON line: the process before the block (``base``), the peak in each part, the
high-water mark.

    .venv/bin/python benchmarks/chunk_memory.py 10 384 1     # scale, core px, ensemble (None: the model's)

``CHUNK_MEMORY_PADS=0,108,0,108``: context on each side (top, bottom, left, right; 0: an area edge, as the
top-left chunk of an area has). ``CHUNK_MEMORY_MODEL=bicubic``: the bicubic predictor (its block is nearly all
consistency, detail and statistics: their cost per output pixel). ``CHUNK_MEMORY_THREAD=1``: the block runs in a
worker thread (a dask worker's way); with ``MALLOC_TRIM_THRESHOLD_=65536`` the process's allocator is tuned as a
dask worker's is (``s2sr_cloud._process``).
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402

import s2sr_cloud  # noqa: E402
from s2sr_cloud.bands import ALL_BANDS  # noqa: E402
from s2sr_cloud.model import nets  # noqa: E402
from s2sr_cloud.model import predictors as P  # noqa: E402
from s2sr_cloud.ops import block as B  # noqa: E402
from s2sr_cloud.ops.halo import required_halo  # noqa: E402


def rss_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 2**20
    return 0.0


def main() -> None:
    scale, core = int(sys.argv[1]), int(sys.argv[2])
    ens = None if len(sys.argv) < 4 or sys.argv[3] == "None" else int(sys.argv[3])
    ds = s2sr_cloud.load(s2sr_cloud.search("sample"))
    x = np.stack([ds[b].values for b in ALL_BANDS], axis=1).astype(np.float32)  # (1, 12, 240, 240)
    part, peaks, stop = ["start"], {}, [False]

    def sample() -> None:
        while not stop[0]:
            k, r = part[0], rss_gib()
            peaks[k] = max(peaks.get(k, 0.0), r)
            time.sleep(0.003)

    enter, leave = B._Timer.__enter__, B._Timer.__exit__

    def entered(self):
        part[0] = self.part
        return enter(self)

    def left(self, *exc):
        out = leave(self, *exc)
        part[0] = "after_" + self.part
        return out

    B._Timer.__enter__, B._Timer.__exit__ = entered, left
    if os.environ.get("CHUNK_MEMORY_STRIP_PX"):  # the chunk function's strips of output pixels (on CPU)
        B.STRIP_OUTPUT_PX = int(os.environ["CHUNK_MEMORY_STRIP_PX"])
    B.set_timing(True)
    torch.set_num_threads(1)
    bicubic = os.environ.get("CHUNK_MEMORY_MODEL") == "bicubic"  # (the parts after the network alone, nearly)
    p = P.BicubicPredictor(device="cpu") if bicubic else P.TorchPredictor(R.MODEL, ensemble=ens, device="cpu")
    f = nets.S2_FACTORS
    h = required_halo(p.reach(f, scale), f)
    x = np.pad(x, ((0, 0), (0, 0), (0, core), (0, core)), mode="symmetric")[..., :core, :core]
    pads = tuple(int(v) for v in os.environ.get("CHUNK_MEMORY_PADS", f"{h},{h},{h},{h}").split(","))
    xp = np.pad(x, ((0, 0), (0, 0), pads[:2], pads[2:]), mode="symmetric")
    spec = B.BlockSpec(scale, f, h, quantum=(1e-4, -0.1))
    B.super_resolve_block(np.pad(x[..., :48, :48], ((0, 0), (0, 0), (h, h), (h, h)), mode="symmetric"), p,
                          spec)  # load + warm-up
    B.TIMINGS.clear()  # the block's own parts
    base = rss_gib()
    threading.Thread(target=sample, daemon=True).start()
    t0 = time.perf_counter()
    if os.environ.get("CHUNK_MEMORY_THREAD"):  # in a worker thread, as a dask worker runs its tasks
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            y, _ = pool.submit(B.super_resolve_block_sums, xp, p, spec, pads, **R.AS_PIPELINE).result()
    else:
        y, _ = B.super_resolve_block_sums(xp, p, spec, pads, **R.AS_PIPELINE)
    seconds = time.perf_counter() - t0
    part[0] = "end"
    time.sleep(0.05)
    stop[0] = True
    print(json.dumps({"model": p.name, "scale": scale, "core": core, "halo": h, "ensemble": ens,
                      "base_gib": round(base, 3),
                      "seconds": round(seconds, 1), "output_gib": round(y.nbytes / 2**30, 3),
                      "peak_gib_by_part": {k: round(v, 3) for k, v in peaks.items()},
                      "seconds_by_part": {k: round(v, 2) for k, v in B.TIMINGS.items()},
                      "high_water_gib": round(R.peak_rss_gib(), 3)}))


if __name__ == "__main__":
    main()
