"""Lazy load of Sentinel-2 items into a dask-backed xarray Dataset with odc-stac.

All bands land on one grid: the finest native grid among the requested bands, in the scenes' own UTM CRS, with
its origin snapped to the coarsest band's pixel grid. Coarser bands are replicated with nearest resampling, so
every loaded value is a measured value and each coarse pixel covers a whole, aligned block of grid pixels; the
model and the statistics rely on that alignment (``factors``) to work on each band's native footprint.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pystac
import rioxarray  # noqa: F401 - registers .rio
import xarray as xr
from affine import Affine
from odc.geo import CRS
from odc.geo.geobox import GeoBox
from odc.geo.geom import Geometry, box, unary_union

from ..bands import FACTOR_ATTR
from ..catalog.items import SceneInfo, describe_items, normalize_item
from ..errors import AssetError, ConfigError

# odc-geo/rasterio emit ~150 affine PendingDeprecationWarnings per load (shared NOTES.md); they say nothing to users.
warnings.filterwarnings("ignore", category=PendingDeprecationWarning, module=r"(odc|rasterio|affine).*")
warnings.filterwarnings("ignore", message="Dataset has no geotransform", module=r"rasterio.*")


@dataclass(frozen=True)
class GridSpec:
    """The input grid and, per band, how many grid pixels one native pixel spans."""

    geobox: GeoBox
    resolution: float
    factors: tuple[int, ...]
    bands: tuple[str, ...]

    @property
    def align(self) -> int:
        """Chunk sizes and halos are multiples of this so that no native pixel straddles a chunk edge."""
        return math.lcm(*self.factors)


def _pick_crs(scenes: list[SceneInfo]) -> int:
    codes = Counter(s.epsg for s in scenes if s.epsg)
    if not codes:
        raise AssetError("the items carry no proj:epsg/proj:code: cannot place them on a grid")
    return codes.most_common(1)[0][0]


def grid_for(items: list[pystac.Item], bands: tuple[str, ...], area: Geometry | None) -> GridSpec:
    """The output-independent input grid covering ``area`` (lon/lat) or, without one, all items."""
    scenes = describe_items(items, bands)
    epsg = _pick_crs(scenes)
    res = {b: max(s.resolution[b] for s in scenes) for b in bands}
    fine = min(res.values())
    factors = tuple(int(round(res[b] / fine)) for b in bands)
    if any(abs(f * fine - res[b]) > 1e-6 * fine for f, b in zip(factors, bands, strict=True)):
        raise AssetError(f"band resolutions {res} are not integer multiples of {fine} m")
    coarse = fine * math.lcm(*factors)
    # snap to the native pixel grid of the items (Sentinel-2 tiles share origins modulo 60 m)
    native = [b for it in items if (nb := _native_bounds(it, epsg)) is not None for b in [nb]]
    ox, oy = (native[0][0], native[0][3]) if native else (0.0, 0.0)
    crs = CRS(f"EPSG:{epsg}")
    if native:  # the items' own extent in their CRS: no lon/lat round trip that would grow it
        items_fp = unary_union([box(*b, crs) for b in native])
    else:
        items_fp = unary_union([Geometry(it.geometry, "EPSG:4326") for it in items]).to_crs(crs)
    if area is not None:
        # clip in lon/lat first: a world-spanning area cannot be projected into one UTM zone, its overlap can
        scenes_ll = unary_union([Geometry(it.geometry, "EPSG:4326") for it in items if it.geometry])
        area = area & scenes_ll.buffer(0.01) if not scenes_ll.is_empty else area
    region = items_fp if area is None else items_fp & area.to_crs(crs)
    if region.is_empty or region.area == 0:
        raise ConfigError("the requested area does not overlap the scenes found: check --bbox/--geometry")
    x0, y0, x1, y1 = region.boundingbox
    x0 = ox + math.floor((x0 - ox) / coarse + 1e-9) * coarse
    x1 = ox + math.ceil((x1 - ox) / coarse - 1e-9) * coarse
    y1 = oy + math.ceil((y1 - oy) / coarse - 1e-9) * coarse
    y0 = oy + math.floor((y0 - oy) / coarse + 1e-9) * coarse
    shape = (int(round((y1 - y0) / fine)), int(round((x1 - x0) / fine)))
    geobox = GeoBox(shape, Affine(fine, 0.0, x0, 0.0, -fine, y1), crs)
    return GridSpec(geobox=geobox, resolution=fine, factors=factors, bands=bands)


def _native_bounds(item: pystac.Item, epsg: int) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) of the item's rasters in its own CRS, from proj:shape/proj:transform."""
    if (item.properties.get("proj:epsg") or epsg) != epsg:
        return None
    for a in item.assets.values():
        tr, shp = a.extra_fields.get("proj:transform"), a.extra_fields.get("proj:shape")
        if tr and shp:
            x0, y1 = tr[2], tr[5]
            return (x0, y1 + tr[4] * shp[0], x0 + tr[0] * shp[1], y1)
    return None


def area_geometry(bbox: tuple[float, ...] | None, geometry: dict[str, Any] | None) -> Geometry | None:
    if bbox is not None:
        return box(*bbox, "EPSG:4326")
    if geometry is not None:
        return Geometry(geometry, "EPSG:4326")
    return None


def load_reflectance(items: list[pystac.Item], grid: GridSpec, chunk: int) -> xr.Dataset:
    """Lazily load ``grid.bands`` as float32 reflectance (nodata -> NaN), dims (time, y, x), one time step per
    solar day (same-day scenes mosaicked)."""
    import odc.stac

    bands = grid.bands
    scenes = describe_items(items, bands)
    norm = [normalize_item(it, bands) for it in items]
    raw = odc.stac.load(
        norm, bands=list(bands), geobox=grid.geobox, chunks={"time": 1, "y": chunk, "x": chunk},
        groupby="solar_day", resampling="nearest", dtype="uint16", nodata=0, fail_on_error=True,
    )
    # per-day scaling: the scenes of a solar day share a processing baseline
    by_day: dict[np.datetime64, SceneInfo] = {}
    for item, scene in zip(items, scenes, strict=True):
        day = np.datetime64(item.datetime.replace(tzinfo=None), "D") if item.datetime else None
        by_day.setdefault(day, scene)
    days = raw.time.values.astype("datetime64[D]")
    out = {}
    for b in bands:
        sc = [by_day.get(d, scenes[0]).scaling[b] for d in days]
        scale = xr.DataArray(np.array([s.scale for s in sc], "float32"), dims="time", coords={"time": raw.time})
        offset = xr.DataArray(np.array([s.offset for s in sc], "float32"), dims="time", coords={"time": raw.time})
        nodata = sc[0].nodata
        da = raw[b]
        out[b] = (da.where(da != nodata) * scale + offset).astype("float32")
        out[b].attrs = {FACTOR_ATTR: grid.factors[bands.index(b)], "units": "1",
                        "long_name": f"Sentinel-2 {b} surface reflectance"}
    ds = xr.Dataset(out, attrs={"items": [it.id for it in items], "resolution": grid.resolution})
    return ds.rio.write_crs(grid.geobox.crs.to_wkt())
