"""Reporting a finished zone: the terminal summary and statistics table, the quick-look PNG and the STAC
Collection of the outputs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from ..bands import RGB
from ..config import JobConfig
from ..io import quicklook, stac_out, store
from ..ops.stats import COMPARISONS, METRICS


@dataclass
class RunResult:
    out: str
    items: list[str]
    bands: list[str]
    scale: int
    seconds: float
    area_km2: float
    output_bytes: int
    shape: tuple[int, ...]
    stats: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    sam: dict[str, float] = field(default_factory=dict)
    quicklook: str | None = None
    quicklook_error: str | None = None
    chunks_total: int = 0
    chunks_computed: int = 0
    epsg: int = 0
    bounds: tuple[float, ...] = ()
    footprint: dict[str, Any] = field(default_factory=dict)
    datetimes: list[str] = field(default_factory=list)
    action: str = ""
    found_more: bool = False
    limit: int = 0
    model: str = ""


def format_table(stats: dict[str, Any], sam: dict[str, float]) -> str:
    bands = list(next(iter(stats.values())))
    lines = [f"{'band':<5} | {'consistency (output averaged back vs input)':^46} | "
             f"{'point samples (output vs containing input pixel)':^46}",
             f"{'':<5} | " + " | ".join(" ".join(f"{m:>11}" for m in METRICS) for _ in COMPARISONS)]
    for b in bands:
        cells = [" ".join(f"{stats[c][b][m]:>11.3g}" for m in METRICS) for c in COMPARISONS]
        lines.append(f"{b:<5} | " + " | ".join(cells))
    lines.append(f"{'SAM':<5} | {sam['consistency']:>11.4g} deg{'':31} | {sam['point']:>11.4g} deg")
    return "\n".join(lines)


def summary(r: RunResult) -> str:
    gb = r.output_bytes / 1e9
    scenes = f"scenes:   {len(r.items)} ({', '.join(r.items[:3])}{' ...' if len(r.items) > 3 else ''})"
    if r.found_more:
        scenes += f"; the search matched more than --limit {r.limit}: only these were processed, raise --limit"
    if r.quicklook:
        ql = f"quicklook: {r.quicklook}"
    elif r.quicklook_error:
        ql = f"quicklook: FAILED ({r.quicklook_error}); the store is complete and valid"
    else:
        ql = "quicklook: (needs B02, B03, B04)"
    return "\n".join([
        scenes,
        f"area:     {r.area_km2:.1f} km2, bands {','.join(r.bands)}, x{r.scale}",
        f"output:   {r.out}  {r.shape[0]} x {r.shape[1]} x {r.shape[2]} (time, y, x), {gb * 1000:.1f} MB on disk"
        + (f" ({r.action})" if r.action else ""),
        f"chunks:   {r.chunks_computed} computed, {r.chunks_total - r.chunks_computed} already done, "
        f"{r.chunks_total} in all",
        f"time:     {r.seconds:.1f} s",
        ql,
        "",
        format_table(r.stats, r.sam),
    ])


def write_stac(cfg: JobConfig, results: list[RunResult]) -> str:
    """A STAC Collection (JSON) next to the output(s), one Item per output store, for pystac(-client) users."""
    return stac_out.write_collection(cfg.out, [
        {"href": r.out, "epsg": r.epsg, "bounds": r.bounds, "footprint": r.footprint, "datetimes": r.datetimes,
         "bands": r.bands, "scale": r.scale, "items": r.items, "model": r.model or cfg.model} for r in results])


def quicklook_path(cfg: JobConfig, out: str) -> str:
    if cfg.quicklook and cfg.quicklook.endswith(".png"):
        return cfg.quicklook
    base = os.path.basename(out.rstrip("/")).removesuffix(".zarr") + "_quicklook.png"
    if cfg.quicklook:
        return os.path.join(cfg.quicklook, base)
    if "://" in out and not out.startswith("file://"):
        return base  # remote output: quick-look in the working directory
    return os.path.join(os.path.dirname(os.path.abspath(out.removeprefix("file://"))), base)


def make_quicklook(cfg: JobConfig, out: str, ds: xr.Dataset, bands: list[str], table: dict[str, Any]) -> str | None:
    """Input vs output RGB of the centre, with the statistics; None when the bands have no RGB."""
    if not all(b in bands for b in RGB):
        return None
    res = store.open_output(out)
    n = min(96, ds.sizes["y"], ds.sizes["x"])
    y0, x0 = (ds.sizes["y"] - n) // 2, (ds.sizes["x"] - n) // 2
    s = cfg.scale
    inp = np.stack([ds[b].isel(time=0, y=slice(y0, y0 + n), x=slice(x0, x0 + n)).values for b in RGB])
    sr = np.stack([res[b].isel(time=0, y=slice(y0 * s, (y0 + n) * s), x=slice(x0 * s, (x0 + n) * s)).values
                   for b in RGB])
    path = quicklook_path(cfg, out)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    quicklook.render(path, inp, sr, bands, table,
                     f"{res.attrs['stac_items'][0]} - model {res.attrs['model']} - x{s}")
    return path
