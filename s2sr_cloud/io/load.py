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

from ..bands import DEFAULT_MASK_CLASSES, FACTOR_ATTR, MASK_MODES, SCL_CLASSES
from ..catalog.items import SCL, SceneInfo, describe_items, find_scl, normalize_item
from ..errors import AssetError, ConfigError
from .store import COUNT

# odc-geo/rasterio emit ~150 affine PendingDeprecationWarnings per load (shared NOTES.md); they say nothing to users.
warnings.filterwarnings("ignore", category=PendingDeprecationWarning, module=r"(odc|rasterio|affine).*")
warnings.filterwarnings("ignore", message="Dataset has no geotransform", module=r"rasterio.*")




@dataclass(frozen=True)
class MaskSpec:
    """What is masked: ``mode`` scl (the listed SCL classes become NaN) or none; ``note`` says why, for summaries."""

    mode: str = "scl"
    classes: tuple[int, ...] = DEFAULT_MASK_CLASSES
    note: str = ""

    def describe(self) -> str:
        if self.mode != "scl":
            return f"none{f' ({self.note})' if self.note else ''}"
        return "scl: " + ", ".join(f"{c} {SCL_CLASSES.get(c, '?')}" for c in self.classes)

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any] | None) -> MaskSpec:
        """The mask a store records (its ``mask`` attribute); a store without one was not masked."""
        if not attrs:
            return cls("none", (), "the store records no mask")
        return cls(attrs.get("mode", "none"), tuple(int(c) for c in attrs.get("classes", [])), attrs.get("note", ""))

    def attrs(self) -> dict[str, Any]:
        return {"mode": self.mode, "classes": list(self.classes) if self.mode == "scl" else [],
                "class_names": [SCL_CLASSES.get(c, "?") for c in self.classes] if self.mode == "scl" else [],
                "note": self.note}


def resolve_mask(items: list[pystac.Item], mode: str | None = "scl",
                 classes: tuple[int, ...] | None = None) -> MaskSpec:
    """The mask a job gets: ``scl`` where every item has an SCL asset (L2A); ``none`` where none has (L1C),
    said in the note; items of both kinds are refused."""
    mode = mode or "scl"
    if mode not in MASK_MODES:
        raise ConfigError(f"--mask must be one of {', '.join(MASK_MODES)}, got {mode!r}")
    if mode == "none":
        return MaskSpec("none", (), "--mask none")
    have = [find_scl(it) is not None for it in items]
    if not any(have):
        return MaskSpec("none", (), "the scenes have no SCL asset (e.g. L1C): nothing masked")
    if not all(have):
        missing = [it.id for it, h in zip(items, have, strict=True) if not h]
        raise AssetError(f"{len(missing)} scene(s) have no SCL asset ({', '.join(missing[:2])}): use --mask none")
    return MaskSpec("scl", tuple(classes) if classes else DEFAULT_MASK_CLASSES)


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


