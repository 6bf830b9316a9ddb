"""Command line: ``s2sr run``, ``s2sr train``, ``s2sr evaluate``. Errors print one line and exit non-zero."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings

from .errors import S2SRError


def _run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="super-resolve the Sentinel-2 scenes of an area into a Zarr store")
    p.add_argument("--config", help="YAML job file with the same fields; flags override it")
    p.add_argument("--catalog", help="STAC API URL, or 'sample' for the embedded scene (default)")
    p.add_argument("--collection", help="collection id (default sentinel-2-l2a)")
    p.add_argument("--bbox", help="minlon,minlat,maxlon,maxlat")
    p.add_argument("--geometry", help="GeoJSON file with the area")
    p.add_argument("--datetime", help="RFC 3339 instant or interval, e.g. 2020-02-01/2020-02-28")
    p.add_argument("--max-cloud", type=float, help="largest eo:cloud_cover in percent")
    p.add_argument("--bands", help="comma-separated bands (default all 12 L2A bands)")
    p.add_argument("--scale", type=int, help="integer upsampling factor (default 4)")
    p.add_argument("--model", help="model name (default: best available; 'bicubic' always available)")
    p.add_argument("--ensemble", type=int, help="flips/turns averaged by the learned model: 1 (fastest), 2, 4, 8 "
                   "(default: the model's own, 4 for s2sr-v1)")
    p.add_argument("--out", help="output Zarr: local path or s3://bucket/key.zarr")
    p.add_argument("--overwrite", action="store_true", default=None, help="replace an existing output")
    p.add_argument("--scheduler", help="address of a running Dask scheduler (default: a LocalCluster)")
    p.add_argument("--cluster", help="k8s:NAME[.NAMESPACE] (dask-kubernetes operator) or gateway:NAME (Dask Gateway)")
    p.add_argument("--chunk", type=int, help="input pixels per chunk side (default from --scale)")
    p.add_argument("--dtype", choices=["uint16", "float32"], help="storage type (default uint16 DN)")
    p.add_argument("--quicklook", help="folder or .png path for the quick-look (default next to the output)")
    p.add_argument("--limit", type=int, help="most scenes taken from the search (default 100)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_run(args: argparse.Namespace) -> int:
    from .config import load_config
    from .pipeline.run import run_job, summary

    fields = {k: v for k, v in vars(args).items() if k not in ("config", "command", "no_progress", "verbose")}
    cfg = load_config(args.config, fields)
    # the bar redraws in place: only on a terminal, not in CI logs or the CronJob's pod log
    progress = not args.no_progress and sys.stdout.isatty()
    results = run_job(cfg, progress=progress, verbose=args.verbose)
    print("\n\n".join(summary(r) for r in results))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="s2sr", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    from . import train_cli

    train_cli.add_parsers(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
    if not args.verbose:  # one-line errors: library retry chatter goes to -v only
        for name in ("urllib3", "distributed", "botocore", "aiobotocore", "s3fs", "rasterio"):
            logging.getLogger(name).setLevel(logging.ERROR)
    try:
        if args.command == "run":
            return cmd_run(args)
        return int(train_cli.dispatch(args))
    except S2SRError as err:
        print(f"s2sr: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("s2sr: interrupted; the output (if any) is marked incomplete", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
