"""Pure nn.Modules (no dask, no I/O). Every network maps (N, C, H, W) grid reflectance to (N, C, H*s, W*s)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..bands import ALL_BANDS, BY_RESOLUTION, FACTORS_10M
from ..ops.resample import RELAX, SMOOTH_ITERS
from ..ops.tops import Sides, contract_nonneg, crop_sides, device_memory, least_sides, sides, strip_px


class ResidualSR(nn.Module):
    """Small residual network over a bicubic base: works at low resolution, upsamples late (pixel shuffle),
    one output head per supported scale. Receptive field: 2 + 2 * blocks + 1 grid pixels (see ``reach``)."""

    def __init__(self, bands: int = 12, feats: int = 32, blocks: int = 4, scales: tuple[int, ...] = (2, 4),
                 mean: float = 0.2, std: float = 0.15) -> None:
        super().__init__()
        self.scales = tuple(scales)
        self.mean, self.std = mean, std
        self.head = nn.Conv2d(bands, feats, 3, padding=1)
        self.body = nn.ModuleList(nn.Sequential(nn.Conv2d(feats, feats, 3, padding=1), nn.ReLU(inplace=True),
                                                nn.Conv2d(feats, feats, 3, padding=1)) for _ in range(blocks))
        self.tails = nn.ModuleDict({str(s): nn.Sequential(nn.Conv2d(feats, bands * s * s, 3, padding=1),
                                                         nn.PixelShuffle(s)) for s in scales})
        for tail in self.tails.values():  # start as the identity over the bicubic base
            nn.init.zeros_(tail[0].weight)
            nn.init.zeros_(tail[0].bias)

    @staticmethod
    def reach(blocks: int) -> int:
        return 1 + 2 * blocks + 1 + 2  # head, body, tail convs, bicubic support

    def forward(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        if str(scale) not in self.tails:
            raise ValueError(f"scale {scale} not in {self.scales}")
        xn = (x - self.mean) / self.std
        base = F.interpolate(xn, scale_factor=scale, mode="bicubic", align_corners=False)
        f = self.head(xn)
        for blk in self.body:
            f = f + blk(f)
        return (base + self.tails[str(scale)](f)) * self.std + self.mean


NORM = 0.3  # reflectance scale the networks see (inputs / NORM)
HEAD_STRIP_PX = 2**22  # output pixels per strip of BandSR's output head at inference on CPU (its temporaries' size)
HEAD_BYTES_PER_PX = 64  # the head's float32 temporaries per output pixel: 4 feature channels, about 4 copies


def head_strip_px(device_type: str, device_memory: int | None = None) -> int:
    """Output pixels per strip of BandSR's output head at inference: ``HEAD_STRIP_PX`` on CPU; on a CUDA device
    of ``device_memory`` bytes, strips of up to an eighth of its memory (``ops.tops.strip_px``)."""
    return strip_px(HEAD_STRIP_PX, HEAD_BYTES_PER_PX, device_type, device_memory)


def block_mean_t(x: torch.Tensor, k: int) -> torch.Tensor:
    return x if k == 1 else F.avg_pool2d(x, k, k)


def bicubic_t(x: torch.Tensor, k: int) -> torch.Tensor:
    return x if k == 1 else F.interpolate(x, scale_factor=k, mode="bicubic", align_corners=False)


def project_t(y: torch.Tensor, lr: torch.Tensor, k: int, smooth_iters: int = SMOOTH_ITERS, relax: float = RELAX
              ) -> torch.Tensor:
    """Torch twin of ops.resample.project (exact, positivity-preserving consistency layer, differentiable, used
    in training and inside the model) in y's dtype."""
    if k == 1:
        return lr
    for _ in range(smooth_iters):
        y = y + relax * bicubic_t(lr - block_mean_t(y, k), k)
    y = y + torch.repeat_interleave(torch.repeat_interleave(lr - block_mean_t(y, k), k, -2), k, -1)
    return contract_nonneg(y, lr, k)


