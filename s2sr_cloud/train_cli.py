"""Sub-commands of the model work (train, evaluate); filled in by the model issue."""

from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction) -> None:
    return None


def dispatch(args: argparse.Namespace) -> int:
    raise SystemExit(f"unknown command {args.command}")
