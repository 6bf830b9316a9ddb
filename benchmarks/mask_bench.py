"""Cloud mask on the whole decimated 29RKH tile (issue 10): masked fraction, empty chunks skipped, and the run
time with and without the mask, as a ratio measured in one run (same process, same data, alternating order).

    python benchmarks/mask_bench.py [--scale 2] [--chunk 96] [--model bicubic]

The tile's real earth-search item (with its SCL asset) is served by a real rustac STAC API over loopback, its
COGs by the loopback range server of benchmarks/run.py. Last line: one JSON object."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import dask
import numpy as np

import run as R  # benchmarks/run.py (tile_items, range_server): this script's folder is sys.path[0]
from s2sr_cloud.bands import ALL_BANDS
from s2sr_cloud.catalog import search_items
from s2sr_cloud.catalog.server import serve_items
from s2sr_cloud.io.load import grid_for, load_reflectance
from s2sr_cloud.model.predictors import BicubicPredictor, TorchPredictor
from s2sr_cloud.pipeline.graph import super_resolve
from s2sr_cloud.pipeline.write import write_output


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=96)
    ap.add_argument("--model", default="bicubic")
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args()
    folder = R.TILE
    src = json.loads((folder / "S2A_29RKH_20200219_0_L2A.json").read_text())
    with R.range_server(folder) as base:
        items = R.tile_items(folder, base)
        scl = dict(src["assets"]["scl"])
        import rasterio

        with rasterio.open(folder / "SCL.tif") as s:
            scl.update(href=f"{base}/SCL.tif", **{"proj:shape": [s.height, s.width],
                                                  "proj:transform": list(s.transform)[:6]})
        items[0]["assets"]["scl"] = scl
        with serve_items(items) as url:
            found = search_items(url, "sentinel-2-l2a")
        grid = grid_for(found, ALL_BANDS, None)
        pred = BicubicPredictor() if a.model == "bicubic" else TorchPredictor(a.model)
        times: dict[str, list[float]] = {"scl": [], "none": []}
        reports = {}
        for rep in range(a.repeats):
            for mode in (("scl", "none") if rep % 2 == 0 else ("none", "scl")):
                out_dir = Path(tempfile.mkdtemp(prefix="s2sr-mask-"))
                t0 = time.perf_counter()
                ds = load_reflectance(found, grid, a.chunk, mask=mode)
                out = super_resolve(ds, a.scale, pred, chunk=a.chunk)
                with dask.config.set(scheduler="threads", num_workers=2):
                    r = write_output(out, str(out_dir / "t.zarr"))
                times[mode].append(time.perf_counter() - t0)
                reports[mode] = r
                shutil.rmtree(out_dir, ignore_errors=True)
                print(f"{mode:>4}: {times[mode][-1]:.1f} s, chunks {r.chunks_computed - r.chunks_empty} computed, "
                      f"{r.chunks_empty} empty of {r.chunks_total}, masked/no-data fraction "
                      f"{r.masked_fraction:.4f}", flush=True)
    res = {"grid": list(grid.geobox.shape), "scale": a.scale, "chunk": a.chunk, "model": a.model,
           "chunks_total": reports["scl"].chunks_total, "chunks_empty_scl": reports["scl"].chunks_empty,
           "chunks_empty_none": reports["none"].chunks_empty,
           "masked_fraction_scl": reports["scl"].masked_fraction,
           "nodata_fraction_none": reports["none"].masked_fraction,
           "seconds_scl": float(np.median(times["scl"])), "seconds_none": float(np.median(times["none"])),
           "ratio_scl_over_none": float(np.median(times["scl"]) / np.median(times["none"]))}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
