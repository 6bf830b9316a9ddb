"""Command line: ``s2sr run``, ``s2sr verify``, ``s2sr train``, ``s2sr evaluate``. Errors print one line and exit
non-zero; SIGINT and SIGTERM stop a run cleanly (lease released, finished chunks kept, store resumable)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import warnings

from .errors import S2SRError


class Stopped(BaseException):
    """Raised in the main thread by SIGTERM (what Kubernetes sends) so that every ``finally`` runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, frame: object) -> None:
    raise Stopped(signum)


def _fix_negative_values(argv: list[str]) -> list[str]:
    """``--bbox -11.2,52,...`` works like ``--bbox=-11.2,52,...`` (argparse takes a leading '-' for an option)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] == "--bbox" and i + 1 < len(argv) and argv[i + 1].startswith("-"):
            out.append(f"--bbox={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def _run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="super-resolve the Sentinel-2 scenes of an area into a Zarr store")
    p.add_argument("--config", help="YAML job file with the same fields; flags override it")
    p.add_argument("--catalog", help="STAC API URL, or 'sample' for the embedded scene (default)")
    p.add_argument("--collection", help="collection id (default sentinel-2-l2a)")
    p.add_argument("--bbox", help="minlon,minlat,maxlon,maxlat")
    p.add_argument("--geometry", help="GeoJSON file with the area")
    p.add_argument("--datetime", help="RFC 3339 instant or interval (2020-02-01/2020-02-28), or relative to the run "
                   "time: last-month, last-7-days, yesterday, P1M/.., 2024-06-01/P1M")
    p.add_argument("--now", help="the run time relative windows resolve against (default: now); for backfills")
    p.add_argument("--append-time", action="store_true", default=None, help="add the window's new scenes as new "
                   "time steps to an existing store of this job (a rolling archive)")
    p.add_argument("--max-cloud", type=float, help="largest eo:cloud_cover in percent")
    p.add_argument("--bands", help="comma-separated bands (default all 12 L2A bands)")
    p.add_argument("--scale", type=int, help="integer upsampling factor (default 4)")
    p.add_argument("--model", help="model name (default: best available; 'bicubic' always available)")
    p.add_argument("--ensemble", type=int, help="flips/turns averaged by the learned model: 1 (fastest), 2, 4, 8 "
                   "(default: the model's own, 4 for s2sr-v1)")
    p.add_argument("--out", help="output Zarr: local path or s3://bucket/key.zarr; may hold {start:%%Y-%%m}, {end}, "
                   "{collection}, {zone}")
    p.add_argument("--overwrite", action="store_true", default=None, help="replace an existing output")
    p.add_argument("--scheduler", help="address of a running Dask scheduler (default: a LocalCluster)")
    p.add_argument("--cluster", help="k8s:NAME[.NAMESPACE] (dask-kubernetes operator) or gateway:NAME (Dask Gateway)")
    p.add_argument("--chunk", type=int, help="input pixels per chunk side (default from --scale)")
    p.add_argument("--dtype", choices=["uint16", "float32"], help="storage type (default uint16 DN)")
    p.add_argument("--zarr-format", type=int, choices=[2, 3], help="Zarr format of the store (default 3; 2 is what "
                   "GDAL 3.4-3.10 and QGIS open)")
    p.add_argument("--quicklook", help="folder or .png path for the quick-look (default next to the output)")
    p.add_argument("--limit", type=int, help="most scenes taken from the search (default 100; a search that "
                   "matches more says so)")
    p.add_argument("--max-output-gb", type=float, help="refuse jobs whose output is larger (default 64)")
    p.add_argument("--mask", choices=["scl", "none"], help="scl (default for L2A): pixels of the --mask-classes "
                   "scene classes become nodata; none where the scenes have no SCL (L1C)")
    p.add_argument("--mask-classes", help="SCL classes masked (default 0,1,3,8,9,10: no data, saturated, cloud "
                   "shadow, cloud medium/high probability, thin cirrus; add 11 for snow)")
    p.add_argument("--composite", choices=["median", "none"], help="median: one cloud-free time step, the "
                   "per-pixel median of the valid observations in --datetime (default none)")
    p.add_argument("--dry-run", action="store_true", help="print the plan (scenes, zones, size, chunks) and stop")
    p.add_argument("--report", action="store_true", help="also write <out>_report.html (s2sr report) next to each "
                   "store")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    v = sub.add_parser("verify", help="read every chunk of an output store and name the bad ones")
    v.add_argument("out", help="the store: local path or s3://bucket/key.zarr")
    v.add_argument("--repair", action="store_true", help="mark bad chunks not done, so a re-run recomputes them")
    v.add_argument("--sample", type=int, default=4, help="chunks whose consistency with the input is re-checked "
                   "against the STAC items (default 4; 0 skips)")


NOT_JOB_FIELDS = ("config", "command", "no_progress", "verbose", "dry_run", "report")


def cmd_run(args: argparse.Namespace) -> int:
    from .config import load_config

    fields = {k: v for k, v in vars(args).items() if k not in NOT_JOB_FIELDS}
    cfg = load_config(args.config, fields)  # before the heavy imports below: a bad flag is refused at once
    from .pipeline.plan import describe_plan, plan_job
    from .pipeline.run import execute, summary

    plan = plan_job(cfg)
    if args.dry_run:
        print(describe_plan(plan))
        return 0
    # the bar redraws in place: only on a terminal, not in CI logs or the CronJob's pod log
    progress = not args.no_progress and sys.stdout.isatty()
    results = execute(plan, progress=progress, verbose=args.verbose)
    print("\n\n".join(summary(r) for r in results))
    if args.report:
        from .report import report_path, write_report

        for r in results:
            try:
                write_report(r.out)
                print(f"report:   {report_path(r.out)}")
            except Exception as err:  # noqa: BLE001 - the store is complete; the page is an extra
                print(f"s2sr: warning: {r.out}: the HTML report failed ({err.__class__.__name__}: {err}); "
                      "the store is complete", file=sys.stderr)
    for r in results:
        if r.quicklook_error:
            print(f"s2sr: warning: {r.out}: the quick-look failed ({r.quicklook_error}); the store and its STAC "
                  "are complete", file=sys.stderr)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .pipeline.verify import verify_store

    report = verify_store(args.out, repair=args.repair, sample=args.sample)
    print("\n".join(report.lines()))
    from .errors import IntegrityError

    return 0 if report.ok else IntegrityError.exit_code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="s2sr", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    from . import train_cli

    train_cli.add_parsers(sub)
    from . import report_cli  # s2sr report

    report_cli.add_parser(sub)
    e = sub.add_parser("export", help="write one Cloud-Optimized GeoTIFF per band and date (overviews, nodata, "
                       "scale/offset) that any GIS opens")
    e.add_argument("store", metavar="OUT.zarr", help="a finished output store (path or s3://...)")
    e.add_argument("--cog", required=True, metavar="DIR", help="folder for the COGs")
    e.add_argument("--bands", help="comma-separated bands (default all of the store's, plus detail)")
    args = parser.parse_args(_fix_negative_values(sys.argv[1:] if argv is None else list(argv)))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
    if not args.verbose:  # one-line errors: library retry chatter goes to -v only
        for name in ("urllib3", "distributed", "botocore", "aiobotocore", "s3fs", "rasterio"):
            logging.getLogger(name).setLevel(logging.ERROR)
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "verify":
            return cmd_verify(args)
        if args.command == "report":
            return report_cli.dispatch(args)
        if args.command == "export":
            from .io.export import export_cogs

            paths = export_cogs(args.store, args.cog, bands=args.bands.split(",") if args.bands else None)
            print(f"export: {len(paths)} COG(s) in {args.cog}")
            return 0
        return int(train_cli.dispatch(args))
    except S2SRError as err:
        print(f"s2sr: error: {' '.join(str(err).split())}", file=sys.stderr)
        return err.exit_code
    except (KeyboardInterrupt, Stopped) as err:
        name = "SIGTERM" if isinstance(err, Stopped) else "SIGINT"
        print(f"s2sr: stopped by {name}; the lease is released and finished chunks are kept: re-run the same "
              "command to resume", file=sys.stderr)
        return 143 if isinstance(err, Stopped) else 130
    except Exception as err:  # noqa: BLE001 - a bug or an unforeseen library error: still one line
        if args.verbose:
            raise
        from .config import redact_url

        print(f"s2sr: internal error: {err.__class__.__name__}: {redact_url(str(err))[:300]} (re-run with -v for "
              "the traceback and report it)", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