def _footprint_all(valid: np.ndarray, f: int) -> np.ndarray:
    """(..., h, w) bool -> True only where the whole f x f native footprint is True (chunk-local)."""
    *lead, h, w = valid.shape
    ok = valid.reshape(*lead, h // f, f, w // f, f).all(axis=(-3, -1))
    return np.repeat(np.repeat(ok, f, axis=-2), f, axis=-1)


def _reflectance_block(dn: np.ndarray, scl: np.ndarray | None = None, *, scale: np.ndarray, offset: np.ndarray,
                       nodata: int, classes: np.ndarray | None, factor: int,
                       block_info: dict | None = None) -> np.ndarray:
    """(t, h, w) uint16 DN -> float32 reflectance ``dn * scale + offset`` per time step, NaN at ``nodata`` and,
    with an SCL block, wherever the pixel's whole native ``factor`` x ``factor`` footprint is not free of the
    masked ``classes`` (so a 20/60 m pixel is valid only where all of it is)."""
    t0 = block_info[0]["array-location"][0][0] if block_info else 0
    t = slice(t0, t0 + dn.shape[0])
    valid = dn != nodata
    if scl is not None:
        valid &= ~np.isin(scl, classes)
        if factor > 1:
            valid = _footprint_all(valid, factor)
    y = dn.astype(np.float32) * scale[t, None, None] + offset[t, None, None]
    y[~valid] = np.nan
    return y


def load_reflectance(items: list[pystac.Item], grid: GridSpec, chunk: int | tuple[int, int],
                     mask: MaskSpec | str | None = "scl", mask_classes: tuple[int, ...] | None = None,
                     composite: str | None = None) -> xr.Dataset:
    """Lazily load ``grid.bands`` as float32 reflectance (nodata -> NaN), dims (time, y, x), one time step per
    solar day (same-day scenes mosaicked).

    ``mask``: a ``MaskSpec`` or ``"scl"``/``"none"`` (resolved by ``resolve_mask``). With scl, the SCL asset is
    loaded by the same odc-stac call, nearest-resampled onto the band grid, and every band's native pixel whose
    footprint touches a masked class becomes NaN (so a 20/60 m pixel is valid only where all of it is).
    ``composite="median"``: one time step, the per-pixel median of each band's valid observations, with
    ``obs_count`` (dates that fed each grid pixel, finest bands) and ``composite_items`` in the attributes.
    ``chunk``: the read chunk side, or (y, x) sides."""
    import dask.array as dsa
    import odc.stac

    bands = grid.bands
    spec = mask if isinstance(mask, MaskSpec) else resolve_mask(items, mask, mask_classes)
    use_scl = spec.mode == "scl"
    scenes = describe_items(items, bands)
    norm = [normalize_item(it, bands, scl=use_scl) for it in items]
    align = grid.align
    sides = (chunk, chunk) if isinstance(chunk, int) else chunk
    cy, cx = (max(align, int(c) // align * align) for c in sides)
    raw = odc.stac.load(
        norm, bands=list(bands) + ([SCL] if use_scl else []), geobox=grid.geobox,
        chunks={"time": 1, "y": cy, "x": cx},  # footprints never straddle a chunk
        groupby="solar_day", resampling="nearest", dtype="uint16", nodata=0, fail_on_error=True,
    )
    scl = raw[SCL].data if use_scl else None
    # per-day scaling: the scenes of a solar day share a processing baseline
    by_day: dict[np.datetime64, SceneInfo] = {}
    for item, scene in zip(items, scenes, strict=True):
        day = np.datetime64(item.datetime.replace(tzinfo=None), "D") if item.datetime else None
        by_day.setdefault(day, scene)
    days = raw.time.values.astype("datetime64[D]")
    out = {}
    classes = np.array(sorted(spec.classes), np.uint16) if use_scl else None
    for b in bands:
        sc = [by_day.get(d, scenes[0]).scaling[b] for d in days]
        scale = np.array([s.scale for s in sc], "float32")
        offset = np.array([s.offset for s in sc], "float32")
        f = grid.factors[bands.index(b)]
        # one task per block: the five elementwise steps were five tasks each (the write graph is not fused)
        data = dsa.map_blocks(_reflectance_block, raw[b].data, *([scl] if scl is not None else []), dtype=np.float32,
                              scale=scale, offset=offset, nodata=sc[0].nodata, classes=classes, factor=f,
                              token=f"reflectance-{b}")
        out[b] = raw[b].copy(data=data)
        out[b].attrs = {FACTOR_ATTR: f, "units": "1", "long_name": f"Sentinel-2 {b} surface reflectance"}
    ds = xr.Dataset(out, attrs={"items": [it.id for it in items], "resolution": grid.resolution,
                                "mask": spec.attrs()})
    if composite not in (None, "none"):
        if composite != "median":
            raise ConfigError(f"--composite must be median or none, got {composite!r}")
        ds = median_composite(ds, bands, grid.factors, [it.id for it in items])
    return ds.rio.write_crs(grid.geobox.crs.to_wkt())




def median_composite(ds: xr.Dataset, bands: tuple[str, ...], factors: tuple[int, ...], items: list[str]
                     ) -> xr.Dataset:
    """One time step: per band, the per-pixel median over time of the valid (non-NaN) observations, lazily.
    ``obs_count`` (uint16, no time axis beyond the one step): how many dates were valid in the finest bands."""
    out = {}
    for b in bands:
        v = ds[b].chunk({"time": -1})
        med = v.median("time", skipna=True).astype("float32")
        out[b] = med.expand_dims(time=ds.time.values[:1]).transpose("time", "y", "x")
        out[b].attrs = dict(ds[b].attrs)
        out[b].attrs["long_name"] = f"Sentinel-2 {b} surface reflectance, median of the valid observations"
    fine = [b for b, f in zip(bands, factors, strict=True) if f == min(factors)]
    ok = ds[fine[0]].notnull()
    for b in fine[1:]:
        ok = ok & ds[b].notnull()
    count = ok.sum("time").astype("uint16").expand_dims(time=ds.time.values[:1]).transpose("time", "y", "x")
    res = xr.Dataset(out, attrs=dict(ds.attrs))
    res[COUNT] = count.chunk({"time": 1})
    res[COUNT].attrs = {"long_name": "number of dates with a valid (unmasked) observation that fed the median",
                        "units": "1"}
    res.attrs.update({"composite": "median", "composite_items": list(items),
                      "composite_dates": [str(t)[:10] for t in ds.time.values]})
    return res
