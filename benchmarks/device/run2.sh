#!/usr/bin/env bash
set -u
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || pwd)"
[ -f /tmp/site/.ok ] || { echo "NO /tmp/site: the machine was given back between calls"; exit 3; }
export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/bin:$PATH PYTHONUNBUFFERED=1 S2SR_SHARED=$PWD/.tile
timeout 400 python3 benchmarks/gpu_tile.py --ensembles default --threads 1,8 > $OUT/gpu_tile.log 2>&1; echo "rc $?"; grep -v Warn $OUT/gpu_tile.log | tail -5 | cut -c1-2500
