"""Regenerate notebooks/analysis.ipynb (kept as code so the notebook stays reviewable)."""

from pathlib import Path

import nbformat as nbf

cells = [
    nbf.v4.new_markdown_cell(
        "# Spectral integrity of an s2sr-cloud run\n\n"
        "Opens a run's Zarr store lazily and reproduces the seed analysis: a visual comparison, the per-band "
        "spectra and RMSE at random sample points, and the statistics the run wrote. Set `S2SR_ZARR` to another "
        "store (a local path or `s3://...`) to analyse it."),
    nbf.v4.new_code_cell(
        "import os\n"
        "import numpy as np\n"
        "import matplotlib\n"
        "matplotlib.use('Agg')\n"
        "import matplotlib.pyplot as plt\n"
        "import s2sr_cloud\n\n"
        "url = os.environ.get('S2SR_ZARR', '../demo.zarr')\n"
        "ds = s2sr_cloud.open_output(url)  # refuses incomplete stores\n"
        "print(ds.rio.crs, ds.rio.resolution(), ds.attrs['model'], 'x', ds.attrs['scale'])\n"
        "bands = ds.attrs['bands']\n"
        "scale = ds.attrs['scale']\n"
        "factors = dict(zip(bands, ds.attrs['native_factors']))"),
    nbf.v4.new_markdown_cell("## Input, re-read lazily from the catalog, and output side by side"),
    nbf.v4.new_code_cell(
        "inp = s2sr_cloud.input_for(ds)  # the same scenes on the input grid (lazy)\n"
        "t = 0\n"
        "n = min(64, inp.sizes['y'])\n"
        "y0 = (inp.sizes['y'] - n) // 2\n"
        "x0 = (inp.sizes['x'] - n) // 2\n"
        "def rgb(d, sl):\n"
        "    a = np.stack([d[b].isel(time=t, y=sl[0], x=sl[1]).values for b in ('B04', 'B03', 'B02')], -1)\n"
        "    return np.clip(a / 0.35, 0, 1)\n"
        "rgb_in = rgb(inp, (slice(y0, y0 + n), slice(x0, x0 + n)))\n"
        "rgb_out = rgb(ds, (slice(y0 * scale, (y0 + n) * scale), slice(x0 * scale, (x0 + n) * scale)))\n"
        "fig, ax = plt.subplots(1, 3, figsize=(15, 5))\n"
        "ax[0].imshow(rgb_in, interpolation='nearest'); ax[0].set_title('input')\n"
        "ax[1].imshow(rgb_out, interpolation='nearest'); ax[1].set_title(f'output x{scale}')\n"
        "ax[2].imshow(ds.detail.isel(time=t, y=slice(y0 * scale, (y0 + n) * scale),\n"
        "             x=slice(x0 * scale, (x0 + n) * scale)), cmap='magma'); ax[2].set_title('detail layer')\n"
        "fig.savefig('visual_comparison.png', dpi=70)"),
    nbf.v4.new_markdown_cell(
        "## Spectra and RMSE at random sample points\n"
        "Each sampled output pixel is compared with the input pixel that contains it (the seed's method)."),
    nbf.v4.new_code_cell(
        "rng = np.random.default_rng(0)\n"
        "npts = 500\n"
        "oy = rng.integers(0, ds.sizes['y'], npts)\n"
        "ox = rng.integers(0, ds.sizes['x'], npts)\n"
        "out_pts = np.stack([ds[b].isel(time=t).values[oy, ox] for b in bands])\n"
        "in_pts = np.stack([inp[b].isel(time=t).values[oy // scale, ox // scale] for b in bands])\n"
        "ok = ~(np.isnan(out_pts).any(0) | np.isnan(in_pts).any(0))\n"
        "rmse = np.sqrt(np.mean((out_pts[:, ok] - in_pts[:, ok]) ** 2, axis=1))\n"
        "for b, r in zip(bands, rmse):\n"
        "    print(f'{b}: RMSE {r:.4f}  (run statistics, all pixels: '\n"
        "          f\"{float(ds.stats.sel(comparison='point', band=b, metric='rmse')):.4f})\")\n"
        "cos = (out_pts[:, ok] * in_pts[:, ok]).sum(0) / np.linalg.norm(out_pts[:, ok], axis=0) / np.linalg.norm(in_pts[:, ok], axis=0)\n"
        "print('mean SAM at the points (deg):', np.degrees(np.arccos(np.clip(cos, -1, 1))).mean())\n"
        "wl = [s2sr_cloud.bands.BY_NAME[b].wavelength_nm for b in bands]\n"
        "order = np.argsort(wl)\n"
        "fig, ax = plt.subplots(1, 2, figsize=(14, 4.5))\n"
        "ax[0].plot(np.array(wl)[order], in_pts[:, ok].mean(1)[order], 'o-', label='input')\n"
        "ax[0].plot(np.array(wl)[order], out_pts[:, ok].mean(1)[order], 's--', label='output')\n"
        "ax[0].set_xlabel('wavelength (nm)'); ax[0].set_ylabel('mean reflectance'); ax[0].legend()\n"
        "ax[1].bar(bands, rmse); ax[1].set_ylabel('RMSE at sample points')\n"
        "fig.savefig('spectra_rmse.png', dpi=70)\n"
        "assert ok.sum() > 0.9 * npts"),
    nbf.v4.new_markdown_cell("## Statistics written by the run (per band, and per output chunk)"),
    nbf.v4.new_code_cell(
        "print(ds.stats.sel(comparison='consistency').to_pandas())\n"
        "print(ds.stats.sel(comparison='point').to_pandas())\n"
        "print('SAM (deg):', dict(zip(ds.comparison.values.tolist(), ds.sam_deg.values.tolist())))\n"
        "worst = float(ds.chunk_stats.sel(comparison='consistency', metric='rmse').max())\n"
        "print('worst per-chunk consistency RMSE:', worst)\n"
        "assert worst < 1e-5"),
]
nb = nbf.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                               "language": "python"}})
out = Path(__file__).resolve().parents[1] / "notebooks" / "analysis.ipynb"
nbf.write(nb, out)
print("wrote", out)
