"""Python API for notebooks: lazy where it can be.

    items = s2sr_cloud.search(bbox=(...), datetime="2020-02")
    ds = s2sr_cloud.load(items)                       # lazy, dask-backed, input grid
    sr = s2sr_cloud.super_resolve(ds, scale=4)        # lazy
    s2sr_cloud.write(sr, "out.zarr")                  # computes bands + statistics in one pass
    out = s2sr_cloud.open_output("out.zarr")
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pystac
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox

from .bands import ALL_BANDS
from .catalog.search import search_items
from .catalog.server import sample_items
from .config import SAMPLE, load_config, parse_bands, validate_bbox, validate_datetime
from .errors import ConfigError
from .io.env import configure_reads
from .io.load import GridSpec, MaskSpec, area_geometry, grid_for, load_reflectance
from .io.store import COUNT, open_output
from .model.predictors import get_predictor
from .ops.halo import plan_chunks
from .pipeline import graph
from .pipeline.plan import catalog_url, plan_job
from .pipeline.run import execute
from .pipeline.write import write_output


def search(catalog: str = SAMPLE, collection: str = "sentinel-2-l2a", *, bbox: tuple[float, ...] | None = None,
           geometry: dict[str, Any] | None = None, datetime: str | None = None, max_cloud: float | None = None,
           limit: int = 100, ids: list[str] | None = None) -> list[pystac.Item]:
    """Sentinel-2 L2A items from any STAC API (``"sample"``: the embedded scene)."""
    if bbox is not None:
        validate_bbox(tuple(bbox))
    if datetime is not None:
        validate_datetime(datetime)
    if ids is not None and catalog == SAMPLE:
        return [pystac.Item.from_dict(d) for d in sample_items() if d["id"] in ids]
    with catalog_url(catalog) as url:
        items = search_items(url, collection, bbox=bbox, intersects=geometry, datetime=datetime,
                             max_cloud=max_cloud, limit=limit)
    return [it for it in items if ids is None or it.id in ids]


def load(items: list[pystac.Item], bands: tuple[str, ...] | str = ALL_BANDS, *,
         bbox: tuple[float, ...] | None = None, geometry: dict[str, Any] | None = None,
         chunk: int | None = None, scale: int = 4) -> xr.Dataset:
    """Lazy float32 reflectance on the scenes' native UTM grid (coarse bands replicated, nodata NaN), chunked as
    ``s2sr run`` chunks it (equal chunks of at most ``chunk`` px, default: the memory budget's for ``scale``), so
    ``super_resolve`` needs no rechunking."""
    configure_reads()
    grid = grid_for(items, parse_bands(bands), area_geometry(bbox, geometry))
    side = chunk or graph.default_chunk(scale)
    return load_reflectance(items, grid, tuple(plan_chunks(n, side, grid.align, 0)[0] for n in grid.geobox.shape))


def super_resolve(ds: xr.Dataset, scale: int = 4, model: str = "default", *, chunk: int | None = None,
                  dtype: str = "uint16", ensemble: int | None = None, gpu: bool | None = None) -> xr.Dataset:
    """Lazy super-resolution of a ``load`` result; statistics sums ride along in ``chunk_sums``.

    ``gpu``: restrict the SR tasks to workers advertising a ``GPU`` resource, one task per unit, as ``s2sr run``
    does. None (the default): when the active dask client has such workers. Without the restriction every
    thread of a GPU worker runs an SR task at once on its one GPU, and the SR tasks also go to CPU workers."""
    if not isinstance(ds, xr.Dataset):
        raise ConfigError(f"super_resolve takes the Dataset that s2sr_cloud.load returns (bands as (time, y, x) "
                          f"variables), not a {type(ds).__name__}")
    bands = tuple(v for v in ds.data_vars if ds[v].dims == ("time", "y", "x") and v != COUNT)
    if not bands:
        raise ConfigError("super_resolve found no (time, y, x) band variables: pass what s2sr_cloud.load returns")
    return graph.super_resolve(ds, scale, get_predictor(model, bands=bands, ensemble=ensemble), chunk=chunk,
                               quantize=dtype == "uint16", gpu=gpu)


def write(sr: xr.Dataset, url: str, *, dtype: str = "uint16", client: Any = None,
          progress: bool = False) -> tuple[dict[str, Any], dict[str, float]]:
    """Compute and store a ``super_resolve`` result; returns the per-band statistics and the SAM."""
    report = write_output(sr, url, dtype=dtype, client=client, progress=progress)
    return report.table, report.sam


def run(**fields: Any) -> list[Any]:
    """The whole job, exactly as ``s2sr run`` does it (same JobConfig validation, defaults and plan):
    ``s2sr_cloud.run(out="x.zarr", bbox=(...), datetime="last-month", scale=4)``. Returns one result per zone."""
    cfg = load_config(None, fields)
    return execute(plan_job(cfg), progress=False)


def input_for(out: xr.Dataset) -> xr.Dataset:
    """The input a run's output was made from, re-opened lazily on the run's input grid."""
    spec = out.attrs["job_spec"]
    items = search(spec["catalog"], spec["collection"], ids=list(out.attrs["stac_items"]),
                   bbox=spec.get("bbox"), datetime=spec.get("datetime"))
    scale = int(out.attrs["scale"])
    res = float(out.attrs["input_resolution"])
    tr = out.rio.transform()
    geobox = GeoBox((out.sizes["y"] // scale, out.sizes["x"] // scale), Affine(res, 0, tr.c, 0, -res, tr.f),
                    out.rio.crs)
    bands = tuple(out.attrs["bands"])
    grid = GridSpec(geobox=geobox, resolution=res, factors=tuple(out.attrs["native_factors"]), bands=bands)
    configure_reads()
    return load_reflectance(items, grid, int(np.max(out.attrs["chunk_input"][0])),
                            mask=MaskSpec.from_attrs(out.attrs.get("mask")))


__all__ = ["input_for", "load", "open_output", "run", "search", "super_resolve", "write"]
