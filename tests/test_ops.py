"""Chunk functions without dask, on the embedded REAL scene: consistency, quantisation, NaN isolation, halo,
chunk invariance."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from s2sr_cloud.model.predictors import BicubicPredictor
from s2sr_cloud.ops.block import BlockSpec, super_resolve_block
from s2sr_cloud.ops.halo import ChunkError, plan_chunks, required_halo
from s2sr_cloud.ops.resample import block_mean, project, quantize_consistent, replicate

from .conftest import sample_grid_stack

BANDS = ("B01", "B02", "B04", "B05", "B11")
X, FACTORS = sample_grid_stack(BANDS)  # (1, 5, 240, 240)
# the device tests' CUDA case (marked gpu: benchmarks/gpu.sh runs them; skipped without a GPU)
CUDA = pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(),
                                                                       reason="needs a CUDA GPU")])


def _whole(x, predictor, scale, factors, **kw):
    """The whole array as one block: no context beyond any edge (pads 0), as the pipeline's one-chunk area."""
    h = required_halo(predictor.reach(factors, scale), factors)
    return super_resolve_block(x, predictor, BlockSpec(scale, factors, h, **kw), pads=0), h


def _chunked(x, predictor, scale, factors, ys, xs, **kw):
    """Cut the array into blocks with halos exactly as dask's overlap (boundary "none") does: no halo beyond the
    array's edges, and the chunk function told which sides those are."""
    h = required_halo(predictor.reach(factors, scale), factors)
    rows = []
    y0 = 0
    for i, cy in enumerate(ys):
        x0, row = 0, []
        for j, cx in enumerate(xs):
            pads = (h if i else 0, h if i < len(ys) - 1 else 0, h if j else 0, h if j < len(xs) - 1 else 0)
            blk = x[..., y0 - pads[0]:y0 + cy + pads[1], x0 - pads[2]:x0 + cx + pads[3]]
            row.append(super_resolve_block(blk, predictor, BlockSpec(scale, factors, h, **kw), pads=pads))
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
    assert plan_chunks(240, 100, 6, 66) == (84, 84, 72)  # was (102, 138): equal chunks, not full ones and a rest
    assert plan_chunks(10980, 840, 6, 108) == (786,) * 13 + (762,)  # was 12 x 840 + 900
    assert plan_chunks(1098, 840, 6, 108) == (552, 546)  # was 840 + 258: one worker held 58% of the tile
    assert plan_chunks(240, 72, 6, 66) == (72, 72, 96)  # equal chunks (60) would not hold the halo: full ones
    assert sum(plan_chunks(1098 - 1098 % 6, 384, 6, 66)) == 1098 - 1098 % 6
    assert all(c % 6 == 0 for c in plan_chunks(600, 100, 6, 66))
    with pytest.raises(ChunkError, match="--chunk"):
        plan_chunks(600, 48, 6, 66)


