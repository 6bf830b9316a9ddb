"""Spectral-integrity statistics, accumulated per block as sums (so blocks combine exactly) and finalised once.

Two comparisons per band, as in the seed analysis:
- ``consistency``: the output averaged over each input pixel's native footprint (block_mean, the product's
  degradation operator) against the input. The consistency layer drives this to ~0.
- ``point``: every output pixel against the input pixel that contains it. Measures how much sub-pixel detail
  was added (0 would mean the output is the blocky input).
- ``point_bicubic``: the same point comparison for the consistent bicubic upsampling (what ``--model bicubic``
  writes), computed in the same pass: the reference the model's point figures read against.
Metrics: RMSE, mean bias (output - input), MAE, Pearson r per band, and the mean spectral angle (SAM, degrees).
Only valid pixels count: a pair where either side is NaN (masked, no data) is left out, and ``n`` says how many
pixels each figure rests on; ``n_invalid`` counts the input grid pixels of the band that were NaN.
"""

from __future__ import annotations

import numpy as np

from .resample import block_mean, replicate

COMPARISONS = ("consistency", "point", "point_bicubic")
SUMS = ("n", "sx", "sy", "sxx", "syy", "sxy", "sabs", "ssd", "n_invalid")  # x = input, y = output side
METRICS = ("rmse", "bias", "mae", "r")
NSUM = len(SUMS)


def _sums(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    ok = ~(np.isnan(x) | np.isnan(y))
    xv, yv = x[ok].astype(np.float64), y[ok].astype(np.float64)
    return np.array([xv.size, xv.sum(), yv.sum(), (xv * xv).sum(), (yv * yv).sum(), (xv * yv).sum(),
                     np.abs(yv - xv).sum(), ((yv - xv) ** 2).sum()])


def _sam_sums(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x, y: (C, ...) spectra; returns [pixels, sum of angles in degrees] over pixels valid in every band."""
    x = x.reshape(x.shape[0], -1).astype(np.float64)
    y = y.reshape(y.shape[0], -1).astype(np.float64)
    ok = ~(np.isnan(x).any(0) | np.isnan(y).any(0))
    x, y = x[:, ok], y[:, ok]
    num = (x * y).sum(0)
    den = np.sqrt((x * x).sum(0) * (y * y).sum(0))
    good = den > 0
    cos = np.clip(num[good] / den[good], -1.0, 1.0)
    return np.array([good.sum(), np.degrees(np.arccos(cos)).sum()])


def block_sums(x: np.ndarray, y: np.ndarray, factors: tuple[int, ...], scale: int,
               ref: np.ndarray | None = None) -> np.ndarray:
    """x: (T, C, h, w) input block (no halo); y: (T, C, h*s, w*s) output block; ref: the bicubic reference
    (same shape as y) or None (its rows stay 0).
    Returns (T, 3, C + 1, NSUM): per comparison, per band the sums; row C holds SAM [pixels, angle sum]."""
    t, c = x.shape[:2]
    out = np.zeros((t, len(COMPARISONS), c + 1, NSUM))
    for ti in range(t):
        degraded = np.stack([replicate(block_mean(y[ti, i].astype(np.float64), f * scale), f)
                             for i, f in enumerate(factors)])
        points = replicate(x[ti], scale)
        for ci in range(c):
            out[ti, 0, ci, :8] = _sums(x[ti, ci], degraded[ci])
            out[ti, 1, ci, :8] = _sums(points[ci], y[ti, ci])
            if ref is not None:
                out[ti, 2, ci, :8] = _sums(points[ci], ref[ti, ci])
            out[ti, :, ci, 8] = np.isnan(x[ti, ci]).sum()
        out[ti, 0, c, :2] = _sam_sums(x[ti], degraded)
        out[ti, 1, c, :2] = _sam_sums(points, y[ti, :c])
    return out


def finalize(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., K, C + 1, NSUM) sums -> metrics (..., K, C, 4) and SAM (..., K). Empty sets give NaN."""
    s = sums[..., :-1, :]
    n, sx, sy, sxx, syy, sxy, sabs, ssd = (s[..., i] for i in range(8))
    with np.errstate(invalid="ignore", divide="ignore"):
        mse = ssd / n  # not syy - 2 sxy + sxx: that cancels catastrophically near 0
        rmse = np.sqrt(np.maximum(mse, 0))
        bias = (sy - sx) / n
        mae = sabs / n
        cov = sxy / n - (sx / n) * (sy / n)
        vx = sxx / n - (sx / n) ** 2
        vy = syy / n - (sy / n) ** 2
        r = cov / np.sqrt(np.maximum(vx, 0) * np.maximum(vy, 0))
        r = np.where((vx <= 1e-18) | (vy <= 1e-18), np.nan, r)
        sam = sums[..., -1, 1] / sums[..., -1, 0]
    return np.stack([rmse, bias, mae, r], axis=-1), sam
