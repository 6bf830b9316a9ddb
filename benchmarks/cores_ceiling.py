"""The machine's own ceiling for speedup_2_workers: the bare network (default model, --ensemble 1, one thread,
the embedded sample's 240 px at x4, in memory) in one process alone, then in two processes at once, alternately
``rounds`` times. No dask, no I/O: what two single-threaded workers could at best gain over one on these cores.

    .venv/bin/python benchmarks/cores_ceiling.py 2
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

_CODE = """
import time, numpy as np, torch, s2sr_cloud
from s2sr_cloud.bands import ALL_BANDS
from s2sr_cloud.model.predictors import cached_model
from s2sr_cloud.ops import tops
torch.set_num_threads(1)
ds = s2sr_cloud.load(s2sr_cloud.search("sample"))
x = torch.from_numpy(np.stack([ds[b].values for b in ALL_BANDS], axis=1).astype(np.float32))
x, _ = tops.fill_nan(x, 2)
net = cached_model("s2sr-v2", torch.device("cpu"))
with torch.inference_mode():
    net(x[..., :48, :48], 4, 1)
    print("ready", flush=True)
    input()
    t = time.perf_counter()
    for _ in range(3):
        net(x, 4, 1)
    print(time.perf_counter() - t, flush=True)
"""


def run(n: int) -> float:
    """Seconds until all ``n`` processes have each done the same work (started together once all are loaded)."""
    procs = [subprocess.Popen([sys.executable, "-c", _CODE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True) for _ in range(n)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    t = time.perf_counter()
    for p in procs:
        p.stdin.write("\n")
        p.stdin.flush()
    each = [float(p.stdout.readline()) for p in procs]
    wall = time.perf_counter() - t
    for p in procs:
        p.wait()
    return max(wall, *each)


if __name__ == "__main__":
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    for _ in range(rounds):
        one, two = run(1), run(2)
        print(json.dumps({"one_process_s": round(one, 2), "two_processes_s": round(two, 2),
                          "throughput_ratio": round(2 * one / two, 3)}), flush=True)