class ResBlock(nn.Module):
    def __init__(self, feats: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(feats, feats, 3, padding=1)
        self.c2 = nn.Conv2d(feats, feats, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.1 * self.c2(F.relu(self.c1(x)))  # residual scaling as in DSen2/EDSR


def box_mean_t(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over an r x r window (r odd) centred on each pixel, reflected at the edges."""
    p = r // 2
    return F.avg_pool2d(F.pad(x, (p, p, p, p), mode="reflect"), r, 1)


def local_regression_t(fine: torch.Tensor, lr: torch.Tensor, k: int, window: int = 3,
                       ridge: float = 1e-6) -> torch.Tensor:
    """Regression-based detail injection (a guided-filter relative of ATPRK/HPF pansharpening), pure torch.

    In every ``window`` x ``window`` neighbourhood of the coarse grid, regress each coarse band on the fine guide
    bands averaged to the coarse grid (least squares, ridge ``ridge``); apply the local gains (bicubically
    interpolated) to the guide's high-pass detail at the fine grid, over the bicubic upsampling of the band.
    No training: it adapts to every scene and place, which 72k training pixels cannot teach a network.
    fine (N, G, H, W), lr (N, C, H/k, W/k) -> (N, C, H, W). Computed in float64 (the covariances cancel)."""
    dtype = lr.dtype
    fine, lr = fine.double(), lr.double()
    gl = block_mean_t(fine, k)
    n, g, h, w = gl.shape
    c = lr.shape[1]
    m_g = box_mean_t(gl, window)
    pairs = [(i, j) for i in range(g) for j in range(g)]
    cov = box_mean_t(torch.stack([gl[:, i] * gl[:, j] for i, j in pairs], 1), window)
    cov = cov - torch.stack([m_g[:, i] * m_g[:, j] for i, j in pairs], 1)
    cov = cov.permute(0, 2, 3, 1).reshape(n, 1, h, w, g, g) + ridge * torch.eye(g, dtype=torch.float64,
                                                                                  device=lr.device)
    m_y = box_mean_t(lr, window)
    cxy = torch.stack([box_mean_t(gl[:, i:i + 1] * lr, window) - m_g[:, i:i + 1] * m_y for i in range(g)], -1)
    gains = torch.linalg.solve(cov, cxy.unsqueeze(-1)).squeeze(-1)  # (N, C, h, w, G)
    gains = bicubic_t(gains.permute(0, 1, 4, 2, 3).reshape(n, c * g, h, w), k).reshape(n, c, g, h * k, w * k)
    detail = fine - bicubic_t(gl, k)
    return (bicubic_t(lr, k) + (gains * detail.unsqueeze(1)).sum(2)).to(dtype)


class SharpenNet(nn.Module):
    """DSen2-style band sharpening: fine guide bands + coarse bands -> the coarse bands at the fine resolution.

    With ``window`` > 0 the base is the consistency-projected local-regression estimate (``local_regression_t``)
    and the network sees it next to the guide and the bicubic upsampling; with 0 the base is bicubic. The network
    learns a residual over the base (its last layer starts at zero: an untrained net returns the base)."""

    def __init__(self, n_fine: int = 4, n_coarse: int = 6, feats: int = 48, blocks: int = 4, window: int = 0,
                 k: int = 2) -> None:
        super().__init__()
        self.window, self.k, self.blocks = window, k, blocks
        self.head = nn.Conv2d(n_fine + n_coarse * (2 if window else 1), feats, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(feats) for _ in range(blocks)])
        self.tail = nn.Conv2d(feats, n_coarse, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def reach(self) -> int:
        """Fine pixels of context: the convolutions, plus the base's window, its two bicubic interpolations
        (2 coarse pixels each) and its projection (SMOOTH_ITERS smooth steps of 2 coarse pixels, one exact step)."""
        convs = 2 + 2 * self.blocks
        if not self.window:
            return convs
        k = self.k
        return convs + k * (self.window // 2 + 2 + 2) + 2 * SMOOTH_ITERS * k + k

    def forward(self, fine: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        k = fine.shape[-1] // lr.shape[-1]
        up = bicubic_t(lr, k)
        if self.window:
            base = project_t(local_regression_t(fine, lr, k, self.window), lr, k)
            x = torch.cat([fine, up, base], 1)
        else:
            base, x = up, torch.cat([fine, up], 1)
        return base + self.tail(self.body(F.relu(self.head(x / NORM)))) * NORM


class BandSR(nn.Module):
    """Single-band, band-agnostic super-resolution: works at low resolution, upsamples late (pixel shuffle) as a
    residual over bicubic, one head per scale. Shared by all 12 bands (trained on 10 m and 20 m bands)."""

    def __init__(self, feats: int = 32, blocks: int = 4, scales: tuple[int, ...] = (2, 4, 10),
                 hr_feats: int = 0, smooth: float = 0.0) -> None:
        super().__init__()
        self.scales = tuple(scales)
        self.smooth = smooth  # Gaussian on the learned residual, sigma = smooth input pixels (0: off)
        self.head = nn.Conv2d(1, feats, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(feats) for _ in range(blocks)])
        self.hr_feats = hr_feats
        if hr_feats:  # pixel shuffle to hr_feats channels, then a 3x3 convolution at the output grid, which mixes
            # neighbouring sub-pixel phases: a plain shuffle head leaves a pattern aligned with the input pixels
            # (footprint trace 1.24 at x10 for s2sr-v1's head)
            self.tails = nn.ModuleDict({str(s): nn.Sequential(
                nn.Conv2d(feats, s * s * hr_feats, 3, padding=1), nn.PixelShuffle(s), nn.ReLU(),
                nn.Conv2d(hr_feats, 1, 3, padding=1)) for s in scales})
        else:
            self.tails = nn.ModuleDict({str(s): nn.Sequential(nn.Conv2d(feats, s * s, 3, padding=1),
                                                              nn.PixelShuffle(s)) for s in scales})
        for t in self.tails.values():  # the residual starts at zero: an untrained net returns bicubic
            last = t[-1] if hr_feats else t[0]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        self.blocks = blocks

    def reach(self) -> int:
        # convs at low resolution + bicubic support (+ one output-grid convolution: at most one input pixel)
        # (+ the residual's Gaussian: 3 sigma)
        return 2 + 2 * self.blocks + 2 + (1 if self.hr_feats else 0) + int(np.ceil(3 * self.smooth))

    def _residual(self, f: torch.Tensor, scale: int) -> torch.Tensor:
        r = self.tails[str(scale)](f)
        return gaussian_t(r, self.smooth * scale) if self.smooth else r

    def strip_margin(self, scale: int) -> int:
        """Rows of low-resolution features of context the output head needs beyond a strip: its convolution at
        low resolution (1 row, whose errors cover ``scale`` output rows), the output-grid convolution (1 output
        row) and the Gaussian (3 sigma output rows)."""
        reach = (1 if self.hr_feats else 0) + (int(np.ceil(3 * self.smooth * scale)) if self.smooth else 0)
        return 1 + -(-reach // scale)

    def forward_ensemble(self, x: torch.Tensor, scale: int,
                         transforms: "tuple[tuple[int, bool], ...]") -> torch.Tensor:
        """Inference: the mean over ``transforms`` ((quarter turns, mirror), as ``S2SRNet.TRANSFORMS``) of the
        forward on the transformed input, transformed back. The bicubic base is made once (it commutes with the
        flips and turns, to rounding), and each transform's residual is added in strips of rows (of the
        transformed image) where they land (rows or columns of the output): the output and one strip are held,
        not one full-size output per transform and its turned copies (at x10, 12 B per output pixel of a band)."""
        n, _, h, w = x.shape
        out = bicubic_t(x, scale)
        m = self.strip_margin(scale)
        for turns, mirror in transforms:
            xt = torch.rot90(x, turns, (-2, -1))
            f = self.body(F.relu(self.head((xt.flip(-1) if mirror else xt) / NORM)))
            ht, wt = f.shape[-2:]
            rows = max(1, head_strip_px(x.device.type, device_memory(x.device)) // (n * wt * scale * scale))
            for r0 in range(0, ht, rows):
                r1 = min(ht, r0 + rows)
                a, b = max(0, r0 - m), min(ht, r1 + m)
                r = self._residual(f[:, :, a:b], scale)[:, :, (r0 - a) * scale:(r1 - a) * scale]
                r = torch.rot90(r.flip(-1) if mirror else r, -turns, (-2, -1))
                # transformed rows [r0, r1) are, in the output: rows (no turn, half turn) or columns (quarter turns),
                # counted from the end when the turn reverses them
                lo, hi = (ht - r1, ht - r0) if turns in (1, 2) else (r0, r1)
                dst = out[:, :, lo * scale:hi * scale] if turns % 2 == 0 else out[..., lo * scale:hi * scale]
                dst.add_(r, alpha=NORM / len(transforms))
            del f
        return out

    def forward(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        f = self.body(F.relu(self.head(x / NORM)))
        n, _, h, w = x.shape
        rows = max(1, head_strip_px(x.device.type, device_memory(x.device)) // (n * w * scale * scale))
        if rows >= h or torch.is_grad_enabled():  # small, or training: the whole head at once
            return bicubic_t(x, scale) + self._residual(f, scale) * NORM
        # inference on a large input: the output-grid head (scale^2 x feats channels per low-resolution pixel)
        # in strips of rows with ``strip_margin`` rows of context each, added into the bicubic base: the same
        # values, without the head's full-size temporaries (at x10 several times the output's size)
        out = bicubic_t(x, scale)
        m = self.strip_margin(scale)
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            a, b = max(0, r0 - m), min(h, r1 + m)
            r = self._residual(f[:, :, a:b], scale)
            out[:, :, r0 * scale:r1 * scale] += r[:, :, (r0 - a) * scale:(r1 - a) * scale] * NORM
        return out


def gaussian_t(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (truncated at 3 sigma, edges reflected) of (N, C, H, W) ``x``."""
    rad = int(np.ceil(3 * sigma))
    t = torch.arange(-rad, rad + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    n, c, h, w = x.shape
    y = F.pad(x.reshape(n * c, 1, h, w), (rad, rad, rad, rad), mode="reflect")
    y = F.conv2d(F.conv2d(y, k.reshape(1, 1, 1, -1)), k.reshape(1, 1, -1, 1))
    return y.reshape(n, c, h, w)


def _check_ensemble(n: int) -> int:
    if n not in (1, 2, 4, 8):
        raise ValueError(f"ensemble must be 1, 2, 4 or 8 geometric transforms, not {n}")
    return n


# canonical band order of the pipeline stack and the native factor of each band on the 10 m grid
S2_BANDS = ALL_BANDS  # the band table lives in s2sr_cloud/bands.py
S2_FACTORS = FACTORS_10M
I10 = [S2_BANDS.index(b) for b in BY_RESOLUTION[10]]
I20 = [S2_BANDS.index(b) for b in BY_RESOLUTION[20]]
I60 = [S2_BANDS.index(b) for b in BY_RESOLUTION[60]]
GROUP_INDEX = {1: I10, 2: I20, 6: I60}  # band indices of each native factor's group


class S2SRNet(nn.Module):
    """The pipeline model: sharpen the 20 m bands (guided by 10 m), then the 60 m bands (guided by 10 + 20 m),
    each made consistent with its native pixels, then super-resolve all 12 bands by ``scale`` with BandSR.

    Input: (N, 12, H, W) reflectance on the 10 m grid, canonical band order, coarse bands replicated (as the
    loader delivers them), H and W multiples of 6 and aligned to the 60 m grid. Output: (N, 12, H*s, W*s)."""

    def __init__(self, sharpen20: dict | None = None, sharpen60: dict | None = None,
                 sr: dict | None = None, learn60: bool = False, ensemble: int = 1) -> None:
        super().__init__()
        self.ensemble = _check_ensemble(ensemble)
        self.sharpen20 = SharpenNet(4, 6, **(sharpen20 or {"window": 3}))
        self.sharpen60 = SharpenNet(10, 2, **(sharpen60 or {"feats": 24, "blocks": 2, "k": 6}))
        self.sr = BandSR(**(sr or {}))
        # The native 60 m training material is ~8k target pixels; a network trained on it lost to bicubic on
        # held-out data, so by default the 60 m bands take the consistent bicubic path (learn60=False).
        self.learn60 = learn60

    @staticmethod
    def _path_reach(k: int, net_reach: int) -> int:
        """10 m pixels of context one native-k band needs: footprint alignment (k), bicubic upsampling (2 coarse
        pixels), the network, the smooth projection steps (2 coarse pixels each) and the exact step (k)."""
        return k + 2 * k + net_reach + 2 * SMOOTH_ITERS * k + k

    def reach(self) -> int:
        r20 = self._path_reach(2, self.sharpen20.reach())
        r60 = self._path_reach(6, self.sharpen60.reach() + r20 if self.learn60 else 0)
        return max(r20, r60) + self.sr.reach()

    def sharpen(self, x: torch.Tensor, ensemble: int | None = None) -> torch.Tensor:
        fine = x[:, I10]
        lr20 = block_mean_t(x[:, I20], 2)
        s20 = project_t(self.sharpen20_ens(fine, lr20, ensemble), lr20, 2)
        lr60 = block_mean_t(x[:, I60], 6)
        up60 = bicubic_t(lr60, 6)
        s60 = project_t(self.sharpen60(torch.cat([fine, s20], 1), lr60) if self.learn60 else up60, lr60, 6)
        out = x.clone()
        out[:, I20] = s20
        out[:, I60] = s60
        return out

    # (quarter turns, mirror) in the order they join the self-ensemble: 2 = identity + half turn, 4 adds mirrors
    TRANSFORMS = ((0, False), (2, False), (0, True), (2, True), (1, False), (3, False), (1, True), (3, True))

    def _ensembled(self, fn: Callable[..., torch.Tensor], *inputs: torch.Tensor, n: int | None = None
                   ) -> torch.Tensor:
        """``fn(*inputs)`` averaged over ``n`` (default ``self.ensemble``) flips/rotations of the inputs (geometric
        self-ensemble; each transform is undone on the output, so the result stays aligned; 8 is equivariant)."""
        n = _check_ensemble(self.ensemble if n is None else n)
        if n == 1:
            return fn(*inputs)
        acc: torch.Tensor | None = None
        for turns, mirror in self.TRANSFORMS[:n]:
            ins = [torch.rot90(a, turns, (-2, -1)) for a in inputs]
            y = fn(*([a.flip(-1) for a in ins] if mirror else ins))
            y = torch.rot90(y.flip(-1) if mirror else y, -turns, (-2, -1))
            acc = y if acc is None else acc + y
        return acc / n

    def sharpen20_ens(self, fine: torch.Tensor, lr20: torch.Tensor, ensemble: int | None = None) -> torch.Tensor:
        """The 20 m bands at 10 m (before the consistency layer), self-ensembled."""
        return self._ensembled(self.sharpen20, fine, lr20, n=ensemble)

    def super_resolve(self, x: torch.Tensor, scale: int, ensemble: int | None = None) -> torch.Tensor:
        """BandSR on (N, 1, h, w) images by ``scale``, self-ensembled (before the consistency layer)."""
        n = _check_ensemble(self.ensemble if ensemble is None else ensemble)
        if n > 1 and not torch.is_grad_enabled():  # inference: one output held, not n (BandSR.forward_ensemble)
            return self.sr.forward_ensemble(x, scale, self.TRANSFORMS[:n])
        return self._ensembled(lambda a: self.sr(a, scale), x, n=n)

    def forward(self, x: torch.Tensor, scale: int, ensemble: int | None = None) -> torch.Tensor:
        """``ensemble``: flips/turns averaged (1, 2, 4, 8); None: ``self.ensemble`` (the registry's choice)."""
        sharp = self.sharpen(x, ensemble)
        n, c, h, w = sharp.shape
        y = self.super_resolve(sharp.reshape(n * c, 1, h, w), scale, ensemble)
        return y.reshape(n, c, h * scale, w * scale)


# ---------------------------------------------------------------------------------------------------------------
# Inference on a region (the pipeline's chunk function): each band group runs on the smallest window its own
# receptive field needs. Same weights, same arithmetic as ``S2SRNet.forward`` on the pixels it guarantees.


def project_reach(k: int, smooth_iters: int = SMOOTH_ITERS) -> int:
    """Fine pixels of context ``project_t`` at footprint k needs: 2 coarse pixels per smooth step (bicubic
    support) plus the footprint the pixel lies in."""
    return 2 * smooth_iters * k + k


def _start(crop: int, margin: int, align: int = 6) -> int:
    """First row/column of a window that covers [crop - margin, ...) and starts on the grid of ``align`` pixels."""
    a = max(0, crop - margin)
    return a - a % align


def s2srnet_group_reach(net: "S2SRNet") -> dict[int, int]:
    """Grid (10 m) pixels of context beyond its exact region that each native band group needs through the model,
    counted at the group's own resolution: 10 m bands only see the band SR; 20 m bands add the consistency
    layer at 20 m (2 coarse pixels per smooth step) and the sharpening network; 60 m bands (consistent bicubic
    path unless ``learn60``) add the 60 m consistency layer and bicubic support in 60 m pixels."""
    rs = net.sr.reach()
    r20 = rs + project_reach(2) + net.sharpen20.reach()
    if net.learn60:
        r60 = rs + project_reach(6) + max(net.sharpen60.reach(), r20 - rs)
    else:
        r60 = rs + project_reach(6) + 2 * 6
    return {1: rs, 2: r20, 6: r60}


def group_crops(crop: "int | Sides | dict[int, int | Sides]", factors: tuple[int, ...] = (1, 2, 6)
                ) -> dict[int, Sides]:
    """Grid pixels cropped from each side (top, bottom, left, right) of the block, per native factor present: an
    int or a 4-tuple crops all groups alike; a dict gives each factor an int or a 4-tuple."""
    one = not isinstance(crop, dict)
    return {int(f): sides(crop if one else crop[int(f)]) for f in set(factors)}  # type: ignore[index, arg-type]


def s2srnet_windows(net: "S2SRNet", crop: "int | Sides | dict[int, int | Sides]") -> dict[str, Sides]:
    """Where each network of ``s2srnet_forward_region`` starts on each side (grid pixels from the block edge,
    top, bottom, left, right): ``sr<f>`` the band SR of the native-f group, ``sharpen20`` the 20 m sharpening,
    ``lr60`` the 60 m consistent bicubic. The benchmark counts the pixels the networks see from these."""
    crops = group_crops(crop)
    rs = net.sr.reach()

    def start(c: Sides, margin: int, align: int) -> Sides:
        return tuple(_start(v, margin, align) for v in c)  # type: ignore[return-value]

    # the band SR is shift-equivariant per 10 m pixel: its windows need no alignment; the 20 m sharpening starts on
    # the 20 m grid, the 60 m path on the 60 m grid (their footprint means)
    w = {f"sr{f}": start(crops[f], rs, 1) for f in (1, 2, 6)}
    w["sharpen20"] = start(w["sr2"], project_reach(2) + net.sharpen20.reach(), 2)
    if not net.learn60:
        w["lr60"] = start(w["sr6"], project_reach(6) + 12, 6)
    return w


def s2srnet_band_regions(net: "S2SRNet", x: torch.Tensor, scale: int,
                         crop: "int | Sides | dict[int, int | Sides]" = 0, ensemble: int | None = None,
                         band_batch: int = 1, order: "tuple[int, ...]" = (1, 2, 6)
                         ) -> Iterator[tuple[int, list[int], torch.Tensor]]:
    """The band SR of ``s2srnet_forward_region``, ``band_batch`` bands at a time: yields (f, positions of the bands
    within group f (``GROUP_INDEX[f]``), their prediction (N, nb, ...) on group f's own region, x cropped by
    ``crops[f]``), group by group in ``order``. Each group's sharpened input is made once, when its first bands are
    asked for; each prediction only when asked for (the caller holds ``band_batch`` bands' prediction at a time,
    not a group's: at x10 one band of a 798 px block is 0.25 GB in float32). A yielded prediction may be a view of
    a slightly larger window's."""
    crops = group_crops(crop)
    n, _, h, w = x.shape
    win = s2srnet_windows(net, crops)
    for f in order:
        idx = GROUP_INDEX[f]
        sharp, a = _group_input(net, x, win, f, ensemble)
        cf = crops[f]
        off = _minus(cf, a)  # group f's region within the window
        gh, gw = (h - cf[0] - cf[1]) * scale, (w - cf[2] - cf[3]) * scale
        hh, ww = sharp.shape[-2:]
        for i in range(0, len(idx), band_batch):
            part = sharp[:, i:i + band_batch]
            nb = part.shape[1]
            y = net.super_resolve(part.reshape(n * nb, 1, hh, ww), scale, ensemble).reshape(n, nb, hh * scale,
                                                                                               ww * scale)
            y = y[..., off[0] * scale:off[0] * scale + gh, off[2] * scale:off[2] * scale + gw]
            yield f, list(range(i, i + nb)), y
            del y  # before the next bands are made: one prediction held at a time, not two
        del sharp


def _minus(p: Sides, q: Sides) -> Sides:
    return tuple(u - v for u, v in zip(p, q, strict=True))  # type: ignore[return-value]


def _group_input(net: "S2SRNet", x: torch.Tensor, win: dict[str, Sides], f: int, ensemble: int | None
                 ) -> tuple[torch.Tensor, Sides]:
    """Group f's input to the band SR (the 10 m bands as they are; the 20 m bands sharpened, the 60 m bands by
    the consistent bicubic path or the 60 m network), on its window ``win[f"sr{f}"]``: (bands, window)."""
    if f == 1:
        a = win["sr1"]
        return crop_sides(x[:, I10], a), a
    if f == 2:
        a20, b = win["sr2"], win["sharpen20"]
        xs = crop_sides(x, b)
        lr20 = block_mean_t(xs[:, I20], 2)
        s20 = project_t(net.sharpen20_ens(xs[:, I10], lr20, ensemble), lr20, 2)
        return crop_sides(s20, _minus(a20, b)), a20
    a60 = win["sr6"]
    if net.learn60:
        return crop_sides(net.sharpen(x, ensemble)[:, I60], a60), a60
    b = win["lr60"]
    lr60 = block_mean_t(crop_sides(x[:, I60], b), 6)
    s60 = project_t(bicubic_t(lr60, 6), lr60, 6)
    return crop_sides(s60, _minus(a60, b)), a60


def s2srnet_forward_region(net: "S2SRNet", x: torch.Tensor, scale: int,
                           crop: "int | Sides | dict[int, int | Sides]" = 0, ensemble: int | None = None,
                           band_batch: int = 12, only: int | None = None) -> torch.Tensor:
    """``net(x, scale, ensemble)`` cropped by ``crop`` grid pixels on each side, computed per band group on the
    window that group needs: band b of the result equals the whole-array forward wherever the pixel lies at least
    ``s2srnet_group_reach(net)[factor of b]`` grid pixels inside ``x`` (or next to an edge of ``x`` that is the
    edge of the whole array: a window reaching it stops there). ``band_batch`` bands go through the band SR
    network at once (memory vs. batching). x: (N, 12, H, W) filled reflectance, H, W multiples of 6.

    ``crop``: an int, a (top, bottom, left, right) tuple, or one of either per native factor ({1: c1, 2: c2, 6:
    c6}): the result is then cropped by the smallest per side, and group f is computed only on its own region
    (crop c_f); the ring between is left unset (uninitialised) for the caller, which reads group f no further out
    than c_f. This is how the chunk function keeps each group's network window to what that group's consistency
    layer reads (the 60 m layer reads 6x further).

    ``only`` (a native factor): compute that group alone and return its bands only, on its own region (crop
    c_only): the same values, and the other groups' networks do not run. ``s2srnet_band_regions`` gives the
    same bands a few at a time (the chunk function's way)."""
    crops = group_crops(crop)
    c0 = least_sides(crops.values()) if only is None else crops[only]
    n, c, h, w = x.shape
    out = x.new_empty(n, c if only is None else len(GROUP_INDEX[only]), (h - c0[0] - c0[1]) * scale,
                      (w - c0[2] - c0[3]) * scale)
    for f, ks, y in s2srnet_band_regions(net, x, scale, crops, ensemble, band_batch,
                                          (1, 2, 6) if only is None else (only,)):
        cf = crops[f]
        at = _minus(cf, c0)  # group f's region within the result
        chans = [GROUP_INDEX[f][k] for k in ks] if only is None else ks
        out[:, chans, at[0] * scale:at[0] * scale + y.shape[-2], at[2] * scale:at[2] * scale + y.shape[-1]] = y
    return out
