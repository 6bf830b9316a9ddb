"""``s2sr report OUT.zarr --html FILE``."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("report", help="write a self-contained HTML report of a store: before/after viewer, "
                       "statistics, provenance")
    r.add_argument("store", metavar="OUT.zarr", help="a finished output store (path or s3://...)")
    r.add_argument("--html", help="HTML file to write (default: next to the store, OUT_report.html)")
    r.add_argument("--max-size", type=int, default=1024,
                   help="output pixels per side of the viewer's centred crop (default 1024)")
    r.add_argument("--time", type=int, default=0, help="time index shown in the viewer (default 0)")


def dispatch(args: argparse.Namespace) -> int:
    from .errors import ConfigError
    from .report import write_report

    if args.max_size < 16:
        raise ConfigError(f"--max-size {args.max_size}: give at least 16 output pixels")
    path = write_report(args.store, args.html, max_size=args.max_size, time=args.time)
    print(f"report: {path}")
    return 0
