"""Predictors: the classical reference and the torch runner. Each pickles by its constructor arguments (frozen
dataclasses, no tensors); a torch model loads lazily, once per worker process, onto that worker's device."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ModelError
from ..ops.block import smooth_upsample
from ..ops.resample import fill_nan


@dataclass(frozen=True)
class BicubicPredictor:
    """Bicubic upsampling of each band from its native grid. With the pipeline's consistency layer this is
    "bicubic + iterative back-projection": classical, honest, and the reference the detail layer measures from."""

    name: str = "bicubic"
    fill_iters: int = 2

    def reach(self, factors: tuple[int, ...], scale: int) -> int:
        return 2 * max(factors) + self.fill_iters * max(factors)

    def predict(self, x: np.ndarray, factors: tuple[int, ...], scale: int) -> np.ndarray:
        return smooth_upsample(x, factors, scale, self.fill_iters)


def pick_device(spec: str = "auto") -> torch.device:
    """'auto': this process's CUDA device when there is one (dask-cuda/K8s set CUDA_VISIBLE_DEVICES per worker),
    else CPU."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {spec} requested but this machine has no CUDA GPU: use --device cpu or auto")
    return dev


_CACHE: dict[tuple[str, str], torch.nn.Module] = {}
_LOCK = threading.Lock()


def cached_model(name: str, device: torch.device) -> torch.nn.Module:
    """One instance per (model, device) per process, however many tasks and threads ask for it."""
    key = (name, str(device))
    with _LOCK:
        if key not in _CACHE:
            from .registry import build_model

            torch_threads()
            _CACHE[key] = build_model(name).to(device).eval()
        return _CACHE[key]


def loaded_models() -> list[tuple[str, str]]:
    return list(_CACHE)


@dataclass(frozen=True)
class TorchPredictor:
    """Runs a registered network over a block, cut into overlapping tiles that are batched on the device.

    The network maps (N, C, H, W) grid-resolution reflectance (coarse bands replicated, NaN filled) to
    (N, C, H*s, W*s). Tiles overlap by the network's receptive field, so tiling never changes the result."""

    name: str
    device: str = "auto"
    tile: int = 480  # core tile size in grid pixels (a multiple of 6); a whole chunk is usually one tile
    batch: int = 8
    ensemble: int | None = None  # self-ensemble size for models that have one (S2SRNet); None: the model's own

    def _entry(self) -> Any:
        from .registry import get_entry

        return get_entry(self.name)

    def reach(self, factors: tuple[int, ...], scale: int) -> int:
        return int(self._entry().receptive_field) + 2  # + the 2-pixel NaN fill applied before the network

    def predict(self, x: np.ndarray, factors: tuple[int, ...], scale: int) -> np.ndarray:
        entry = self._entry()
        entry.check(factors, scale)
        dev = pick_device(self.device)
        net = cached_model(self.name, dev)
        filled, _ = fill_nan(x.astype(np.float32))
        t, c, h, w = filled.shape
        rf = int(entry.receptive_field)
        out = np.empty((t, c, h * scale, w * scale), np.float32)
        # tiles: (t index, y0, x0) of core regions; each is read with rf pixels of context, reflected at edges
        pad = np.pad(filled, ((0, 0), (0, 0), (rf, rf), (rf, rf)), mode="symmetric")
        size = max(8, self.tile)
        tiles = [(ti, y0, x0) for ti in range(t) for y0 in range(0, h, size) for x0 in range(0, w, size)]
        with torch.inference_mode():
            for group in _by_shape(tiles, size, h, w):  # a batch holds tiles of one shape
                for i in range(0, len(group), self.batch):
                    self._run(net, dev, pad, out, group[i:i + self.batch], size, h, w, rf, scale, self.ensemble)
        return out

    @staticmethod
    def _run(net: torch.nn.Module, dev: torch.device, pad: np.ndarray, out: np.ndarray,
             group: list[tuple[int, int, int]], size: int, h: int, w: int, rf: int, scale: int,
             ensemble: int | None = None) -> None:
        if not group:
            return
        th, tw = min(size, h - group[0][1]), min(size, w - group[0][2])
        batch = np.stack([pad[ti, :, y0:y0 + th + 2 * rf, x0:x0 + tw + 2 * rf] for ti, y0, x0 in group])
        inp = torch.from_numpy(np.ascontiguousarray(batch)).to(dev, non_blocking=True)
        res = net(inp, scale) if ensemble is None or not hasattr(net, "ensemble") else net(inp, scale, ensemble)
        res = res.float().cpu().numpy()
        m = rf * scale
        for (ti, y0, x0), r in zip(group, res, strict=True):
            out[ti, :, y0 * scale:(y0 + th) * scale, x0 * scale:(x0 + tw) * scale] = r[:, m:m + th * scale,
                                                                                        m:m + tw * scale]


def _by_shape(group: list[tuple[int, int, int]], size: int, h: int, w: int) -> list[list[tuple[int, int, int]]]:
    shapes: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    for g in group:
        shapes.setdefault((min(size, h - g[1]), min(size, w - g[2])), []).append(g)
    return list(shapes.values())


def get_predictor(name: str, device: str = "auto", bands: tuple[str, ...] | None = None,
                  ensemble: int | None = None) -> BicubicPredictor | TorchPredictor:
    """``default``: the best shipped model that handles ``bands``; bicubic when none does."""
    if name == "bicubic":
        return BicubicPredictor()
    from .registry import default_model, get_entry

    if name == "default":
        name = default_model()
        if name == "bicubic" or (bands is not None and tuple(get_entry(name).bands) != tuple(bands)):
            return BicubicPredictor()
    get_entry(name)  # raises ModelError for unknown names
    return TorchPredictor(name=name, device=device, ensemble=ensemble)


def torch_threads() -> None:
    """Dask runs one task per worker thread; let torch use only its share of the cores."""
    n = int(os.environ.get("S2SR_TORCH_THREADS", "1"))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
