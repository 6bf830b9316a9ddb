"""The torch path with a small seeded network: pickling, per-process model cache, tiling/batching invariance."""

import pickle

import numpy as np
import pytest
import torch

from s2sr_cloud.errors import ConfigError, ModelError
from s2sr_cloud.model import predictors
from s2sr_cloud.model.predictors import BicubicPredictor, TorchPredictor, get_predictor, pick_device
from s2sr_cloud.model.registry import build_model, get_entry
from s2sr_cloud.ops.block import BlockSpec, super_resolve_block

from .conftest import sample_grid_stack

X, FACTORS = sample_grid_stack(("B04", "B03", "B02"))


def test_predictor_pickles_by_constructor_arguments():
    p = TorchPredictor("tiny-test", tile=32, batch=3)
    p.predict(X[..., :48, :48], FACTORS, 2)  # loads the model into this process
    blob = pickle.dumps(p)
    assert len(blob) < 500  # no tensors travel with the task
    assert pickle.loads(blob) == p


def test_model_loads_once_per_process():
    predictors._CACHE.clear()
    p = TorchPredictor("tiny-test")
    for _ in range(3):
        p.predict(X[..., :24, :24], FACTORS, 2)
    assert predictors.loaded_models() == [("tiny-test", "cpu")]


@pytest.mark.parametrize("tile,batch", [(16, 1), (24, 5), (50, 2), (1000, 8)])
def test_tiling_and_batching_do_not_change_the_result(tile, batch):
    x = X[..., :96, :72]
    ref = TorchPredictor("tiny-test", tile=1000, batch=1).predict(x, FACTORS, 3)
    out = TorchPredictor("tiny-test", tile=tile, batch=batch).predict(x, FACTORS, 3)
    assert out.shape == (1, 3, 288, 216)
    assert np.abs(out - ref).max() < 1e-5


def test_tiny_network_is_not_the_identity_and_pipeline_makes_it_consistent():
    net = build_model("tiny-test")
    x = torch.from_numpy(X[:, :, :32, :32].copy())
    with torch.inference_mode():
        y = net(x, 2)
    base = torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
    assert (y - base).abs().max() > 1e-3
    p = TorchPredictor("tiny-test")
    h = 12
    out = super_resolve_block(np.pad(X[..., :60, :60], ((0, 0), (0, 0), (h, h), (h, h)), mode="symmetric"), p,
                              BlockSpec(2, FACTORS, h))
    assert out.shape == (1, 4, 120, 120)
    mean = out[0, :3].reshape(3, 60, 2, 60, 2).mean(axis=(2, 4))
    assert np.abs(mean - X[0, :, :60, :60]).max() < 1e-5
    assert out[0, 3].max() > 0  # the detail layer sees what the network added


def test_registry_entry_matches_network():
    entry = get_entry("tiny-test")
    net = build_model("tiny-test")
    assert net.head.in_channels == len(entry.bands)
    assert set(entry.scales) == {int(s) for s in net.tails}
    assert entry.receptive_field == net.reach(len(net.body))


def test_unknown_model_and_wrong_scale():
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        get_predictor("nope")
    with pytest.raises(ModelError, match="--scale"):
        TorchPredictor("tiny-test").predict(X[..., :24, :24], FACTORS, 5)
    assert isinstance(get_predictor("bicubic"), BicubicPredictor)


def test_ensemble_for_a_model_without_one_is_refused_not_ignored():
    # tiny-test (ResidualSR) and bicubic have no self-ensemble: asking for one fails when the job is planned
    for name in ("tiny-test", "bicubic"):
        with pytest.raises(ConfigError, match=f"^--ensemble 4: model {name} has no self-ensemble; drop --ensemble$"):
            get_predictor(name, ensemble=4)
        assert get_predictor(name, ensemble=1).name == name  # a single pass: what they do anyway
    with pytest.raises(ConfigError, match="model bicubic has no self-ensemble"):  # the default falls back to it
        get_predictor("default", bands=("B04", "B03", "B02"), ensemble=2)
    with pytest.raises(ConfigError, match="model tiny-test has no self-ensemble"):
        TorchPredictor("tiny-test", ensemble=8)
    assert not TorchPredictor("tiny-test").supports_ensemble and not BicubicPredictor().supports_ensemble
    assert TorchPredictor("s2sr-v1", ensemble=8).supports_ensemble


def test_predictors_declare_what_the_pipeline_dispatches_on():
    assert BicubicPredictor().is_reference and not BicubicPredictor().loads_model
    assert not TorchPredictor("tiny-test").is_reference and TorchPredictor("tiny-test").loads_model


