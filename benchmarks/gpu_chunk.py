"""GPU check of the chunk function (issue 12): correctness on the device, then throughput. Needs only torch,
numpy and the repository (reads the embedded real sample; no dask, GDAL or STAC), so it runs on a GPU machine's
own Python. Readable lines, then one JSON object as the LAST line.

    python benchmarks/gpu_chunk.py                 # cuda when present, else cpu (then it says so)
    python benchmarks/gpu_chunk.py --device cpu    # the same on CPU, for the ratio

Figures:
- ``cpu_vs_device_max_abs`` / ``dn_mismatch``: the s2sr-v1 chunk output on the device vs on CPU (real sample, x4,
  ensemble 1), float reflectance and uint16 store DN.
- ``consistency_max_abs``: max |output averaged over each native footprint - input| on the device (float path).
- ``nan_isolated``: one NaN input pixel makes NaN exactly its own footprint in the output.
- per scale (4, 10), at the default chunk of graph.default_chunk (core 798 at x4, 384 at x10 input px, with the
  real halo): chunk-function seconds, network seconds, ``post_fraction``, output megapixels (all 12 bands) per
  second, and the bare network forward on the same core in memory.
- ``autocast_bf16_delta_db``: PSNR change of bf16 autocast vs fp32 (Wald x2 on the sample's 10 m bands).
- ``flops_per_output_px_x4`` and the achieved TFLOP/s of the network.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s2sr_cloud.model import nets  # noqa: E402
from s2sr_cloud.model import predictors as P  # noqa: E402
from s2sr_cloud.ops import block as B  # noqa: E402
from s2sr_cloud.ops.halo import required_halo  # noqa: E402
from s2sr_cloud.ops.resample import block_mean  # noqa: E402
from s2sr_cloud.model.registry import default_model  # noqa: E402

MODEL = default_model()  # the shipped default (s2sr-v2)

SAMPLE = ROOT / "s2sr_cloud" / "sample"
BANDS, FACTORS = nets.S2_BANDS, nets.S2_FACTORS
# the chunk function as the pipeline calls it: uint16 DN out when quantised (round 11), not decoded on the host
AS_PIPELINE = {"dn": True} if "dn" in inspect.signature(B.super_resolve_block_sums).parameters else {}
CHUNK = {4: 798, 10: 732}  # graph.default_chunk(scale) (round 13: x10 732; graph needs dask)
QUANTUM = (1e-4, -0.1)


def sample() -> np.ndarray:
    """The embedded real 240 x 240 scene, (1, 12, 240, 240) reflectance, coarse bands replicated."""
    out = []
    for b, f in zip(BANDS, FACTORS, strict=True):
        path = SAMPLE / f"{b}.tif"
        try:
            import rasterio

            with rasterio.open(path) as src:
                a = src.read(1)
        except ImportError:
            import tifffile

            a = tifffile.imread(path)
        a = a.astype(np.float32) * np.float32(1e-4)
        out.append(np.repeat(np.repeat(a, f, 0), f, 1))
    return np.stack(out)[None]


def tiled(x: np.ndarray, n: int) -> np.ndarray:
    """Mirror-tile the sample to n x n (a realistic chunk size, real pixels)."""
    reps = math.ceil(n / x.shape[-1]) + 1
    row = np.concatenate([x if k % 2 == 0 else x[..., ::-1] for k in range(reps)], axis=-1)
    full = np.concatenate([row if k % 2 == 0 else row[..., ::-1, :] for k in range(reps)], axis=-2)
    return np.ascontiguousarray(full[..., :n, :n])


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def run_block(x: np.ndarray, p: P.TorchPredictor, scale: int, quantize: bool) -> tuple[np.ndarray, int]:
    h = required_halo(p.reach(FACTORS, scale), FACTORS)
    xp = np.pad(x, ((0, 0), (0, 0), (h, h), (h, h)), mode="symmetric")
    y = B.super_resolve_block(xp, p, B.BlockSpec(scale, FACTORS, h, quantum=QUANTUM if quantize else None))
    return y, h


def consistency(x: np.ndarray, y: np.ndarray, scale: int) -> float:
    worst = 0.0
    for c, f in enumerate(FACTORS):
        k = f * scale
        worst = max(worst, float(np.nanmax(np.abs(block_mean(y[0, c].astype(np.float64), k)
                                                  - x[0, c, ::f, ::f].astype(np.float64)))))
    return worst


def timed_chunk(x: np.ndarray, p: P.TorchPredictor, scale: int, dev: torch.device, repeats: int) -> dict:
    h = required_halo(p.reach(FACTORS, scale), FACTORS)
    core = x.shape[-1]
    xp = np.pad(x, ((0, 0), (0, 0), (h, h), (h, h)), mode="symmetric")
    spec = B.BlockSpec(scale, FACTORS, h, quantum=QUANTUM)
    kw = AS_PIPELINE
    B.super_resolve_block_sums(xp, p, spec, **kw)  # warm-up: kernels, allocator, model on the device
    best: dict = {}
    for _ in range(repeats):
        B.set_timing(True)
        sync(dev)
        t0 = time.perf_counter()
        B.super_resolve_block_sums(xp, p, spec, **kw)
        sync(dev)
        total = time.perf_counter() - t0
        parts = dict(B.TIMINGS)
        B.set_timing(False)
        if not best or total < best["chunk_s"]:
            best = {"chunk_s": total, "network_s": parts.get("network", float("nan")), "parts": parts}
    out_mpx = core * core * scale * scale * 12 / 1e6
    best.update({"halo": h, "core": core, "block": core + 2 * h, "out_mpx_all_bands": out_mpx,
                 "post_fraction": 1 - best["network_s"] / best["chunk_s"],
                 "mpx_per_s": out_mpx / best["chunk_s"]})
    net = P.cached_model(p.name, dev)
    xt = torch.from_numpy(np.nan_to_num(x)).to(dev)
    with torch.inference_mode():
        net(xt, scale, p.ensemble)
        sync(dev)
        t0 = time.perf_counter()
        net(xt, scale, p.ensemble)
        sync(dev)
        best["bare_forward_s"] = time.perf_counter() - t0
    best["bare_mpx_per_s"] = out_mpx / best["bare_forward_s"]
    best["pipeline_chunk_efficiency"] = best["bare_forward_s"] / best["chunk_s"]
    return best


def autocast_delta(dev: torch.device, x: np.ndarray) -> dict:
    lo = np.stack([np.repeat(np.repeat(x[0, c, ::f, ::f].reshape(240 // f // 2, 2, 240 // f // 2, 2)
                                       .mean(axis=(1, 3)), f, 0), f, 1) for c, f in enumerate(FACTORS)])[None]
    res = {}
    for amp in (False, True):
        p = P.TorchPredictor(MODEL, device=dev.type, autocast=amp)
        y, _ = run_block(lo, p, 2, quantize=False)
        i10 = [BANDS.index(b) for b in ("B02", "B03", "B04", "B08")]
        mse = float(np.mean((y[0, i10].astype(np.float64) - x[0, i10]) ** 2))
        res["bf16" if amp else "fp32"] = 10 * math.log10(1 / mse)
    res["delta_db"] = res["bf16"] - res["fp32"]
    # what autocast does to the guarantees (x4, ensemble 1, 144 px of the real sample): chunk invariance (two
    # blocks vs one, <= 1e-5 required), distance from the fp32 CPU output, consistency (the projection is fp64)
    small = x[..., :144, :144]
    pa = P.TorchPredictor(MODEL, device=dev.type, ensemble=1, autocast=True)
    whole, h = run_block(small, pa, 4, quantize=False)
    xp = np.pad(small, ((0, 0), (0, 0), (h, h), (h, h)), mode="symmetric")
    halves = [B.super_resolve_block(xp[..., :, a:b], pa, B.BlockSpec(4, FACTORS, h))
              for a, b in ((0, 72 + 2 * h), (72, 144 + 2 * h))]
    res["bf16_chunk_invariance_max_abs"] = float(np.nanmax(np.abs(np.concatenate(halves, -1) - whole)))
    cpu, _ = run_block(small, P.TorchPredictor(MODEL, device="cpu", ensemble=1), 4, quantize=False)
    res["bf16_vs_cpu_fp32_max_abs"] = float(np.nanmax(np.abs(whole - cpu)))
    res["bf16_consistency_max_abs"] = consistency(small, whole, 4)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scales", default="4,10")
    ap.add_argument("--core", type=int, help="core input px per chunk side (default: the default chunk per scale)")
    ap.add_argument("--head-strip-px", type=int, help="nets.HEAD_STRIP_PX: output px per strip of the band SR "
                    "network's output head at inference (e.g. 2**40: the whole head at once, as before round 10)")
    args = ap.parse_args()
    if args.head_strip_px:
        nets.HEAD_STRIP_PX = args.head_strip_px
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"torch {torch.__version__}, device {dev} ({name}), cuda available {torch.cuda.is_available()}, "
          f"s2sr_cloud from {Path(nets.__file__).parents[1]}, HEAD_STRIP_PX {getattr(nets, 'HEAD_STRIP_PX', None)}",
          flush=True)
    x = sample()
    result: dict = {"device": name, "torch": torch.__version__}

    # correctness: device vs CPU, consistency, NaN isolation (x4, ensemble 1, real sample)
    small = x[..., :120, :120]
    pd = P.TorchPredictor(MODEL, device=dev.type, ensemble=1)
    pc = P.TorchPredictor(MODEL, device="cpu", ensemble=1)
    yd, _ = run_block(small, pd, 4, quantize=False)
    yc, _ = run_block(small, pc, 4, quantize=False)
    result["cpu_vs_device_max_abs"] = float(np.abs(yd - yc).max())
    qd, _ = run_block(small, pd, 4, quantize=True)
    qc, _ = run_block(small, pc, 4, quantize=True)
    dn = lambda a: np.rint((a[:, :12].astype(np.float64) + 0.1) / 1e-4)  # noqa: E731
    result["dn_mismatch"] = int((dn(qd) != dn(qc)).sum())
    result["dn_total"] = int(qd[:, :12].size)
    result["consistency_max_abs"] = consistency(small, yd, 4)
    holed = small.copy()
    holed[0, 2, 60, 60] = np.nan  # B03, a 10 m band
    yh, _ = run_block(holed, pd, 4, quantize=False)
    nan = np.isnan(yh[0, 2])
    result["nan_isolated"] = bool(nan[240:244, 240:244].all() and nan.sum() == 16 and
                                  not np.isnan(yh[0, [0, 1, 3]]).any())
    print(f"device vs cpu: max |diff| {result['cpu_vs_device_max_abs']:.2e} reflectance, "
          f"{result['dn_mismatch']} of {result['dn_total']} uint16 DN differ; consistency {result['consistency_max_abs']:.2e};"
          f" NaN isolated {result['nan_isolated']}", flush=True)

    for scale in (int(s) for s in args.scales.split(",")):
        for ens in (1, None):
            p = P.TorchPredictor(MODEL, device=dev.type, ensemble=ens)
            r = timed_chunk(tiled(x, args.core or CHUNK[scale]), p, scale, dev, args.repeats)
            key = f"x{scale}_ens{ens or 'default'}"
            result[key] = r
            print(f"{key}: block {r['block']} px (core {r['core']}, halo {r['halo']}): chunk {r['chunk_s']:.3f} s, "
                  f"network {r['network_s']:.3f} s, post_fraction {r['post_fraction']:.3f}, {r['mpx_per_s']:.1f} "
                  f"output Mpx/s (bare forward {r['bare_mpx_per_s']:.1f}); parts "
                  + ", ".join(f"{k} {v:.3f}" for k, v in r["parts"].items()), flush=True)
            if dev.type == "cuda":
                r["peak_gpu_mem_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
                torch.cuda.reset_peak_memory_stats(dev)

    from torch.utils.flop_counter import FlopCounterMode

    net = P.cached_model(MODEL, dev)
    xt = torch.rand(1, 12, 96, 96, device=dev) * 0.3
    with torch.inference_mode(), FlopCounterMode(display=False) as fc:
        net(xt, 4, None)
    flops = fc.get_total_flops() / (96 * 96 * 16)
    result["flops_per_output_px_x4"] = flops
    r4 = result.get("x4_ensdefault")
    if r4:
        result["achieved_tflops_x4"] = flops * r4["core"] ** 2 * 16 / r4["bare_forward_s"] / 1e12
        result["tile_gpu_hours_x4"] = (10980 ** 2 * 16 * 12 / 1e6) / r4["mpx_per_s"] / 3600
    if dev.type == "cuda":
        result["autocast"] = autocast_delta(dev, x)
        print(f"bf16 autocast: {result['autocast']}", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
