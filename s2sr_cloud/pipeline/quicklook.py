"""Quick-look PNG: input RGB vs super-resolved RGB on a crop, plus the per-band RMSE plot of the seed analysis."""

from __future__ import annotations

from typing import Any

import numpy as np


def _rgb(stack: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    out = (stack - lo[:, None, None]) / np.maximum(hi - lo, 1e-6)[:, None, None]
    return np.clip(np.nan_to_num(out, nan=0.0), 0, 1).transpose(1, 2, 0)


def render(path: str, inp_rgb: np.ndarray, out_rgb: np.ndarray, bands: list[str], stats: dict[str, Any],
           title: str) -> None:
    """inp_rgb (3, h, w) and out_rgb (3, h*s, w*s) reflectance of the same crop; stats[comparison][band]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo = np.nanpercentile(inp_rgb.reshape(3, -1), 2, axis=1)
    hi = np.nanpercentile(inp_rgb.reshape(3, -1), 98, axis=1)
    fig, ax = plt.subplots(1, 3, figsize=(16, 5.6), gridspec_kw={"width_ratios": [1, 1, 1.2]})
    ax[0].imshow(_rgb(inp_rgb, lo, hi), interpolation="nearest")
    ax[0].set_title(f"input RGB ({inp_rgb.shape[2]} x {inp_rgb.shape[1]} px)")
    ax[1].imshow(_rgb(out_rgb, lo, hi), interpolation="nearest")
    ax[1].set_title(f"super-resolved RGB ({out_rgb.shape[2]} x {out_rgb.shape[1]} px)")
    for a in ax[:2]:
        a.set_xticks([])
        a.set_yticks([])
    xs = np.arange(len(bands))
    for off, comp, colour in ((-0.2, "point", "tab:orange"), (0.2, "consistency", "tab:blue")):
        vals = [stats[comp][b]["rmse"] for b in bands]
        ax[2].bar(xs + off, vals, width=0.4, label=f"{comp} RMSE", color=colour)
    ax[2].set_xticks(xs, bands, rotation=45)
    ax[2].set_ylabel("RMSE (reflectance)")
    ax[2].set_title("per-band RMSE vs input")
    ax[2].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
