#!/usr/bin/env bash
# Round 9's second device call (carry .whl .tile, as run_round9.sh): the whole tile on one GPU worker with the SR
# tasks restricted to the GPU resource (units 1) against unrestricted (units 0: what s2sr_cloud.super_resolve did
# before), at 4 and 8 threads; then s2sr run's local cluster in its GPU and CPU layouts; then the 4-thread pair again.
set -u
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || pwd)"
S=$(date +%s); el() { echo "[$(( $(date +%s) - S )) s] $*"; }
[ -f /tmp/site/dask/__init__.py ] || { mkdir -p /tmp/site /tmp/bin && tar -xJf .whl/site312.tar.xz -C /tmp/site; }
printf '#!%s\nimport sys\nfrom rustac import main\nsys.argv[0] = "rustac"\nsys.exit(main())\n' "$(command -v python3)" > /tmp/bin/rustac
chmod +x /tmp/bin/rustac
export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/bin:$PATH PYTHONUNBUFFERED=1 S2SR_SHARED=$PWD/.tile
el unpacked
timeout 200 python3 benchmarks/gpu_tile.py --ensembles default --threads 4,8 --units 1,0 --local > $OUT/gpu_tile_units.log 2>&1; echo "rc $?"
grep -v Warn $OUT/gpu_tile_units.log | grep -v '^{' | cut -c1-520
el "== again, 4 threads"
timeout 90 python3 benchmarks/gpu_tile.py --ensembles default --threads 4 --units 1,0 > $OUT/gpu_tile_units2.log 2>&1; echo "rc $?"
grep -v Warn $OUT/gpu_tile_units2.log | grep -v '^{' | tail -2 | cut -c1-520
el done
