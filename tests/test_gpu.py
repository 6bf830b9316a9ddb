"""The device path of the chunk function: the same torch code runs on CPU in the normal suite (these tests
without the mark) and on CUDA where present (marked ``gpu``; skipped without a GPU). Checks the guarantees on the
device: consistency, exact footprint sums in the uint16 store, chunk invariance, NaN isolation, and CPU = GPU."""

import numpy as np
import pytest
import torch

from s2sr_cloud.model.predictors import BicubicPredictor, TorchPredictor
from s2sr_cloud.ops import tops
from s2sr_cloud.ops.block import BlockSpec, super_resolve_block, super_resolve_block_sums
from s2sr_cloud.ops.halo import required_halo
from s2sr_cloud.ops.resample import block_mean, project, quantize_consistent, replicate

from .conftest import sample_grid_stack

CUDA = torch.cuda.is_available()
gpu = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
S2 = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
X, F = sample_grid_stack(S2)
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, gpu])]


def _run(x, p, scale, **kw):
    h = required_halo(p.reach(F, scale), F)
    xp = np.pad(x, ((0, 0), (0, 0), (h, h), (h, h)), mode="symmetric")
    return super_resolve_block_sums(xp, p, BlockSpec(scale, F, h, **kw))


@pytest.mark.parametrize("device", DEVICES)
def test_torch_ops_match_numpy(device):
    rng = np.random.default_rng(0)
    x = block_mean(X[0, 1, :48, :48].astype(np.float64), 2)
    for k in (2, 4, 24):
        y = replicate(x, k) + rng.normal(0, 0.02, (24 * k, 24 * k))
        ref = project(y, x, k)
        got = tops.project(torch.from_numpy(y).float().to(device), torch.from_numpy(x).to(device), k).cpu().numpy()
        assert np.abs(block_mean(got.astype(np.float64), k) - x).max() < 1e-6  # float32 projection, exact
        assert np.abs(got - ref).max() < 1e-4
        dn = np.rint((x + 0.1) / 1e-4)
        q = tops.quantize_consistent(torch.from_numpy((ref + 0.1) / 1e-4).to(device), torch.from_numpy(dn).to(device),
                                     k).cpu().numpy()
        assert np.array_equal(q, quantize_consistent((ref + 0.1) / 1e-4, dn, k))


@pytest.mark.parametrize("device", DEVICES)
def test_bicubic_guarantees_on_device(device):
    x = X[..., :120, :120].copy()
    x[0, 1, 60:63, 30:32] = np.nan
    y, sums = _run(x, BicubicPredictor(device=device), 4, quantum=(1e-4, -0.1))
    for c, f in enumerate(F):
        dn = (y[0, c].astype(np.float64) + 0.1) / 1e-4
        ok = ~np.isnan(dn)
        assert np.abs(dn[ok] - np.round(dn[ok])).max() < 0.01
        k = f * 4
        native = np.rint((block_mean(x[0, c].astype(np.float64), f) + 0.1) / 1e-4)
        foot = np.round(dn).reshape(dn.shape[0] // k, k, dn.shape[1] // k, k).sum(axis=(1, 3))
        good = ~np.isnan(native) & ~np.isnan(foot)
        assert np.array_equal(foot[good], native[good] * k * k)  # exact footprint sums in the store's DN
    nan = np.isnan(y[0, 1])
    assert nan.sum() == 6 * 16 and not np.isnan(y[0, [0, 2, 3]]).any()
    from s2sr_cloud.ops.stats import COMPARISONS, NSUM

    assert sums.shape == (1, len(COMPARISONS), 13, NSUM) and np.isfinite(sums).all()


@pytest.mark.gpu
@gpu
def test_cpu_and_gpu_agree():
    x = X[..., :96, :96]
    cpu, scpu = _run(x, TorchPredictor("s2sr-v2", device="cpu", ensemble=1), 4)
    cuda, scuda = _run(x, TorchPredictor("s2sr-v2", device="cuda", ensemble=1), 4)
    assert np.nanmax(np.abs(cpu - cuda)) < 1e-4
    assert np.allclose(scpu, scuda, rtol=1e-4, atol=1e-3)


@pytest.mark.gpu
@gpu
def test_s2sr_v1_on_gpu_chunk_invariant_and_consistent():
    p = TorchPredictor("s2sr-v2", device="cuda", ensemble=1)
    x = X[..., :144, :144]
    whole, _ = _run(x, p, 4)
    h = required_halo(p.reach(F, 4), F)
    xp = np.pad(x, ((0, 0), (0, 0), (h, h), (h, h)), mode="symmetric")
    left = super_resolve_block(xp[..., :, :72 + 2 * h], p, BlockSpec(4, F, h))
    right = super_resolve_block(xp[..., :, 72:], p, BlockSpec(4, F, h))
    assert np.nanmax(np.abs(np.concatenate([left, right], -1) - whole)) <= 1e-5
    for c, f in enumerate(F):
        native = block_mean(x[0, c].astype(np.float64), f)
        assert np.abs(block_mean(whole[0, c].astype(np.float64), f * 4) - native).max() < 1e-5


@pytest.mark.parametrize("device", DEVICES)
def test_decode_table_on_device(device):
    """The 65536-entry decode table gives ``decode_dn``'s values bit for bit on the device: DN 0, 1, DN_MAX, the
    fill (NaN) and real bands' codes. (Round 13's quantiser and contraction on the device:
    tests/test_ops.py::test_torch_quantiser_and_contraction_equal_numpy_and_leave_their_input.)"""
    from s2sr_cloud.ops import block as B

    dn = np.concatenate([np.array([0, 1, B.DN_MAX, B.DN_FILL], np.uint16),
                         np.rint(X[0, :, :30, :30].ravel() / 1e-4 + 1000).astype(np.uint16)]).reshape(1, -1, 1, 1)
    spec = BlockSpec(4, (1,) * dn.shape[1], 0, quantum=(1e-4, -0.1), detail=False)  # bands only
    got = B._decode_t(torch.from_numpy(dn.astype(np.int32)).to(device), spec.quantum).cpu().numpy()
    np.testing.assert_array_equal(got, B.decode_dn(dn, spec))  # NaN at the fill on both sides
