"""Readers for native multi-resolution evaluation/training material: BigEarthNet patch folders (one GeoTIFF per
band), DSen2 ``.mat`` crops (HDF5) and UP42 ``data_{10,20,60}.npy`` crops. All return reflectance (DN / 1e4) per
canonical band on its NATIVE grid, cropped so that 10/20/60 m grids nest exactly."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..bands import BY_NAME, BY_RESOLUTION
from ..errors import ConfigError

B10, B20, B60 = BY_RESOLUTION[10], BY_RESOLUTION[20], BY_RESOLUTION[60]  # band groups, from the band table
FACTOR = {b: BY_NAME[b].resolution // 10 for b in B10 + B20 + B60}


@dataclass(frozen=True)
class Scene:
    name: str
    bands: dict[str, np.ndarray]  # float64 reflectance on each band's native grid

    def crop_multiple(self, m: int) -> "Scene":
        """Crop (top-left anchored) so the 10 m grid is a multiple of ``m`` (m a multiple of 6)."""
        h, w = self.bands["B02"].shape
        h, w = h - h % m, w - w % m
        return Scene(self.name, {b: a[: h // FACTOR[b], : w // FACTOR[b]] for b, a in self.bands.items()})


def _nest(bands: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    h = min(min(a.shape[0] * FACTOR[b] for b, a in bands.items()), 10**9)
    w = min(a.shape[1] * FACTOR[b] for b, a in bands.items())
    h, w = h - h % 6, w - w % 6
    return {b: np.asarray(a[: h // FACTOR[b], : w // FACTOR[b]], np.float64) for b, a in bands.items()}


def read_bigearthnet(folder: Path) -> Scene:
    """One GeoTIFF per band on its native grid: BigEarthNet patches (``*_B02.tif``) or a tile's COGs (``B02.tif``)."""
    import rasterio

    out = {}
    for b in B10 + B20 + B60:
        hits = sorted(folder.glob(f"*_{b}.tif")) or sorted(folder.glob(f"{b}.tif"))
        if not hits:
            raise ConfigError(f"{folder}: no file ending _{b}.tif or named {b}.tif (expected a BigEarthNet-style "
                              "patch folder or a folder of per-band COGs)")
        with rasterio.open(hits[0]) as src:
            out[b] = src.read(1).astype(np.float64) / 1e4
    return Scene(folder.name, _nest(out))


def read_dsen2_mat(path: Path) -> Scene:
    import h5py

    with h5py.File(path, "r") as f:
        def get(name: str) -> np.ndarray:
            return np.asarray(f[name], np.float64).transpose(0, 2, 1) / 1e4  # MATLAB order: swap last two axes

        im10, im20, im60 = get("im10"), get("im20"), get("im60")
    out = dict(zip(("B04", "B03", "B02", "B08"), im10, strict=True))
    out.update(zip(B20, im20, strict=True))
    out.update(zip(B60, im60, strict=True))
    return Scene(path.stem, _nest(out))


def read_up42(folder: Path) -> Scene:
    d10 = np.load(folder / "data_10.npy").astype(np.float64) / 1e4
    d20 = np.load(folder / "data_20.npy").astype(np.float64) / 1e4
    d60 = np.load(folder / "data_60.npy").astype(np.float64) / 1e4
    out = dict(zip(("B04", "B03", "B02", "B08"), d10.transpose(2, 0, 1), strict=True))
    out.update(zip(B20, d20.transpose(2, 0, 1), strict=True))
    out.update(zip(B60, d60.transpose(2, 0, 1), strict=True))
    return Scene(folder.name, _nest(out))


def read_scene(path: str | Path) -> Scene:
    p = Path(path)
    if p.suffix == ".mat" and p.is_file():
        return read_dsen2_mat(p)
    if p.is_dir() and (p / "data_10.npy").exists():
        return read_up42(p)
    if p.is_dir():
        return read_bigearthnet(p)
    raise ConfigError(f"{path}: expected a BigEarthNet-style folder, an UP42 folder or a DSen2 .mat file")
