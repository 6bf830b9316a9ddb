"""Every manifest in deploy/ validated offline: built-in kinds against Kubernetes' OpenAPI schemas
(kubernetes-validate, strict), Dask operator kinds against the CRD openAPIV3Schema shipped by dask-kubernetes
2026.3.0 (deploy/schemas)."""

import copy
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
K8S_VERSION = "1.37.0"
CRDS = {"DaskCluster": "daskcluster.yaml", "DaskWorkerGroup": "daskworkergroup.yaml",
        "DaskAutoscaler": "daskautoscaler.yaml"}


def _docs():
    out = []
    for f in sorted(DEPLOY.glob("*.yaml")):
        out += [(f.name, d) for d in yaml.safe_load_all(f.read_text()) if d]
    return out


def _crd_schema(kind):
    crd = yaml.safe_load((DEPLOY / "schemas" / CRDS[kind]).read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def validate(doc):
    if doc["kind"] in CRDS:
        jsonschema.validate(doc, _crd_schema(doc["kind"]))
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("name,doc", _docs(), ids=lambda v: v if isinstance(v, str) else v.get("kind"))
def test_manifest_is_valid(name, doc):
    validate(doc)


def test_expected_resources_present():
    kinds = {d["kind"] for _, d in _docs()}
    assert {"DaskCluster", "DaskWorkerGroup", "DaskAutoscaler", "CronJob", "ConfigMap", "Secret"} <= kinds
    gpu = next(d for _, d in _docs() if d["kind"] == "DaskWorkerGroup")
    c = gpu["spec"]["worker"]["spec"]["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "GPU=1" in c["args"]
    cron = next(d for _, d in _docs() if d["kind"] == "CronJob")
    cmd = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert cmd[:4] == ["s2sr", "run", "--config", "/etc/s2sr/job.yaml"]


def test_cluster_workers_run_with_the_batch_config():
    """Every worker container of the Dask operator manifests sets ``pipeline.cluster.BATCH_CONFIG``'s worker keys
    and the scheduler container its scheduler keys through ``DASK_*`` variables (as Dask parses them), as the local
    cluster does."""
    import dask

    from s2sr_cloud.pipeline.cluster import BATCH_CONFIG, SCHEDULER_KEYS

    def config(containers: list[dict], keys: list[str]) -> dict:
        env = {e["name"]: e["value"] for e in containers[0].get("env", []) if e["name"].startswith("DASK_")}
        seen = dask.config.collect_env(env)
        return {k: dask.config.get(k, config=seen) for k in keys}

    workers = [d["spec"]["worker"]["spec"]["containers"] for _, d in _docs()
               if d["kind"] in ("DaskCluster", "DaskWorkerGroup")]
    schedulers = [d["spec"]["scheduler"]["spec"]["containers"] for _, d in _docs() if d["kind"] == "DaskCluster"]
    assert len(workers) == 2 and len(schedulers) == 1 and SCHEDULER_KEYS
    worker_keys = [k for k in BATCH_CONFIG if k not in SCHEDULER_KEYS]
    for containers in workers:
        assert config(containers, worker_keys) == {k: BATCH_CONFIG[k] for k in worker_keys}
    assert config(schedulers[0], list(SCHEDULER_KEYS)) == {k: BATCH_CONFIG[k] for k in SCHEDULER_KEYS}


def test_job_configs_in_configmaps_are_valid_scheduled_jobs(tmp_path):
    from s2sr_cloud.config import load_config

    maps = {d["metadata"]["name"]: d for _, d in _docs() if d["kind"] == "ConfigMap"}
    crons = {d["metadata"]["name"]: d for _, d in _docs() if d["kind"] == "CronJob"}
    assert set(crons) == {"s2sr-monthly", "s2sr-rolling"}
    for cron in crons.values():  # every CronJob mounts an existing ConfigMap
        assert cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] in maps
    jobs = {}
    for name, cm in maps.items():
        job = tmp_path / f"{name}.yaml"
        job.write_text(cm["data"]["job.yaml"])
        jobs[name] = load_config(str(job), {"now": "2024-07-02T03:00:00Z"})
    monthly, rolling = jobs["s2sr-job"], jobs["s2sr-rolling-job"]
    assert monthly.out == "s3://s2sr-results/berlin-2024-06.zarr" and not monthly.overwrite
    assert monthly.datetime == "2024-06-01T00:00:00Z/2024-06-30T23:59:59Z"
    assert rolling.append_time and not rolling.overwrite and rolling.out == "s3://s2sr-results/berlin-rolling.zarr"
    assert rolling.datetime == "2024-06-22T00:00:00Z/2024-07-01T23:59:59Z"


def test_validators_reject_broken_manifests():
    cron = copy.deepcopy(next(d for _, d in _docs() if d["kind"] == "CronJob"))
    cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = 7
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(cron)
    dc = copy.deepcopy(next(d for _, d in _docs() if d["kind"] == "DaskCluster"))
    dc["spec"]["worker"]["replicas"] = "many"
    with pytest.raises(jsonschema.ValidationError):
        validate(dc)
