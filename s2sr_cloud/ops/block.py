"""The chunk function: one block of input (with halo) -> the super-resolved block (halo trimmed), numpy in and out.

The pipeline calls this through dask's map_overlap; tests call it directly on whole arrays. Every predictor's
output goes through the same consistency layer here, so the guarantee does not depend on the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .resample import bicubic, block_mean, fill_nan, project, quantize_consistent, replicate

DN_MAX = 65534  # 65535 is the fill value of the uint16 store


class Predictor(Protocol):
    """Anything that super-resolves a (T, C, H, W) block of grid-resolution reflectance (NaN = nodata).

    ``factors[c]`` grid pixels make one native pixel of band c; the result is (T, C, H*scale, W*scale).
    ``reach`` is the receptive-field radius in grid pixels (the pipeline's halo covers it)."""

    name: str

    def reach(self, factors: tuple[int, ...], scale: int) -> int: ...

    def predict(self, x: np.ndarray, factors: tuple[int, ...], scale: int) -> np.ndarray: ...


@dataclass(frozen=True)
class BlockSpec:
    scale: int
    factors: tuple[int, ...]
    halo: int  # grid pixels of context on each side, trimmed from the result
    fill_iters: int = 2
    smooth_iters: int = 2
    quantum: tuple[float, float] | None = None  # (scale_factor, add_offset) of integer storage
    detail: bool = True  # append the detail layer as an extra channel


def smooth_upsample(x: np.ndarray, factors: tuple[int, ...], scale: int, fill_iters: int = 2) -> np.ndarray:
    """Each band bicubic-upsampled from its own native grid (not from the replicated grid): the classical
    reference every model is compared against."""
    t, c, h, w = x.shape
    out = np.empty((t, c, h * scale, w * scale), np.float64)
    for i, f in enumerate(factors):
        filled, _ = fill_nan(block_mean(x[:, i].astype(np.float64), f), fill_iters)
        out[:, i] = bicubic(filled, f * scale)
    return out


def _consistent(y: np.ndarray, x: np.ndarray, factors: tuple[int, ...], spec: BlockSpec) -> np.ndarray:
    out = np.empty(y.shape, np.float64)
    for i, f in enumerate(factors):
        k = f * spec.scale
        native = block_mean(x[:, i].astype(np.float64), f)
        filled, mask = fill_nan(native, spec.fill_iters)
        yc = project(y[:, i], filled, k, spec.smooth_iters)
        if spec.quantum is not None:
            sf, off = spec.quantum
            dn = quantize_consistent((yc - off) / sf, np.rint((filled - off) / sf), k)
            yc = np.clip(dn, 0, DN_MAX) * sf + off
        yc[replicate(mask, k)] = np.nan
        out[:, i] = yc
    return out


def super_resolve_block(block: np.ndarray, predictor: Predictor, spec: BlockSpec) -> np.ndarray:
    """(T, C, H, W) with ``spec.halo`` context on each side -> (T, C[+1], (H-2h)s, (W-2h)s) float32.

    Channel C (when ``spec.detail``) is the detail layer: RMS over bands of output minus the consistent
    smooth reference, i.e. what the model added beyond what bicubic interpolation implies."""
    s, h = spec.scale, spec.halo
    y = _consistent(predictor.predict(block, spec.factors, s), block, spec.factors, spec)
    if spec.detail:
        if getattr(predictor, "name", "") == "bicubic":
            detail = np.zeros(y.shape[:1] + (1,) + y.shape[2:])
        else:
            ref = _consistent(smooth_upsample(block, spec.factors, s, spec.fill_iters), block, spec.factors,
                              BlockSpec(s, spec.factors, h, spec.fill_iters, spec.smooth_iters, None, False))
            with np.errstate(invalid="ignore"):
                detail = np.sqrt(np.nanmean((y - ref) ** 2, axis=1, keepdims=True))
        y = np.concatenate([y, detail], axis=1)
    if h:
        y = y[..., h * s:-h * s, h * s:-h * s]
    return y.astype(np.float32)
