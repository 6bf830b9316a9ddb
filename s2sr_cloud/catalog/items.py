"""Per-item facts the loader needs, parsed once and without I/O: band asset keys, reflectance scaling, native
resolution. Handles earth-search v1 (common-name keys, ``raster:bands`` scale/offset) and Planetary Computer
(band-name keys, no scale/offset: the processing-baseline >= 04.00 offset of -1000 DN is applied from the item's
``s2:processing_baseline``)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pystac

from ..bands import BY_NAME, asset_keys
from ..errors import AssetError

DN_SCALE = 1e-4
BASELINE_OFFSET_DN = -1000  # ESA L2A processing baseline 04.00, from 2022-01-25


@dataclass(frozen=True)
class BandScaling:
    scale: float  # reflectance per DN
    offset: float  # reflectance added after scaling
    nodata: float


@dataclass(frozen=True)
class SceneInfo:
    """What the loader needs to know about one item, with canonical band names."""

    epsg: int | None
    scaling: dict[str, BandScaling]
    resolution: dict[str, float]  # native metres per pixel, per band


SCL = "SCL"  # the canonical name of the L2A scene classification asset
SCL_KEYS = ("scl", "SCL")  # earth-search v1, Planetary Computer


def find_scl(item: pystac.Item) -> str | None:
    """The item's scene-classification (SCL) asset key, or None (L1C and other collections have none)."""
    for key in SCL_KEYS:
        if key in item.assets:
            return key
    return None


RASTER_TYPES = ("image/tiff", "image/jp2", "image/vnd.stac.geotiff", "application/x-geotiff")


def find_asset(item: pystac.Item, band: str) -> str:
    for key in asset_keys(band):
        if key in item.assets:
            media = (item.assets[key].media_type or "").lower()
            if media and not any(media.startswith(t) for t in RASTER_TYPES):
                raise AssetError(f"item {item.id}: the {band} asset '{key}' is {media}, not a GeoTIFF/COG or JPEG2000 "
                                 "raster: this collection's assets cannot be read as Sentinel-2 bands")
            return key
    raise AssetError(
        f"item {item.id} has no asset for band {band} (looked for {', '.join(asset_keys(band)[:2])}): "
        f"drop it from --bands or use a Sentinel-2 L2A collection")


def _baseline(item: pystac.Item) -> float | None:
    for key in ("s2:processing_baseline", "processing:version"):
        val = item.properties.get(key)
        if val:
            try:
                return float(str(val))
            except ValueError:
                pass
    return None


def band_scaling(item: pystac.Item, key: str) -> BandScaling:
    """Reflectance = DN * scale + offset. ``raster:bands`` is authoritative when it gives a scale; otherwise
    the offset follows the processing baseline (>= 04.00: -1000 DN)."""
    asset = item.assets[key].to_dict()
    rb = (asset.get("raster:bands") or [{}])[0]
    nodata = rb.get("nodata", asset.get("nodata", 0))
    nodata = 0 if nodata is None else nodata
    if rb.get("scale") is not None:
        return BandScaling(float(rb["scale"]), float(rb.get("offset", 0.0) or 0.0), float(nodata))
    baseline = _baseline(item)
    offset = BASELINE_OFFSET_DN * DN_SCALE if baseline is not None and baseline >= 4.0 else 0.0
    return BandScaling(DN_SCALE, offset, float(nodata))


def native_resolution(item: pystac.Item, key: str, band: str) -> float:
    asset = item.assets[key].to_dict()
    tr = asset.get("proj:transform")
    if tr:
        return float(abs(tr[0]))
    rb = (asset.get("raster:bands") or [{}])[0]
    for val in (rb.get("spatial_resolution"), asset.get("gsd")):
        if val:
            return float(val)
    return float(BY_NAME[band].resolution)


def _epsg(item: pystac.Item, keys: list[str]) -> int | None:
    for src in [item.properties] + [item.assets[k].to_dict() for k in keys]:
        if src.get("proj:epsg"):
            return int(src["proj:epsg"])
        code = src.get("proj:code")
        if code and str(code).upper().startswith("EPSG:"):
            return int(str(code).split(":")[1])
    return None


def describe_item(item: pystac.Item, bands: tuple[str, ...]) -> SceneInfo:
    keys = {b: find_asset(item, b) for b in bands}
    return SceneInfo(
        epsg=_epsg(item, list(keys.values())),
        scaling={b: band_scaling(item, k) for b, k in keys.items()},
        resolution={b: native_resolution(item, k, b) for b, k in keys.items()},
    )


def describe_items(items: list[pystac.Item], bands: tuple[str, ...]) -> list[SceneInfo]:
    return [describe_item(it, bands) for it in items]


def normalize_item(item: pystac.Item, bands: tuple[str, ...], scl: bool = False) -> pystac.Item:
    """A copy whose assets are exactly the canonical bands (B01 ... B8A), so that odc-stac sees one naming;
    with ``scl`` also the scene classification as ``SCL``."""
    out = item.clone()
    keys = {b: find_asset(item, b) for b in bands}
    if scl:
        key = find_scl(item)
        if key is None:
            raise AssetError(f"item {item.id} has no scene classification (scl/SCL) asset: use --mask none")
        keys[SCL] = key
    out.assets = {}
    for band, key in keys.items():
        asset = item.assets[key].clone()
        asset.extra_fields = copy.deepcopy(asset.extra_fields)
        asset.extra_fields.pop("eo:bands", None)
        asset.extra_fields.pop("bands", None)
        out.add_asset(band, asset)
    return out
