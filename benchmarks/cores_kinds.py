"""This machine's own 2-core scaling for three kinds of single-threaded work (issue 12, round 15): a pure Python
loop, numpy (sort and arithmetic on 2000 x 2000 float64), and the default network (--ensemble 1, 240 px, x4). Each
in one process alone, then in two processes at once; twice. Throughput ratio = 2 x alone / the slower of the two.

    .venv/bin/python benchmarks/cores_kinds.py
"""
from __future__ import annotations

import multiprocessing as mp
import time

import numpy as np


def work(kind: str, n: int, q: mp.Queue) -> None:
    import torch

    torch.set_num_threads(1)
    if kind == "network":
        from s2sr_cloud.model.predictors import cached_model
        from s2sr_cloud.model.registry import default_model

        net = cached_model(default_model(), torch.device("cpu"))
        x = torch.rand(1, 12, 240, 240)
        with torch.inference_mode():
            net(x, 4, 1)
            t0 = time.perf_counter()
            for _ in range(n):
                net(x, 4, 1)
    elif kind == "numpy":
        a = np.random.default_rng(0).random((2000, 2000))
        t0 = time.perf_counter()
        for _ in range(n):
            np.sort(a, axis=1)
            (a * 1.5 + 2).sum()
    else:
        t0 = time.perf_counter()
        for _ in range(n):
            s = 0
            for i in range(2_000_000):
                s += i
    q.put(time.perf_counter() - t0)


def ratio(kind: str, n: int) -> str:
    q: mp.Queue = mp.Queue()
    p = mp.Process(target=work, args=(kind, n, q))
    p.start()
    p.join()
    alone = q.get()
    ps = [mp.Process(target=work, args=(kind, n, q)) for _ in range(2)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    both = max(q.get(), q.get())
    return f"{kind}: 1 process {alone:.2f} s, 2 at once {both:.2f} s -> {2 * alone / both:.2f}"


if __name__ == "__main__":
    for kind, n in (("python", 20), ("numpy", 15), ("network", 6)):
        for _ in range(2):
            print(ratio(kind, n), flush=True)
