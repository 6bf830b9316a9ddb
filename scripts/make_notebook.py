"""Regenerate notebooks/analysis.ipynb (kept as code so the notebook stays reviewable).

The notebook reproduces the seed analysis on a run's store, with figures inline: the input, the bicubic baseline,
the model and the detail layer on map coordinates; random sample points and the spectra at a few of them;
per-band RMSE at the points with bootstrap confidence intervals, the model beside bicubic; the statistics the run
wrote. tests/test_notebook.py executes it on a real run.
"""

from pathlib import Path

import nbformat as nbf

cells = [
    nbf.v4.new_markdown_cell(
        "# Spectral integrity of an s2sr-cloud run\n\n"
        "Opens a run's Zarr store lazily and reproduces the seed analysis: a visual comparison on map coordinates, "
        "spectra and RMSE at random sample points (with bootstrap confidence intervals, and the bicubic baseline "
        "beside the model), and the statistics the run wrote. Set `S2SR_ZARR` to another store (a local path or "
        "`s3://...`) to analyse it."),
    nbf.v4.new_code_cell(
        "%matplotlib inline\n"
        "import os\n"
        "import numpy as np\n"
        "import matplotlib.pyplot as plt\n"
        "from pyproj import Transformer\n"
        "import s2sr_cloud\n"
        "from s2sr_cloud.bands import BY_NAME\n"
        "from s2sr_cloud.ops.resample import bicubic, block_mean, fill_nan\n\n"
        "url = os.environ.get('S2SR_ZARR', '../demo.zarr')\n"
        "ds = s2sr_cloud.open_output(url)  # refuses incomplete stores\n"
        "bands = list(ds.attrs['bands'])\n"
        "scale = int(ds.attrs['scale'])\n"
        "factors = dict(zip(bands, ds.attrs['native_factors']))\n"
        "crs = ds.rio.crs\n"
        "print(crs, 'output pixel', ds.rio.resolution(), 'm; model', ds.attrs['model'], 'x', scale)"),
    nbf.v4.new_markdown_cell(
        "## The cloud mask\n"
        "The run masked the scene classification (SCL) classes listed below: those pixels are nodata (fill) in the "
        "store, and every statistic rests on the valid pixels only (`stats_n`). Left: the input as the run "
        "loaded it, right: what the store holds (black = masked or no data)."),
    nbf.v4.new_code_cell(
        "from s2sr_cloud.io.load import SCL_CLASSES\n"
        "mask = ds.attrs.get('mask', {})\n"
        "print('mask:', mask.get('mode'), [f'{c} {SCL_CLASSES[c]}' for c in mask.get('classes', [])], mask.get('note', ''))\n"
        "print('masked or no-data fraction of the input:', ds.attrs.get('masked_fraction'))\n"
        "print('invalid input pixels per band:', dict(zip(ds.band.values.tolist(), ds.invalid_pixels.values.astype(int).tolist())))\n"
        "b0 = 'B02' if 'B02' in bands else bands[0]\n"
        "held = np.isfinite(ds[b0].isel(time=0).values)\n"
        "xs, ys = ds.x.values, ds.y.values\n"
        "ext = [xs[0] / 1000, xs[-1] / 1000, ys[-1] / 1000, ys[0] / 1000]\n"
        "fig, ax = plt.subplots(1, 2, figsize=(10, 4.6), constrained_layout=True)\n"
        "inp0 = s2sr_cloud.input_for(ds)  # the input as the run loaded it (masked)\n"
        "valid_in = np.isfinite(inp0[b0].isel(time=0).values)\n"
        "ax[0].imshow(valid_in, extent=ext, cmap='gray', interpolation='nearest')\n"
        "ax[0].set_title(f'input {b0}: valid (white) / masked (black)')\n"
        "ax[1].imshow(held, extent=ext, cmap='gray', interpolation='nearest')\n"
        "ax[1].set_title(f'stored {b0}: {100 * (1 - held.mean()):.1f}% fill (black)')\n"
        "for a in ax:\n"
        "    a.set_xlabel('x (km)')\n"
        "ax[0].set_ylabel('y (km)')\n"
        "plt.show()"),
    nbf.v4.new_markdown_cell(
        "## Input, bicubic baseline, model and detail layer\n"
        "The input is re-read lazily from the catalog on its own grid. The bicubic baseline upsamples every band "
        "from its native grid (10, 20 or 60 m), as the detail layer's reference does. Axes are map coordinates "
        "(km in the store's CRS); the detail layer has its colour bar."),
    nbf.v4.new_code_cell(
        "inp = s2sr_cloud.input_for(ds)  # the same scenes on the input grid (lazy)\n"
        "t = 0\n"
        "inp_t = {b: inp[b].isel(time=t).values.astype(np.float64) for b in bands}\n"
        "out_t = {b: ds[b].isel(time=t).values.astype(np.float64) for b in bands}\n\n"
        "def bicubic_band(b):\n"
        "    native = block_mean(inp_t[b], factors[b])  # the band on its own grid\n"
        "    filled, _ = fill_nan(native)\n"
        "    up = bicubic(filled, factors[b] * scale)\n"
        "    up[np.isnan(np.repeat(np.repeat(native, factors[b] * scale, 0), factors[b] * scale, 1))] = np.nan\n"
        "    return up\n"
        "bic_t = {b: bicubic_band(b) for b in bands}\n\n"
        "x, y = ds.x.values, ds.y.values\n"
        "dx, dy = x[1] - x[0], y[1] - y[0]\n"
        "extent = np.array([x[0] - dx / 2, x[-1] + dx / 2, y[-1] + dy / 2, y[0] - dy / 2]) / 1000  # km\n"
        "rgb_bands = ('B04', 'B03', 'B02')\n"
        "lo = np.array([np.nanpercentile(inp_t[b], 2) for b in rgb_bands])\n"
        "hi = np.array([np.nanpercentile(inp_t[b], 98) for b in rgb_bands])\n"
        "def rgb(d):\n"
        "    a = np.stack([d[b] for b in rgb_bands], -1)\n"
        "    return np.clip(np.nan_to_num((a - lo) / (hi - lo)), 0, 1)\n\n"
        "# random sample points on the output grid (the seed analysis's method), drawn once\n"
        "rng = np.random.default_rng(0)\n"
        "npts = 500\n"
        "# random points among the valid (unmasked) output pixels of every band\n"
        "valid = np.all([np.isfinite(out_t[b]) for b in bands], axis=0)\n"
        "vy, vx = np.nonzero(valid)\n"
        "pick = rng.choice(len(vy), size=min(npts, len(vy)), replace=False)\n"
        "oy, ox = vy[pick], vx[pick]\n"
        "npts = len(pick)\n"
        "few = np.arange(4)  # the points whose spectra are drawn below\n\n"
        "detail = ds.detail.isel(time=t).values\n"
        "fig, ax = plt.subplots(1, 4, figsize=(20, 5.4), constrained_layout=True)\n"
        "for a, img, title in ((ax[0], rgb(inp_t), f'input ({inp.sizes[\"x\"]} x {inp.sizes[\"y\"]} px)'),\n"
        "                      (ax[1], rgb(bic_t), f'bicubic x{scale}'),\n"
        "                      (ax[2], rgb(out_t), f'{ds.attrs[\"model\"]} x{scale}')):\n"
        "    a.imshow(img, extent=extent, interpolation='nearest')\n"
        "    a.set_title(title)\n"
        "ax[2].scatter(x[ox] / 1000, y[oy] / 1000, s=3, c='cyan', label=f'{npts} random points')\n"
        "for k in few:\n"
        "    ax[2].annotate(str(k), (x[ox[k]] / 1000, y[oy[k]] / 1000), color='yellow', fontsize=12, weight='bold')\n"
        "ax[2].legend(loc='lower right', fontsize=8)\n"
        "im = ax[3].imshow(detail, extent=extent, cmap='magma', interpolation='nearest',\n"
        "                  vmax=np.nanpercentile(detail, 99.5) or None)\n"
        "ax[3].set_title('detail layer (RMS over bands)')\n"
        "fig.colorbar(im, ax=ax[3], shrink=0.8, label='reflectance')\n"
        "for a in ax:\n"
        "    a.set_xlabel(f'x (km, {crs.to_string()})')\n"
        "ax[0].set_ylabel('y (km)')\n"
        "plt.show()"),
    nbf.v4.new_markdown_cell(
        "## Spectra at a few sample points\n"
        "Each output pixel against the input pixel that contains it (on each band's own native grid the input is "
        "one value over the footprint; the model may vary inside it) and the bicubic baseline at the same place. "
        "A spectrum averaged over many points would hide this: input and output agree on average by "
        "construction."),
    nbf.v4.new_code_cell(
        "wl = np.array([BY_NAME[b].wavelength_nm for b in bands])\n"
        "order = np.argsort(wl)\n"
        "out_pts = np.stack([out_t[b][oy, ox] for b in bands])\n"
        "in_pts = np.stack([inp_t[b][oy // scale, ox // scale] for b in bands])\n"
        "bic_pts = np.stack([bic_t[b][oy, ox] for b in bands])\n"
        "ok = ~(np.isnan(out_pts).any(0) | np.isnan(in_pts).any(0) | np.isnan(bic_pts).any(0))\n"
        "assert ok.sum() > 0.9 * npts\n"
        "to_lonlat = Transformer.from_crs(crs, 'EPSG:4326', always_xy=True)\n"
        "fig, ax = plt.subplots(1, len(few), figsize=(4.6 * len(few), 3.8), sharey=True, constrained_layout=True)\n"
        "for a, k in zip(ax, few):\n"
        "    lon, lat = to_lonlat.transform(x[ox[k]], y[oy[k]])\n"
        "    a.plot(wl[order], in_pts[order, k], 'o-', color='k', label='input (containing pixel)')\n"
        "    a.plot(wl[order], bic_pts[order, k], 's--', color='tab:blue', label='bicubic')\n"
        "    a.plot(wl[order], out_pts[order, k], 'd-', color='tab:orange', label=ds.attrs['model'])\n"
        "    a.set_title(f'point {k}: x {x[ox[k]]:.0f} m, y {y[oy[k]]:.0f} m\\n({lat:.4f} N, {lon:.4f} E)', fontsize=9)\n"
        "    a.set_xlabel('wavelength (nm)')\n"
        "ax[0].set_ylabel('reflectance')\n"
        "ax[0].legend(fontsize=8)\n"
        "plt.show()"),
    nbf.v4.new_markdown_cell(
        "## Per-band RMSE at the sample points, with 95 % bootstrap confidence intervals\n"
        "RMSE of each output pixel against the input pixel containing it, for the model and for the bicubic "
        "baseline. Bicubic is the reference: the excess over it is what the model changed inside input pixels "
        "(detail, or error: this comparison cannot tell them apart; the Wald's-protocol evaluation in "
        "docs/model.md can)."),
    nbf.v4.new_code_cell(
        "def rmse(a, b):\n"
        "    return np.sqrt(np.mean((a - b) ** 2, axis=-1))\n"
        "idx = np.flatnonzero(ok)\n"
        "boot = rng.choice(idx, size=(1000, idx.size))  # resample the points with replacement\n"
        "res = {}\n"
        "for name, pts in (('bicubic', bic_pts), (ds.attrs['model'], out_pts)):\n"
        "    est = rmse(pts[:, idx], in_pts[:, idx])\n"
        "    reps = np.stack([rmse(pts[:, s], in_pts[:, s]) for s in boot])  # (1000, bands)\n"
        "    res[name] = (est, np.percentile(reps, 2.5, axis=0), np.percentile(reps, 97.5, axis=0), reps)\n"
        "model = ds.attrs['model']\n"
        "# paired: the same resampled points for both, so the interval is on the difference itself\n"
        "diff = res[model][3] - res['bicubic'][3]\n"
        "dlo, dhi = np.percentile(diff, 2.5, axis=0), np.percentile(diff, 97.5, axis=0)\n"
        "for i, b in enumerate(bands):\n"
        "    m, ml, mh = (v[i] for v in res[model][:3])\n"
        "    c, cl, ch = (v[i] for v in res['bicubic'][:3])\n"
        "    print(f'{b}: RMSE {m:.4f} [{ml:.4f}, {mh:.4f}]  bicubic {c:.4f} [{cl:.4f}, {ch:.4f}]  '\n"
        "          f'model - bicubic [{dlo[i]:+.4f}, {dhi[i]:+.4f}]  (run statistics, '\n"
        "          f\"all pixels: {float(ds.stats.sel(comparison='point', band=b, metric='rmse')):.4f})\")\n"
        "xs = np.arange(len(bands))\n"
        "fig, ax = plt.subplots(figsize=(12, 4.2), constrained_layout=True)\n"
        "for off, name, colour in ((-0.2, 'bicubic', 'tab:blue'), (0.2, model, 'tab:orange')):\n"
        "    est, lo_, hi_, _ = res[name]\n"
        "    ax.bar(xs + off, est, width=0.4, color=colour, label=name,\n"
        "           yerr=np.stack([est - lo_, hi_ - est]), capsize=3)\n"
        "ax.set_xticks(xs, [f'{b}\\n{BY_NAME[b].resolution} m' for b in bands])\n"
        "ax.set_ylabel('RMSE vs containing input pixel')\n"
        "ax.set_title(f'{idx.size} random points, 95 % bootstrap intervals (1000 resamples)')\n"
        "ax.legend()\n"
        "plt.show()\n"
        "cos = (out_pts[:, idx] * in_pts[:, idx]).sum(0) / np.linalg.norm(out_pts[:, idx], axis=0) / np.linalg.norm(in_pts[:, idx], axis=0)\n"
        "print('mean SAM at the points (deg):', np.degrees(np.arccos(np.clip(cos, -1, 1))).mean())"),
    nbf.v4.new_markdown_cell("## Statistics written by the run (per band, and per output chunk)"),
    nbf.v4.new_code_cell(
        "for comp in ds.comparison.values.tolist():\n"
        "    print(comp, ds.stats.attrs.get('long_name', ''))\n"
        "    print(ds.stats.sel(comparison=comp).to_pandas(), '\\n')\n"
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
