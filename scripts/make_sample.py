"""Regenerate the embedded sample scene in s2sr_cloud/sample/ from ../shared/data.

Source: the whole L2A tile S2A_29RKH_20200219_0_L2A, decimated 10x (10 m bands at 100 m, 20 m at 200 m,
60 m at 600 m), as COGs with its real earth-search v1 STAC item (shared/data/s2a_29rkh_20200219_l2a_decimated,
BSD-3 rio-tiler-pds repository; contains modified Copernicus Sentinel data 2020).

We crop a 24 x 24 km window whose origin is aligned to the 600 m grid, so every band keeps its native grid,
and rewrite the STAC item so that proj:shape/proj:transform/gsd/href describe the cropped files.
Run: python scripts/make_sample.py [SHARED_DATA_DIR]
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.warp import transform_geom
from rasterio.windows import Window

SRC = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data") / "s2a_29rkh_20200219_l2a_decimated"
DST = Path(__file__).resolve().parents[1] / "s2sr_cloud" / "sample"
ROW0, COL0, SIZE = 60, 840, 240  # in 100 m pixels; multiples of 6 keep the 600 m grid aligned
ASSETS = {  # earth-search v1 asset key -> file
    "coastal": "B01", "blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05", "rededge2": "B06",
    "rededge3": "B07", "nir": "B08", "nir08": "B8A", "nir09": "B09", "swir16": "B11", "swir22": "B12",
    "scl": "SCL",
}


def main() -> None:
    DST.mkdir(parents=True, exist_ok=True)
    item = json.loads((SRC / "S2A_29RKH_20200219_0_L2A.json").read_text())
    out = copy.deepcopy(item)
    out["assets"] = {}
    out["links"] = [ln for ln in item["links"] if ln["rel"] in ("license", "derived_from")]
    footprint = None
    for key, name in ASSETS.items():
        with rasterio.open(SRC / f"{name}.tif") as src:
            f = 100 // int(src.res[0] // 1) if src.res[0] < 100 else int(src.res[0]) // 100
            win = Window(COL0 // f, ROW0 // f, SIZE // f, SIZE // f)
            data = src.read(1, window=win)
            transform = src.window_transform(win)
            profile = dict(driver="COG", dtype=src.dtypes[0], count=1, width=data.shape[1], height=data.shape[0],
                           crs=src.crs, transform=transform, nodata=src.nodata, compress="deflate",
                           blocksize=128 if data.shape[0] > 128 else 64, overviews="NONE")
            with rasterio.open(DST / f"{name}.tif", "w", **profile) as dst:
                dst.write(data, 1)
            if footprint is None:
                b = rasterio.transform.array_bounds(data.shape[0], data.shape[1], transform)
                poly = {"type": "Polygon", "coordinates": [[(b[0], b[1]), (b[2], b[1]), (b[2], b[3]),
                                                            (b[0], b[3]), (b[0], b[1])]]}
                footprint = transform_geom(src.crs, "EPSG:4326", poly)
        asset = copy.deepcopy(item["assets"][key])
        asset["href"] = f"./{name}.tif"
        asset["proj:shape"] = list(data.shape)
        asset["proj:transform"] = list(transform)[:6]
        asset["gsd"] = float(transform.a)
        for rb in asset.get("raster:bands", []):
            rb["spatial_resolution"] = float(transform.a)
        out["assets"][key] = asset
    coords = np.array(footprint["coordinates"][0])
    out["geometry"] = {"type": "Polygon", "coordinates": [coords.tolist()]}
    out["bbox"] = [coords[:, 0].min(), coords[:, 1].min(), coords[:, 0].max(), coords[:, 1].max()]
    out["properties"]["s2sr:sample"] = (
        "24 km x 24 km crop of the earth-search v1 tile S2A_29RKH_20200219_0_L2A, decimated 10x "
        "(10/20/60 m bands at 100/200/600 m)")
    (DST / "item.json").write_text(json.dumps(out, indent=1))
    print("wrote", DST, sum(p.stat().st_size for p in DST.iterdir()) / 1e6, "MB")


if __name__ == "__main__":
    main()
