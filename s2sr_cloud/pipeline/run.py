"""``s2sr run``: search -> lazy load -> super-resolve on dask -> Zarr + statistics + quick-look."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from .._version import __version__
from ..bands import RGB
from ..catalog import search_items
from ..catalog.server import sample_catalog
from ..config import SAMPLE, JobConfig
from ..errors import OutputError, ReadError, S2SRError
from ..io import quicklook, store
from ..io.env import configure_reads
from ..io.load import area_geometry, grid_for, load_reflectance
from ..model.predictors import get_predictor
from ..model.registry import model_sha256
from ..ops.stats import COMPARISONS, METRICS, NSUM, finalize
from .cluster import dask_client, has_gpu_workers
from .graph import default_chunk, super_resolve

log = logging.getLogger(__name__)


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


def _compute(client: Any, delayed: Any, progress: bool) -> None:
    try:
        if client is None:  # the current dask scheduler (threads unless configured otherwise)
            import dask

            dask.compute(delayed)
            return
        from distributed import progress as dask_progress

        future = client.compute(delayed)
        if progress:
            dask_progress(future, notebook=False)
            sys.stdout.write("\n")
        future.result()
    except S2SRError:
        raise
    except Exception as err:  # noqa: BLE001 - worker errors come back as their original types
        text = f"{type(err).__module__}.{type(err).__name__}: {err}"
        if any(tag in text for tag in ("Rasterio", "rasterio", "CPLE_")):
            raise ReadError(f"reading an input raster failed ({err.__class__.__name__}: {str(err)[:200]}): "
                            "check that every asset href is readable from the workers; -v names the file") from None
        raise


def write_output(out: xr.Dataset, url: str, *, dtype: str = "uint16", attrs: dict[str, Any] | None = None,
                 client: Any = None, progress: bool = False) -> tuple[dict[str, Any], dict[str, float]]:
    """Write a ``super_resolve`` result: template (marked incomplete), every chunk and its statistics in one
    pass, then the statistics variables and the ``complete`` mark. Returns (per-band table, SAM)."""
    delayed = store.write_template(out, url, dtype, {**out.attrs, **(attrs or {})})
    _compute(client, delayed, progress)
    bands = list(out.attrs["bands"])
    stats_ds, table, sam = compute_statistics(store.read_chunk_sums(url, store.SUMS), bands)
    store.finish(url, stats_ds, {"statistics": table, "sam_deg": sam})
    return table, sam


def run_job(cfg: JobConfig, *, progress: bool = True, client: Any = None, verbose: bool = False) -> RunResult:
    """Run one job end to end. Validation, search and load planning happen before anything is written."""
    t0 = time.monotonic()
    predictor = get_predictor(cfg.model)
    if store.store_exists(cfg.out) and not cfg.overwrite:
        raise OutputError(f"output {cfg.out} already exists: pass --overwrite to replace it or choose another --out")
    with catalog_url(cfg.catalog) as url:
        items = search_items(url, cfg.collection, bbox=cfg.bbox, intersects=cfg.geometry, datetime=cfg.datetime,
                             max_cloud=cfg.max_cloud, limit=cfg.limit)
    grid = grid_for(items, cfg.bands, area_geometry(cfg.bbox, cfg.geometry))
    chunk = cfg.chunk or default_chunk(cfg.scale)
    configure_reads()
    ds = load_reflectance(items, grid, chunk)
    attrs = {
        "software": f"s2sr-cloud {__version__}", "model": predictor.name, "model_sha256": model_sha256(
            predictor.name), "scale": cfg.scale, "stac_items": [it.id for it in items],
        "catalog": "sample (embedded, served by rustac)" if cfg.catalog == SAMPLE else cfg.catalog,
        "collection": cfg.collection, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "job_spec": cfg.job_spec(), "input_crs": str(grid.geobox.crs),
        "Conventions": "CF-1.8",
        "license": "Contains modified Copernicus Sentinel data",
    }
    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(dask_client(cfg.scheduler, verbose=verbose))
        gpu = has_gpu_workers(client)
        out = super_resolve(ds, cfg.scale, predictor, chunk=chunk, quantize=cfg.dtype == "uint16", gpu=gpu)
        attrs["gpu_workers"] = gpu
        if cfg.overwrite:
            store.remove_store(cfg.out)
        table, sam = write_output(out, cfg.out, dtype=cfg.dtype, attrs=attrs, client=client, progress=progress)
    bands = list(out.attrs["bands"])
    seconds = time.monotonic() - t0
    area = grid.geobox.shape[0] * grid.geobox.shape[1] * grid.resolution ** 2 / 1e6
    result = RunResult(out=cfg.out, items=[it.id for it in items], bands=bands, scale=cfg.scale, seconds=seconds,
                       area_km2=area, output_bytes=store.store_size(cfg.out),
                       shape=(out.sizes["time"], out.sizes["y"], out.sizes["x"]), stats=table, sam=sam)
    if all(b in bands for b in RGB):
        result.quicklook = make_quicklook(cfg, ds, bands, table)
    return result


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
        f"time:     {r.seconds:.1f} s",
        f"quicklook: {r.quicklook}" if r.quicklook else "quicklook: (needs B02, B03, B04)",
        "",
        format_table(r.stats, r.sam),
    ])
