"""``s2sr evaluate``: Wald's protocol on native multi-resolution data, every method on the same pixels.

D_s = Gaussian blur (``--blur dsen2``: sigma 1/s high-res pixels, scipy gaussian_filter mode reflect; ``s2mtf``:
MTF 0.3 at the low-resolution Nyquist) followed by s x s block averaging. 4 low-resolution pixels of border are
cropped before every metric. Consistency metrics compare each method's input with its output averaged back over
each input pixel (block mean: the operator the product guarantees)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .patches import B10, B20, B60, read_scene
from ..ops import metrics
from ..ops.degrade import blur_sigma, degrade
from ..ops.resample import bicubic, lanczos, project
from .data import stack

BORDER_LR = 4
TASKS = ("sharpen20", "sharpen60", "sr")
PRECISIONS = ("fp32", "bf16")


@dataclass
class Case:
    """One image under one task: what every method receives and must reproduce."""

    ref: np.ndarray  # (C, H, W) ground truth
    lr: np.ndarray  # (C, H/k, W/k) the bands to super-resolve
    guide: np.ndarray | None  # (G, H, W) fine guide bands (sharpening tasks)
    k: int
    bands: tuple[str, ...]


def make_case(path: str, task: str, scale: int, blur: str) -> Case:
    scene = read_scene(path)
    if task == "sharpen20":
        s = scene.crop_multiple(12)
        return Case(stack(s, B20), degrade(stack(s, B20), 2, blur), degrade(stack(s, B10), 2, blur), 2, B20)
    if task == "sharpen60":
        s = scene.crop_multiple(36)
        guide = np.concatenate([degrade(stack(s, B10), 6, blur), bicubic(degrade(stack(s, B20), 6, blur), 2)])
        return Case(stack(s, B60), degrade(stack(s, B60), 6, blur), guide, 6, B60)
    s = scene.crop_multiple(6 * scale)
    return Case(stack(s, B10), degrade(stack(s, B10), scale, blur), None, scale, B10)


@dataclass
class Pool:
    """Pixels of one method pooled over every PATH."""

    ref: list[np.ndarray] = field(default_factory=list)
    est: list[np.ndarray] = field(default_factory=list)
    ssim: list[tuple[float, int]] = field(default_factory=list)
    cons: list[tuple[float, float, int]] = field(default_factory=list)
    trace: np.ndarray = field(default_factory=lambda: np.zeros(4))  # boundary sum, count, inside sum, count
    negative: list[int] = field(default_factory=list)

    def add(self, case: Case, est: np.ndarray) -> None:
        m = BORDER_LR * case.k
        r, e = case.ref[:, m:-m, m:-m], est[:, m:-m, m:-m]
        n = r.shape[1] * r.shape[2]
        self.ref.append(r.reshape(r.shape[0], -1))
        self.est.append(e.reshape(e.shape[0], -1))
        self.ssim.append((metrics.ssim(r, e), n))
        self.trace += metrics.footprint_sums(e, case.k)
        self.negative.append(int((e < 0).sum()))
        lr = case.lr[:, BORDER_LR:-BORDER_LR, BORDER_LR:-BORDER_LR]
        l1, sam = metrics.consistency(lr, e, case.k)
        self.cons.append((l1, sam, lr.shape[1] * lr.shape[2]))

    def summary(self, bands: tuple[str, ...], scale: int) -> dict[str, Any]:
        r, e = np.concatenate(self.ref, 1), np.concatenate(self.est, 1)
        w = np.array([n for _, n in self.ssim], float)
        wc = np.array([n for *_, n in self.cons], float)
        overall = {
            "rmse": metrics.rmse(r, e), "psnr": metrics.psnr(r, e),
            "ssim": float(np.average([s for s, _ in self.ssim], weights=w)),
            "sam": metrics.sam_deg(r[:, :, None], e[:, :, None]), "ergas": metrics.ergas(r, e, scale),
            "consistency_l1": float(np.average([c[0] for c in self.cons], weights=wc)),
            "consistency_sam_deg": float(np.average([c[1] for c in self.cons], weights=wc)),
            "footprint_trace": metrics.trace_ratio(self.trace),
            "negative_share": float(sum(self.negative) / e.size),
        }
        per_band = {b: {"rmse": metrics.rmse(r[i], e[i]), "psnr": metrics.psnr(r[i], e[i])}
                    for i, b in enumerate(bands)}
        return {"overall": overall, "bands": per_band}


def _ours(task: str, net: torch.nn.Module | None = None, model: str | None = None, device: str = "cpu",
          precision: str = "fp32") -> Callable[[Case], np.ndarray]:
    """The product's network on ``device`` ('cpu', 'cuda', 'auto'; CUDA without TF32, as the pipeline runs it),
    in fp32 or under bf16 autocast (``precision='bf16'``: the measurement behind TorchPredictor's ``autocast``)."""
    import contextlib

    from ..model.predictors import pick_device
    from ..model.registry import build_model, default_model

    if precision not in PRECISIONS:
        raise SystemExit(f"unknown precision {precision}: choose from {', '.join(PRECISIONS)}")
    dev = pick_device(device)
    if net is None:
        name = model or default_model()
        if name == "bicubic":
            raise SystemExit("no trained model is installed: run `s2sr train` first")
        net = build_model(name)
    net = net.to(dev)

    def run(case: Case) -> np.ndarray:
        amp = (torch.autocast(dev.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext())
        with torch.inference_mode(), amp:
            lr = torch.from_numpy(case.lr).float().to(dev)[None]
            if task in ("sharpen20", "sharpen60"):
                if task == "sharpen60" and not net.learn60:  # what the pipeline does for the 60 m bands
                    return project(bicubic(case.lr, case.k), case.lr, case.k)
                sub = net.sharpen20_ens if task == "sharpen20" else net.sharpen60
                out = sub(torch.from_numpy(case.guide).float().to(dev)[None], lr)[0]
            else:
                c, h, w = case.lr.shape
                out = net.super_resolve(lr.reshape(c, 1, h, w), case.k).reshape(c, h * case.k, w * case.k)
        return project(out.float().cpu().double().numpy(), case.lr, case.k)  # the consistency layer, float64

    return run


def methods_for(task: str, weights_dir: Path | None, model: str | None = None, device: str = "cpu",
                precision: str = "fp32") -> dict[str, Callable[[Case], np.ndarray]]:
    out: dict[str, Callable[[Case], np.ndarray]] = {
        "s2sr": _ours(task, model=model, device=device, precision=precision),
        "bicubic": lambda c: bicubic(c.lr, c.k),
        "bicubic+cons": lambda c: project(bicubic(c.lr, c.k), c.lr, c.k),
        "lanczos": lambda c: lanczos(c.lr, c.k),
    }
    if task == "sharpen20" and weights_dir is not None and weights_dir.exists():
        from .baselines import load_baselines

        baselines = load_baselines(weights_dir)
        for name, net in baselines.items():
            out[name] = (lambda n: (lambda c: n.sharpen20(c.guide, c.lr)))(net)  # type: ignore[attr-defined]
        for name in baselines:  # like for like: the baselines under the product's consistency guarantee
            out[f"{name}+cons"] = (lambda f: (lambda c: project(f(c), c.lr, c.k)))(out[name])
    return out


def evaluate(task: str, paths: list[str], scale: int = 4, blur: str = "dsen2",
             weights_dir: Path | None = None, model: str | None = None,
             methods: dict[str, Callable[[Case], np.ndarray]] | None = None, device: str = "cpu",
             precision: str = "fp32") -> dict[str, Any]:
    if task not in TASKS:
        raise SystemExit(f"unknown task {task}: choose from {', '.join(TASKS)}")
    k = {"sharpen20": 2, "sharpen60": 6}.get(task, scale)
    methods = methods or methods_for(task, weights_dir, model, device, precision)
    pools = {name: Pool() for name in methods}
    bands: tuple[str, ...] = ()
    for path in paths:
        case = make_case(path, task, scale, blur)
        if min(case.lr.shape[-2:]) <= 2 * BORDER_LR:
            print(f"skipping {path}: {case.lr.shape[-1]} low-resolution pixels leave nothing after the "
                  f"{BORDER_LR}-pixel border")
            continue
        bands = case.bands
        for name, fn in methods.items():
            pools[name].add(case, fn(case))
    if not bands:
        raise SystemExit("no PATH is large enough for this task")
    return {"task": task, "scale": k, "blur": blur, "blur_sigma_hr_px": blur_sigma(k, blur),
            "degradation": f"gaussian blur sigma {blur_sigma(k, blur):.4g} high-res px, then {k}x{k} block mean",
            "border_lr_px": BORDER_LR, "paths": [str(p) for p in paths], "device": device, "precision": precision,
            "methods": {n: p.summary(bands, k) for n, p in pools.items()}}


# The validation protocol of s2sr-v2's choices: (task, scale, blur) on data.VALIDATION.
VALIDATION_RUNS = (("sharpen20", 2, "dsen2"), ("sharpen20", 2, "s2mtf"), ("sr", 4, "dsen2"), ("sr", 10, "dsen2"))


def validate(net: torch.nn.Module, root: Path, runs: tuple[tuple[str, int, str], ...] = VALIDATION_RUNS
             ) -> dict[str, dict[str, float]]:
    """The net's figures on the validation split (never the held-out set): RMSE for sharpening, PSNR gain over
    bicubic for SR, footprint trace. Every s2sr-v2 choice was made on these."""
    from .data import VALIDATION

    paths = [str(root / n) for n in VALIDATION if (root / n).exists()]
    out: dict[str, dict[str, float]] = {}
    for task, scale, blur in runs:
        methods = {"s2sr": _ours(task, net), "bicubic": lambda c: bicubic(c.lr, c.k)}
        res = evaluate(task, paths, scale, blur, methods=methods)["methods"]
        o, b = res["s2sr"]["overall"], res["bicubic"]["overall"]
        out[f"{task}_x{scale}_{blur}"] = {"rmse": o["rmse"], "psnr_gain": o["psnr"] - b["psnr"],
                                          "sam": o["sam"], "footprint_trace": o["footprint_trace"]}
        print(f"validation {task} x{scale} {blur}: RMSE {o['rmse']:.5f} PSNR gain {o['psnr'] - b['psnr']:+.2f} dB "
              f"trace {o['footprint_trace']:.3f}", flush=True)
    return out


def format_report(res: dict[str, Any]) -> str:
    lines = [f"task {res['task']}  scale x{res['scale']}  blur {res['blur']} ({res['degradation']})",
             f"{'method':<9} {'RMSE':>9} {'PSNR':>7} {'SSIM':>7} {'SAM':>7} {'ERGAS':>7} {'cons_L1':>9} "
             f"{'cons_SAM':>9} {'trace':>6} {'neg':>8}"]
    for name, m in res["methods"].items():
        o = m["overall"]
        lines.append(f"{name:<9} {o['rmse']:>9.5f} {o['psnr']:>7.2f} {o['ssim']:>7.4f} {o['sam']:>7.3f} "
                     f"{o['ergas']:>7.3f} {o['consistency_l1']:>9.2e} {o['consistency_sam_deg']:>9.2e} "
                     f"{o['footprint_trace']:>6.3f} {o['negative_share']:>8.2e}")
    return "\n".join(lines)


def write_json(res: dict[str, Any], path: str) -> None:
    Path(path).write_text(json.dumps(res, indent=1))
