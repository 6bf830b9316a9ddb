"""Dask cluster handling: connect to a scheduler or start a LocalCluster sized to the machine."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from distributed import Client, LocalCluster, WorkerPlugin

from ..errors import ConfigError


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
    if local_gpu():
        # one worker process holds the GPU (GPU=1: one SR task at a time on it, one CUDA context); its other
        # threads read, write and make the overview levels. One single-threaded process per core each ran an SR
        # task at once on the one GPU, each with its own context and a block's memory: 8 x 5-6 GiB.
        cluster = LocalCluster(n_workers=1, threads_per_worker=n, processes=True, dashboard_address=":0",
                               silence_logs=logging.CRITICAL, resources={"GPU": 1})
    else:
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=logging.CRITICAL)
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
