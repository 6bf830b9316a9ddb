"""Published third-party sharpening networks, rebuilt in PyTorch for EVALUATION ONLY. Their weights are read from
../shared/data/weights when present and never shipped (GPL-3.0 / CC BY-NC-SA 4.0)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class AESR(nn.Module):
    """UP42 DSen2 'aesr' 20 m model (Keras 2.4, channels-first): conv-conv-deconv(+skip)-deconv(+skip)-conv5x5."""

    def __init__(self) -> None:
        super().__init__()
        self.conv2d = nn.Conv2d(10, 64, 3, padding=1)
        self.conv2d_1 = nn.Conv2d(64, 64, 3, padding=1)
        self.conv2d_transpose = nn.ConvTranspose2d(64, 64, 3, padding=1)
        self.conv2d_transpose_1 = nn.ConvTranspose2d(64, 64, 3, padding=1)
        self.conv2d_2 = nn.Conv2d(64, 6, 5, padding=2)

    def forward(self, hi: torch.Tensor, lo_up: torch.Tensor) -> torch.Tensor:
        c0 = F.relu(self.conv2d(torch.cat([hi, lo_up], 1)))
        c1 = F.relu(self.conv2d_1(c0))
        a0 = c1 + F.relu(self.conv2d_transpose(c1))
        a1 = c0 + F.relu(self.conv2d_transpose_1(a0))
        return self.conv2d_2(a1)

    @classmethod
    def from_hdf5(cls, path: Path) -> "AESR":
        import h5py

        net = cls()
        with h5py.File(path, "r") as f:
            cfg = json.loads(f.attrs["model_config"])
            fmt = {layer["config"].get("data_format") for layer in cfg["config"]["layers"]} - {None}
            if fmt and fmt != {"channels_first"}:
                raise ValueError(f"unexpected Keras data_format {fmt}")
            g = f["model_weights"]
            sd = {}
            for name in ("conv2d", "conv2d_1", "conv2d_2", "conv2d_transpose", "conv2d_transpose_1"):
                kernel = torch.from_numpy(np.asarray(g[name][name]["kernel:0"]))
                # Conv2D (kh, kw, in, out) and Conv2DTranspose (kh, kw, out, in) -> torch's (out|in, in|out, kh, kw)
                sd[f"{name}.weight"] = kernel.permute(3, 2, 0, 1).contiguous()
                sd[f"{name}.bias"] = torch.from_numpy(np.asarray(g[name][name]["bias:0"]))
        net.load_state_dict(sd)
        return net.eval()

    def sharpen20(self, b10: np.ndarray, b20_lr: np.ndarray) -> np.ndarray:
        """b10: (B02, B03, B04, B08) reflectance on the fine grid; b20_lr: 20 m bands at half resolution."""
        hi = torch.from_numpy(b10[[2, 1, 0, 3]] * 1e4 / 2000.0).float()[None]  # order B4, B3, B2, B8; DN / 2000
        lo = torch.from_numpy(b20_lr * 1e4 / 2000.0).float()[None]
        lo_up = F.interpolate(lo, scale_factor=2, mode="bilinear", align_corners=False)
        with torch.inference_mode():
            out = self(hi, lo_up)
        return out[0].double().numpy() * 2000.0 / 1e4


class FUSE(nn.Module):
    """FUSE (Gargiulo et al. 2019), OriginalS2_20: fixed 9x9 MTF low-pass per band, high-pass inputs, batch norm,
    four 3x3 convolutions, residual over the upsampled 20 m bands."""

    def __init__(self) -> None:
        super().__init__()
        self.depthconv_10 = nn.Conv2d(4, 4, 9, groups=4, padding=4, padding_mode="replicate", bias=False)
        self.depthconv_20 = nn.Conv2d(6, 6, 9, groups=6, padding=4, padding_mode="replicate", bias=False)
        self.batchnorm = nn.BatchNorm2d(10)
        self.conv1 = nn.Conv2d(10, 48, 3, padding=1)
        self.conv2 = nn.Conv2d(48, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 32, 3, padding=1)
        self.conv4 = nn.Conv2d(32, 6, 3, padding=1)

    def forward(self, hi: torch.Tensor, lo_up: torch.Tensor) -> torch.Tensor:
        x = torch.cat([hi - self.depthconv_10(hi), lo_up - self.depthconv_20(lo_up)], 1)
        x = self.batchnorm(x)
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        return self.conv4(x) + lo_up

    @classmethod
    def from_tar(cls, path: Path) -> "FUSE":
        net = cls()
        sd = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(sd)
        return net.eval()

    def sharpen20(self, b10: np.ndarray, b20_lr: np.ndarray) -> np.ndarray:
        hi = torch.from_numpy(b10 * 1e4 / 2048.0).float()[None]  # order B2, B3, B4, B8; DN / 2048
        lo = torch.from_numpy(b20_lr * 1e4 / 2048.0).float()[None]
        lo_up = F.interpolate(lo, scale_factor=2, mode="bicubic", align_corners=False)
        with torch.inference_mode():
            out = self(hi, lo_up)
        return out[0].double().numpy() * 2048.0 / 1e4


def load_baselines(weights_dir: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    aesr = weights_dir / "up42_DSen2_aesr" / "aesr_20m_s2_038_lr_1e-04.hdf5"
    fuse = weights_dir / "FUSE" / "OriginalS2_20.tar"
    if aesr.exists():
        out["aesr"] = AESR.from_hdf5(aesr)
    if fuse.exists():
        out["fuse"] = FUSE.from_tar(fuse)
    return out
