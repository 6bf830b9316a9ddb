"""Wald's-protocol degradation D_s: Gaussian blur, then s x s block averaging (``block_mean``)."""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter

from .resample import block_mean

BLURS = ("dsen2", "s2mtf")
MTF_AT_NYQUIST = 0.3  # Sentinel-2 MSI modulation transfer at the low-resolution Nyquist frequency


def blur_sigma(scale: int, blur: str) -> float:
    """Gaussian sigma in high-resolution pixels.

    ``dsen2``: 1/s, as DSen2 did (comparable with the literature). ``s2mtf``: the Gaussian whose MTF is 0.3 at the
    low-resolution Nyquist frequency f = 1/(2s) cycles/pixel: exp(-2 pi^2 sigma^2 f^2) = 0.3."""
    if blur == "dsen2":
        return 1.0 / scale
    if blur == "s2mtf":
        return math.sqrt(-math.log(MTF_AT_NYQUIST) * 2.0) * scale / math.pi
    raise ValueError(f"unknown blur {blur!r}: choose from {', '.join(BLURS)}")


def degrade(x: np.ndarray, scale: int, blur: str = "dsen2") -> np.ndarray:
    """(..., H, W) -> (..., H/s, W/s). Blur with mode 'reflect' (scipy), then block mean."""
    sigma = blur_sigma(scale, blur)
    lead = x.ndim - 2
    blurred = gaussian_filter(x.astype(np.float64), sigma=[0] * lead + [sigma, sigma], mode="reflect")
    return block_mean(blurred, scale)
