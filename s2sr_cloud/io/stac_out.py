"""A STAC Collection describing a run's outputs (one Item per Zarr store), written with pystac through fsspec so
that it lands next to the output on local disk or S3."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pystac
from pystac.stac_io import DefaultStacIO

from .store import filesystem


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
    return out.rstrip("/").removesuffix(".zarr") + "_stac/collection.json"


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value[:26]).replace(tzinfo=dt.timezone.utc)


def write_collection(out: str, outputs: list[dict[str, Any]]) -> str:
    href = collection_href(out)
    times = sorted(_time(t) for o in outputs for t in o["datetimes"])
    bboxes = [pystac.utils.geometry_to_bbox(o["footprint"]) for o in outputs]
    union = [min(b[0] for b in bboxes), min(b[1] for b in bboxes), max(b[2] for b in bboxes),
             max(b[3] for b in bboxes)]
    coll = pystac.Collection(
        id=out.rstrip("/").rsplit("/", 1)[-1].removesuffix(".zarr"),
        description="Super-resolved Sentinel-2 L2A written by s2sr-cloud (one Zarr store per UTM zone)",
        extent=pystac.Extent(pystac.SpatialExtent([union]), pystac.TemporalExtent([[times[0], times[-1]]])),
        license="proprietary", extra_fields={"s2sr:source_items": sorted({i for o in outputs for i in o["items"]})})
    for o in outputs:
        item = pystac.Item(id=f"{coll.id}-EPSG{o['epsg']}", geometry=o["footprint"],
                           bbox=pystac.utils.geometry_to_bbox(o["footprint"]), datetime=None,
                           start_datetime=_time(o["datetimes"][0]), end_datetime=_time(o["datetimes"][-1]),
                           properties={"proj:epsg": o["epsg"], "proj:bbox": list(o["bounds"]),
                                       "s2sr:scale": o["scale"], "s2sr:bands": o["bands"],
                                       "s2sr:model": o["model"], "s2sr:source_items": o["items"]})
        item.add_asset("zarr", pystac.Asset(href=o["href"], media_type="application/vnd+zarr",
                                            roles=["data"], title=f"Zarr store, EPSG:{o['epsg']}"))
        coll.add_item(item)
    coll.normalize_hrefs(href.rsplit("/", 1)[0])
    coll.save(pystac.CatalogType.SELF_CONTAINED, stac_io=FsspecStacIO())
    return href
