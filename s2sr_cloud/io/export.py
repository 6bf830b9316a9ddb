"""``s2sr export OUT.zarr --cog DIR``: one Cloud-Optimized GeoTIFF per band and date, readable by any GIS.

Each COG holds the store's encoded values as they are (uint16 DN, or float32 for ``--dtype float32`` stores), with
the CRS, the geotransform of the output grid, nodata (65535, or NaN), and the CF scale/offset as GDAL band scale and
offset (reflectance = DN * 1e-4 - 0.1), so QGIS, GDAL and rasterio show reflectance. Overviews are averages that
leave nodata out. The bands are read chunk by chunk into a tiled GeoTIFF first, then copied as a COG, so a band
never has to fit in memory twice.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import OutputError
from . import store


def export_cogs(url: str, out_dir: str, *, bands: list[str] | None = None, detail: bool = True) -> list[Path]:
    """Write ``DIR/<store name>_<YYYYMMDD>_<band>.tif`` for every band (and the detail layer) and time step.
    Refuses stores that are not complete (``store.open_output``)."""
    import rasterio
    import rasterio.shutil
    import rioxarray  # noqa: F401 - the .rio accessor
    from rasterio.transform import Affine

    ds = store.open_output(url)  # refuses foreign, incomplete, not-all-done stores
    attrs = store.read_attrs(url)
    names = list(bands or attrs.get("bands", []))
    unknown = [b for b in names if b not in ds.data_vars]
    if unknown:
        raise OutputError(f"{store.redact_url(url)} has no band {', '.join(unknown)}")
    if detail and store.DETAIL in ds.data_vars:
        names.append(store.DETAIL)
    crs = ds.rio.crs
    xs, ys = ds["x"].values, ds["y"].values
    dx, dy = float(xs[1] - xs[0]), float(ys[1] - ys[0])
    transform = Affine(dx, 0, float(xs[0]) - dx / 2, 0, dy, float(ys[0]) - dy / 2)
    g = store._group(url, "r")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"--cog {out_dir}: cannot create the folder ({err})") from None
    stem = Path(str(url).rstrip("/")).name.removesuffix(".zarr")
    written = []
    for t, when in enumerate(ds["time"].values):
        day = np.datetime_as_string(when, unit="D").replace("-", "")
        for name in names:
            arr = g[name]
            var = ds[name]
            enc = dict(arr.attrs)  # the stored CF attributes: scale_factor, add_offset (and _FillValue in format 3)
            packed = np.dtype(arr.dtype).kind == "u"
            nodata = float(enc.get("_FillValue", arr.fill_value)) if packed else float("nan")
            ny, nx = arr.shape[1:]
            cy, cx = arr.chunks[1], arr.chunks[2]
            profile = {"driver": "GTiff", "dtype": str(np.dtype(arr.dtype)), "count": 1, "width": nx, "height": ny,
                       "crs": crs, "transform": transform, "nodata": nodata, "tiled": True, "blockxsize": 512,
                       "blockysize": 512, "compress": "deflate", "BIGTIFF": "IF_SAFER"}
            dst_path = out / f"{stem}_{day}_{name}.tif"
            with tempfile.TemporaryDirectory(prefix="s2sr-export-", dir=out) as tmp:
                tmp_tif = os.path.join(tmp, "band.tif")
                with rasterio.open(tmp_tif, "w", **profile) as dst:
                    for y0 in range(0, ny, cy):
                        for x0 in range(0, nx, cx):
                            block = np.asarray(arr[t, y0:y0 + cy, x0:x0 + cx])
                            dst.write(block, 1, window=rasterio.windows.Window(x0, y0, block.shape[1],
                                                                                 block.shape[0]))
                    if packed:
                        dst.scales = (float(enc.get("scale_factor", 1.0)),)
                        dst.offsets = (float(enc.get("add_offset", 0.0)),)
                    dst.set_band_description(1, str(var.attrs.get("long_name", name)))
                    dst.update_tags(1, band=name, time=str(when)[:19], units=str(var.attrs.get("units", "1")))
                    dst.update_tags(software=str(attrs.get("software", "")), model=str(attrs.get("model", "")),
                                    scale=str(attrs.get("scale", "")), source=store.redact_url(url),
                                    license=str(attrs.get("license", "")))
                rasterio.shutil.copy(tmp_tif, str(dst_path), driver="COG", compress="DEFLATE",
                                     predictor="2" if packed else "3", overviews="AUTO",
                                     overview_resampling="average", resampling="average", blocksize=512,
                                     BIGTIFF="IF_SAFER")
            written.append(dst_path)
    return written
