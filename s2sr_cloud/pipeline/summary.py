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
from ..io import stac_out, store
from ..ops.stats import COMPARISONS, METRICS
from . import quicklook


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
    chunks_empty: int | None = None  # chunks of this run with no valid input pixel (None: read from the store)
    masked_fraction: float | None = None
    mask: str | None = None


def format_table(stats: dict[str, Any], sam: dict[str, float]) -> str:
    """Per band: consistency and point figures of the model, the bicubic point reference beside them (when the
    store has it), and the number of valid pixels the figures rest on. Bias is output minus input."""
    comps = [c for c in COMPARISONS if c in stats]
    bands = list(next(iter(stats.values())))
    heads = {"consistency": "consistency (output averaged back vs input)",
             "point": "point samples (output vs containing input pixel)",
             "point_bicubic": "point, bicubic reference"}
    width = {c: 11 * len(METRICS) + len(METRICS) - 1 for c in comps}
    lines = [f"{'band':<5} | " + " | ".join(f"{heads[c]:^{width[c]}}" for c in comps) + " | valid px",
             f"{'':<5} | " + " | ".join(" ".join(f"{m:>11}" for m in METRICS) for _ in comps) + " | (input)"]
    for b in bands:
        cells = [" ".join(f"{stats[c][b][m]:>11.3g}" for m in METRICS) for c in comps]
        n = stats["consistency"][b].get("n")
        lines.append(f"{b:<5} | " + " | ".join(cells) + (f" | {int(n)}" if n is not None else ""))
    def sam_cell(c: str) -> str:
        v = sam.get(c, float("nan"))
        text = f"{v:>11.4g} deg" if v == v else f"{'-':>11}    "  # the reference's SAM is not accumulated
        return f"{text}{'':{width[c] - 15}}"

    lines.append(f"{'SAM':<5} | " + " | ".join(sam_cell(c) for c in comps))
    lines.append("bias = output minus input; point_bicubic is what --model bicubic gives: the model's point RMSE "
                 "reads against it")
    return "\n".join(lines)


def _mask_line(r: RunResult) -> tuple[str, int]:
    """The mask line of the summary and the empty chunks of this run (from the result, else from the store)."""
    mask, frac, empty = r.mask, r.masked_fraction, r.chunks_empty
    if mask is None or frac is None or empty is None:
        try:
            attrs = store.read_attrs(r.out)
        except Exception:  # noqa: BLE001
            attrs = {}
        m = attrs.get("mask") or {}
        if mask is None and m:
            mask = ("scl: classes " + ",".join(map(str, m.get("classes", []))) if m.get("mode") == "scl"
                    else "none" + (f" ({m['note']})" if m.get("note") else ""))
        frac = attrs.get("masked_fraction") if frac is None else frac
        empty = min(int(attrs.get("chunks_empty", 0)), r.chunks_computed) if empty is None else empty
    text = f"mask:     {mask or 'none'}"
    if frac is not None:
        text += f"; {100 * frac:.1f}% of the input pixels masked or without data"
    return text, int(empty or 0)


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
    mask_line, empty = _mask_line(r)
    return "\n".join([
        scenes,
        f"area:     {r.area_km2:.1f} km2, bands {','.join(r.bands)}, x{r.scale}",
        f"output:   {r.out}  {r.shape[0]} x {r.shape[1]} x {r.shape[2]} (time, y, x), {gb * 1000:.1f} MB on disk"
        + (f" ({r.action})" if r.action else ""),
        f"chunks:   {r.chunks_computed - empty} computed, "
        + (f"{empty} empty (no valid pixel: written as fill, not sent to the model), " if empty else "")
        + f"{r.chunks_total - r.chunks_computed} already done, {r.chunks_total} in all",
        mask_line,
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
