"""Torch twins of the numpy operators in ``resample`` and ``stats``, on (N, C, H, W) tensors on any device.

The chunk function runs on these from input to output, on the predictor's device. Precision: float32 for the
smooth parts (fill, bicubic back-projection steps); float64 only where a guarantee needs it and the work is one
pass: footprint means of the exact projection step (consistency <= 1e-5), the integer footprint sums of the uint16
quantisation (exact), and the statistics sums.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F

from .resample import RELAX, SMOOTH_ITERS


DEVICE_MEMORY_SHARE = 8  # on CUDA, one strip's temporaries may take up to this share of the device's memory


def device_memory(device: torch.device) -> int | None:
    """Bytes of memory of a CUDA device; None on CPU."""
    return torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else None


def strip_px(cpu_px: int, bytes_per_px: int, device_type: str, memory: int | None = None) -> int:
    """Output pixels per strip of a step done in strips to bound its temporaries (``bytes_per_px`` per output
    pixel): ``cpu_px`` on CPU (a worker's memory budget counts them); on a CUDA device of ``memory`` bytes the
    larger of that and 1 / DEVICE_MEMORY_SHARE of its memory. Small strips cost a GPU kernel launches and
    recomputed margins: 2**22 px strips of the band SR head ran 10% (x4) / 36% (x10) slower on an H100 than the
    whole head (benchmarks/RESULTS.md, round 11)."""
    if device_type != "cuda" or not memory:
        return cpu_px
    return max(cpu_px, memory // (DEVICE_MEMORY_SHARE * bytes_per_px))


def block_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """Mean over non-overlapping k x k footprints of the last two axes (NaN anywhere -> NaN)."""
    if k == 1:
        return x
    *lead, h, w = x.shape
    if h % k or w % k:
        raise ValueError(f"block_mean: shape {tuple(x.shape)} is not divisible by {k}")
    return x.reshape(*lead, h // k, k, w // k, k).mean(dim=(-3, -1))


def block_sum(x: torch.Tensor, k: int) -> torch.Tensor:
    *lead, h, w = x.shape
    return x.reshape(*lead, h // k, k, w // k, k).sum(dim=(-3, -1))


def replicate(x: torch.Tensor, k: int) -> torch.Tensor:
    """Nearest-neighbour upsampling by k: the right-inverse of ``block_mean``."""
    if k == 1:
        return x
    *lead, h, w = x.shape
    return x[..., :, None, :, None].expand(*lead, h, k, w, k).reshape(*lead, h * k, w * k)


def bicubic(x: torch.Tensor, k: int) -> torch.Tensor:
    """Bicubic upsampling by k (pixel-area aligned, a = -0.75), as ``resample.bicubic``; no NaN allowed."""
    if k == 1:
        return x
    lead, (h, w) = x.shape[:-2], x.shape[-2:]
    up = F.interpolate(x.reshape(-1, 1, h, w), scale_factor=k, mode="bicubic", align_corners=False)
    return up.reshape(*lead, h * k, w * k)


def fill_nan(x: torch.Tensor, iters: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """As ``resample.fill_nan``: NaN filled from valid 3x3 neighbours ``iters`` times, the rest 0.
    Returns (filled, nan_mask). No host synchronisation on the path where nothing is NaN."""
    mask = torch.isnan(x)
    out = x
    lead, (h, w) = x.shape[:-2], x.shape[-2:]
    for _ in range(iters):
        m = torch.isnan(out)
        v = torch.where(m, torch.zeros((), dtype=x.dtype, device=x.device), out).reshape(-1, 1, h, w)
        ok = (~m).to(x.dtype).reshape(-1, 1, h, w)
        s = F.avg_pool2d(v, 3, 1, 1, count_include_pad=True) * 9
        n = F.avg_pool2d(ok, 3, 1, 1, count_include_pad=True) * 9
        n = torch.round(n).reshape(*lead, h, w)
        out = torch.where(m & (n > 0), s.reshape(*lead, h, w) / n.clamp(min=1), out)
    return torch.nan_to_num(out, nan=0.0), mask


@functools.lru_cache(maxsize=64)
def _mean_of_bicubic(n: int, k: int, device: torch.device) -> torch.Tensor:
    """(n, n) float64 matrix M1 of the 1-D operator "bicubic upsampling by k, then k-pixel means": the bicubic
    is separable, so block_mean(bicubic(r, k), k) == M1 @ r @ M1.T for an (n, n) native image r."""
    eye = torch.eye(n, dtype=torch.float64, device=device).reshape(n, 1, n, 1)  # batch j holds the impulse e_j
    # along one axis only (the width-1 axis at scale 1): n * n * k values, not the n * n * k * k of a 2-D upsampling
    up = F.interpolate(eye, scale_factor=(k, 1), mode="bicubic", align_corners=False)[..., 0]  # (n, 1, n*k)
    return up.reshape(n, n, k).mean(-1).T.contiguous()


def _crop(a: torch.Tensor, m: int) -> torch.Tensor:
    return a if m == 0 else a[..., m:a.shape[-2] - m, m:a.shape[-1] - m]


Sides = tuple[int, int, int, int]  # (top, bottom, left, right) pixels of the last two axes


def sides(m: "int | Sides") -> Sides:
    """An int (every side alike) or a (top, bottom, left, right) tuple, as a tuple."""
    return (m, m, m, m) if isinstance(m, int) else tuple(int(v) for v in m)  # type: ignore[return-value]


def least_sides(crops: "Iterable[Sides]") -> Sides:
    """Per side, the smallest of several (top, bottom, left, right) crops: what keeps every one's region."""
    return tuple(min(side) for side in zip(*crops, strict=True))  # type: ignore[return-value]


def crop_sides(a: torch.Tensor, m: "int | Sides", scale: int = 1) -> torch.Tensor:
    """``a`` cropped by ``m`` (per side, times ``scale``) on its last two axes."""
    t, b, l, r = (v * scale for v in sides(m))
    return a[..., t:a.shape[-2] - b, l:a.shape[-1] - r]


def pad_sides(a: torch.Tensor, m: "int | Sides") -> torch.Tensor:
    """numpy's mode="symmetric" (edge pixel repeated) by ``m`` per side on the last two axes; pads wider than the
    axis mirror the mirrored array again (as numpy does)."""
    t, b, l, r = sides(m)
    while t or b or l or r:
        h, w = a.shape[-2:]
        pt, pb, pl, pr = min(t, h), min(b, h), min(l, w), min(r, w)
        a = torch.cat([a[..., :pt, :].flip(-2), a, a[..., h - pb:, :].flip(-2)], -2)
        a = torch.cat([a[..., :pl].flip(-1), a, a[..., w - pr:].flip(-1)], -1)
        t, b, l, r = t - pt, b - pb, l - pl, r - pr
    return a


def _mirror_index(n: int, before: int, start: int, stop: int, device: torch.device) -> torch.Tensor:
    """Indices into an axis of n of positions [start, stop) of that axis padded by ``before`` in numpy's
    "symmetric" mode (``pad_sides``: the mirrored array mirrored again for wide pads, i.e. period 2n)."""
    m = torch.remainder(torch.arange(start - before, stop - before, device=device), 2 * n)
    return torch.where(m >= n, 2 * n - 1 - m, m)


def padded_rows(a: torch.Tensor, pads: "int | Sides", r0: int, r1: int) -> torch.Tensor:
    """Rows [r0, r1) of ``pad_sides(a, pads)``, without padding the whole of ``a``: only the strip is copied (a
    view of ``a`` where nothing is padded)."""
    t, b, l, r = sides(pads)
    h, w = a.shape[-2:]
    if not (t or b or l or r):
        return a[..., r0:r1, :]
    if r0 >= t and r1 <= t + h:
        rows = a[..., r0 - t:r1 - t, :]
    else:
        rows = a.index_select(-2, _mirror_index(h, t, r0, r1, a.device))
    if l or r:
        rows = rows.index_select(-1, _mirror_index(w, l, 0, w + l + r, a.device))
    return rows


def _smooth_native(m: torch.Tensor, x: torch.Tensor, k: int, smooth_iters: int, relax: float) -> torch.Tensor:
    """The smooth back-projection steps on the native grid. They are linear: with m_i the footprint means after
    step i, m_{i+1} = m_i + relax * M(x - m_i), M = footprint mean of the bicubic upsampling (two small matrix
    products). Returns acc = relax * sum_i (x - m_i): the steps add bicubic(acc, k) to the fine image."""
    h, w = x.shape[-2:]
    mh, mw = _mean_of_bicubic(h, k, x.device), _mean_of_bicubic(w, k, x.device)
    acc = torch.zeros_like(x)
    for _ in range(smooth_iters):
        r = relax * (x - m)
        acc = acc + r
        m = m + mh @ r @ mw.T
    return acc


def _bicubic_crop(a: torch.Tensor, k: int, crop: int) -> torch.Tensor:
    """bicubic(a, k) cropped by ``crop`` native pixels per side, upsampling only what is kept (+ the 2-pixel
    bicubic support): the same values as cropping the whole upsampling."""
    if crop > 2:
        return _crop(bicubic(_crop(a, crop - 2), k), 2 * k)
    return _crop(bicubic(a, k), crop * k)


def _exact(y: torch.Tensor, x: torch.Tensor, k: int) -> torch.Tensor:
    """The exact step (footprint means in float64, added by broadcasting: no full-size copy of the residual)
    and ``contract_nonneg``; returns float64."""
    yd = y.double()
    r = x - block_mean(yd, k)
    *lead, hh, ww = yd.shape
    yd = (yd.reshape(*lead, hh // k, k, ww // k, k) + r[..., :, None, :, None]).reshape(*lead, hh, ww)
    return contract_nonneg(yd, x, k)


def spans(n: int, rows: int | None) -> list[tuple[int, int]]:
    """[r0, r1) strips of ``rows`` rows covering n (one strip when ``rows`` is None)."""
    step = n if rows is None else max(1, rows)
    return [(r, min(n, r + step)) for r in range(0, n, step)] if n > 0 else []


def project(y: torch.Tensor, x: torch.Tensor, k: int, smooth_iters: int = SMOOTH_ITERS, relax: float = RELAX,
            crop: int = 0) -> torch.Tensor:
    """``resample.project`` on tensors: the smooth back-projection steps, then the exact step with footprint
    means in float64 and ``contract_nonneg``, so block_mean(result, k) == x to float32 rounding of each pixel.
    ``x`` (float64 or float32, no NaN) is k times coarser than ``y``. The result is cropped by ``crop`` native
    pixels per side (what the steps' reach spoils near the edges).

    The smooth steps run on the native grid (``_smooth_native``), and the fine image gets their sum in ONE
    bicubic upsampling, of the kept part only: the same result to rounding as one upsampling and one footprint
    mean of the whole image per step. ``project_strips`` gives the same in strips of rows."""
    return next(project_strips(y, x, k, smooth_iters, relax, crop), (0, 0, _crop(y, crop * k)))[2]


def project_strips(y: torch.Tensor, x: torch.Tensor, k: int, smooth_iters: int = SMOOTH_ITERS,
                   relax: float = RELAX, crop: int = 0, rows: int | None = None, dtype: torch.dtype | None = None,
                   pads: "int | Sides" = 0) -> Iterator[tuple[int, int, torch.Tensor]]:
    """``project`` in strips of ``rows`` native rows of the result: yields (r0, r1, the result's native rows
    [r0, r1), i.e. fine rows r0 * k to r1 * k), in ``dtype`` (default y's; y is converted a strip at a time). The
    smooth steps run on the whole native grid (small); then each strip gets the bicubic upsampling of their sum
    over its rows (+ 2 native rows of support), the exact step and ``contract_nonneg`` (both per footprint). So
    the temporaries are a strip's, not the image's; the values are ``project``'s (the upsampling's weights come
    from strip-local indices: last-bit differences). ``pads``: y is the prediction padded so by ``pad_sides``
    (mirrored beyond an area's edges), each strip padded as it is read."""
    dt = y.dtype if dtype is None else dtype
    xd = x.double()
    hn, wn = xd.shape[-2:]
    acc = None
    if smooth_iters:
        step = rows or hn
        means = torch.cat([block_mean(padded_rows(y, pads, a * k, b * k).double(), k) for a, b in spans(hn, step)],
                          -2)
        acc = _smooth_native(means, xd, k, smooth_iters, relax).to(dt)
        del means
    cl = max(0, crop - 2)  # native columns of the sum upsampled: the kept ones + the 2-pixel bicubic support
    for r0, r1 in spans(hn - 2 * crop, rows):
        a0, a1 = r0 + crop, r1 + crop  # native rows of x
        ys = padded_rows(y, pads, a0 * k, a1 * k)[..., crop * k:(wn - crop) * k].to(dt)
        if acc is not None:
            lo, hi = max(0, a0 - 2), min(hn, a1 + 2)
            up = bicubic(acc[..., lo:hi, cl:wn - cl], k)
            ys = ys + up[..., (a0 - lo) * k:(a1 - lo) * k, (crop - cl) * k:up.shape[-1] - (crop - cl) * k]
            del up
        yield r0, r1, _exact(ys, xd[..., a0:a1, crop:wn - crop], k).to(dt)


def consistent_bicubic(x: torch.Tensor, k: int, smooth_iters: int = SMOOTH_ITERS, relax: float = RELAX,
                       crop: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``project(bicubic(x, k), x, k)`` cropped by ``crop`` native pixels per side, in ``dtype``: the consistent
    bicubic reference of the detail layer. The bicubic upsampling's footprint means are M(x), so the whole
    reference costs ONE upsampling of the kept part: bicubic(x + acc). Equals the cropped projection of the
    upsampling of x cropped by 2 (i.e. with the upsampling's edges outside the projected region) when
    ``crop`` >= 4. ``consistent_bicubic_strips`` gives the same in strips of rows."""
    return torch.cat([p for _, _, p in consistent_bicubic_strips(x, k, smooth_iters, relax, crop, dtype)], -2)


def consistent_bicubic_strips(x: torch.Tensor, k: int, smooth_iters: int = SMOOTH_ITERS, relax: float = RELAX,
                              crop: int = 0, dtype: torch.dtype = torch.float32, rows: int | None = None
                              ) -> Iterator[tuple[int, int, torch.Tensor]]:
    """``consistent_bicubic`` in strips of ``rows`` native rows of the result: yields (r0, r1, its native rows
    [r0, r1) upsampled). The smooth steps run on the whole native grid; each strip upsamples its rows of
    x + their sum (+ 2 native rows of support) and takes the exact step."""
    xd = x.double()
    if not smooth_iters or crop < 4:
        yield 0, xd.shape[-2] - 2 * crop, project(_crop(bicubic(x.to(dtype), k), 2 * k), _crop(xd, 2), k,
                                                  smooth_iters, relax, max(0, crop - 2))
        return
    h, w = xd.shape[-2:]
    m0 = _crop(_mean_of_bicubic(h, k, xd.device) @ xd @ _mean_of_bicubic(w, k, xd.device).T, 2)
    acc = _smooth_native(m0, _crop(xd, 2), k, smooth_iters, relax)
    z = _crop(xd, crop - 2) + _crop(acc, crop - 4)  # the result's native pixels + 2 on each side
    del m0, acc
    for r0, r1 in spans(h - 2 * crop, rows):
        up = _crop(bicubic(z[..., r0:r1 + 4, :].to(dtype), k), 2 * k)
        yield r0, r1, _exact(up, xd[..., crop + r0:crop + r1, crop:w - crop], k).to(dtype)


def contract_nonneg(y: torch.Tensor, x: torch.Tensor, k: int) -> torch.Tensor:
    """``resample.contract_nonneg`` on tensors (differentiable): footprints with input >= 0 whose output dips
    below 0 are shrunk towards their mean until the minimum is 0; the footprint mean is unchanged."""
    if k == 1:
        return y
    lead, (h, w) = y.shape[:-2], y.shape[-2:]
    mn = -F.max_pool2d(-y.reshape(-1, 1, h, w), k, k).reshape(*lead, h // k, w // k)
    bad = (mn < 0) & (x >= 0)
    if not bool(bad.any()):  # the common case: nothing to contract (skips four full-size passes)
        return y
    one = torch.ones((), dtype=y.dtype, device=y.device)
    a = torch.where(bad, x / torch.where(bad, x - mn, one), one)
    # per footprint, by broadcasting over its k x k pixels: the same arithmetic as on replicated x, a and bad,
    # without their three full-size copies
    yb = y.reshape(*lead, h // k, k, w // k, k)
    xb, ab, badb = (v[..., :, None, :, None] for v in (x, a, bad))
    return torch.where(badb, (xb + ab * (yb - xb)).clamp(min=0), yb).reshape(*lead, h, w)


def quantize_consistent(y: torch.Tensor, x: torch.Tensor, k: int) -> torch.Tensor:
    """``resample.quantize_consistent`` on tensors: integer ``y`` whose every k x k footprint sums to k*k*x
    (x integer valued). y: (..., H, W) float64 DN; returns float64 integers. The pixels given +1 are those with
    the largest fractional parts (float32), the first of equal ones first; on CPU found by ``_round_up_select``
    (no sort), elsewhere by ``_round_up_sort``: the same pixels."""
    *lead, H, W = y.shape
    return unblock(quantize_blocks(y, x, k), k).reshape(*lead, H, W)


def quantize_blocks(y: torch.Tensor, x: torch.Tensor, k: int) -> torch.Tensor:
    """``quantize_consistent`` by footprint: (..., h, w, k * k) float64 integers, each footprint's pixels in row
    order (``unblock`` gives the image's layout). ``y`` is not changed."""
    *lead, H, W = y.shape
    h, w = H // k, W // k
    blocks = y.reshape(*lead, h, k, w, k).transpose(-3, -2).reshape(*lead, h, w, k * k)
    if blocks._is_view():  # (k == 1 or one footprint a row: no copy was needed) the steps below work in place
        blocks = blocks.clone()
    q = torch.floor(blocks)
    frac = blocks.sub_(q).float()
    del blocks
    deficit = torch.round(x * (k * k) - q.sum(-1)).clamp(0, k * k)
    up = (_round_up_select if y.device.type == "cpu" else _round_up_sort)(frac, deficit)
    return q.add_(up)


def unblock(b: torch.Tensor, k: int) -> torch.Tensor:
    """(..., h, w, k * k) footprints in row order -> a (..., h, k, w, k) view in the image's order (reshape it to
    (..., h * k, w * k); ``copy_`` it into such a view of an image to write it without another copy)."""
    *lead, h, w, _ = b.shape
    return b.reshape(*lead, h, w, k, k).transpose(-3, -2)


def _round_up_sort(frac: torch.Tensor, deficit: torch.Tensor) -> torch.Tensor:
    """(..., n) fractions, (...) counts -> bool (..., n): the ``deficit`` largest fractions of each row, by a
    stable sort (ties: the lower index first). No host synchronisation (the GPU path)."""
    n = frac.shape[-1]
    order = torch.argsort(-frac, dim=-1, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(-1, order, torch.arange(n, device=frac.device).expand_as(order))
    return ranks < deficit[..., None]


def _round_up_select(frac: torch.Tensor, deficit: torch.Tensor) -> torch.Tensor:
    """``_round_up_sort`` without a sort (the CPU path; 3x faster at k = 10). Every fraction >= 0.5 ranks above
    every one below, so rounding to nearest already picks the right set wherever it rounds up ``deficit``
    pixels. The rest differ by a few (|d| ~ sqrt(n / 12)): they take, one pass per pixel, the largest fraction
    not yet taken (first of ties), or give back the smallest taken (last of ties), until the count is right."""
    n = frac.shape[-1]
    f2 = frac.reshape(-1, n)
    up = f2 >= 0.5
    d = deficit.reshape(-1)
    need = d.to(torch.int16) - up.sum(-1, dtype=torch.int16)
    far = torch.nonzero(need.abs() > 4 + 2 * math.isqrt(n)).squeeze(1)  # rare (input far from consistent): sort
    if far.numel():
        up[far] = _round_up_sort(f2[far], d[far])
        need[far] = 0
    for add in (True, False):
        rows = torch.nonzero(need > 0 if add else need < 0).squeeze(1)
        if not rows.numel():
            continue
        s = f2[rows]
        # argmax takes the first of equal maxima: for giving back, flip so that the first is the last index
        s = torch.where(s < 0.5, s, -1.0) if add else torch.where(s >= 0.5, -s, -2.0).flip(-1)
        left = need[rows].abs()
        taken_rows, taken = [], []
        while rows.numel():
            j = s.argmax(-1)
            taken_rows.append(rows)
            taken.append(j)
            s[torch.arange(len(j)), j] = -3.0
            left = left - 1
            keep = left > 0
            if not bool(keep.all()):
                s, rows, left = s[keep], rows[keep], left[keep]
        r, j = torch.cat(taken_rows), torch.cat(taken)
        up[r, j if add else (n - 1) - j] = add
    return up.reshape(frac.shape)


NSUM = 8  # n, sx, sy, sxx, syy, sxy, sabs, ssd (as ops.stats.SUMS)


def sums(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """ops.stats._sums for (..., H, W) x and y of one band (broadcastable), float64, NaN pairs excluded."""
    x, y = torch.broadcast_tensors(x.double(), y.double())
    ok = ~(torch.isnan(x) | torch.isnan(y))
    zero = torch.zeros((), dtype=torch.float64, device=x.device)
    xv, yv = torch.where(ok, x, zero), torch.where(ok, y, zero)
    d = yv - xv
    return torch.stack([ok.sum().double(), xv.sum(), yv.sum(), (xv * xv).sum(), (yv * yv).sum(), (xv * yv).sum(),
                        d.abs().sum(), (d * d).sum()])


def point_sums(x: torch.Tensor, y: torch.Tensor, s: int, sam: "PointSam | None" = None) -> torch.Tensor:
    """``sums`` of the point comparison of one band: every output pixel of y (h * s, w * s) against the input pixel
    of x (h, w) that contains it, NaN pairs excluded, float64. x is constant over each s x s footprint, so every
    sum but those of the differences comes from per-footprint sums of y: about half the passes over the output of
    ``sums`` on the replicated input. ``sam``: also add the band to that spectral-angle accumulator."""
    h, w = x.shape[-2:]
    yd = y.double().reshape(h, s, w, s)
    oky = ~torch.isnan(yd)
    y0 = torch.where(oky, yd, 0.0)
    xd = x.double()
    okx = ~torch.isnan(xd)
    x0 = torch.where(okx, xd, 0.0)
    ny = oky.sum((1, 3)).double() * okx  # valid pairs per footprint (0 where the input pixel is NaN)
    y2 = y0 * y0
    d = y0 - x0[:, None, :, None]  # an invalid output pixel gives |0 - x|: taken back out below
    miss = s * s - ny
    sy, syy = y0.sum((1, 3)) * okx, y2.sum((1, 3)) * okx
    sabs = (d.abs().sum((1, 3)) - miss * x0.abs()) * okx
    ssd = ((d * d).sum((1, 3)) - miss * x0 * x0) * okx
    if sam is not None:
        sam.add(x0, okx, y0, oky, y2)
    return torch.stack([ny.sum(), (x0 * ny).sum(), sy.sum(), (x0 * x0 * ny).sum(), syy.sum(), (x0 * sy).sum(),
                        sabs.sum(), ssd.sum()])


class PointSam:
    """Spectral-angle terms of the point comparison, band by band (float64), from ``point_sums``: per output pixel
    x.y and |y|^2, per input pixel |x|^2, and validity (in every band) on both sides."""

    def __init__(self) -> None:
        self.num = self.yy = self.oky = self.xx = self.okx = None

    def add(self, x0: torch.Tensor, okx: torch.Tensor, y0: torch.Tensor, oky: torch.Tensor, y2: torch.Tensor
            ) -> None:
        """x0, okx: (h, w) input (NaN as 0) and validity; y0, oky, y2: (h, s, w, s) output, validity, y0^2."""
        xy = y0 * x0[:, None, :, None]
        if self.num is None:
            self.num, self.yy, self.oky, self.xx, self.okx = xy, y2, oky, x0 * x0, okx  # point_sums' own
        else:
            self.num += xy
            self.yy += y2
            self.oky &= oky
            self.xx += x0 * x0
            self.okx &= okx

    def result(self) -> torch.Tensor:
        """[pixels, sum of angles in degrees] over output pixels valid in every band, on both sides, with
        non-zero norms."""
        den = torch.sqrt(self.yy * self.xx[:, None, :, None])
        good = self.oky & self.okx[:, None, :, None] & (den > 0)
        cos = torch.where(good, self.num / torch.where(good, den, 1.0), 1.0)
        ang = torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))
        return torch.stack([good.sum().double(), torch.where(good, ang, 0.0).sum()])


class SamAccumulator:
    """Per-pixel spectral-angle terms accumulated band by band (float64): x.y, |x|^2, |y|^2 and validity."""

    def __init__(self) -> None:
        self.num = self.xx = self.yy = self.ok = None

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        x, y = torch.broadcast_tensors(x.double(), y.double())
        ok = ~(torch.isnan(x) | torch.isnan(y))
        if self.num is None:
            self.num, self.xx, self.yy, self.ok = x * y, x * x, y * y, ok
        else:
            self.num += x * y
            self.xx += x * x
            self.yy += y * y
            self.ok &= ok

    def result(self) -> torch.Tensor:
        """[pixels, sum of angles in degrees] over pixels valid in every band with non-zero norms."""
        den = torch.sqrt(self.xx * self.yy)
        good = self.ok & (den > 0)
        cos = torch.where(good, self.num / torch.where(good, den, torch.ones_like(den)), torch.ones_like(den))
        ang = torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))
        return torch.stack([good.sum().double(), torch.where(good, ang, torch.zeros_like(ang)).sum()])
