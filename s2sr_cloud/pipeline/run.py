"""``s2sr run``: search -> lazy load -> super-resolve on dask -> Zarr + statistics + quick-look."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize

from .._version import __version__
from ..bands import RGB
from ..catalog import describe_items, search_items
from ..catalog.server import sample_catalog
from ..config import SAMPLE, JobConfig
from ..errors import OutputError, ReadError
from ..io import quicklook, stac_out, store
from ..io.env import configure_reads
from ..io.load import area_geometry, grid_for, load_reflectance
from ..model.predictors import TorchPredictor, get_predictor
from ..model.registry import get_entry, model_sha256
from ..ops.stats import COMPARISONS, METRICS, NSUM, finalize
from .cluster import WarmModel, dask_client, has_gpu_workers
from .graph import default_chunk, super_resolve

@dataclass
class RunResult:
    out: str
    items: list[str]
    bands: list[str]
    scale: int
    seconds: float
    area_km2: float
    output_bytes: int
    shape: tuple[int, ...]
    stats: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    sam: dict[str, float] = field(default_factory=dict)
    quicklook: str | None = None
    chunks_total: int = 0
    chunks_computed: int = 0
    epsg: int = 0
    bounds: tuple[float, ...] = ()
    footprint: dict[str, Any] = field(default_factory=dict)
    datetimes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def catalog_url(catalog: str) -> Iterator[str]:
    if catalog == SAMPLE:
        with sample_catalog() as url:
            yield url
    else:
        yield catalog


def compute_statistics(sums: np.ndarray, bands: list[str]) -> tuple[xr.Dataset, dict[str, Any], dict[str, float]]:
    """(T, K, ny, nx) block sums -> overall and per-chunk metrics as a Dataset, plus plain dicts for printing."""
    t, _, ny, nx = sums.shape
    per_chunk = sums.transpose(0, 2, 3, 1).reshape(t, ny, nx, 2, len(bands) + 1, NSUM)
    overall = per_chunk.sum(axis=(0, 1, 2))
    m_all, sam_all = finalize(overall)
    m_chunk, sam_chunk = finalize(per_chunk)
    coords = {"comparison": list(COMPARISONS), "band": bands, "metric": list(METRICS)}
    ds = xr.Dataset({
        "stats": (("comparison", "band", "metric"), m_all),
        "sam_deg": (("comparison",), sam_all),
        "chunk_stats": (("time", "chunk_y", "chunk_x", "comparison", "band", "metric"), m_chunk),
        "chunk_sam_deg": (("time", "chunk_y", "chunk_x", "comparison"), sam_chunk),
    }, coords=coords)
    table = {comp: {b: {m: float(m_all[ci, bi, mi]) for mi, m in enumerate(METRICS)} for bi, b in enumerate(bands)}
             for ci, comp in enumerate(COMPARISONS)}
    return ds, table, {comp: float(sam_all[ci]) for ci, comp in enumerate(COMPARISONS)}


def format_table(stats: dict[str, Any], sam: dict[str, float]) -> str:
    bands = list(next(iter(stats.values())))
    lines = [f"{'band':<5} | {'consistency (output averaged back vs input)':^46} | "
             f"{'point samples (output vs containing input pixel)':^46}",
             f"{'':<5} | " + " | ".join(" ".join(f"{m:>11}" for m in METRICS) for _ in COMPARISONS)]
    for b in bands:
        cells = [" ".join(f"{stats[c][b][m]:>11.3g}" for m in METRICS) for c in COMPARISONS]
        lines.append(f"{b:<5} | " + " | ".join(cells))
    lines.append(f"{'SAM':<5} | {sam['consistency']:>11.4g} deg{'':31} | {sam['point']:>11.4g} deg")
    return "\n".join(lines)


def _is_read_error(err: BaseException) -> bool:
    text = f"{type(err).__module__}.{type(err).__name__}: {err}"
    return any(tag in text for tag in ("Rasterio", "rasterio", "CPLE_"))


def _read_error(err: BaseException) -> ReadError:
    return ReadError(f"reading an input raster failed ({err.__class__.__name__}: {str(err)[:200]}): "
                     "check that every asset href is readable from the workers; -v names the file")


@dataclass
class WriteReport:
    table: dict[str, Any]
    sam: dict[str, float]
    chunks_total: int
    chunks_computed: int


def _run_tasks(client: Any, tasks: list[Any], keys: list[tuple[int, int, int]], progress: bool) -> None:
    """Compute the chunk tasks; every chunk that can finish does. Failures are reported by chunk afterwards."""
    if not tasks:
        return
    if client is None:  # the current dask scheduler (threads unless configured otherwise)
        import dask

        try:
            dask.compute(*tasks)
        except Exception as err:  # noqa: BLE001
            raise (_read_error(err) if _is_read_error(err) else err) from None
        return
    from distributed import progress as dask_progress
    from distributed import wait

    futures = client.compute(tasks, retries=int(os.environ.get("S2SR_TASK_RETRIES", "3")))
    if progress:
        dask_progress(futures, notebook=False)
        sys.stdout.write("\n")
    wait(futures)
    failed = [(k, f.exception()) for k, f in zip(keys, futures, strict=True) if f.status == "error"]
    if failed:
        (t, i, j), err = failed[0]
        where = (f"{len(failed)} of {len(tasks)} chunk(s) failed, first (time {t}, chunk_y {i}, chunk_x {j}); "
                 "the other chunks are written and a re-run computes only the missing ones")
        if _is_read_error(err):
            raise ReadError(f"{_read_error(err)} [{where}]")
        raise OutputError(f"{where}: {err.__class__.__name__}: {str(err)[:160]}")


def write_output(out: xr.Dataset, url: str, *, dtype: str = "uint16", attrs: dict[str, Any] | None = None,
                 client: Any = None, progress: bool = False, resume: bool = False) -> WriteReport:
    """Write a ``super_resolve`` result chunk by chunk: the template (marked incomplete) unless resuming, then
    one task per output chunk that region-writes all its variables and its statistics sums and marks it done,
    skipping chunks already done. When all are done: the statistics and the ``complete`` mark."""
    bands = list(out.attrs["bands"])
    names = (*bands, store.DETAIL)
    if not resume:
        store.write_template(out, url, dtype, {**out.attrs, **(attrs or {})})
    done = store.done_mask(url)
    stacked = da.stack([out[n].data for n in names], axis=1).rechunk({1: -1}, method="tasks")
    blocks, sums = stacked.to_delayed(), out[store.SUMS].data.to_delayed()
    ych, xch = stacked.chunks[2], stacked.chunks[3]
    y0s, x0s = np.cumsum((0,) + ych[:-1]), np.cumsum((0,) + xch[:-1])
    keys = [(int(t), int(i), int(j)) for t, i, j in zip(*np.nonzero(~done), strict=True)]
    opts = store.storage_options(url)  # captured here, on the client
    write = dask.delayed(store.write_block, pure=True)
    tasks = [write(url, opts, names, blocks[t, 0, i, j], sums[t, 0, i, j], t, i, j, int(y0s[i]), int(x0s[j]),
                   dask_key_name=f"s2sr-write-{t}-{i}-{j}-{tokenize(url)}")
             for t, i, j in keys]
    _run_tasks(client, tasks, keys, progress)
    if not store.done_mask(url).all():
        raise OutputError(f"{url}: some chunks are not written; re-run the same command to finish them")
    stats_ds, table, sam = compute_statistics(store.read_chunk_sums(url, store.SUMS), bands)
    store.finish(url, stats_ds, {"statistics": table, "sam_deg": sam})
    return WriteReport(table, sam, int(done.size), len(keys))


def job_spec(cfg: JobConfig, predictor: Any) -> dict[str, Any]:
    """What defines a store's content: the job's fields, the model actually used and the chunk grid."""
    ensemble = getattr(predictor, "ensemble", None)
    if ensemble is None and isinstance(predictor, TorchPredictor):  # the model's own choice, made explicit
        ensemble = get_entry(predictor.name).kwargs.get("ensemble", 1)
    return cfg.job_spec() | {"model": predictor.name, "chunk": cfg.chunk or default_chunk(cfg.scale),
                             "ensemble": ensemble}


def _existing(cfg: JobConfig, spec: dict[str, Any]) -> str | None:
    """None: no store; "resume": same job, unfinished; "complete": same job, done. A store made by another job
    is refused unless --overwrite."""
    if cfg.overwrite or not store.store_exists(cfg.out):
        return None
    try:
        old = store.read_attrs(cfg.out)
    except Exception:  # noqa: BLE001 - not a zarr group we can read
        old = {}
    if old.get("job_spec") != spec:
        diff = sorted(k for k in set(spec) | set(old.get("job_spec") or {})
                      if (old.get("job_spec") or {}).get(k) != spec.get(k))
        raise OutputError(f"output {cfg.out} already exists and was made by a different job "
                          f"({', '.join(diff) or 'not an s2sr-cloud store'} differ): pass --overwrite to replace it "
                          "or choose another --out")
    return "complete" if old.get(store.STATUS) == "complete" else "resume"


def zone_out(out: str, epsg: int) -> str:
    """Output URL of one UTM zone when an area spans several: ``x.zarr`` -> ``x_EPSG32629.zarr``."""
    stem = out.rstrip("/")
    return f"{stem.removesuffix('.zarr')}_EPSG{epsg}.zarr"


def run_job(cfg: JobConfig, *, progress: bool = True, client: Any = None, verbose: bool = False) -> list[RunResult]:
    """Run one job end to end: one output per UTM zone the scenes fall in (each on its native grid, no
    reprojection), plus a STAC Collection describing the outputs. Validation, search and load planning happen
    before anything is written. Re-running the same job resumes it: finished chunks are skipped."""
    predictor = get_predictor(cfg.model, bands=cfg.bands, ensemble=cfg.ensemble)
    with catalog_url(cfg.catalog) as url:
        items = search_items(url, cfg.collection, bbox=cfg.bbox, intersects=cfg.geometry, datetime=cfg.datetime,
                             max_cloud=cfg.max_cloud, limit=cfg.limit)
    zones: dict[int, list[Any]] = {}
    for item, info in zip(items, describe_items(items, cfg.bands), strict=True):
        zones.setdefault(info.epsg or 0, []).append(item)
    jobs = [(cfg if len(zones) == 1 else cfg.replace(out=zone_out(cfg.out, epsg)), zitems)
            for epsg, zitems in sorted(zones.items())]
    for zcfg, _ in jobs:  # refuse before writing anything if any zone's store belongs to another job
        _existing(zcfg, job_spec(zcfg, predictor))
    results = []
    with contextlib.ExitStack() as stack:
        for zcfg, zitems in jobs:
            if client is None:
                client = stack.enter_context(dask_client(cfg.scheduler, verbose=verbose, cluster=cfg.cluster))
            if isinstance(predictor, TorchPredictor):
                client.register_plugin(WarmModel(predictor.name, predictor.device))
            results.append(_run_zone(zcfg, zitems, predictor, client, progress))
    write_stac(cfg, results)
    return results


def _run_zone(cfg: JobConfig, items: list[Any], predictor: Any, client: Any, progress: bool) -> RunResult:
    t0 = time.monotonic()
    chunk = cfg.chunk or default_chunk(cfg.scale)
    spec = job_spec(cfg, predictor)
    state = _existing(cfg, spec)
    grid = grid_for(items, cfg.bands, area_geometry(cfg.bbox, cfg.geometry))
    configure_reads()
    ds = load_reflectance(items, grid, chunk)
    attrs = {
        "software": f"s2sr-cloud {__version__}", "model": predictor.name, "model_sha256": model_sha256(
            predictor.name), "scale": cfg.scale, "stac_items": [it.id for it in items],
        "catalog": "sample (embedded, served by rustac)" if cfg.catalog == SAMPLE else cfg.catalog,
        "collection": cfg.collection, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "job_spec": spec, "input_crs": str(grid.geobox.crs),
        "Conventions": "CF-1.8",
        "license": "Contains modified Copernicus Sentinel data",
    }
    lease = store.Lease(cfg.out, owner=f"{socket.gethostname()}:{os.getpid()}")
    lease.acquire()
    try:
        gpu = state != "complete" and has_gpu_workers(client)
        out = super_resolve(ds, cfg.scale, predictor, chunk=chunk, quantize=cfg.dtype == "uint16", gpu=gpu)
        attrs["gpu_workers"] = gpu
        if cfg.overwrite:
            store.remove_store(cfg.out)
        if state == "complete":
            old = store.read_attrs(cfg.out)
            report = WriteReport(old["statistics"], old["sam_deg"], int(store.done_mask(cfg.out).size), 0)
        else:
            report = write_output(out, cfg.out, dtype=cfg.dtype, attrs=attrs, client=client, progress=progress,
                                  resume=state == "resume")
    finally:
        lease.release()
    bands = list(out.attrs["bands"])
    seconds = time.monotonic() - t0
    area = grid.geobox.shape[0] * grid.geobox.shape[1] * grid.resolution ** 2 / 1e6
    result = RunResult(out=cfg.out, items=[it.id for it in items], bands=bands, scale=cfg.scale, seconds=seconds,
                       area_km2=area, output_bytes=store.store_size(cfg.out),
                       shape=(out.sizes["time"], out.sizes["y"], out.sizes["x"]), stats=report.table, sam=report.sam,
                       chunks_total=report.chunks_total, chunks_computed=report.chunks_computed,
                       epsg=int(grid.geobox.crs.epsg or 0), bounds=tuple(grid.geobox.boundingbox),
                       footprint=json.loads(json.dumps(grid.geobox.extent.to_crs("EPSG:4326").geom.__geo_interface__)),
                       datetimes=[str(t) for t in ds.time.values])
    if all(b in bands for b in RGB):
        result.quicklook = make_quicklook(cfg, ds, bands, report.table)
    return result


def write_stac(cfg: JobConfig, results: list[RunResult]) -> str:
    """A STAC Collection (JSON) next to the output(s), one Item per output store, for pystac(-client) users."""
    return stac_out.write_collection(cfg.out, [
        {"href": r.out, "epsg": r.epsg, "bounds": r.bounds, "footprint": r.footprint, "datetimes": r.datetimes,
         "bands": r.bands, "scale": r.scale, "items": r.items, "model": cfg.model} for r in results])


def quicklook_path(cfg: JobConfig) -> str:
    if cfg.quicklook and cfg.quicklook.endswith(".png"):
        return cfg.quicklook
    base = os.path.basename(cfg.out.rstrip("/")).removesuffix(".zarr") + "_quicklook.png"
    if cfg.quicklook:
        return os.path.join(cfg.quicklook, base)
    if "://" in cfg.out and not cfg.out.startswith("file://"):
        return base  # remote output: quick-look in the working directory
    return os.path.join(os.path.dirname(os.path.abspath(cfg.out.removeprefix("file://"))), base)


def make_quicklook(cfg: JobConfig, ds: xr.Dataset, bands: list[str], table: dict[str, Any]) -> str:
    res = store.open_output(cfg.out)
    n = min(96, ds.sizes["y"], ds.sizes["x"])
    y0, x0 = (ds.sizes["y"] - n) // 2, (ds.sizes["x"] - n) // 2
    s = cfg.scale
    inp = np.stack([ds[b].isel(time=0, y=slice(y0, y0 + n), x=slice(x0, x0 + n)).values for b in RGB])
    sr = np.stack([res[b].isel(time=0, y=slice(y0 * s, (y0 + n) * s), x=slice(x0 * s, (x0 + n) * s)).values
                   for b in RGB])
    path = quicklook_path(cfg)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    quicklook.render(path, inp, sr, bands, table,
                     f"{res.attrs['stac_items'][0]} - model {res.attrs['model']} - x{s}")
    return path


def summary(r: RunResult) -> str:
    gb = r.output_bytes / 1e9
    return "\n".join([
        f"scenes:   {len(r.items)} ({', '.join(r.items[:3])}{' ...' if len(r.items) > 3 else ''})",
        f"area:     {r.area_km2:.1f} km2, bands {','.join(r.bands)}, x{r.scale}",
        f"output:   {r.out}  {r.shape[0]} x {r.shape[1]} x {r.shape[2]} (time, y, x), {gb * 1000:.1f} MB on disk",
        f"chunks:   {r.chunks_computed} computed, {r.chunks_total - r.chunks_computed} already done, "
        f"{r.chunks_total} in all",
        f"time:     {r.seconds:.1f} s",
        f"quicklook: {r.quicklook}" if r.quicklook else "quicklook: (needs B02, B03, B04)",
        "",
        format_table(r.stats, r.sam),
    ])
