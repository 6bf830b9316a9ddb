"""A STAC Collection describing a run's outputs (one Item per Zarr store), written with pystac through fsspec so
that it lands next to the output on local disk or S3.

What a STAC client gets (STAC 1.1.0):
- the store as the ``zarr`` asset, media type ``application/vnd.zarr``, with an href RELATIVE to the item file
  (``../../demo.zarr``), so the catalog and the stores can be moved or copied together;
- projection extension v2: ``proj:code`` (``EPSG:32629``), ``proj:bbox``, ``proj:shape``, ``proj:transform``;
- ``gsd`` (the output pixel size), the bands with their centre wavelengths and common names (eo extension) and
  their storage (raster extension: uint16 DN, scale, offset, nodata);
- the xarray-assets ``xarray:open_kwargs``: ``xr.open_dataset(asset.get_absolute_href(), **open_kwargs)``;
- the resolved model name and its sha256, read from the store's own attributes (the store is the record);
- the data licence: modified Copernicus Sentinel data, under the Sentinel data legal notice.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

import pystac
from pystac.stac_io import DefaultStacIO

from ..bands import BY_NAME
from .store import filesystem, storage_options

MEDIA_TYPE = "application/vnd.zarr"
PROJECTION = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
EO = "https://stac-extensions.github.io/eo/v1.1.0/schema.json"
RASTER = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
XARRAY = "https://stac-extensions.github.io/xarray-assets/v1.0.0/schema.json"
EXTENSIONS = [PROJECTION, EO, RASTER, XARRAY]
# Copernicus Sentinel data are free and open under this notice; derived products must say they contain
# modified Copernicus Sentinel data (the store's ``license`` attribute says so, with the year)
LICENSE_URL = "https://sentinels.copernicus.eu/documents/247904/690755/Sentinel_Data_Legal_Notice"
# eo v1.1.0 common names (B05-B07 share "rededge", as earth-search's items say)
COMMON_NAMES = {"B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge", "B06": "rededge",
                "B07": "rededge", "B08": "nir", "B8A": "nir08", "B09": "nir09", "B10": "cirrus", "B11": "swir16",
                "B12": "swir22"}
# full width at half maximum, micrometres (Sentinel-2 MSI spectral response, S2A)
FWHM_UM = {"B01": 0.027, "B02": 0.098, "B03": 0.045, "B04": 0.038, "B05": 0.019, "B06": 0.018, "B07": 0.028,
           "B08": 0.145, "B8A": 0.033, "B09": 0.026, "B10": 0.075, "B11": 0.143, "B12": 0.242}


class FsspecStacIO(DefaultStacIO):
    def write_text_to_href(self, href: str, txt: str) -> None:
        fs, path = filesystem(href)
        parent = path.rsplit("/", 1)[0]
        if parent:
            fs.makedirs(parent, exist_ok=True)
        with fs.open(path, "w") as f:
            f.write(txt)

    def read_text_from_href(self, href: str) -> str:
        fs, path = filesystem(href)
        with fs.open(path, "r") as f:
            return str(f.read())


def collection_href(out: str) -> str:
    return _absolute(out).rstrip("/").removesuffix(".zarr") + "_stac/collection.json"


def _absolute(href: str) -> str:
    """Local paths made absolute (so that pystac can make them relative to the item file); URLs as they are."""
    if "://" in href and not href.startswith("file://"):
        return href
    return os.path.abspath(href.removeprefix("file://"))


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value[:26]).replace(tzinfo=dt.timezone.utc)


def store_metadata(url: str) -> dict[str, Any]:
    """The store's attributes, each band's storage (dtype, scale, offset, nodata), the grid and whether the
    metadata is consolidated; empty where the store cannot be read (the item is still written)."""
    import zarr

    try:
        group = zarr.open_group(url, mode="r", storage_options=storage_options(url) or None)
    except Exception:  # noqa: BLE001 - the STAC is a description: it must not fail a finished run
        return {}
    meta: dict[str, Any] = {"attrs": dict(group.attrs), "bands": {}}
    try:
        meta["consolidated"] = group.metadata.consolidated_metadata is not None
    except AttributeError:
        meta["consolidated"] = False
    for name in meta["attrs"].get("bands", []):
        try:
            arr = group[name]
        except KeyError:
            continue
        a = dict(arr.attrs)
        meta["bands"][name] = {"data_type": str(arr.dtype), "scale": a.get("scale_factor"),
                               "offset": a.get("add_offset"),
                               "nodata": a.get("_FillValue", arr.fill_value if arr.dtype.kind in "iu" else None),
                               "shape": list(arr.shape)}
    try:
        x, y = group["x"][:2], group["y"][:2]
        meta["grid"] = {"x0": float(x[0]), "y0": float(y[0]), "dx": float(x[1] - x[0]), "dy": float(y[1] - y[0])}
    except Exception:  # noqa: BLE001 - optional
        pass
    return json.loads(json.dumps(meta, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def _band_fields(bands: list[str], storage: dict[str, Any], gsd: float | None) -> tuple[list, list]:
    eo, raster = [], []
    for b in bands:
        info = BY_NAME.get(b)
        e: dict[str, Any] = {"name": b}
        if info is not None:
            e |= {"common_name": COMMON_NAMES[b], "center_wavelength": info.wavelength_nm / 1000,
                  "full_width_half_max": FWHM_UM[b], "description": f"{b}, {info.resolution} m native"}
        eo.append(e)
        st = storage.get(b, {})
        r: dict[str, Any] = {"unit": "1"}  # reflectance
        if st.get("data_type"):
            r["data_type"] = st["data_type"]
        for key in ("scale", "offset", "nodata"):
            if st.get(key) is not None:
                r[key] = st[key]
        if gsd:
            r["spatial_resolution"] = gsd
        raster.append(r)
    return eo, raster


def make_item(collection_id: str, o: dict[str, Any]) -> pystac.Item:
    """One output store -> one Item; ``o`` carries href, epsg, bounds, footprint, datetimes, bands, scale, items
    and model (what ``pipeline`` passes), the rest comes from the store itself."""
    href = _absolute(o["href"])
    meta = store_metadata(href)
    attrs = meta.get("attrs", {})
    grid = meta.get("grid")
    bands = list(o["bands"])
    first = meta.get("bands", {}).get(bands[0], {}) if bands else {}
    gsd = abs(grid["dx"]) if grid else None
    props: dict[str, Any] = {
        "proj:code": f"EPSG:{o['epsg']}", "proj:bbox": [float(v) for v in o["bounds"]],
        "s2sr:scale": int(o["scale"]), "s2sr:bands": bands,
        "s2sr:model": attrs.get("model", o.get("model")),
        "s2sr:source_items": list(o["items"]),
    }
    if "model_sha256" in o or "model_sha256" in attrs:  # null for bicubic (no weights)
        props["s2sr:model_sha256"] = o.get("model_sha256") or attrs.get("model_sha256")
    for key, attr in (("s2sr:software", "software"), ("s2sr:ensemble", "ensemble"), ("created", "created")):
        if attrs.get(attr) is not None:
            props[key] = attrs[attr]
    if gsd:
        props["gsd"] = gsd
    if grid and first.get("shape"):
        ny, nx = first["shape"][-2:]
        props["proj:shape"] = [ny, nx]
        # x/y are pixel centres: the transform's origin is the upper-left corner
        props["proj:transform"] = [grid["dx"], 0.0, grid["x0"] - grid["dx"] / 2, 0.0, grid["dy"],
                                   grid["y0"] - grid["dy"] / 2]
    props["license"] = "other"
    if attrs.get("license"):
        props["s2sr:attribution"] = attrs["license"]
    start, end = _time(o["datetimes"][0]), _time(o["datetimes"][-1])
    item = pystac.Item(id=f"{collection_id}-EPSG{o['epsg']}", geometry=o["footprint"],
                       bbox=pystac.utils.geometry_to_bbox(o["footprint"]), datetime=start if start == end else None,
                       start_datetime=None if start == end else start, end_datetime=None if start == end else end,
                       properties=props, stac_extensions=list(EXTENSIONS))
    eo_bands, raster_bands = _band_fields(bands, meta.get("bands", {}), gsd)
    open_kwargs = {"engine": "zarr", "chunks": {}, "consolidated": bool(meta.get("consolidated")),
                   "decode_coords": "all"}
    extra: dict[str, Any] = {"eo:bands": eo_bands, "raster:bands": raster_bands, "xarray:open_kwargs": open_kwargs}
    if href.startswith("s3://"):
        extra["xarray:storage_options"] = {"anon": False}  # credentials from the reader's environment
    item.add_asset("zarr", pystac.Asset(
        href=href, media_type=MEDIA_TYPE, roles=["data"], extra_fields=extra,
        title=f"Zarr store, EPSG:{o['epsg']}, x{o['scale']} ({', '.join(bands)}, detail layer, statistics)"))
    item.add_link(pystac.Link("license", LICENSE_URL, media_type="application/pdf",
                              title="Legal notice on the use of Copernicus Sentinel data"))
    return item


def write_collection(out: str, outputs: list[dict[str, Any]]) -> str:
    href = collection_href(out)
    times = sorted(_time(t) for o in outputs for t in o["datetimes"])
    bboxes = [pystac.utils.geometry_to_bbox(o["footprint"]) for o in outputs]
    union = [min(b[0] for b in bboxes), min(b[1] for b in bboxes), max(b[2] for b in bboxes),
             max(b[3] for b in bboxes)]
    coll_id = _absolute(out).rstrip("/").rsplit("/", 1)[-1].removesuffix(".zarr")
    coll = pystac.Collection(
        id=coll_id,
        description="Super-resolved Sentinel-2 written by s2sr-cloud (one Zarr store per UTM zone). "
                    "Contains modified Copernicus Sentinel data.",
        extent=pystac.Extent(pystac.SpatialExtent([union]), pystac.TemporalExtent([[times[0], times[-1]]])),
        license="other", extra_fields={"s2sr:source_items": sorted({i for o in outputs for i in o["items"]})},
        stac_extensions=[PROJECTION])
    coll.summaries = pystac.Summaries({"proj:code": sorted({f"EPSG:{o['epsg']}" for o in outputs}),
                                       "s2sr:scale": sorted({int(o["scale"]) for o in outputs})})
    coll.add_link(pystac.Link("license", LICENSE_URL, media_type="application/pdf",
                              title="Legal notice on the use of Copernicus Sentinel data"))
    for o in outputs:
        coll.add_item(make_item(coll.id, o))
    # explicit hrefs: pystac's normalize_hrefs takes a folder with a dot ("berlin.2024_stac") for a file and
    # would write ./collection.json, where another output's collection would overwrite it
    root = href.rsplit("/", 1)[0]
    coll.set_self_href(href)
    for item in coll.get_items():
        item.set_self_href(f"{root}/{item.id}/{item.id}.json")
    for item in coll.get_items():
        item.make_asset_hrefs_relative()  # resolves from the item file: the catalog moves with the stores
    coll.save(pystac.CatalogType.SELF_CONTAINED, stac_io=FsspecStacIO())
    return href
