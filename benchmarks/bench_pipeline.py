"""Relative costs, measured in ONE run on the same machine (report ratios, not absolute seconds):

1. chunk function: s2sr-v1 CNN vs the bicubic predictor on the same real block (x4, all 12 bands), and its
   default self-ensemble (4 flips/turns) vs a single pass (``--ensemble 1``);
2. halo overhead: the same SR computed in 66-pixel vs 240-pixel chunks (more halo re-computation);
3. uint16 store quantisation (footprint-sum preserving) vs float output.

    python benchmarks/bench_pipeline.py
"""

from __future__ import annotations

import time

import numpy as np

from s2sr_cloud.model.predictors import BicubicPredictor, TorchPredictor
from s2sr_cloud.model.registry import default_model
from s2sr_cloud.ops.block import BlockSpec, super_resolve_block
from s2sr_cloud.ops.halo import required_halo
from s2sr_cloud.testing import sample_grid_stack

BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")


def best_of(fn, n=3):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def run_blocks(x, predictor, scale, factors, chunk, quantum=None):
    h = required_halo(predictor.reach(factors, scale), factors)
    xp = np.pad(x, ((0, 0), (0, 0), (h, h), (h, h)), mode="symmetric")
    n = x.shape[-1]
    for y0 in range(0, n, chunk):
        for x0 in range(0, n, chunk):
            super_resolve_block(xp[..., y0:y0 + chunk + 2 * h, x0:x0 + chunk + 2 * h], predictor,
                                BlockSpec(scale, factors, h, quantum=quantum))


def main() -> None:
    x, factors = sample_grid_stack(BANDS)
    bic = BicubicPredictor()
    rows = []
    t_bic = best_of(lambda: run_blocks(x, bic, 4, factors, 240))
    model = default_model()
    if model != "bicubic":
        cnn = TorchPredictor(model)
        run_blocks(x[..., :120, :120], cnn, 4, factors, 120)  # load once
        t_cnn = best_of(lambda: run_blocks(x, cnn, 4, factors, 240), 2)
        rows.append((f"{model} / bicubic, x4, 240x240x12 block", t_cnn / t_bic))
        one = TorchPredictor(model, ensemble=1)
        t_one = best_of(lambda: run_blocks(x, one, 4, factors, 240), 2)
        rows.append((f"{model} default self-ensemble / --ensemble 1, x4", t_cnn / t_one))
    t_small = best_of(lambda: run_blocks(x, bic, 4, factors, 60))
    rows.append(("bicubic 60-px chunks / 240-px chunks (halo overhead)", t_small / t_bic))
    t_q = best_of(lambda: run_blocks(x, bic, 4, factors, 240, quantum=(1e-4, -0.1)))
    rows.append(("uint16 sum-preserving quantisation / float output", t_q / t_bic))
    print(f"reference: bicubic x4 on the 240x240x12 sample block = 1.00 ({t_bic:.2f} s on this machine)")
    for name, ratio in rows:
        print(f"{name}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
