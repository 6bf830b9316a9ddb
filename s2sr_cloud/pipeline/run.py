"""``s2sr run``: execute a job plan (``plan.py``) zone by zone under a lease: load lazily, super-resolve on dask,
write (``write.py``), report (``summary.py``).

Data safety: a zone writes only into an absent or empty path, resumes only its own unfinished store, and a
replacement (``--overwrite``) is built beside the old store and swapped in only once complete, so the previous
product stays readable until the new one exists. Every decision is re-checked after the lease is taken.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import time
from typing import Any

from .._version import __version__
from ..config import SAMPLES, JobConfig, redact_url
from ..errors import OutputError
from ..io import store
from ..io.env import configure_reads
from ..io.lease import Lease
from ..io.load import load_reflectance
from .cluster import WarmModel, dask_client, has_gpu_workers
from .graph import super_resolve
from .plan import Action, JobPlan, ZonePlan, _action, plan_job
from .summary import RunResult, make_quicklook, summary, write_stac
from .write import WriteReport, compute_statistics, write_output

log = logging.getLogger(__name__)

__all__ = ["RunResult", "compute_statistics", "execute", "run_job", "summary", "write_output"]


def run_job(cfg: JobConfig, *, progress: bool = True, client: Any = None, verbose: bool = False) -> list[RunResult]:
    """Plan the job (everything that can refuse it does so before a byte is written), then execute it: one
    output per UTM zone the scenes fall in, plus a STAC Collection describing the outputs. Re-running the same
    job resumes it: finished chunks are skipped."""
    return execute(plan_job(cfg), progress=progress, client=client, verbose=verbose)


def execute(plan: JobPlan, *, progress: bool = True, client: Any = None, verbose: bool = False) -> list[RunResult]:
    cfg = plan.cfg
    results = []
    with contextlib.ExitStack() as stack:
        def get_client() -> Any:
            nonlocal client
            if client is None:
                client = stack.enter_context(dask_client(cfg.scheduler, verbose=verbose, cluster=cfg.cluster))
            if plan.predictor.loads_model:
                client.register_plugin(WarmModel(plan.predictor.name, plan.predictor.device))
            return client

        for zone in plan.zones:
            results.append(_run_zone(plan, zone, get_client, progress))
    write_stac(cfg, results)
    return results


def _attrs(plan: JobPlan, zone: ZonePlan) -> dict[str, Any]:
    cfg = plan.cfg
    return {
        "software": f"s2sr-cloud {__version__}", "model": plan.model, "model_sha256": plan.model_sha256,
        "ensemble": plan.ensemble, "scale": cfg.scale, "stac_items": [it.id for it in zone.items],
        "catalog": (f"{cfg.catalog} (embedded, served by rustac)" if cfg.catalog in SAMPLES
                    else redact_url(cfg.catalog)),
        "collection": cfg.collection, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "datetime": cfg.datetime, "datetime_expr": cfg.datetime_expr, "out_template": cfg.out_template,
        "runs": [{"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "items": [it.id for it in zone.items], "datetime": cfg.datetime,
                  "datetime_expr": cfg.datetime_expr}],
        "job_spec": zone.spec, "input_crs": str(zone.grid.geobox.crs),
        "Conventions": "CF-1.8", "zarr_format": cfg.zarr_format,
        "license": "Contains modified Copernicus Sentinel data",
    }


def _kept(url: str) -> WriteReport:
    old = store.read_attrs(url)
    return WriteReport(old["statistics"], old["sam_deg"], int(store.done_mask(url).size), 0)


def _write_zone(plan: JobPlan, zone: ZonePlan, action: Action, ds: Any, get_client: Any, progress: bool,
                lease: Lease) -> WriteReport:
    """Create, resume or replace the zone's store (or keep it, when it is already this job's and complete)."""
    cfg = plan.cfg
    target = zone.target
    if action is Action.DONE:
        return _kept(zone.out)
    if action is Action.PROMOTE:
        return _kept(target)
    client = get_client()
    gpu = has_gpu_workers(client)
    out = super_resolve(ds, cfg.scale, plan.predictor, grid=zone.grid_chunks, quantize=cfg.dtype == "uint16", gpu=gpu)
    if action is Action.REPLACE and store.inspect_output(target).state is store.OutputState.OURS:
        store.remove_store(target)  # an abandoned replacement of another job
    return write_output(out, target, dtype=cfg.dtype, attrs=_attrs(plan, zone) | {"gpu_workers": gpu},
                        client=client, progress=progress, retries=cfg.task_retries,
                        resume=action in (Action.RESUME, Action.RESUME_REPLACE), before_finish=lease.check)


def _run_zone(plan: JobPlan, zone: ZonePlan, get_client: Any, progress: bool) -> RunResult:
    cfg = plan.cfg
    t0 = time.monotonic()
    lease = Lease(zone.out, ttl=cfg.lease_ttl)
    lease.acquire()
    try:
        action = _action(cfg, zone.out, zone.spec)  # again, now that no other run can change it
        if action is not zone.action:
            raise OutputError(f"{redact_url(zone.out)} changed while this job was planned ({zone.action.value} -> "
                              f"{action.value}): nothing was written; re-run the command")
        configure_reads()
        target = zone.target
        if action is Action.APPEND:
            report, ds = _append(plan, zone, get_client, progress, lease)
        else:
            ds = load_reflectance(list(zone.items), zone.grid, zone.read_chunk, mask=zone.mask,
                                  composite=cfg.composite)
            report = _write_zone(plan, zone, action, ds, get_client, progress, lease)
        if target != zone.out:
            lease.check()
            store.promote(target, zone.out)  # the old store stays readable until the new one is complete
    finally:
        lease.release()
    bands = list(cfg.bands)
    geobox = zone.grid.geobox
    items, times = [it.id for it in zone.items], ds.time.values
    if action is Action.APPEND:  # the store's scenes and dates, not only this run's
        items, times = list(store.read_attrs(zone.out)["stac_items"]), store.read_times(zone.out)
    result = RunResult(
        out=zone.out, items=items, bands=bands, scale=cfg.scale, seconds=time.monotonic() - t0,
        area_km2=geobox.shape[0] * geobox.shape[1] * zone.grid.resolution ** 2 / 1e6,
        output_bytes=store.store_size(zone.out), shape=(len(times), *zone.shape[1:]), stats=report.table,
        sam=report.sam, chunks_total=report.chunks_total, chunks_computed=report.chunks_computed,
        epsg=int(geobox.crs.epsg or 0), bounds=tuple(geobox.boundingbox), datetimes=[str(t) for t in times],
        footprint=json.loads(json.dumps(geobox.extent.to_crs("EPSG:4326").geom.__geo_interface__)),
        action=action.value, found_more=plan.found_more, limit=cfg.limit, model=plan.model,
        chunks_empty=report.chunks_empty, masked_fraction=report.masked_fraction, mask=report.mask or None)
    try:  # (an append's new dates are not the store's first: its quick-look stays the first run's)
        if action is not Action.APPEND:
            result.quicklook = make_quicklook(cfg, zone.out, ds, bands, report.table)
    except Exception as err:  # noqa: BLE001 - the store is complete; a picture must not hide that
        result.quicklook_error = f"{err.__class__.__name__}: {str(err)[:160]}"
        log.warning("s2sr: warning: the quick-look failed (%s); the store is complete", result.quicklook_error)
    return result


def _append(plan: JobPlan, zone: ZonePlan, get_client: Any, progress: bool, lease: Lease) -> tuple[WriteReport, Any]:
    """``--append-time``: the scenes of the window that the store does not hold become new, later time steps.
    Nothing already written is recomputed or rewritten; an interrupted append is finished by re-running."""
    import numpy as np
    import xarray as xr

    cfg = plan.cfg
    attrs = store.read_attrs(zone.out)
    stored = list(attrs.get("stac_items", []))
    pending = attrs.get("append_pending")
    times = store.read_times(zone.out)
    if pending:  # an interrupted append: finish exactly those scenes
        new = [it for it in zone.items if it.id in pending["items"]]
        missing = sorted(set(pending["items"]) - {it.id for it in new})
        if missing:
            raise OutputError(f"{redact_url(zone.out)}: an interrupted --append-time run was adding "
                              f"{', '.join(missing[:2])}, which this search does not return: re-run with that run's "
                              "--datetime/--now, or --overwrite")
        t0 = int(pending["t0"])
    else:
        new = [it for it in zone.items if it.id not in stored]
        t0 = len(times)
    if not new:
        report = _kept(zone.out)
        return report, xr.Dataset(coords={"time": np.array([], "datetime64[ns]")})
    ds = load_reflectance(new, zone.grid, zone.read_chunk, mask=zone.mask, composite=cfg.composite)
    if not pending and len(times) and ds.time.values.min() <= times.max():
        early = str(ds.time.values.min())[:10]
        raise OutputError(f"{redact_url(zone.out)}: new scene(s) dated {early} are not later than the store's last time "
                          f"step {str(times.max())[:10]}: --append-time only adds later dates; nothing was changed "
                          "(use --overwrite to rebuild the store)")
    client = get_client()
    gpu = has_gpu_workers(client)
    out = super_resolve(ds, cfg.scale, plan.predictor, grid=zone.grid_chunks, quantize=cfg.dtype == "uint16", gpu=gpu)
    ids = [it.id for it in new]
    if not pending or len(times) == t0:  # (an interruption may have come before the store grew)
        run = {"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "items": ids,
               "datetime": cfg.datetime, "datetime_expr": cfg.datetime_expr}
        store.begin_append(zone.out, out, {"append_pending": {"items": ids, "t0": t0},
                                           "stac_items": stored + [i for i in ids if i not in stored],
                                           "runs": list(attrs.get("runs", [])) + [run]})
    report = write_output(out, zone.out, dtype=cfg.dtype, client=client, progress=progress, resume=True,
                          retries=cfg.task_retries, before_finish=lease.check, t_offset=t0,
                          final_attrs={"append_pending": None})
    return report, ds
