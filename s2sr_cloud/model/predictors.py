"""Predictors: the classical reference and the torch runner. Each pickles by its constructor arguments (frozen
dataclasses, no tensors); a torch model loads lazily, once per worker process, onto that worker's device."""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

import numpy as np
import torch

from ..config import env_number
from ..errors import ConfigError, ModelError
from ..ops import tops
from ..ops.block import cut_bands, groups, smooth_upsample
from ..ops.resample import fill_nan

# grid pixels cropped from each side: one for all sides, or (top, bottom, left, right); for all bands, or per native
# factor
Crop: TypeAlias = "int | tops.Sides | dict[int, int | tops.Sides]"


@dataclass(frozen=True)
class BicubicPredictor:
    """Bicubic upsampling of each band from its native grid. With the pipeline's consistency layer this is
    "bicubic + iterative back-projection": classical, honest, and the reference the detail layer measures from."""

    name: str = "bicubic"
    fill_iters: int = 2
    device: str = "auto"
    is_reference: ClassVar[bool] = True  # its output IS the consistent bicubic reference: the detail layer is 0
    loads_model: ClassVar[bool] = False
    supports_ensemble: ClassVar[bool] = False

    def reach(self, factors: tuple[int, ...], scale: int) -> tuple[int, ...]:
        """Per band, grid pixels of context: bicubic support (2 native pixels) + the NaN fill, at its native
        resolution."""
        return tuple((2 + self.fill_iters) * f for f in factors)

    def torch_device(self) -> torch.device:
        return pick_device(self.device)

    def predict(self, x: np.ndarray, factors: tuple[int, ...], scale: int) -> np.ndarray:
        return smooth_upsample(x, factors, scale, self.fill_iters)

    def predict_t(self, x: torch.Tensor, factors: tuple[int, ...], scale: int, crop: Crop = 0) -> torch.Tensor:
        """Torch path: (T, C, H, W) on the device -> the upsampling of x cropped by ``crop`` (per native factor
        when a dict; the result is cropped by the smallest and each group filled on its own region); band b is
        exact wherever it lies ``reach[b]`` grid pixels inside x."""
        from .nets import group_crops

        t, c, h, w = x.shape
        crops = group_crops(crop, factors)
        c0 = tops.least_sides(crops.values())
        out = x.new_empty(t, c, (h - c0[0] - c0[1]) * scale, (w - c0[2] - c0[3]) * scale, dtype=torch.float64)
        for f, ks, up in self.predict_bands_t(x, factors, scale, crops, band_batch=c):
            ay, ax = (crops[f][0] - c0[0]) * scale, (crops[f][2] - c0[2]) * scale
            out[:, [groups(factors)[f][k] for k in ks], ay:ay + up.shape[-2], ax:ax + up.shape[-1]] = up
        return out

    def predict_bands_t(self, x: torch.Tensor, factors: tuple[int, ...], scale: int, crops: dict[int, tops.Sides],
                        band_batch: int = 1) -> Iterator[tuple[int, list[int], torch.Tensor]]:
        """``predict_t`` ``band_batch`` bands at a time, group by group in ``groups(factors)`` order: yields (f,
        positions of the bands within group f, their upsampling on group f's region, x cropped by ``crops[f]``),
        each made when asked for. float64: the uint16 store's rounding is discontinuous, and float32 last-bit
        differences between a whole and a chunked run flipped 1-DN roundings of near-tied pixels (measured:
        tests/test_pipeline.py)."""
        h, w = x.shape[-2:]
        for f, idx in groups(factors).items():
            cf = crops[f]
            r = (2 + self.fill_iters) * f
            a = tuple(max(0, v - r) // f * f for v in cf)  # the native grid of f, with the upsampling's context
            nat = tops.block_mean(tops.crop_sides(x[:, idx], a).double(), f)
            filled, _ = tops.fill_nan(nat, self.fill_iters)
            oy, ox = (cf[0] - a[0]) * scale, (cf[2] - a[2]) * scale
            gh, gw = (h - cf[0] - cf[1]) * scale, (w - cf[2] - cf[3]) * scale
            for i in range(0, len(idx), band_batch):
                up = tops.bicubic(filled[:, i:i + band_batch], f * scale)[..., oy:oy + gh, ox:ox + gw]
                yield f, list(range(i, min(i + band_batch, len(idx)))), up
                del up  # one prediction held at a time


def exact_float32() -> None:
    """No TF32 on CUDA: on an H100 cuDNN's default TF32 convolutions moved outputs by 4.4e-4 reflectance from
    the CPU and broke chunk invariance (2.9e-5 between block sizes) -- measured, benchmarks/RESULTS.md. bf16 stays
    an explicit opt-in (``autocast``)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def pick_device(spec: str = "auto") -> torch.device:
    """'auto': this process's CUDA device when there is one (dask-cuda/K8s set CUDA_VISIBLE_DEVICES per worker),
    else CPU."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise ModelError(f"device {spec!r} is not a torch device: use 'cpu', 'cuda', 'cuda:N' or 'auto'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {spec!r} requested but this machine has no CUDA GPU: use device 'cpu' or 'auto'")
    if dev.type == "cuda":
        exact_float32()
    return dev


_CACHE: dict[tuple[str, str], torch.nn.Module] = {}
_LOCK = threading.Lock()
_THREADS: list[int | None] = [None]


def cached_model(name: str, device: torch.device) -> torch.nn.Module:
    """One instance per (model, device) per process, however many tasks and threads ask for it."""
    key = (name, str(device))
    with _LOCK:
        if key not in _CACHE:
            from .registry import build_model

            torch_threads(_THREADS[0])  # the current task's choice (a model loads inside the first task)
            if device.type == "cuda":
                exact_float32()
            _CACHE[key] = build_model(name).to(device).eval()
        return _CACHE[key]


@functools.lru_cache(maxsize=None)
def arch_has_ensemble(arch: str) -> bool:
    """Whether the network class ``nets.<arch>`` has a geometric self-ensemble (takes ``ensemble``)."""
    from . import nets

    return "ensemble" in inspect.signature(getattr(nets, arch)).parameters


def refuse_ensemble(name: str, ensemble: int | None) -> None:
    """An ensemble (other than a single pass) requested for a model without one: refuse, do not ignore it."""
    if ensemble is not None and ensemble != 1:
        raise ConfigError(f"--ensemble {ensemble}: model {name} has no self-ensemble; drop --ensemble")


@functools.lru_cache(maxsize=None)
def _arch_instance(name: str) -> torch.nn.Module:
    """An untrained instance of the model's architecture (for its reach; no weights are read)."""
    from . import nets
    from .registry import get_entry

    entry = get_entry(name)
    return getattr(nets, entry.arch)(**entry.kwargs)


def loaded_models() -> list[tuple[str, str]]:
    return list(_CACHE)


@dataclass(frozen=True)
class TorchPredictor:
    """Runs a registered network over a block on the worker's device (batched, ``inference_mode``).

    The network maps (N, C, H, W) grid-resolution reflectance (coarse bands replicated, NaN filled) to
    (N, C, H*s, W*s). The chunk function calls ``predict_t``: the whole block in one pass (the pipeline's chunk
    size comes from a memory budget, so no second tiling), S2SRNet band groups each on the window their own
    receptive field needs. ``tile`` (grid pixels) re-enables tiling for blocks larger than it; tiles overlap by
    the receptive field, so tiling never changes the result."""

    name: str
    device: str = "auto"
    tile: int | None = None
    batch: int = 8
    ensemble: int | None = None  # self-ensemble size for models that have one (S2SRNet); None: the model's own
    autocast: bool = False  # CUDA only: bf16 autocast of the network (off: it is not within 0.01 dB, RESULTS.md)
    is_reference: ClassVar[bool] = False
    loads_model: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.ensemble is not None and self.ensemble != 1 and not self.supports_ensemble:
            refuse_ensemble(self.name, self.ensemble)

    def _entry(self) -> Any:
        from .registry import get_entry

        return get_entry(self.name)

    @property
    def supports_ensemble(self) -> bool:
        """Whether the network has a self-ensemble; ``ensemble`` (1 at most, else refused) is ignored otherwise."""
        return arch_has_ensemble(self._entry().arch)

    def torch_device(self) -> torch.device:
        return pick_device(self.device)

    def reach(self, factors: tuple[int, ...], scale: int) -> tuple[int, ...]:
        """Per band, grid pixels of context the network needs (+ the 2-pixel NaN fill before it): S2SRNet counts
        each band group at its native resolution; other networks use the registry's receptive field."""
        entry = self._entry()
        if entry.arch == "S2SRNet":
            from . import nets

            per = nets.s2srnet_group_reach(_arch_instance(self.name))
            if tuple(factors) == tuple(nets.S2_FACTORS):
                return tuple(per[f] + 2 for f in factors)
        return (int(entry.receptive_field) + 2,) * len(factors)

    def predict_t(self, x: torch.Tensor, factors: tuple[int, ...], scale: int, crop: Crop = 0) -> torch.Tensor:
        """(T, C, H, W) float32 on the device -> the network output for x cropped by ``crop`` (per native factor
        when a dict: the result is cropped by the smallest; S2SRNet computes each group only on its own region,
        other networks compute everything); band b is exact wherever it lies ``reach[b]`` grid pixels inside x."""
        from . import nets

        entry = self._entry()
        entry.check(factors, scale)
        dev = x.device
        net = cached_model(self.name, dev)
        t, c, h, w = x.shape
        crops = nets.group_crops(crop, factors)
        c0 = tops.least_sides(crops.values())  # other networks compute everything
        if self.tile and max(h, w) > self.tile:  # memory forces a second tiling (not with the default chunks)
            y = torch.from_numpy(self.predict(x.cpu().numpy(), factors, scale)).to(dev)
            return tops.crop_sides(y, c0, scale)
        return self._forward(net, x, scale, crops)

    def _amp(self, dev: torch.device) -> Any:
        """bf16 autocast on CUDA when ``autocast`` is set, else nothing."""
        return (torch.autocast("cuda", dtype=torch.bfloat16) if self.autocast and dev.type == "cuda"
                else contextlib.nullcontext())

    def _forward(self, net: torch.nn.Module, x: torch.Tensor, scale: int, crops: dict[int, tops.Sides]
                 ) -> torch.Tensor:
        from . import nets

        dev = x.device
        filled, _ = tops.fill_nan(x, 2)
        with torch.inference_mode(), self._amp(dev):
            if isinstance(net, nets.S2SRNet):
                band_batch = 12 if dev.type == "cuda" else 1  # CPU: one band's features at a time (memory)
                y = nets.s2srnet_forward_region(net, filled, scale, crops, self.ensemble, band_batch)
            else:
                ens = self.ensemble if self.supports_ensemble else None
                y = tops.crop_sides(net(filled, scale) if ens is None else net(filled, scale, ens),
                                    tops.least_sides(crops.values()), scale)
        return y.float()

    def predict_bands_t(self, x: torch.Tensor, factors: tuple[int, ...], scale: int, crops: dict[int, tops.Sides],
                        band_batch: int = 1) -> Iterator[tuple[int, list[int], torch.Tensor]]:
        """``predict_t`` ``band_batch`` bands at a time, group by group in ``groups(factors)`` order: yields (f,
        positions of the bands within group f, their prediction on group f's region, x cropped by ``crops[f]``).
        S2SRNet makes each group's input once and each band's prediction only when asked for
        (``nets.s2srnet_band_regions``), so the caller holds ``band_batch`` bands' prediction at a time; other
        networks run once and are cut."""
        from . import nets

        self._entry().check(factors, scale)
        net = cached_model(self.name, x.device)
        order = tuple(groups(factors))
        if isinstance(net, nets.S2SRNet) and tuple(factors) == tuple(nets.S2_FACTORS) and not self.tile:
            filled, _ = tops.fill_nan(x, 2)
            bands = nets.s2srnet_band_regions(net, filled, scale, crops, self.ensemble, band_batch, order)
            while True:  # the contexts are entered around each step only: a generator must not leak them
                with torch.inference_mode(), self._amp(x.device):
                    step = next(bands, None)
                if step is None:
                    return
                f, ks, y = step
                del step
                yield f, ks, y.float()
                del y  # before the next bands are made: one prediction held at a time, not two
        yield from cut_bands(self.predict_t(x, factors, scale, crops), factors, scale, crops, band_batch)

    def predict(self, x: np.ndarray, factors: tuple[int, ...], scale: int) -> np.ndarray:
        entry = self._entry()
        entry.check(factors, scale)
        dev = pick_device(self.device)
        net = cached_model(self.name, dev)
        filled, _ = fill_nan(x.astype(np.float32))
        t, c, h, w = filled.shape
        rf = int(entry.receptive_field)
        size = max(8, self.tile or max(h, w))
        out = np.empty((t, c, h * scale, w * scale), np.float32)
        # tiles: (t index, y0, x0) of core regions; each is read with rf pixels of context, reflected at edges
        pad = np.pad(filled, ((0, 0), (0, 0), (rf, rf), (rf, rf)), mode="symmetric")
        tiles = [(ti, y0, x0) for ti in range(t) for y0 in range(0, h, size) for x0 in range(0, w, size)]
        ens = self.ensemble if self.supports_ensemble else None
        with torch.inference_mode():
            for group in _by_shape(tiles, size, h, w):  # a batch holds tiles of one shape
                for i in range(0, len(group), self.batch):
                    self._run(net, dev, pad, out, group[i:i + self.batch], size, h, w, rf, scale, ens)
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
        res = net(inp, scale) if ensemble is None else net(inp, scale, ensemble)
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
    """``default``: the best shipped model that handles ``bands``; bicubic when none does. An ensemble for a model
    without one is refused (ConfigError) rather than ignored."""
    if name == "bicubic":
        refuse_ensemble("bicubic", ensemble)
        return BicubicPredictor()
    from .registry import default_model, get_entry

    if name == "default":
        name = default_model()
        if name == "bicubic" or (bands is not None and tuple(get_entry(name).bands) != tuple(bands)):
            refuse_ensemble("bicubic", ensemble)
            return BicubicPredictor()
    get_entry(name)  # raises ModelError for unknown names
    return TorchPredictor(name=name, device=device, ensemble=ensemble)  # refuses an ensemble it cannot run


def env_torch_threads() -> int:
    """``S2SR_TORCH_THREADS`` (default 1): torch threads per task; a bad value is a ConfigError."""
    return env_number("S2SR_TORCH_THREADS", 1, int)


def torch_threads(n: int | None = None) -> None:
    """Dask runs one task per worker thread; let torch use only its share of the cores: ``n`` (the graph's
    choice when there are fewer chunks than worker threads, capped at this machine's cores), else
    ``env_torch_threads()``."""
    _THREADS[0] = n
    n = min(n, os.cpu_count() or 1) if n else env_torch_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
