"""The chunk function: one block of input (with halo) -> the super-resolved block (halo trimmed) and its statistics
sums. numpy at the edges only: the block goes to the predictor's device once, and fill, network, consistency
projection, uint16 quantisation, detail layer and statistics sums all run there in torch (``ops.tops``).

The pipeline calls this through dask; tests call it directly on whole arrays. Every predictor's output goes
through the same consistency layer here, so the guarantee does not depend on the model.

Halo arithmetic (``ops.halo.required_halo``): the predictor guarantees band b wherever it lies ``reach[b]`` grid
pixels inside the block; the consistency layer of band b (native factor f) reads the prediction 2 native pixels
per smooth step around each output pixel, i.e. ``post_reach`` = 2 * smooth_iters * f grid pixels, and the input
(2 * smooth_iters + fill_iters) * f; the detail layer's bicubic reference 2 native pixels more.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np
import torch

from .._process import release_memory
from . import tops
from .stats import COMPARISONS, NSUM
from .resample import SMOOTH_ITERS, bicubic, block_mean, fill_nan, project, quantize_consistent, replicate

DN_MAX = 65534  # the largest DN of a valid pixel
DN_FILL = 65535  # the uint16 store's fill value: nodata


class Predictor(Protocol):
    """Anything that super-resolves a (T, C, H, W) block of grid-resolution reflectance (NaN = nodata).

    ``factors[c]`` grid pixels make one native pixel of band c. ``reach`` gives, per band, the grid pixels of
    context the predictor needs around a pixel (the pipeline's halo covers it plus the consistency layer's).
    ``predict_t`` runs on a torch tensor on ``torch_device()`` and returns the prediction for the block cropped by
    ``crop`` grid pixels on each side (an int or a (top, bottom, left, right) tuple, or one per native factor:
    the result is then cropped by the smallest and group f need only be computed on its own region); a side the
    predictor is asked to keep whole (crop 0) is the edge of the whole array, where the prediction is what the
    predictor gives at an array edge. ``predict`` is the numpy convenience for whole arrays. A predictor may also
    have ``predict_bands_t`` (a few bands at a time, group by group, each on its group's region:
    ``band_predictions``), which the chunk function then uses, so it holds a band's prediction at a time.

    ``is_reference``: the prediction IS the consistent bicubic reference the detail layer measures from (the
    detail layer is then zero). ``loads_model``: a network each worker process loads once (the pipeline loads it
    as workers join). ``device``: 'auto', 'cpu' or 'cuda[:n]', resolved in each process by ``torch_device``."""

    name: str
    device: str
    is_reference: ClassVar[bool]
    loads_model: ClassVar[bool]

    def reach(self, factors: tuple[int, ...], scale: int) -> tuple[int, ...]: ...

    def torch_device(self) -> torch.device: ...

    def predict_t(self, x: torch.Tensor, factors: tuple[int, ...], scale: int,
                  crop: int | tops.Sides | dict[int, int | tops.Sides] = 0) -> torch.Tensor: ...

    def predict(self, x: np.ndarray, factors: tuple[int, ...], scale: int) -> np.ndarray: ...


@dataclass(frozen=True)
class BlockSpec:
    scale: int
    factors: tuple[int, ...]
    halo: int  # grid pixels of context on each side, trimmed from the result
    fill_iters: int = 2
    smooth_iters: int = SMOOTH_ITERS
    quantum: tuple[float, float] | None = None  # (scale_factor, add_offset) of integer storage
    detail: bool = True  # append the detail layer as an extra channel

    def quanta(self, channels: int) -> list[tuple[float, float]]:
        """(scale_factor, add_offset) of each of ``channels`` output channels in uint16 DN: the bands'
        ``quantum``; the detail layer (the last channel, when ``detail``) is non-negative, so its offset is 0 (the
        store encodes it so: ``io.store.encoding_for``)."""
        assert self.quantum is not None
        sf, off = self.quantum
        return [(sf, 0.0 if self.detail and i == channels - 1 else off) for i in range(channels)]


def decode_dn(y: np.ndarray, spec: BlockSpec) -> np.ndarray:
    """The chunk function's uint16 DN output (``spec.quantum`` set) -> float32 reflectance, NaN at ``DN_FILL``:
    the values the float path gives (float64 ``dn * sf + off`` rounded to float32), channel by channel."""
    out = np.empty(y.shape, np.float32)
    for i, (sf, off) in enumerate(spec.quanta(y.shape[1])):
        d = y[:, i]
        out[:, i] = np.where(d == DN_FILL, np.float32(np.nan), (d * sf + off).astype(np.float32))
    return out


def post_reach(f: int, smooth_iters: int = SMOOTH_ITERS) -> int:
    """Grid pixels of prediction the consistency layer of a native-f band reads around an output pixel."""
    return 2 * smooth_iters * f


def input_reach(f: int, fill_iters: int = 2, smooth_iters: int = SMOOTH_ITERS, detail: bool = True) -> int:
    """Grid pixels of raw input the consistency layer (and the detail layer's bicubic reference) read."""
    return (2 * smooth_iters + fill_iters + (2 if detail else 0)) * f


# ---------------------------------------------------------------------------------------------------- numpy
def smooth_upsample(x: np.ndarray, factors: tuple[int, ...], scale: int, fill_iters: int = 2) -> np.ndarray:
    """Each band bicubic-upsampled from its own native grid (not from the replicated grid): the classical
    reference every model is compared against (numpy; the chunk function uses the torch twin)."""
    t, c, h, w = x.shape
    out = np.empty((t, c, h * scale, w * scale), np.float64)
    for i, f in enumerate(factors):
        filled, _ = fill_nan(block_mean(x[:, i].astype(np.float64), f), fill_iters)
        out[:, i] = bicubic(filled, f * scale)
    return out


def consistent_np(y: np.ndarray, x: np.ndarray, factors: tuple[int, ...], spec: BlockSpec) -> np.ndarray:
    """The float64 numpy consistency layer (the reference the torch layer is tested against)."""
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


# ---------------------------------------------------------------------------------------------------- torch
TIMINGS: dict[str, float] = {}  # seconds per part of the chunk function, when timing is on (benchmarks)
_TIMING = [False]


def set_timing(on: bool) -> None:
    _TIMING[0] = on
    TIMINGS.clear()


class _Timer:
    def __init__(self, part: str, dev: torch.device) -> None:
        self.part, self.dev = part, dev

    def __enter__(self) -> None:
        if _TIMING[0]:
            if self.dev.type == "cuda":
                torch.cuda.synchronize(self.dev)
            self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        if _TIMING[0]:
            if self.dev.type == "cuda":
                torch.cuda.synchronize(self.dev)
            TIMINGS[self.part] = TIMINGS.get(self.part, 0.0) + time.perf_counter() - self.t0


def to_device(block: np.ndarray, dev: torch.device) -> torch.Tensor:
    """float32 host array -> device tensor (pinned host memory + non_blocking copy on CUDA)."""
    t = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))
    if dev.type == "cuda":
        return t.pin_memory().to(dev, non_blocking=True)
    return t


