"""Chunk functions without dask, on the embedded REAL scene: consistency, quantisation, NaN isolation, halo,
chunk invariance."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2sr_cloud.model.predictors import BicubicPredictor
from s2sr_cloud.ops.block import BlockSpec, super_resolve_block
from s2sr_cloud.ops.halo import ChunkError, plan_chunks, required_halo
from s2sr_cloud.ops.resample import block_mean, project, quantize_consistent, replicate

from .conftest import sample_grid_stack

BANDS = ("B01", "B02", "B04", "B05", "B11")
X, FACTORS = sample_grid_stack(BANDS)  # (1, 5, 240, 240)


def _whole(x, predictor, scale, factors, **kw):
    h = required_halo(predictor.reach(factors, scale), factors, 2, 2)
    xp = np.pad(x, ((0, 0), (0, 0), (h, h), (h, h)), mode="symmetric")
    return super_resolve_block(xp, predictor, BlockSpec(scale, factors, h, **kw)), h


def _chunked(x, predictor, scale, factors, ys, xs, **kw):
    """Cut the reflect-padded array into blocks with halos exactly as dask's overlap does."""
    h = required_halo(predictor.reach(factors, scale), factors, 2, 2)
    xp = np.pad(x, ((0, 0), (0, 0), (h, h), (h, h)), mode="symmetric")
    rows = []
    y0 = 0
    for cy in ys:
        x0, row = 0, []
        for cx in xs:
            blk = xp[..., y0:y0 + cy + 2 * h, x0:x0 + cx + 2 * h]
            row.append(super_resolve_block(blk, predictor, BlockSpec(scale, factors, h, **kw)))
            x0 += cx
        rows.append(np.concatenate(row, axis=-1))
        y0 += cy
    return np.concatenate(rows, axis=-2)


def test_block_mean_replicate_are_inverse():
    a = X[0, 1, :12, :12].astype(np.float64)
    assert np.array_equal(block_mean(replicate(a, 3), 3), a)
    with pytest.raises(ValueError):
        block_mean(a[:10, :11], 3)


@pytest.mark.parametrize("k", [2, 4, 10, 24])
def test_projection_is_exact_and_smooth(k):
    x = block_mean(X[0, 1].astype(np.float64), 2)[:40, :40]
    rng = np.random.default_rng(0)
    y = replicate(x, k) + rng.normal(0, 0.05, (40 * k, 40 * k))
    p = project(y, x, k)
    assert np.abs(block_mean(p, k) - x).max() < 1e-12
    # projecting an already consistent image changes nothing
    assert np.abs(project(p, x, k) - p).max() < 1e-12


@settings(max_examples=30, deadline=None)
@given(k=st.sampled_from([2, 3, 4, 10]), seed=st.integers(0, 2**16))
def test_quantisation_preserves_every_footprint_sum(k, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 12000, (6, 7)).astype(np.float64)
    y = project(replicate(x, k) + rng.normal(0, 300, (6 * k, 7 * k)), x, k)
    q = quantize_consistent(y, x, k)
    assert np.array_equal(q, np.round(q))
    sums = q.reshape(6, k, 7, k).sum(axis=(1, 3))  # integers in float64: exact
    assert np.array_equal(sums, x * k * k)  # every footprint's DN sum, exactly
    assert np.abs(q - y).max() < 1.0


@pytest.mark.parametrize("scale", [2, 4, 10])
def test_output_is_consistent_per_native_footprint(scale):
    y, _ = _whole(X[..., :120, :120], BicubicPredictor(), scale, FACTORS, detail=False)
    for c, f in enumerate(FACTORS):
        native = block_mean(X[0, c, :120, :120].astype(np.float64), f)
        assert np.abs(block_mean(y[0, c].astype(np.float64), f * scale) - native).max() < 1e-5


def test_uint16_quantised_output_stays_consistent():
    y, _ = _whole(X[..., :120, :120], BicubicPredictor(), 4, FACTORS, quantum=(1e-4, -0.1), detail=False)
    dn = (y.astype(np.float64) + 0.1) / 1e-4
    assert np.abs(dn - np.round(dn)).max() < 0.01  # on the storage grid
    for c, f in enumerate(FACTORS):
        native = block_mean(X[0, c, :120, :120].astype(np.float64), f)
        assert np.abs(block_mean(y[0, c].astype(np.float64), f * 4) - native).max() < 1e-5


@settings(max_examples=8, deadline=None)
@given(cy=st.sampled_from([66, 72, 90, 120, 174]), cx=st.sampled_from([66, 78, 96, 120, 240]))
def test_chunk_invariance_any_chunking(cy, cx):
    whole, h = _whole(X, BicubicPredictor(), 4, FACTORS)
    ys, xs = plan_chunks(240, cy, 6, h), plan_chunks(240, cx, 6, h)
    chunked = _chunked(X, BicubicPredictor(), 4, FACTORS, ys, xs)
    assert chunked.shape == whole.shape
    assert np.nanmax(np.abs(chunked - whole)) <= 1e-5


def test_halo_too_small_breaks_invariance():
    """The halo is needed: with none, block edges differ from the whole-array result."""
    whole, _ = _whole(X, BicubicPredictor(), 4, FACTORS)
    xp = X
    blocks = [super_resolve_block(xp[..., :, i:i + 120], BicubicPredictor(), BlockSpec(4, FACTORS, 0))
              for i in (0, 120)]
    assert np.nanmax(np.abs(np.concatenate(blocks, -1) - whole)) > 1e-3


def test_nan_stays_in_its_footprint_and_does_not_spread():
    x = X.copy()
    x[0, 1, 100:103, 50:52] = np.nan  # 10 m band: 3 x 2 native pixels
    x[0, 3, 100:102, 50:52] = np.nan  # 20 m band: one native pixel
    y, _ = _whole(x, BicubicPredictor(), 4, FACTORS, detail=False)
    nan = np.isnan(y[0])
    assert nan[1].sum() == 6 * 16 and nan[1][400:412, 200:208].all()
    assert nan[3].sum() == 64 and nan[3][400:408, 200:208].all()
    assert not nan[[0, 2, 4]].any()  # other bands untouched
    clean, _ = _whole(X, BicubicPredictor(), 4, FACTORS, detail=False)
    # consistency still holds for the valid neighbours of the hole
    nb = block_mean(y[0, 1].astype(np.float64), 4)
    ok = ~np.isnan(nb)
    assert np.abs(nb[ok] - x[0, 1][ok]).max() < 1e-5
    far = np.ones((960, 960), bool)
    far[300:520, 100:320] = False
    assert np.abs(y[0, 1][far] - clean[0, 1][far]).max() < 1e-6  # the hole's influence is local


def test_plan_chunks_alignment_and_minimum():
    assert plan_chunks(240, 100, 6, 66) == (102, 138)
    assert sum(plan_chunks(1098 - 1098 % 6, 384, 6, 66)) == 1098 - 1098 % 6
    assert all(c % 6 == 0 for c in plan_chunks(600, 100, 6, 66))
    with pytest.raises(ChunkError, match="--chunk"):
        plan_chunks(600, 48, 6, 66)