def test_device_selection_on_cpu_machine():
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA"):
            pick_device("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_matches_cpu():
    x = X[..., :64, :64]
    cpu = TorchPredictor("tiny-test", device="cpu").predict(x, FACTORS, 2)
    gpu = TorchPredictor("tiny-test", device="cuda").predict(x, FACTORS, 2)
    assert np.abs(cpu - gpu).max() < 1e-4


S2 = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")


@pytest.mark.parametrize("name", ["s2sr-v1", "s2sr-v2"])
def test_shipped_registry_entries_match_weights_and_network(name):
    from safetensors.torch import load_file

    from s2sr_cloud.model.nets import S2SRNet
    from s2sr_cloud.model.registry import WEIGHTS_DIR, default_model, file_sha256

    assert default_model() == "s2sr-v2"
    entry = get_entry(name)
    path = WEIGHTS_DIR / entry.weights
    assert file_sha256(path) == entry.sha256
    net = S2SRNet(**entry.kwargs)
    state = load_file(str(path))
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert entry.bands == S2 and entry.factors == (6, 1, 1, 1, 2, 2, 2, 1, 2, 6, 2, 2)
    assert entry.receptive_field >= net.reach() and entry.receptive_field % 6 == 0
    assert set(entry.scales) == {int(s) for s in net.sr.tails}


def test_s2sr_v1_tiling_does_not_change_the_result():
    """Tiles overlap by the declared receptive field: if it were too small, tile seams would show here."""
    x, f = sample_grid_stack(S2)
    x = x[..., :96, :96]
    one = TorchPredictor("s2sr-v1", tile=480, ensemble=1).predict(x, f, 4)
    tiled = TorchPredictor("s2sr-v1", tile=48, batch=3, ensemble=1).predict(x, f, 4)
    assert np.abs(one - tiled).max() <= 1e-5
    # the registry's self-ensemble (4) is what runs by default, and it differs from one pass
    assert np.abs(TorchPredictor("s2sr-v1", tile=480).predict(x, f, 4) - one).max() > 1e-4


@pytest.mark.parametrize("crop,name", [(0, "s2sr-v1"), (30, "s2sr-v1"), (30, "s2sr-v2"),
                                       ({1: 54, 2: 48, 6: 30}, "s2sr-v2"),
                                       ({1: (0, 54, 6, 0), 2: (0, 48, 6, 0), 6: (0, 30, 6, 0)}, "s2sr-v2")])
def test_s2sr_region_inference_equals_whole_forward(crop, name):
    """Each band group runs on its own window; on its whole region the result is the whole-array forward's (the
    per-group reach is not too small, and a window that reaches an edge of the array stops there, as the whole
    forward does). With a crop per native factor (and per side), the result is cropped by the smallest per side
    and group f matches on its own region (crop c_f); asked for alone, group f gives exactly those values."""
    from s2sr_cloud.model import nets

    x, f = sample_grid_stack(S2)
    n, s = 180, 2
    xt = torch.from_numpy(np.ascontiguousarray(x[..., :n, :n]))
    net = build_model(name)
    crops = nets.group_crops(crop)
    c0 = tuple(min(c[i] for c in crops.values()) for i in range(4))
    with torch.inference_mode():
        whole = net(xt, s, 1)[..., c0[0] * s:(n - c0[1]) * s, c0[2] * s:(n - c0[3]) * s]
        part = nets.s2srnet_forward_region(net, xt, s, crop, 1, band_batch=5)
    assert part.shape == whole.shape
    for c, fac in enumerate(f):
        m = [(crops[fac][i] - c0[i]) * s for i in range(4)]
        a = whole[0, c, m[0]:whole.shape[-2] - m[1], m[2]:whole.shape[-1] - m[3]]
        b = part[0, c, m[0]:part.shape[-2] - m[1], m[2]:part.shape[-1] - m[3]]
        assert (a - b).abs().max() <= 1e-5, (c, fac)
    # one group alone (``only``, how the chunk function asks): its bands only, on its own region, the same values
    for fac, idx in nets.GROUP_INDEX.items():
        with torch.inference_mode():
            alone = nets.s2srnet_forward_region(net, xt, s, crop, 1, band_batch=5, only=fac)
        m = [(crops[fac][i] - c0[i]) * s for i in range(4)]
        assert alone.shape == (1, len(idx), (n - crops[fac][0] - crops[fac][1]) * s,
                               (n - crops[fac][2] - crops[fac][3]) * s)
        assert torch.equal(alone, part[:, idx, m[0]:part.shape[-2] - m[1], m[2]:part.shape[-1] - m[3]]), fac
