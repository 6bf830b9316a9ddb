"""``s2sr evaluate`` (and ``s2sr train``'s refusal to overwrite shipped weights) through the CLI on a real held-out BigEarthNet patch: the JSON keeps its format and reports the
footprint trace and the share of negative output for every method; the product's guarantees hold in it."""

import json
import subprocess
import sys

import torch

from .conftest import need_shared


def _evaluate(tmp_path, *args):
    out = tmp_path / "e.json"
    r = subprocess.run([sys.executable, "-m", "s2sr_cloud.cli", "evaluate", *args, "--json", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads(out.read_text()), r.stdout


def test_evaluate_sr_reports_trace_and_negatives(tmp_path):
    patch = need_shared("bigearthnet", "S2B_MSIL2A_20180421T114349_47_56")
    res, text = _evaluate(tmp_path, "--task", "sr", "--scale", "4", str(patch))
    assert {"s2sr", "bicubic", "bicubic+cons", "lanczos"} <= set(res["methods"])
    for name, m in res["methods"].items():
        o = m["overall"]
        assert {"rmse", "psnr", "ssim", "sam", "ergas", "consistency_l1", "consistency_sam_deg", "footprint_trace",
                "negative_share"} <= set(o), name
        assert 0.5 < o["footprint_trace"] < 2.0
    s = res["methods"]["s2sr"]["overall"]
    assert s["consistency_l1"] < 1e-4 and s["consistency_sam_deg"] < 0.1
    assert s["negative_share"] == 0.0  # real L2A input >= 0: no negative output (positivity-preserving layer)
    assert s["psnr"] > res["methods"]["bicubic"]["overall"]["psnr"]
    assert "trace" in text.splitlines()[1]


def test_evaluate_sharpen20_keeps_like_for_like_rows(tmp_path):
    patch = need_shared("bigearthnet", "S2A_MSIL2A_20170617T113321_4_55")
    need_shared("weights", "up42_DSen2_aesr")
    res, _ = _evaluate(tmp_path, "--task", "sharpen20", "--blur", "s2mtf", str(patch))
    assert {"aesr", "aesr+cons", "fuse", "fuse+cons"} <= set(res["methods"])
    for name in ("s2sr", "aesr+cons", "fuse+cons", "bicubic+cons"):
        o = res["methods"][name]["overall"]
        assert o["consistency_l1"] < 1e-4 and o["negative_share"] == 0.0, name


def test_evaluate_methods_subset_and_unknown_method(tmp_path):
    patch = need_shared("bigearthnet", "S2B_MSIL2A_20180421T114349_47_56")
    res, _ = _evaluate(tmp_path, "--task", "sr", "--scale", "2", "--model", "s2sr-v1", "--methods", "s2sr",
                       str(patch))
    assert list(res["methods"]) == ["s2sr"]
    r = subprocess.run([sys.executable, "-m", "s2sr_cloud.cli", "evaluate", "--task", "sr", "--methods", "s2sr,nope",
                        str(patch)], capture_output=True, text=True, timeout=600)
    assert r.returncode != 0 and "--methods: unknown nope" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_train_refuses_to_overwrite_the_shipped_weights():
    r = subprocess.run([sys.executable, "-m", "s2sr_cloud.cli", "train"], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "pass --out PATH" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_evaluate_bf16_autocast_is_measured_not_ignored(tmp_path):
    """``--precision bf16`` runs the network under bf16 autocast (on CPU here; on CUDA it is the measurement behind
    TorchPredictor's ``autocast``): the figures move, slightly, and the JSON says what was run."""
    patch = need_shared("bigearthnet", "S2B_MSIL2A_20180421T114349_47_56")
    fp32, _ = _evaluate(tmp_path, "--task", "sr", "--scale", "4", "--methods", "s2sr", str(patch))
    bf16, _ = _evaluate(tmp_path, "--task", "sr", "--scale", "4", "--methods", "s2sr", "--precision", "bf16",
                        str(patch))
    assert (fp32["precision"], bf16["precision"], bf16["device"]) == ("fp32", "bf16", "cpu")
    a, b = fp32["methods"]["s2sr"]["overall"], bf16["methods"]["s2sr"]["overall"]
    assert a["rmse"] != b["rmse"] and abs(a["psnr"] - b["psnr"]) < 0.1
    assert b["consistency_l1"] < 1e-4  # the consistency layer runs in float64 after the bf16 network
    r = subprocess.run([sys.executable, "-m", "s2sr_cloud.cli", "evaluate", "--task", "sr", "--device", "gpu",
                        str(patch)], capture_output=True, text=True, timeout=600)  # not a device name at all
    assert r.returncode != 0 and "'gpu' is not a torch device" in r.stderr and "internal error" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    if not torch.cuda.is_available():  # asking for a GPU that is not there: one line that says what to use
        r = subprocess.run([sys.executable, "-m", "s2sr_cloud.cli", "evaluate", "--task", "sr", "--device", "cuda",
                            str(patch)], capture_output=True, text=True, timeout=600)
        assert r.returncode != 0 and "use device 'cpu' or 'auto'" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
