"""The networks' building blocks on real pixels: the local-regression base of sharpen20 and the geometric
self-ensemble of band SR (pure torch, no dask, no I/O beyond reading the patch)."""


import numpy as np
import pytest
import torch

from s2sr_cloud.training.patches import B10, read_scene
from s2sr_cloud.model.nets import S2SRNet, block_mean_t, local_regression_t, project_t

from .conftest import need_shared


@pytest.fixture(scope="module")
def guide() -> torch.Tensor:
    scene = read_scene(need_shared("bigearthnet", "S2B_MSIL2A_20170924T093019_43_47"))
    return torch.from_numpy(np.stack([scene.bands[b] for b in B10]))[None]  # (1, 4, 120, 120) real 10 m bands


def test_local_regression_recovers_a_band_that_is_a_combination_of_the_guide(guide):
    """A coarse band that is a linear combination of the guide bands (plus an offset) is recovered exactly at the
    fine grid: the local gains are the combination's weights everywhere, and bicubic keeps constants."""
    guide = guide[:, 2:4]  # B04 and B08: two guides keep each 3 x 3 window's regression well conditioned
    truth = 0.7 * guide[:, 1:2] - 0.4 * guide[:, 0:1] + 0.05
    lr = block_mean_t(truth, 2)
    est = local_regression_t(guide, lr, 2, window=3, ridge=1e-12)
    assert est.dtype == torch.float64
    # reflected windows at the edge see the same linear relation, so this holds up to the edge
    assert (est - truth).abs().max() < 1e-6
    # the shipped ridge (1e-6) shrinks the gains only where a window's guide hardly varies
    assert (local_regression_t(guide, lr, 2, window=3) - truth).abs().mean() < 5e-4
    # while plain bicubic upsampling of the same band misses its 10 m detail by far
    up = torch.nn.functional.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False)
    assert (up - truth).abs().max() > 1e-2


def test_local_regression_adapts_per_place(guide):
    """Different relations in the two halves of the patch: each half is recovered away from the boundary."""
    left = 0.9 * guide[:, 3:4]
    right = 0.3 * guide[:, 0:1] + 0.1
    truth = torch.cat([left[..., :60], right[..., 60:]], -1)
    lr = block_mean_t(truth, 2)
    est = project_t(local_regression_t(guide, lr, 2, window=3, ridge=1e-12), lr, 2)
    away = torch.ones_like(truth, dtype=torch.bool)
    away[..., 48:72] = False  # the window (3 coarse px) and the projection (4 coarse px) straddle the boundary
    assert (est - truth).abs()[away].max() < 1e-3
    assert (est - truth).abs()[away].max() < 0.1 * (est - truth).abs().max()


def test_self_ensemble_is_equivariant_and_a_single_pass_is_not(guide):
    torch.manual_seed(0)
    net = S2SRNet().double()
    for p in net.sr.parameters():  # a non-trivial, non-symmetric band SR network
        torch.nn.init.normal_(p, 0.0, 0.05)
    x = guide[:, :, :40, :48].reshape(4, 1, 40, 48)
    with torch.inference_mode():
        net.ensemble = 8
        a = net.super_resolve(torch.rot90(x, 1, (-2, -1)), 4)
        b = torch.rot90(net.super_resolve(x, 4), 1, (-2, -1))
        assert (a - b).abs().max() < 1e-9
        net.ensemble = 1
        a = net.super_resolve(torch.rot90(x, 1, (-2, -1)), 4)
        b = torch.rot90(net.super_resolve(x, 4), 1, (-2, -1))
        assert (a - b).abs().max() > 1e-4
    with pytest.raises(ValueError, match="ensemble"):
        S2SRNet(ensemble=3)


@pytest.mark.parametrize("scale", [2, 4, 10])
def test_band_sr_head_in_strips_gives_the_whole_head_values(scale, monkeypatch):
    """At inference the shipped band SR network runs its output-grid head in strips of rows (its temporaries hold
    scale^2 x feats channels per input pixel: at x10 several times the output's size). Strips of 3 rows, each
    with ``strip_margin`` rows of context, give the whole head's values on real pixels (the embedded sample, 10 m
    and 60 m bands, several images at once); one row of context less does not, so the margin is what makes it
    exact."""
    from s2sr_cloud.model import nets
    from s2sr_cloud.model.predictors import cached_model
    from s2sr_cloud.testing import sample_grid_stack

    x, _ = sample_grid_stack(("B02", "B08", "B01", "B09"))
    x = torch.from_numpy(np.nan_to_num(x[0, :, 40:100, 30:110], nan=0.1)).float()[:, None]  # (4, 1, 60, 80)
    sr = cached_model("s2sr-v2", torch.device("cpu")).sr
    assert sr.hr_feats and sr.smooth  # the head that needs the most context
    with torch.inference_mode():
        monkeypatch.setattr(nets, "HEAD_STRIP_PX", 2**40)
        whole = sr(x, scale)
        monkeypatch.setattr(nets, "HEAD_STRIP_PX", 3 * 4 * 80 * scale * scale)
        strips = sr(x, scale)
        margin = nets.BandSR.strip_margin
        monkeypatch.setattr(nets.BandSR, "strip_margin", lambda self, s: margin(self, s) - 1)
        short = sr(x, scale)
    assert whole.shape == strips.shape == (4, 1, 60 * scale, 80 * scale)
    assert (whole - strips).abs().max() < 1e-6
    if scale > 2:  # at x2 the Gaussian's last row of reach weighs 4e-6: a short margin is not seen there
        assert (whole - short).abs().max() > 1e-4
    # training (autograd on) keeps the whole head
    monkeypatch.setattr(nets.BandSR, "strip_margin", margin)
    xg = x[:1].clone().requires_grad_(True)
    sr(xg, scale).sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all()


def test_head_strips_are_sized_by_the_device():
    """CPU keeps 4 M px strips (its memory is the worker's budget); a CUDA device gets strips of an eighth of its
    memory at 64 B/px: an 80 GB card runs a default block's head whole (strips cost it 10-36% of the network's time),
    an 8 GB card still in strips, and none gets smaller strips than the CPU."""
    from s2sr_cloud.model import nets

    assert nets.head_strip_px("cpu") == nets.head_strip_px("cpu", 80 * 2**30) == 2**22
    big = nets.head_strip_px("cuda", 80 * 2**30)
    assert big == 80 * 2**30 // (8 * 64)
    assert big > 6 * 4056**2 and 2 * big > 6 * 5340**2  # default blocks, 6 bands: x4 whole, x10 in 2 strips
    assert nets.head_strip_px("cuda", 8 * 2**30) == 2**24
    assert nets.head_strip_px("cuda", 1 * 2**30) == 2**22
    assert nets.head_strip_px("cuda", None) == 2**22
    # the statistics sums' strips follow the same rule (ops.tops.strip_px): a whole default block on an 80 GB card
    from s2sr_cloud.ops import block, tops

    assert tops.strip_px(block.STRIP_OUTPUT_PX, block.STATS_BYTES_PER_PX, "cpu", 80 * 2**30) == 2**20
    assert tops.strip_px(block.STRIP_OUTPUT_PX, block.STATS_BYTES_PER_PX, "cuda", 80 * 2**30) > 4056**2
    assert block.strip_rows(1014, 4) == 2**20 // (1014 * 16)
