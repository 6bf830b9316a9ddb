"""Image-quality metrics for Wald's-protocol evaluation. Arrays are (C, H, W) reflectance."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from .resample import block_mean

PEAK = 1.0  # PSNR peak: reflectance 1.0


def rmse(ref: np.ndarray, est: np.ndarray) -> float:
    return float(np.sqrt(np.mean((ref - est) ** 2)))


def psnr(ref: np.ndarray, est: np.ndarray) -> float:
    mse = np.mean((ref - est) ** 2)
    return float(10 * np.log10(PEAK**2 / max(mse, 1e-20)))


def ssim(ref: np.ndarray, est: np.ndarray) -> float:
    """Mean SSIM over bands, Gaussian window sigma 1.5, constants for data range 1.0 (Wang et al. 2004)."""
    c1, c2 = (0.01 * PEAK) ** 2, (0.03 * PEAK) ** 2
    vals = []
    for r, e in zip(ref, est, strict=True):
        def g(a: np.ndarray) -> np.ndarray:
            return gaussian_filter(a, 1.5, mode="reflect", truncate=3.5)

        mr, me = g(r), g(e)
        vr, ve, cov = g(r * r) - mr**2, g(e * e) - me**2, g(r * e) - mr * me
        s = ((2 * mr * me + c1) * (2 * cov + c2)) / ((mr**2 + me**2 + c1) * (vr + ve + c2))
        vals.append(s.mean())
    return float(np.mean(vals))


def sam_deg(ref: np.ndarray, est: np.ndarray) -> float:
    """Mean spectral angle in degrees over pixels (bands are the spectrum)."""
    num = (ref * est).sum(0)
    den = np.sqrt((ref * ref).sum(0) * (est * est).sum(0))
    ok = den > 0
    return float(np.degrees(np.arccos(np.clip(num[ok] / den[ok], -1, 1))).mean())


def ergas(ref: np.ndarray, est: np.ndarray, scale: int) -> float:
    """100 / s * sqrt(mean_b (RMSE_b / mean_b)^2), s = resolution ratio low/high."""
    terms = [(np.sqrt(np.mean((r - e) ** 2)) / max(abs(r.mean()), 1e-12)) ** 2 for r, e in zip(ref, est, strict=True)]
    return float(100.0 / scale * np.sqrt(np.mean(terms)))


def consistency(lr: np.ndarray, est: np.ndarray, scale: int) -> tuple[float, float]:
    """(L1, SAM in degrees) between a method's input and its output averaged back over each input pixel."""
    back = block_mean(est, scale)
    return float(np.mean(np.abs(back - lr))), sam_deg(lr, back)


def footprint_sums(y: np.ndarray, k: int) -> tuple[float, int, float, int]:
    """(sum, count) of absolute neighbour differences across the boundaries of the k x k input footprints and
    (sum, count) inside them, both axes, over (..., H, W) ``y`` (H, W multiples of k)."""
    dx, dy = np.abs(np.diff(y, axis=-1)), np.abs(np.diff(y, axis=-2))
    bx = (np.arange(1, y.shape[-1]) % k) == 0  # the difference between columns j-1 and j crosses a boundary
    by = (np.arange(1, y.shape[-2]) % k) == 0
    b = dx[..., bx].sum() + dy[..., by, :].sum()
    nb = dx[..., bx].size + dy[..., by, :].size
    i = dx[..., ~bx].sum() + dy[..., ~by, :].sum()
    ni = dx[..., ~bx].size + dy[..., ~by, :].size
    return float(b), int(nb), float(i), int(ni)


def trace_ratio(sums: tuple[float, int, float, int] | np.ndarray) -> float:
    """``footprint_sums`` (possibly added up over images or bands) -> the footprint trace."""
    b, nb, i, ni = (float(v) for v in sums)
    return (b / nb) / (i / ni) if nb and ni and i > 0 else float("nan")


def footprint_trace(y: np.ndarray, k: int) -> float:
    """Mean absolute gradient across input-footprint boundaries / mean absolute gradient inside footprints.
    1.0: the output shows no trace of the input pixel grid; > 1: the grid shows (block edges)."""
    return trace_ratio(footprint_sums(y, k))
