"""``s2sr train`` and ``s2sr evaluate``."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parsers(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train the model by Wald's protocol on ../shared/data (CPU, fixed seed)")
    t.add_argument("--recipe", default="s2sr-v2", choices=["s2sr-v1", "s2sr-v2"],
                   help="which shipped model to train (default: s2sr-v2)")
    t.add_argument("--data", default="../shared/data", help="folder laid out like ../shared/data")
    t.add_argument("--out", default=None, help="safetensors path (default: the package's weights folder)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--steps20", type=int)
    t.add_argument("--steps60", type=int)
    t.add_argument("--steps-sr", type=int)

    e = sub.add_parser("evaluate", help="Wald's-protocol evaluation against bicubic, Lanczos and published models")
    e.add_argument("--task", required=True, choices=["sharpen20", "sharpen60", "sr"])
    e.add_argument("--scale", type=int, default=4, help="for --task sr (sharpen tasks are x2 / x6)")
    e.add_argument("--blur", default="dsen2", choices=["dsen2", "s2mtf"])
    e.add_argument("--weights-dir", default="../shared/data/weights",
                   help="third-party baseline weights (evaluation only; skipped when absent)")
    e.add_argument("--model", help="registered model to score as `s2sr` (default: the default model)")
    e.add_argument("--methods", help="comma-separated subset of the methods to score (default: all)")
    e.add_argument("--json", help="write the results as JSON")
    e.add_argument("--device", default="cpu", help="where `s2sr` runs: cpu (default), cuda or auto")
    e.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="bf16: the network under bf16 autocast (what TorchPredictor(autocast=True) does on CUDA)")
    e.add_argument("paths", nargs="+", metavar="PATH")


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "train":
        from dataclasses import replace

        from .training.train import RECIPES, train

        overrides = {k: v for k, v in {"data": args.data, "out": args.out, "seed": args.seed,
                                       "steps20": args.steps20, "steps60": args.steps60,
                                       "steps_sr": args.steps_sr}.items() if v is not None}
        cfg = replace(RECIPES[args.recipe], **overrides)
        if args.out is None and Path(cfg.out).exists():
            from .errors import ConfigError

            raise ConfigError(f"{cfg.out} exists (the shipped {args.recipe} weights, checked by sha256 at load): "
                              "pass --out PATH to train a copy elsewhere")
        train(cfg)
        return 0
    if args.command == "evaluate":
        from .errors import ConfigError
        from .training.evaluate import evaluate, format_report, write_json

        for p in args.paths:
            if not Path(p).exists():
                raise ConfigError(f"{p} does not exist: give BigEarthNet-style folders or DSen2 .mat files")
        from .training.evaluate import methods_for

        methods = None
        if args.methods:
            every = methods_for(args.task, Path(args.weights_dir), args.model, args.device, args.precision)
            wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
            unknown = [m for m in wanted if m not in every]
            if unknown:
                raise ConfigError(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(every)}")
            methods = {m: every[m] for m in wanted}
        res = evaluate(args.task, args.paths, scale=args.scale, blur=args.blur, weights_dir=Path(args.weights_dir),
                       model=args.model, methods=methods, device=args.device, precision=args.precision)
        print(format_report(res))
        if args.json:
            write_json(res, args.json)
        return 0
    raise SystemExit(f"unknown command {args.command}")
