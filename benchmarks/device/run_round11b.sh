#!/usr/bin/env bash
# Round 11's second device call (issue 12): carry .whl, .tile and .base, as run_round11.sh, but .base is now round
# 10's final code (2e1435e) with this commit's benchmarks/gpu_chunk.py beside it. A: gpu.sh; B/C: gpu_chunk.py with
# this code (uint16 DN output, strips sized by the device, x10 chunk 384) / round 10's, on the same blocks; D/E: the
# whole tile with this code / round 10's, 4 threads, with the task stream by prefix (where the time goes).
set -u
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || pwd)"
S=$(date +%s); el() { echo "[$(( $(date +%s) - S )) s] $*"; }
left() { echo $(( ${1} - ($(date +%s) - S) )); }
mkdir -p /tmp/site /tmp/bin && tar -xJf .whl/site312.tar.xz -C /tmp/site
printf '#!%s\nimport sys\nfrom rustac import main\nsys.argv[0] = "rustac"\nsys.exit(main())\n' "$(command -v python3)" > /tmp/bin/rustac
chmod +x /tmp/bin/rustac
export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/bin:$PATH PYTHONUNBUFFERED=1 S2SR_SHARED=$PWD/.tile
el unpacked; nvidia-smi -L; nproc
el "== A: gpu.sh"
PYTHON=python3 timeout 170 bash benchmarks/gpu.sh > $OUT/gpu_sh.log 2>&1; echo "gpu.sh rc $?"
grep -E "passed|failed|error" $OUT/gpu_sh.log | tail -3; grep -v Warn $OUT/gpu_sh.log | tail -2 | cut -c1-1200
el "== B: gpu_chunk.py, this code"
timeout 110 python3 benchmarks/gpu_chunk.py --repeats 2 > $OUT/gpu_chunk_new.log 2>&1; echo "rc $?"
grep -E "^x|^device|^torch" $OUT/gpu_chunk_new.log | cut -c1-330
el "== C: gpu_chunk.py, round 10 code (2e1435e)"
timeout 100 python3 .base/benchmarks/gpu_chunk.py --repeats 2 > $OUT/gpu_chunk_base.log 2>&1; echo "rc $?"
grep -E "^x|^torch" $OUT/gpu_chunk_base.log | cut -c1-330
L=$(left 420); el "== D/E: whole tile, this code then round 10's, 4 threads (limit $L s)"
[ $L -gt 40 ] && { timeout $(( L / 2 )) python3 benchmarks/gpu_tile.py --ensembles default --threads 4 > $OUT/gpu_tile_new.log 2>&1; echo "rc $?"
  grep -v Warn $OUT/gpu_tile_new.log | grep -v '^{' | tail -3 | cut -c1-900
  PYTHONPATH=/tmp/site:$PWD/.base timeout $(( L / 2 )) python3 benchmarks/gpu_tile.py --ensembles default --threads 4 > $OUT/gpu_tile_base.log 2>&1; echo "rc $?"
  grep -v Warn $OUT/gpu_tile_base.log | grep -v '^{' | tail -3 | cut -c1-900; }
el done
