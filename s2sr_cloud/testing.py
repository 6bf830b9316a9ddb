"""Helpers for tests and benchmarks: real data in the shapes the pipeline produces, no pytest needed.

``tests/conftest.py`` imports these (its fixtures stay there); benchmarks import this module directly. Nothing in
the package imports it (the layers contract in pyproject.toml keeps it on top)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio

from .catalog.server import SAMPLE_DIR

__all__ = ["SAMPLE_FACTORS", "ben_item", "sample_grid_stack"]

# grid pixels per native pixel of each band of the embedded sample (s2sr_cloud/sample); 1 when not listed
SAMPLE_FACTORS = {"B01": 6, "B09": 6, "B05": 2, "B06": 2, "B07": 2, "B8A": 2, "B11": 2, "B12": 2}


def sample_grid_stack(bands: tuple[str, ...]) -> tuple[np.ndarray, tuple[int, ...]]:
    """The embedded real scene as a (1, C, 240, 240) grid-resolution reflectance stack (coarse bands replicated),
    as the loader produces it."""
    out, factors = [], []
    for b in bands:
        f = SAMPLE_FACTORS.get(b, 1)
        with rasterio.open(SAMPLE_DIR / f"{b}.tif") as src:
            a = src.read(1).astype(np.float32) * np.float32(1e-4)
        out.append(np.repeat(np.repeat(a, f, 0), f, 1))
        factors.append(f)
    return np.stack(out)[None], tuple(factors)


def ben_item(folder: Path) -> dict:
    """A STAC item (Planetary-Computer-style band keys) for a REAL BigEarthNet patch folder: its GeoTIFFs on their
    native 10/20/60 m UTM grids, footprint and date from the files themselves."""
    from rasterio.warp import transform_geom

    meta = json.loads(next(folder.glob("*_labels_metadata.json")).read_text())
    assets, geom, epsg = {}, None, None
    for tif in sorted(folder.glob("*_B*.tif")):
        band = tif.stem.rsplit("_", 1)[1]
        with rasterio.open(tif) as src:
            epsg = src.crs.to_epsg()
            t = src.transform
            assets[band] = {"href": tif.resolve().as_uri(), "type": "image/tiff; application=geotiff",
                            "roles": ["data"], "proj:shape": [src.height, src.width],
                            "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f], "gsd": t.a}
            if geom is None:
                b = src.bounds
                poly = {"type": "Polygon", "coordinates": [[(b.left, b.bottom), (b.right, b.bottom),
                                                            (b.right, b.top), (b.left, b.top), (b.left, b.bottom)]]}
                geom = json.loads(json.dumps(transform_geom(src.crs, "EPSG:4326", poly)))
    ring = np.array(geom["coordinates"][0])
    baseline = meta["tile_source"].split("_N")[1][:4]
    return {"type": "Feature", "stac_version": "1.0.0", "id": folder.name, "geometry": geom,
            "bbox": [ring[:, 0].min(), ring[:, 1].min(), ring[:, 0].max(), ring[:, 1].max()],
            "properties": {"datetime": meta["acquisition_date"].replace(" ", "T") + "Z", "proj:epsg": epsg,
                           "s2:processing_baseline": f"{baseline[:2]}.{baseline[2:]}", "eo:cloud_cover": 0.0},
            "assets": assets, "links": [], "stac_extensions": []}
