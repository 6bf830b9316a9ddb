"""In-memory encoders for the report: arrays -> PNG data URIs, statistics -> inline SVG plots. No file I/O."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np


def stretch(rgb: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(3, h, w) reflectance -> (h, w, 3) uint8 with the per-channel range [lo, hi]; NaN -> black."""
    out = (rgb - lo[:, None, None]) / np.maximum(hi - lo, 1e-6)[:, None, None]
    out = np.clip(np.nan_to_num(out, nan=0.0), 0, 1) * 255
    return np.rint(out).astype(np.uint8).transpose(1, 2, 0)


def percentile_range(rgb: np.ndarray, p: tuple[float, float] = (2, 98)) -> tuple[np.ndarray, np.ndarray]:
    flat = rgb.reshape(rgb.shape[0], -1)
    if not np.isfinite(flat).any():
        return np.zeros(rgb.shape[0]), np.ones(rgb.shape[0])
    lo, hi = np.nanpercentile(flat, p, axis=1)
    return lo, hi


def colormap(values: np.ndarray, vmax: float, name: str = "magma") -> np.ndarray:
    """(h, w) values in [0, vmax] -> (h, w, 4) uint8 RGBA; NaN is transparent."""
    from matplotlib import colormaps

    norm = np.clip(np.nan_to_num(values, nan=0.0) / max(vmax, 1e-12), 0, 1)
    rgba = (colormaps[name](norm) * 255).round().astype(np.uint8)
    rgba[np.isnan(values), 3] = 0
    return rgba


def gradient_css(name: str = "magma", stops: int = 11) -> str:
    """A CSS linear-gradient for the colour bar of ``colormap``."""
    from matplotlib import colormaps

    cmap = colormaps[name]
    cols = []
    for i in range(stops):
        r, g, b, _ = cmap(i / (stops - 1))
        cols.append(f"rgb({round(r * 255)},{round(g * 255)},{round(b * 255)}) {100 * i / (stops - 1):.0f}%")
    return "linear-gradient(to right, " + ", ".join(cols) + ")"


def png_data_uri(pixels: np.ndarray) -> str:
    """(h, w, 3|4) uint8 -> ``data:image/png;base64,...``."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE: the SVG is inlined in HTML


def bar_plots_svg(table: dict[str, dict[str, dict[str, float]]], bands: list[str], resolutions: list[int],
                  metrics: tuple[str, ...] = ("rmse", "bias")) -> str:
    """One row of panels per metric, one panel per comparison; bars per band coloured by native resolution."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    comps = list(table)
    colours = {10: "#1f77b4", 20: "#ff7f0e", 60: "#2ca02c"}
    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9}):
        fig = Figure(figsize=(4.2 * len(comps), 2.6 * len(metrics)))  # no pyplot: the caller's backend stays
        axes = fig.subplots(len(metrics), len(comps), squeeze=False)
        xs = np.arange(len(bands))
        for i, metric in enumerate(metrics):
            for j, comp in enumerate(comps):
                ax = axes[i, j]
                vals = [table[comp].get(b, {}).get(metric, np.nan) for b in bands]
                ax.bar(xs, vals, color=[colours.get(r, "#7f7f7f") for r in resolutions])
                ax.axhline(0, color="black", lw=0.6)
                ax.set_xticks(xs, bands, rotation=90)
                ax.set_title(f"{comp}: {metric}")
                ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
                ax.grid(axis="y", alpha=0.3)
        handles = [Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
        fig.legend(handles, [f"{r} m native" for r in colours], loc="upper right", ncol=3, frameon=False)
        fig.tight_layout(rect=(0, 0, 1, 0.93))
        return _svg(fig)


def chunk_map_svg(values: np.ndarray, xs: np.ndarray | None, ys: np.ndarray | None, title: str) -> str:
    """A per-chunk map (chunk_y, chunk_x) with a colour bar; axes in map metres when chunk centres are known."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9}):
        fig = Figure(figsize=(4.6, 3.8))
        ax = fig.subplots()
        if xs is not None and ys is not None and len(xs) > 1 and len(ys) > 1:
            dx, dy = xs[1] - xs[0], ys[1] - ys[0]
            extent = (xs[0] - dx / 2, xs[-1] + dx / 2, ys[-1] + dy / 2, ys[0] - dy / 2)
            im = ax.imshow(values, cmap="viridis", extent=extent, interpolation="nearest")
            ax.set_xlabel("x (m)")
            ax.set_ylabel("y (m)")
            ax.ticklabel_format(useOffset=False, style="plain")
            ax.tick_params(axis="x", rotation=30)
        else:
            im = ax.imshow(values, cmap="viridis", interpolation="nearest")
            ax.set_xlabel("chunk x")
            ax.set_ylabel("chunk y")
        fig.colorbar(im, ax=ax, shrink=0.85)
        ax.set_title(title)
        fig.tight_layout()
        return _svg(fig)
