"""Pure nn.Modules (no dask, no I/O). Every network maps (N, C, H, W) grid reflectance to (N, C, H*s, W*s)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
