"""Dask cluster handling: connect to a scheduler or start a LocalCluster sized to the machine."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import dask
from distributed import Client, LocalCluster, WorkerPlugin

from ..errors import ConfigError


# The periodic work of a Dask cluster that a batch job does not use, each on the cores the chunks compute on:
# the workers' statistical profiler (a stack sample every 10 ms, for the dashboard's profile page), the event-loop
# tick check (20 ms), the memory monitors (100 ms: a worker's spill/pause and its nanny's kill at the limit) and
# the system monitor (500 ms, dashboard plots). An idle LocalCluster of 2 workers on a 2-core machine used
# 0.105-0.123 cores with dask's defaults and 0.020-0.022 with these (benchmarks/cluster_idle.py 2 3 10).
# And one the scheduler does too rarely: work stealing every 1 s (Dask's default). A worker that ran out of tasks
# waited up to 1 s while the other held queued ones: the two workers of a 16-chunk job ended 0.47 s apart on
# average, 0.14 s with stealing every 100 ms; the job's wall 6.15 -> 5.97 s (8 alternating runs each,
# benchmarks/uneven_end.py). ``balance`` returns at once while no worker is idle.
BATCH_CONFIG: dict[str, object] = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.worker.memory.monitor-interval": "500ms",
    "distributed.admin.system-monitor.interval": "1s",
    "distributed.scheduler.work-stealing-interval": "100ms",
}
SCHEDULER_KEYS = tuple(k for k in BATCH_CONFIG if k.startswith("distributed.scheduler."))  # the scheduler's alone


@contextlib.contextmanager
def batch_config() -> Iterator[None]:
    """``BATCH_CONFIG`` for the clusters started inside, except each key the user's Dask configuration sets: in a
    YAML file or a ``DASK_*`` variable (whatever the value, Dask's default included), or in this process
    (``dask.config.set``) to other than Dask's default."""
    defaults = dask.config.merge(*dask.config.defaults)
    files_and_env = dask.config.collect()  # the user's YAML files and DASK_* variables, without packages' defaults
    unset = object()
    ours = {k: v for k, v in BATCH_CONFIG.items()
            if dask.config.get(k, unset, config=files_and_env) is unset
            and dask.config.get(k) == dask.config.get(k, config=defaults)}
    with dask.config.set(ours):
        yield


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, n_workers: int | None = None,
                verbose: bool = False, cluster: str | None = None) -> Iterator[Client]:
    """``scheduler``: address of a running scheduler (tcp://host:8786); None: a LocalCluster with one
    single-threaded worker process per core, up to 8 (torch and GDAL each use one thread per task); on a machine
    with a CUDA GPU (``local_gpu``), one worker process of as many threads, advertising ``GPU=1``."""
    if cluster:
        with cluster_client(cluster) as client:
            yield client
        return
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as err:
            raise ConfigError(f"cannot connect to the Dask scheduler {scheduler} ({err.__class__.__name__}): "
                              "check the address or drop --scheduler to run locally") from None
        try:
            yield client
        finally:
            client.close()
        return
    for name in ("distributed", "distributed.nanny", "distributed.scheduler", "distributed.worker"):
        logging.getLogger(name).setLevel(logging.ERROR)
    n = n_workers or max(1, min(os.cpu_count() or 1, 8))
    with batch_config():
        cluster = _local_cluster(n)
    client = Client(cluster)
    try:
        if not verbose:
            client.register_plugin(QuietWorkerLogs())
        yield client
    finally:
        # a slow worker shutdown after the store is complete is not the job's failure
        with contextlib.suppress(Exception):
            client.close(timeout=10)
        with contextlib.suppress(Exception):
            cluster.close(timeout=10)


def _local_cluster(n: int) -> LocalCluster:
    if local_gpu():
        # one worker process holds the GPU (GPU=1: one SR task at a time on it, one CUDA context); its other
        # threads read, write and make the overview levels. One single-threaded process per core each ran an SR
        # task at once on the one GPU, each with its own context and a block's memory: 8 x 5-6 GiB.
        return LocalCluster(n_workers=1, threads_per_worker=n, processes=True, dashboard_address=":0",
                            silence_logs=logging.CRITICAL, resources={"GPU": 1})
    return LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                        silence_logs=logging.CRITICAL)


def local_gpu() -> bool:
    """Whether a local cluster would run its model on a CUDA GPU: one is visible to this process and
    ``S2SR_LOCAL_GPU`` is not 0 (``S2SR_LOCAL_GPU=0``: the CPU layout, one single-threaded worker per core)."""
    if os.environ.get("S2SR_LOCAL_GPU", "1") == "0":
        return False
    import torch

    return torch.cuda.is_available()


class QuietWorkerLogs(WorkerPlugin):
    """Local workers share our terminal: task failures are reported once, by the client, as one line."""

    name = "s2sr-quiet-logs"

    def setup(self, worker: object) -> None:
        for name in ("distributed", "odc", "rasterio"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


@contextlib.contextmanager
def cluster_client(spec: str) -> Iterator[Client]:
    """``--cluster`` targets: ``k8s:NAME[.NAMESPACE]`` (a running dask-kubernetes operator DaskCluster) or
    ``gateway:NAME`` (a Dask Gateway cluster; the gateway address comes from the dask-gateway config/env)."""
    kind, _, name = spec.partition(":")
    if not name or kind not in ("k8s", "gateway"):
        raise ConfigError(f"--cluster {spec!r}: use k8s:NAME[.NAMESPACE] or gateway:NAME")
    try:
        if kind == "k8s":
            from dask_kubernetes.operator import KubeCluster  # type: ignore[import-not-found]

            cname, _, ns = name.partition(".")
            cluster = KubeCluster.from_name(cname, namespace=ns or None)
        else:
            from dask_gateway import Gateway  # type: ignore[import-not-found]

            cluster = Gateway().connect(name)
    except ImportError as err:
        pkg = "dask-kubernetes" if kind == "k8s" else "dask-gateway"
        raise ConfigError(f"--cluster {kind}: needs the {pkg} package (pip install {pkg})") from err
    except Exception as err:  # noqa: BLE001 - API/auth errors of either backend
        raise ConfigError(f"--cluster {spec}: cannot connect ({err.__class__.__name__}: {str(err)[:160]})") from None
    client = cluster.get_client()
    try:
        yield client
    finally:
        client.close()


class WarmModel(WorkerPlugin):
    """Loads the model once per worker process, onto that worker's device, when the worker joins: the first SR
    task does not pay for it, and a worker that cannot load it fails loudly at start-up."""

    def __init__(self, model: str, device: str = "auto") -> None:
        self.model = model
        self.device = device
        self.name = f"s2sr-warm-{model}"

    def setup(self, worker: object) -> None:
        from ..model.predictors import cached_model, pick_device

        cached_model(self.model, pick_device(self.device))


def has_gpu_workers(client: Client) -> bool:
    """True when some worker advertises a GPU resource (dask-worker --resources GPU=1)."""
    info = client.scheduler_info(n_workers=-1)  # every worker (distributed >= 2025.4 lists only 5 by default)
    return any(w.get("resources", {}).get("GPU", 0) > 0 for w in info.get("workers", {}).values())
