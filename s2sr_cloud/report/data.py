"""Everything the report shows, read from a finished store into plain arrays and dicts (the only I/O of the report).

The viewer's *input* is the store's own output averaged over each input pixel's native footprint (the product's
degradation operator ``block_mean``). By the exact spectral consistency the store guarantees (and measures: the
``consistency`` rows of its statistics) that is the input the run read, to <= 1e-5 reflectance; reading it this way
needs no catalog access and no network. The *bicubic* reference is every band bicubic-upsampled from that input on
its own native grid, as ``ops.block.smooth_upsample`` does for the detail layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from ..bands import BY_NAME, RGB
from ..ops.resample import bicubic, block_mean, fill_nan, replicate


@dataclass
class ReportData:
    title: str
    bands: list[str]
    resolutions: list[int]
    scale: int
    shown: list[str]  # bands shown in the viewer (RGB order, or one band as grey)
    crop: dict[str, Any]  # x0, y0, width, height (output pixels), full_width, full_height
    geo: dict[str, Any]  # crs, x0, y0 (map coordinates of the crop's first pixel centre), dx, dy (metres)
    input_png: str
    model_png: str
    bicubic_png: str
    detail_png: str
    detail_vmax: float
    stats: dict[str, dict[str, dict[str, float]]]
    sam: dict[str, float]
    stats_attrs: dict[str, dict[str, Any]]
    chunk_map: dict[str, Any] | None
    provenance: dict[str, Any]
    time: str
    notes: list[str] = field(default_factory=list)


def _factors(ds: xr.Dataset, bands: list[str]) -> dict[str, int]:
    fac = ds.attrs.get("native_factors")
    if fac is not None and len(fac) == len(bands):
        return {b: int(f) for b, f in zip(bands, fac)}
    return {b: int(ds[b].attrs.get("native_factor", 1)) for b in bands}


def _crop(n: int, size: int, align: int) -> tuple[int, int]:
    """A centred window of at most ``size`` pixels of ``n``, both ends on multiples of ``align``."""
    size = min(size, n) // align * align
    start = (n - size) // 2 // align * align
    return start, size


def _stats_table(ds: xr.Dataset, name: str) -> dict[str, dict[str, dict[str, float]]]:
    if name not in ds:
        return {}
    st = ds[name].load()
    table: dict[str, dict[str, dict[str, float]]] = {}
    for comp in st.comparison.values.tolist():
        table[str(comp)] = {
            str(b): {str(m): float(st.sel(comparison=comp, band=b, metric=m)) for m in st.metric.values.tolist()}
            for b in st.band.values.tolist()}
    return table


def _chunk_map(ds: xr.Dataset, t: int) -> dict[str, Any] | None:
    if "chunk_stats" not in ds:
        return None
    cs = ds["chunk_stats"]
    if not {"chunk_y", "chunk_x", "comparison", "metric", "band"} <= set(cs.dims):
        return None
    comp = "point" if "point" in cs.comparison.values.tolist() else str(cs.comparison.values[0])
    sel = cs.sel(comparison=comp, metric="rmse")
    if "time" in sel.dims:
        sel = sel.isel(time=t)
    values = np.asarray(sel.mean("band").transpose("chunk_y", "chunk_x").values, dtype=float)
    if values.size < 2:
        return None  # one chunk: nothing to map
    xs = ds["chunk_x"].values.astype(float) if "chunk_x" in ds.coords else None
    ys = ds["chunk_y"].values.astype(float) if "chunk_y" in ds.coords else None
    if xs is not None and (xs.dtype.kind not in "fi" or np.allclose(xs, np.arange(len(xs)))):
        xs = None  # bare chunk indices: not map coordinates
    if ys is not None and (ys.dtype.kind not in "fi" or np.allclose(ys, np.arange(len(ys)))):
        ys = None
    return {"values": values, "xs": xs, "ys": ys, "title": f"{comp} RMSE per output chunk (mean over bands)"}


def _crs(ds: xr.Dataset) -> str:
    try:
        import rioxarray  # noqa: F401

        crs = ds.rio.crs
        if crs is not None:
            epsg = crs.to_epsg()
            return f"EPSG:{epsg}" if epsg else crs.to_string()
    except Exception:  # noqa: BLE001 - the CRS is informative only
        pass
    return str(ds.attrs.get("input_crs", "unknown"))


def read_report_data(url: str, *, max_size: int = 1024, time: int = 0) -> ReportData:
    """Read a centred crop of at most ``max_size`` output pixels per side, the statistics and the provenance."""
    from ..io.store import open_output
    from .images import colormap, percentile_range, png_data_uri, stretch

    ds = open_output(url)
    bands = [str(b) for b in ds.attrs.get("bands", [v for v in ds.data_vars if ds[v].dims == ("time", "y", "x")
                                                    and v in BY_NAME])]
    scale = int(ds.attrs["scale"])
    factors = _factors(ds, bands)
    shown = list(RGB) if all(b in bands for b in RGB) else [bands[0]]
    align = scale * max(factors[b] for b in shown)
    H, W = ds.sizes["y"], ds.sizes["x"]
    y0, h = _crop(H, max_size, align)
    x0, w = _crop(W, max_size, align)
    if h == 0 or w == 0:
        raise ValueError(f"{url}: the store is smaller than one native pixel of {shown}")
    # a margin of whole native pixels around the crop so that bicubic is not distorted at the crop's edges
    m = 4 * align
    ya, yb = max(0, y0 - m) // align * align, min(H, y0 + h + m) // align * align
    xa, xb = max(0, x0 - m) // align * align, min(W, x0 + w + m) // align * align
    win = dict(time=time, y=slice(ya, yb), x=slice(xa, xb))
    model = np.stack([ds[b].isel(**win).values.astype(np.float64) for b in shown])
    detail = ds["detail"].isel(time=time, y=slice(y0, y0 + h), x=slice(x0, x0 + w)).values.astype(np.float64) \
        if "detail" in ds else np.full((h, w), np.nan)
    inp, bic = [], []
    for i, b in enumerate(shown):
        k = factors[b] * scale
        native = block_mean(model[i], k)  # the input, by the store's exact consistency
        inp.append(replicate(native, factors[b]))  # on the input grid (10 m bands: itself)
        filled, mask = fill_nan(native)
        up = bicubic(filled, k)
        up[replicate(mask, k)] = np.nan
        bic.append(up)
    iy, ix = (y0 - ya) // scale, (x0 - xa) // scale
    inp_c = np.stack(inp)[:, iy:iy + h // scale, ix:ix + w // scale]
    sl = (slice(None), slice(y0 - ya, y0 - ya + h), slice(x0 - xa, x0 - xa + w))
    model_c, bic_c = model[sl], np.stack(bic)[sl]
    if len(shown) == 1:
        inp_c, model_c, bic_c = (np.repeat(a, 3, axis=0) for a in (inp_c, model_c, bic_c))
    lo, hi = percentile_range(inp_c)
    finite = detail[np.isfinite(detail)]
    vmax = float(np.percentile(finite, 99)) if finite.size else 0.0
    notes = []
    if vmax <= 0:
        notes.append("The detail layer is zero in this crop (the bicubic model adds no detail).")
        vmax = 1e-4
    xc, yc = ds["x"].values, ds["y"].values
    geo = {"crs": _crs(ds), "x0": float(xc[x0]), "y0": float(yc[y0]),
           "dx": float(xc[1] - xc[0]) if W > 1 else 0.0, "dy": float(yc[1] - yc[0]) if H > 1 else 0.0}
    stats = _stats_table(ds, "stats")
    sam: dict[str, float] = {}
    if "sam_deg" in ds:
        s = ds["sam_deg"].load()
        sam = {str(c): float(s.sel(comparison=c)) for c in s.comparison.values.tolist()}
    stats_attrs = {n: dict(ds[n].attrs) for n in ("stats", "sam_deg", "chunk_stats", "chunk_sam_deg", "detail")
                   if n in ds and ds[n].attrs}
    provenance = {k: v for k, v in ds.attrs.items()}
    tval = ds["time"].values[time] if "time" in ds.coords else None
    tstr = str(np.datetime_as_string(tval, unit="s")) if tval is not None and np.issubdtype(
        np.asarray(tval).dtype, np.datetime64) else str(tval)
    items = ds.attrs.get("stac_items") or ["?"]
    title = f"{items[0]} - model {ds.attrs.get('model', '?')} - x{scale}"
    crop = {"x0": x0, "y0": y0, "width": w, "height": h, "full_width": W, "full_height": H}
    if (h, w) != (H, W):
        notes.append(f"The viewer shows the central {w} x {h} output pixels of {W} x {H} "
                     f"(s2sr report --max-size to change).")
    res = [BY_NAME[b].resolution if b in BY_NAME else 0 for b in bands]
    return ReportData(
        title=title, bands=bands, resolutions=res, scale=scale, shown=shown, crop=crop, geo=geo,
        input_png=png_data_uri(stretch(inp_c, lo, hi)), model_png=png_data_uri(stretch(model_c, lo, hi)),
        bicubic_png=png_data_uri(stretch(bic_c, lo, hi)), detail_png=png_data_uri(colormap(detail, vmax)),
        detail_vmax=vmax, stats=stats, sam=sam, stats_attrs=stats_attrs, chunk_map=_chunk_map(ds, time),
        provenance=provenance, time=tstr, notes=notes)


def consistency_error(data: ReportData) -> float:
    """Largest consistency RMSE in the statistics (how far the reconstructed input can be from the real one)."""
    vals = [v.get("rmse", math.nan) for v in data.stats.get("consistency", {}).values()]
    vals = [v for v in vals if math.isfinite(v)]
    return max(vals) if vals else math.nan