def test_plan_chunks_is_a_regular_grid_of_equal_chunks():
    """Every plan is a store's regular grid (all chunks equal but the last, aligned), each chunk holds the halo,
    none exceeds the chunk asked for unless a short rest was merged, and equal chunks differ by < 2 alignments
    times the number of chunks (the rounding)."""
    for n in range(6, 3000, 6):
        for chunk, halo in ((96, 60), (384, 108), (840, 108), (150, 108)):
            sizes = plan_chunks(n, chunk, 6, halo)  # chunk >= halo: always a plan
            assert sum(sizes) == n and all(s % 6 == 0 and s > 0 for s in sizes)
            assert all(s == sizes[0] for s in sizes[:-1])
            assert len(sizes) == 1 or min(sizes) >= halo
            if len(sizes) == -(-n // chunk) and len(sizes) > 1:  # the equal plan
                assert max(sizes) <= chunk and sizes[0] - sizes[-1] <= 6 * len(sizes)


@pytest.mark.parametrize("k", [2, 4, 10])
def test_projection_keeps_non_negative_footprints_non_negative(k):
    """Real reflectance, a prediction that dips below 0 (ringing over dark water): the consistency layer leaves no
    negative pixel in a footprint whose input is >= 0, keeps every footprint mean exact, and leaves footprints
    with negative input (processing-baseline offset) as the plain projection makes them."""
    import torch

    from s2sr_cloud.ops import tops

    x = block_mean(X[0, 1].astype(np.float64), 2)[:30, :30].copy()
    x[:3, :3] = -0.004  # negative input after the -0.1 offset: stays as it is
    rng = np.random.default_rng(1)
    y = replicate(x, k) + rng.normal(0, 0.2, (30 * k, 30 * k))  # large swings: many footprints dip below 0
    p = project(y, x, k)
    assert np.abs(block_mean(p, k) - x).max() < 1e-12
    mins = -block_mean(-p, k) if k == 1 else p.reshape(30, k, 30, k).min(axis=(1, 3))
    assert (mins[x >= 0] >= 0).all()
    from s2sr_cloud.ops.resample import RELAX, SMOOTH_ITERS, bicubic

    raw = y.copy()  # the projection without the positivity step, on the negative-input footprints
    for _ in range(SMOOTH_ITERS):
        raw += RELAX * bicubic(x - block_mean(raw, k), k)
    raw += replicate(x - block_mean(raw, k), k)
    neg = replicate(x < 0, k)
    assert np.array_equal(p[neg], raw[neg]) and (raw[~neg] < 0).any()
    # the torch twin (chunk function) agrees with the numpy reference
    pt = tops.project(torch.from_numpy(y), torch.from_numpy(x), k).numpy()
    assert np.abs(pt - p).max() < 1e-9 and (pt.reshape(30, k, 30, k).min(axis=(1, 3))[x >= 0] >= 0).all()


def test_footprint_trace_sees_the_input_grid():
    from s2sr_cloud.ops.metrics import footprint_trace
    from s2sr_cloud.ops.resample import bicubic

    x = block_mean(X[0, 1].astype(np.float64), 2)[:60, :60]
    k = 4
    smooth = bicubic(x, k)
    blocky = 0.5 * smooth + 0.5 * replicate(x, k)
    assert 0.8 < footprint_trace(smooth, k) < 1.1
    assert footprint_trace(blocky, k) > 1.5 * footprint_trace(smooth, k)


class _Recorder:
    """A bicubic predictor that records the block shape and the per-side crops the chunk function asks for."""

    def __init__(self):
        self.p, self.calls = BicubicPredictor(), []
        self.name, self.device, self.is_reference, self.loads_model = "rec", "cpu", True, False

    def __getattr__(self, k):
        return getattr(self.p, k)

    def predict_t(self, x, factors, scale, crop=0):
        self.calls.append((tuple(x.shape[-2:]), crop))
        return self.p.predict_t(x, factors, scale, crop)

    def predict_bands_t(self, x, factors, scale, crops, band_batch=1):
        self.calls.append((tuple(x.shape[-2:]), crops))
        return self.p.predict_bands_t(x, factors, scale, crops, band_batch)


def test_area_edges_cost_the_network_no_halo():
    """A one-chunk area: the predictor gets the area itself (no mirrored halo) and keeps every side whole; a corner
    block of a chunked area keeps its two area edges whole and crops only its inner sides."""
    rec = _Recorder()
    h = required_halo(rec.reach(FACTORS, 4), FACTORS)
    super_resolve_block(X, rec, BlockSpec(4, FACTORS, h), pads=0)
    assert rec.calls[0][0] == (240, 240)
    assert all(c == (0, 0, 0, 0) for c in rec.calls[0][1].values())
    rec.calls.clear()
    _chunked(X, rec, 4, FACTORS, (120, 120), (120, 120))
    shape, crop = rec.calls[0]  # the top-left block: halo on its bottom and right sides only
    assert shape == (120 + h, 120 + h)
    assert all(c[0] == c[2] == 0 and c[1] > 0 and c[3] > 0 for c in crop.values())


@pytest.mark.parametrize("scale", [4, 10])
def test_statistics_sums_equal_the_numpy_reference(scale):
    """The chunk function's torch sums (point comparison from per-footprint sums of the output) equal
    ``ops.stats.block_sums`` (every pair formed), with nodata on both sides: an input pixel, a 20 m pixel, and
    output pixels the input does not have (as a model's NaN would be)."""
    import torch

    from s2sr_cloud.ops.block import block_sums_t, point_sums_t
    from s2sr_cloud.ops import tops
    from s2sr_cloud.ops.stats import block_sums

    x = X[..., :60, :60].copy()
    x[0, 1, 10:13, 20:22] = np.nan
    x[0, 3, 30:32, 40:42] = np.nan
    y = super_resolve_block(x, BicubicPredictor(), BlockSpec(scale, FACTORS, 0), pads=0)[:, :5]
    y[0, 2, 7 * scale:9 * scale + 3, 5:40] = np.nan
    y[0, 4] += np.sin(np.arange(60 * scale) / 3.0).astype(np.float32) * 0.01  # detail the input lacks
    want = block_sums(x, y, FACTORS, scale, ref=y)
    got = block_sums_t(torch.from_numpy(x), torch.from_numpy(y), FACTORS, scale).numpy()
    n = got[0, 1, :5, 0]
    assert n[1] < n[0] and n[2] < n[0]  # the NaN pairs are left out
    assert np.allclose(got[:, :2], want[:, :2], rtol=1e-10, atol=1e-9)
    for ci in range(5):
        ref = point_sums_t(torch.from_numpy(x[:, ci]), torch.from_numpy(y[:, ci]), scale).numpy()
        assert np.allclose(ref, want[:, 2, ci, :tops.NSUM], rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("k", [4, 10, 24, 60])
def test_quantiser_selection_without_sort_equals_the_stable_sort(k):
    """The CPU quantiser (round to nearest, then a few passes per footprint) takes the same pixels as the stable
    sort (the GPU path), on the projection of real bands: with ties (flat footprints, fractions on a 1/4 grid),
    and with footprints far from consistent (the sort fallback)."""
    import torch

    from s2sr_cloud.ops import tops

    n = 120 // k * k
    x = X[0, :, :n, :n].astype(np.float64)  # (5, n, n) reflectance of real bands
    xn = np.round(block_mean(x, k) / 1e-4)  # native DN
    y = project(x / 1e-4 + np.random.default_rng(k).normal(0, 30, x.shape), xn, k)
    y[0, :k, :k] = 1000.25  # one flat footprint: every fraction ties
    y[1] = np.round(y[1] * 4) / 4  # ties on a quarter grid
    xn[2, 0, 0] -= 40  # far from consistent: footprints that need many pixels changed, or more than they have
    xn[2, -1, -1] += 0.5

    def footprints(a):  # (5, n, n) -> (5, n/k, k, n/k, k)
        return a.reshape(5, n // k, k, n // k, k)

    h = footprints(y).swapaxes(-3, -2).reshape(5, n // k, n // k, k * k)
    q = np.floor(h)
    frac = torch.from_numpy(h - q).float()
    deficit = torch.from_numpy(np.clip(np.rint(xn * k * k - q.sum(-1)), 0, k * k))
    fast, ref = tops._round_up_select(frac, deficit), tops._round_up_sort(frac, deficit)
    assert torch.equal(fast, ref)
    assert int((fast != (frac >= 0.5)).sum()) > 0  # rounding to nearest alone would not do
    dn = tops.quantize_consistent(torch.from_numpy(y), torch.from_numpy(xn), k).numpy()
    sums = footprints(dn).sum(axis=(2, 4))
    reachable = (xn * k * k >= footprints(np.floor(y)).sum(axis=(2, 4))) & (
        xn * k * k <= footprints(np.ceil(y)).sum(axis=(2, 4)))
    assert np.array_equal(sums[reachable], (xn * k * k)[reachable])
    assert np.abs(dn - y).max() < 1.0


def test_dn_output_is_the_store_encoding_of_the_float_output():
    """With a quantum the chunk function returns uint16 DN (half the bytes of float32 to hold and copy): exactly
    what the store's encoder makes of the float output, channel by channel (the detail layer with offset 0, as the
    store's encoding says), DN_FILL exactly on the nodata footprint, the same statistics sums, and decoding gives
    the float output back bit for bit."""
    import xarray as xr
    import zarr

    from s2sr_cloud.io import store
    from s2sr_cloud.model.predictors import TorchPredictor
    from s2sr_cloud.ops.block import DN_FILL, decode_dn, super_resolve_block_sums

    from s2sr_cloud.bands import ALL_BANDS

    x, factors = sample_grid_stack(ALL_BANDS)
    x = x[..., :60, :60].copy()
    x[0, 1, 30, 30] = np.nan  # B02, a 10 m band: its own 4 x 4 footprint is nodata
    p = TorchPredictor("s2sr-v2", ensemble=1)  # a learned model: the detail layer is not 0
    h = required_halo(p.reach(factors, 4), factors)
    spec = BlockSpec(4, factors, h, quantum=store.STORE_QUANTUM)
    dn, sums_dn = super_resolve_block_sums(x, p, spec, 0, dn=True)
    fl, sums_fl = super_resolve_block_sums(x, p, spec, 0)
    assert dn.dtype == np.uint16 and fl.dtype == np.float32 and dn.shape == fl.shape == (1, 13, 240, 240)
    assert np.array_equal(sums_dn, sums_fl)
    assert np.array_equal(decode_dn(dn, spec), fl, equal_nan=True)
    assert (dn[0, 1] == DN_FILL).sum() == 16 and (dn[0, 1, 120:124, 120:124] == DN_FILL).all()
    assert np.array_equal(dn == DN_FILL, np.isnan(fl)) and dn[0, -1].max() > 10  # detail: > 1e-3 somewhere
    names = [*ALL_BANDS, store.DETAIL]
    ds = xr.Dataset({n: (("time", "y", "x"), fl[:, i]) for i, n in enumerate(names)})
    enc = store.encoding_for(ds, "uint16")
    for i, n in enumerate(names):
        sf, off = spec.quanta(len(names))[i]
        assert (enc[n]["scale_factor"], enc[n]["add_offset"]) == (np.float32(sf), np.float32(off))
        arr = zarr.create_array(store={}, shape=fl[0, i].shape, dtype="uint16", fill_value=store.FILL_DN)
        arr.attrs.update({"scale_factor": float(enc[n]["scale_factor"]), "add_offset": float(enc[n]["add_offset"]),
                          "_FillValue": store.FILL_DN})
        assert np.array_equal(store._encode(arr, fl[0, i]), dn[0, i]), n  # the old path: float -> encoder
        v = dn[0, i]
        assert store._encode(arr, v) is v  # DN go in as they are
    floats = zarr.create_array(store={}, shape=fl[0, 0].shape, dtype="float32", fill_value=np.nan)
    with pytest.raises(store.OutputError, match="uint16 DN cannot go into the float32 array"):
        store._encode(floats, dn[0, 0])


@pytest.mark.parametrize("device", ["cpu", CUDA])
@pytest.mark.parametrize("k, shape", [(4, (3, 24, 40)), (10, (2, 30, 10)), (1, (2, 7, 9)), (6, (1, 6, 6))])
def test_torch_quantiser_and_contraction_equal_numpy_and_leave_their_input(k, shape, device):
    """The torch quantiser (by footprint, in place on its own copy; on CUDA by the sort) and the contraction (by
    broadcasting per footprint) give numpy's values bit for bit, also where a footprint is a whole row (no copy is
    needed to lay the footprints out) or k == 1, and leave their input unchanged. Real bands, footprints that dip
    below 0."""
    from s2sr_cloud.ops import tops
    from s2sr_cloud.ops.resample import contract_nonneg

    c, hh, ww = shape
    x = X[0, :c, :hh, :ww].astype(np.float64) / 1e-4  # DN of real bands
    xn = np.round(block_mean(x, k))
    y = x - block_mean(x, k).repeat(k, -2).repeat(k, -1) + xn.repeat(k, -2).repeat(k, -1)  # consistent
    y[:, :k, :] -= 1.3 * y[:, :k, :].max()  # the first row of footprints dips below 0 (input >= 0)
    yt, xt, before = torch.from_numpy(y.copy()).to(device), torch.from_numpy(xn).to(device), y.copy()
    got = tops.contract_nonneg(yt, xt, k).cpu().numpy()
    assert np.array_equal(got, contract_nonneg(y, xn, k))
    if k > 1:
        assert (got[:, :k].min() >= 0) and not np.array_equal(got, y)  # something was contracted
    q = tops.quantize_consistent(yt, xt, k).cpu().numpy()
    assert np.array_equal(q, quantize_consistent(y, xn, k))
    assert np.array_equal(yt.cpu().numpy(), before)
