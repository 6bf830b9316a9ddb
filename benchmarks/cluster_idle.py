"""CPU an idle local Dask cluster of N single-threaded workers uses, in this process (scheduler, nannies, client)
and in the workers, with Dask's defaults and with ``pipeline.cluster.BATCH_CONFIG``, alternating, R rounds of
S seconds each:

    .venv/bin/python benchmarks/cluster_idle.py 2 3 10
"""
from __future__ import annotations

import contextlib
import logging
import resource
import sys
import time


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def idle(n: int, seconds: float, batch: bool) -> tuple[float, float]:
    from distributed import Client, LocalCluster

    from s2sr_cloud.pipeline.cluster import batch_config

    with batch_config() if batch else contextlib.nullcontext():
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=logging.CRITICAL)
    with cluster, Client(cluster) as client:
        time.sleep(2)  # past the start-up
        c0, w0, t0 = cpu_s(), sum(client.run(cpu_s).values()), time.perf_counter()
        time.sleep(seconds)
        t = time.perf_counter() - t0
        return (cpu_s() - c0) / t, (sum(client.run(cpu_s).values()) - w0) / t


if __name__ == "__main__":
    n, rounds, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    for _ in range(rounds):
        for batch in (False, True):
            here, workers = idle(n, seconds, batch)
            print(f"{'BATCH_CONFIG' if batch else 'dask defaults'}: this process {here:.4f} cores, "
                  f"{n} workers {workers:.4f} cores, together {here + workers:.4f}", flush=True)