def to_host(t: torch.Tensor) -> np.ndarray:
    """Device tensor -> numpy. On CUDA through page-locked memory from torch's caching host allocator (a
    pageable copy of a 330 MB x4 block took 0.2 s on an H100, most of the chunk's time); the array keeps its
    buffer alive, so nothing is reused under it."""
    if t.device.type != "cuda":
        return t.numpy()
    host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    host.copy_(t, non_blocking=True)
    torch.cuda.current_stream(t.device).synchronize()
    return host.numpy()


def _crop(a: torch.Tensor, m: int) -> torch.Tensor:
    return a if m == 0 else a[..., m:a.shape[-2] - m, m:a.shape[-1] - m]


def _native_group(x: torch.Tensor, f: int, spec: BlockSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """One native-factor group's consistency target: x raw input over core +- ``input_reach(f)`` (grid pixels)
    -> (filled native pixels in float64, NaN mask) over core +- (2 * smooth [+ 2 with the detail layer]) native
    pixels (the fill's reach cropped away)."""
    filled, mask = tops.fill_nan(tops.block_mean(x.double(), f), spec.fill_iters)
    return _crop(filled, spec.fill_iters), _crop(mask, spec.fill_iters)


def _consistent_into(y: torch.Tensor, chans: list[int], pred: torch.Tensor, filled: torch.Tensor,
                     mask: torch.Tensor, k: int, spec: BlockSpec, quantum: tuple[float, float] | None,
                     mirror: tops.Sides = (0, 0, 0, 0)) -> None:
    """Bands ``chans`` of the output ``y`` from their prediction (footprint k fine pixels): pred over core +- 2 *
    smooth native pixels (fine pixels), once padded by ``mirror`` (``tops.pad_sides``: the margin beyond an area
    edge, mirrored strip by strip as it is read); filled, mask: their native target over the same region. Writes
    the consistent (and quantised) core, NaN (DN_FILL) on nodata, in strips of rows (``tops.project_strips``):
    the float64 temporaries are a strip's, not the band's."""
    m = 2 * spec.smooth_iters
    # Quantised output: float64 projection. In float32 the last-bit differences between a whole-array and a
    # chunked run (reductions over different shapes) flip the rounding of near-tied pixels: 1 DN (1e-4) of chunk
    # dependence, measured on the sample (tests/test_pipeline.py). Float output: float32 (<= 1e-5 holds).
    dt = torch.float64 if quantum is not None else pred.dtype
    wn = filled.shape[-1]
    rows = strip_native_rows((wn - 2 * m) * k, k, pred.shape[0] * pred.shape[1], pred.device)
    for r0, r1, yc in tops.project_strips(pred, filled, k, spec.smooth_iters, crop=m, rows=rows, dtype=dt,
                                          pads=mirror):
        fs, ms = filled[..., m + r0:m + r1, m:wn - m], mask[..., m + r0:m + r1, m:wn - m]
        if quantum is not None:  # uint16 DN, DN_FILL on nodata; by footprint (tops.quantize_blocks)
            sf, off = quantum
            yc = yc.double().sub_(off).div_(sf)  # (yc: this strip's own float64 tensor)
            q = tops.quantize_blocks(yc, torch.round((fs - off) / sf), k)
            del yc
            q = q.clamp_(0, DN_MAX).masked_fill_(ms[..., None], DN_FILL)
            for j, ci in enumerate(chans):  # band by band: torch has no list indexing into uint16
                dst = y[:, ci, r0 * k:r1 * k]
                dst.view(*dst.shape[:-2], r1 - r0, k, -1, k).copy_(tops.unblock(q[:, j], k))  # (to uint16)
        else:
            out = yc.masked_fill(tops.replicate(ms, k), float("nan")).float()
            del yc
            for j, ci in enumerate(chans):
                y[:, ci, r0 * k:r1 * k] = out[:, j]


def strip_native_rows(w: int, k: int, planes: int, device: torch.device) -> int:
    """Native rows (k fine rows each) per strip of the consistency and detail layers: about ``STRIP_OUTPUT_PX``
    output pixels (``planes`` bands x time steps of ``w`` fine pixels a row) on CPU, more on a CUDA device
    (``tops.strip_px``)."""
    px = tops.strip_px(STRIP_OUTPUT_PX, STATS_BYTES_PER_PX, device.type, tops.device_memory(device))
    return max(1, px // max(1, w * k * planes))


def _decode_t(dn: torch.Tensor, quantum: tuple[float, float]) -> torch.Tensor:
    """uint16 DN -> float32 reflectance, NaN at DN_FILL (``decode_dn``'s torch twin, the same values): a look-up
    in the table of all 65536 codes (one gather; the arithmetic per pixel was 7 passes, 4x slower on CPU)."""
    return torch.index_select(_decode_table(*quantum, dn.device), 0, dn.reshape(-1).to(torch.int32)
                              ).reshape(dn.shape)


@functools.lru_cache(maxsize=8)
def _decode_table(sf: float, off: float, device: torch.device) -> torch.Tensor:
    """float32 reflectance of every uint16 code, NaN at DN_FILL."""
    d = torch.arange(DN_FILL + 1, dtype=torch.int32, device=device)
    return (d.double() * sf + off).float().masked_fill(d == DN_FILL, float("nan"))


def _encode_t(v: torch.Tensor, quantum: tuple[float, float]) -> torch.Tensor:
    """float reflectance -> uint16 DN as the store encodes it (``io.store._encode``: float64, with the scale and
    offset as the store records them, in float32; round half to even, clipped to 0 ... DN_MAX, DN_FILL on NaN)."""
    sf, off = (float(np.float32(v)) for v in quantum)
    dn = torch.round((v.double() - off) / sf).clamp(0, DN_MAX)
    return dn.masked_fill(torch.isnan(v), DN_FILL).to(torch.uint16)


def groups(factors: tuple[int, ...]) -> dict[int, list[int]]:
    """Band indices by native factor."""
    out: dict[int, list[int]] = {}
    for i, f in enumerate(factors):
        out.setdefault(int(f), []).append(i)
    return out


def cut_groups(pred: torch.Tensor, factors: tuple[int, ...], scale: int, crops: dict[int, tops.Sides]
               ) -> Iterator[tuple[int, torch.Tensor]]:
    """A prediction of all bands cropped by the smallest of ``crops`` -> (f, group f's bands cropped by
    ``crops[f]``) per native group, in ``groups`` order."""
    c0 = tops.least_sides(crops.values())
    for f, idx in groups(factors).items():
        yield f, tops.crop_sides(pred[:, idx], tuple(a - b for a, b in zip(crops[f], c0, strict=True)), scale)


def cut_bands(pred: torch.Tensor, factors: tuple[int, ...], scale: int, crops: dict[int, tops.Sides],
              band_batch: int) -> Iterator[tuple[int, list[int], torch.Tensor]]:
    """A prediction of all bands (as ``cut_groups`` takes it) -> (f, positions within group f, those bands on
    group f's region), ``band_batch`` bands at a time, in ``groups`` order."""
    for f, g in cut_groups(pred, factors, scale, crops):
        for i in range(0, g.shape[1], band_batch):
            yield f, list(range(i, min(i + band_batch, g.shape[1]))), g[:, i:i + band_batch]


def band_predictions(predictor: Predictor, x: torch.Tensor, factors: tuple[int, ...], scale: int,
                     crops: dict[int, tops.Sides], band_batch: int) -> Iterator[tuple[int, list[int], torch.Tensor]]:
    """(f, positions of the bands within group f, their prediction on group f's own region), ``band_batch``
    bands at a time, group by group in ``groups`` order: from the predictor's ``predict_bands_t`` when it has one
    (each made only when asked for), else cut from one ``predict_t`` (run at the first request, inside the
    caller's network timer)."""
    by_band = getattr(predictor, "predict_bands_t", None)
    if by_band is not None:
        yield from by_band(x, factors, scale, crops, band_batch)
    else:
        yield from cut_bands(predictor.predict_t(x, factors, scale, crops), factors, scale, crops, band_batch)


class _Detail:
    """The detail layer of a block, band by band: RMS over bands of (output - consistent bicubic reference),
    accumulated in strips of rows into a float32 sum of squares per output pixel (the count of bands is the
    output's own: its valid bands), and the reference's point-comparison sums per band (the ``point_bicubic``
    statistics)."""

    def __init__(self, x: torch.Tensor, h: int, spec: BlockSpec, y: torch.Tensor) -> None:
        t, c = x.shape[:2]
        self.xcore, self.spec, self.y = _crop(x, h), spec, y
        self.acc = torch.zeros((t, *y.shape[-2:]), dtype=torch.float32, device=y.device)
        self.ref_sums = torch.zeros((t, c, tops.NSUM), dtype=torch.float64, device=y.device)

    def values(self, ci: int, o0: int, o1: int) -> torch.Tensor:
        """Output band ci, rows o0:o1, as float32 reflectance (NaN on nodata)."""
        q = self.spec.quantum
        v = self.y[:, ci, o0:o1]
        return v if q is None else _decode_t(v, q)

    def add(self, chans: list[int], native: torch.Tensor, f: int) -> None:
        """Output bands ``chans`` (already written) against their consistent bicubic reference, made from their
        native pixels ``native`` (filled, core +- 2 * smooth + 2 native pixels)."""
        s, si = self.spec.scale, self.spec.smooth_iters
        k = f * s
        rows = strip_native_rows(self.y.shape[-1], k, len(chans) * self.y.shape[0], self.y.device)
        for r0, r1, ref in tops.consistent_bicubic_strips(native, k, si, crop=2 * si + 2, rows=rows):
            o0, o1 = r0 * k, r1 * k
            yv = torch.stack([self.values(ci, o0, o1) for ci in chans], 1)
            ref = ref.masked_fill(torch.isnan(yv), float("nan"))  # NaN where the output is (nodata footprints)
            for j, ci in enumerate(chans):
                self.ref_sums[:, ci] += point_sums_t(self.xcore[:, ci, r0 * f:r1 * f], ref[:, j], s)
            d = (yv - ref) ** 2
            del yv, ref
            ok = ~torch.isnan(d)
            self.acc[:, o0:o1] += torch.where(ok, d, torch.zeros((), device=d.device)).sum(1)

    def finish(self) -> torch.Tensor:
        """Write the detail layer (the output's last channel), in strips; returns the reference's sums."""
        c = self.ref_sums.shape[1]
        q = self.spec.quantum
        rows = strip_native_rows(self.y.shape[-1], 1, self.y.shape[0], self.y.device)
        for o0, o1 in tops.spans(self.y.shape[-2], rows):
            valid = torch.zeros_like(self.acc[:, o0:o1], dtype=torch.int32)
            for ci in range(c):
                v = self.y[:, ci, o0:o1]
                valid += (~torch.isnan(v) if q is None else v != DN_FILL).to(torch.int32)
            d = torch.sqrt(self.acc[:, o0:o1] / valid)  # 0/0 -> NaN where every band is nodata
            self.y[:, c, o0:o1] = d if q is None else _encode_t(d, self.spec.quanta(c + 1)[c])
        self.acc = None
        return self.ref_sums


def block_t(x: torch.Tensor, predictor: Predictor, spec: BlockSpec, pads: int | tops.Sides | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """The chunk function on the device: x (T, C, H, W) float32 with ``pads`` (top, bottom, left, right; default
    ``spec.halo`` on each) grid pixels of context -> (y (T, C[+1], core * s), sums (T, 3, C+1, NSUM) float64).
    y is uint16 DN when ``spec.quantum`` is set (the store's encoding, ``BlockSpec.quanta``: half the bytes of
    float32 to hold, copy to the host and write; ``decode_dn`` gives the reflectance), else float32. The third
    comparison is the point comparison of the consistent bicubic reference (the detail layer's), when
    ``spec.detail``.

    A side with no context (0) is the edge of the whole area: the network runs up to it, no further (no mirrored
    halo for it to compute), and the consistency and detail layers read their margin beyond it from the mirror
    image of the prediction and of the input. Every chunking of an area has the same edges, so the result stays
    chunk invariant; and a one-chunk area costs the network what the bare forward on the area costs."""
    s, si, fi = spec.scale, spec.smooth_iters, spec.fill_iters
    pads = tops.sides(spec.halo if pads is None else pads)
    # the consistency layer's context: at least its own reach (a halo smaller than that is mirrored, inexact near
    # chunk edges: only for hand-made specs)
    h = max(spec.halo, max(input_reach(f, fi, si, spec.detail) for f in spec.factors))
    inner = tuple(h - p if p else 0 for p in pads)  # inner sides short of h: mirrored (before the network)
    outer = tuple(0 if p else h for p in pads)  # area edges: mirrored after the network
    x = tops.pad_sides(x, inner)
    t, c = x.shape[:2]
    ch, cw = x.shape[-2] - sum(h - o for o in outer[:2]), x.shape[-1] - sum(h - o for o in outer[2:])
    dev = x.device
    pr = {f: post_reach(f, si) for f in set(spec.factors)}
    with torch.inference_mode():
        # group f is computed only on core +- pr[f] (what its consistency layer reads), and only up to an area
        # edge; ``nb`` bands at a time (each made when the loop asks for it, freed after its consistency and detail
        # layers), and those layers run in strips of rows: what a block holds grows with its output (uint16 DN and
        # the detail layer's sums), not with a band group's float prediction and float64 temporaries
        nb = c if dev.type == "cuda" else 1  # bands per step: on CPU one, so the temporaries stay small
        crops = {f: tuple(0 if o else h - r for o in outer) for f, r in pr.items()}
        preds = band_predictions(predictor, x, spec.factors, s, crops, nb)
        x = tops.pad_sides(x, outer)  # now h pixels of context on every side
        q = spec.quantum
        y = torch.empty((t, c + (1 if spec.detail else 0), ch * s, cw * s),
                        dtype=torch.float32 if q is None else torch.uint16, device=dev)
        detail = _Detail(x, h, spec, y) if spec.detail and not predictor.is_reference else None
        e = 2 if spec.detail else 0  # the detail layer's reference reads 2 native pixels more
        for f, idx in groups(spec.factors).items():
            with _Timer("consistency", dev):
                filled, mask = _native_group(_crop(x[:, idx], h - input_reach(f, fi, si, spec.detail)), f, spec)
            mirror = tuple(pr[f] * s if o else 0 for o in outer)  # the margin beyond the area edges
            done = 0
            while done < len(idx):
                # the previous bands' strip temporaries (tens of MB each) freed in the allocator's heaps: back to
                # the OS before the network allocates again (in a dask worker, whose allocator keeps freed memory
                # under 32 MiB for reuse, they added 0.3-0.5 GiB to a 732 px x10 block's peak)
                release_memory()
                with _Timer("network", dev):
                    pf, ks, pred = next(preds)
                assert pf == f and ks[0] == done, (pf, f, ks, done)
                sl, chans = slice(ks[0], ks[-1] + 1), [idx[k] for k in ks]
                done += len(ks)
                with _Timer("consistency", dev):
                    _consistent_into(y, chans, pred, _crop(filled[:, sl], e), _crop(mask[:, sl], e), f * s, spec, q,
                                     mirror)
                    del pred
                if detail is not None:
                    with _Timer("detail", dev):
                        detail.add(chans, filled[:, sl], f)
            del filled, mask
        if spec.detail:
            with _Timer("detail", dev):
                if detail is None:
                    y[:, c] = 0  # the reference itself: nothing added (0 is DN 0 too: the detail's offset is 0)
                    ref_sums = None
                else:
                    ref_sums = detail.finish()
        with _Timer("statistics", dev):
            sums = block_sums_t(_crop(x, h), y[:, :c], spec.factors, s, q)
            if spec.detail:
                if ref_sums is None:  # bicubic: the output is its own reference
                    sums[:, 2, :c, :tops.NSUM] = sums[:, 1, :c, :tops.NSUM]
                    sums[:, 2, c, :2] = sums[:, 1, c, :2]  # and its SAM
                else:
                    sums[:, 2, :c, :tops.NSUM] = ref_sums
    return y, sums


STRIP_OUTPUT_PX = 2**20  # output pixels per strip of the statistics sums on CPU (their float64 temporaries)
STATS_BYTES_PER_PX = 64  # those temporaries per output pixel: about 8 float64 copies of one band


def strip_rows(w: int, scale: int, align: int = 1, device: torch.device | None = None) -> int:
    """Input rows per statistics strip: about ``STRIP_OUTPUT_PX`` output pixels on CPU, more on a CUDA
    ``device`` (``tops.strip_px``: on an H100 a default block's sums took 0.12-0.16 s in 1 M px strips), a
    multiple of ``align``."""
    dev = device or torch.device("cpu")
    px = tops.strip_px(STRIP_OUTPUT_PX, STATS_BYTES_PER_PX, dev.type, tops.device_memory(dev))
    return max(align, px // (w * scale * scale) // align * align)


def point_sums_t(x: torch.Tensor, y: torch.Tensor, scale: int) -> torch.Tensor:
    """Point-comparison sums of one band: x (T, h, w) input, y (T, h*s, w*s) -> (T, tops.NSUM), in strips."""
    t, h, w = x.shape
    s = scale
    strip = strip_rows(w, s, device=x.device)
    out = torch.zeros((t, tops.NSUM), dtype=torch.float64, device=x.device)
    for ti in range(t):
        for r0 in range(0, h, strip):
            r1 = min(h, r0 + strip)
            out[ti] += tops.point_sums(x[ti, r0:r1], y[ti, r0 * s:r1 * s], s)
    return out


def block_sums_t(x: torch.Tensor, y: torch.Tensor, factors: tuple[int, ...], scale: int,
                 quantum: tuple[float, float] | None = None) -> torch.Tensor:
    """Torch twin of ``ops.stats.block_sums``: x (T, C, h, w) input core, y (T, C, h*s, w*s) output (uint16 DN of
    ``quantum`` when given, decoded strip by strip).
    Returns (T, 3, C + 1, NSUM) float64: per comparison, per band the sums (the ``point_bicubic`` rows are left
    0 for ``block_t`` to fill), ``n_invalid`` the band's NaN input pixels; row C holds SAM [pixels, angle sum].
    Computed in strips of rows, so the float64 temporaries stay small."""
    t, c, h, w = x.shape
    s = scale
    out = torch.zeros((t, len(COMPARISONS), c + 1, NSUM), dtype=torch.float64, device=x.device)
    out[:, :, :c, tops.NSUM] = torch.isnan(x).sum((-2, -1)).double()[:, None, :]
    strip = strip_rows(w, s, int(np.lcm.reduce([int(f) for f in factors])), x.device)
    for ti in range(t):
        for r0 in range(0, h, strip):
            r1 = min(h, r0 + strip)
            sam_c, sam_p = tops.SamAccumulator(), tops.PointSam()
            for ci, f in enumerate(factors):
                xb = x[ti, ci, r0:r1].double()
                yb = y[ti, ci, r0 * s:r1 * s]
                yb = (yb if quantum is None else _decode_t(yb, quantum)).double()
                deg = tops.replicate(tops.block_mean(yb, f * s), f)
                out[ti, 0, ci, :tops.NSUM] += tops.sums(xb, deg)
                sam_c.add(xb, deg)
                out[ti, 1, ci, :tops.NSUM] += tops.point_sums(xb, yb, s, sam_p)
            out[ti, 0, c, :2] += sam_c.result()
            out[ti, 1, c, :2] += sam_p.result()
    return out


def super_resolve_block_sums(block: np.ndarray, predictor: Predictor, spec: BlockSpec,
                             pads: int | tops.Sides | None = None, dn: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """numpy in, numpy out: (T, C, H, W) with ``pads`` (top, bottom, left, right; default ``spec.halo`` on each)
    grid pixels of context -> (y float32, statistics sums float64). A side with 0 is an edge of the whole area
    (``block_t``). ``dn`` (with ``spec.quantum``): y as the uint16 DN the store holds (``block_t``), not decoded:
    what the pipeline's write takes.

    A block whose core (the part inside the context) holds no valid input pixel in any band is not sent to the
    predictor: its output is NaN (what the chunk function gives there anyway: NaN stays in its own footprint)
    and its sums count only the invalid pixels (``n`` = 0 marks it empty)."""
    dn = dn and spec.quantum is not None
    if is_empty(block, spec, pads):
        return empty_result(block, spec, pads, dn)
    dev = predictor.torch_device()
    with _Timer("to_device", dev):
        x = to_device(block, dev)
    y, sums = block_t(x, predictor, spec, pads)
    with _Timer("to_host", dev):
        y, sums = to_host(y), to_host(sums)
    return (decode_dn(y, spec) if y.dtype == np.uint16 and not dn else y), sums


def _core(block: np.ndarray, spec: BlockSpec, pads: int | tops.Sides | None) -> np.ndarray:
    t, b, l, r = tops.sides(spec.halo if pads is None else pads)
    return block[..., t:block.shape[-2] - b, l:block.shape[-1] - r]


def is_empty(block: np.ndarray, spec: BlockSpec, pads: int | tops.Sides | None = None) -> bool:
    """No valid input pixel in the block's core (any band, any time step)."""
    return bool(np.isnan(_core(block, spec, pads)).all())


def empty_result(block: np.ndarray, spec: BlockSpec, pads: int | tops.Sides | None = None, dn: bool = False
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The chunk function's result for an empty block, without the predictor: all NaN (``dn``: all DN_FILL, uint16),
    sums with n = 0."""
    t, c, ch, cw = _core(block, spec, pads).shape
    shape = (t, c + (1 if spec.detail else 0), ch * spec.scale, cw * spec.scale)
    y = np.full(shape, DN_FILL, np.uint16) if dn else np.full(shape, np.nan, np.float32)
    sums = np.zeros((t, len(COMPARISONS), c + 1, NSUM))
    sums[:, :, :c, tops.NSUM] = ch * cw
    return y, sums


def super_resolve_block(block: np.ndarray, predictor: Predictor, spec: BlockSpec,
                        pads: int | tops.Sides | None = None) -> np.ndarray:
    """(T, C, H, W) with ``pads`` grid pixels of context on each side (default ``spec.halo``) -> (T, C[+1],
    core * s) float32. ``pads=0``: the block is the whole area (no context beyond any edge).

    Channel C (when ``spec.detail``) is the detail layer: RMS over bands of output minus the consistent
    smooth reference, i.e. what the model added beyond what bicubic interpolation implies."""
    return super_resolve_block_sums(block, predictor, spec, pads)[0]
