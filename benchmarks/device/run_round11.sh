#!/usr/bin/env bash
# Round 11's one device call (issue 12): carry .whl (benchmarks/device/build_bundle.sh, xz -9e), .tile (the decimated
# 29RKH tile's 12 band COGs + item as .tile/data/<name>) and .base (round 9's s2sr_cloud, commit 008f79c, with
# benchmarks/gpu_chunk.py of this commit beside it; data dirs as links into this tree). A: gpu.sh (gpu tests + sample
# benchmark); B/C: gpu_chunk.py with this code / round 9's (head in strips + one band group at a time vs neither);
# D: the whole tile, this code then round 9's, 4 threads; E: gpu_chunk.py with the whole head at once (strips off).
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
grep -E "passed|failed|error" $OUT/gpu_sh.log | tail -3; grep -v Warn $OUT/gpu_sh.log | tail -4 | cut -c1-900
el "== B: gpu_chunk.py, this code"
timeout 110 python3 benchmarks/gpu_chunk.py --repeats 2 > $OUT/gpu_chunk_new.log 2>&1; echo "rc $?"
grep -E "^x|^device|^torch" $OUT/gpu_chunk_new.log | cut -c1-330
el "== C: gpu_chunk.py, round 9 code (008f79c)"
timeout 100 python3 .base/benchmarks/gpu_chunk.py --repeats 2 > $OUT/gpu_chunk_base.log 2>&1; echo "rc $?"
grep -E "^x|^device|^torch" $OUT/gpu_chunk_base.log | cut -c1-330
L=$(left 400); el "== D: whole tile, this code then round 9's, 4 threads (limit $L s)"
[ $L -gt 40 ] && { timeout $(( L / 2 )) python3 benchmarks/gpu_tile.py --ensembles default --threads 4 > $OUT/gpu_tile_new.log 2>&1; echo "rc $?"
  grep -v Warn $OUT/gpu_tile_new.log | grep -v '^{' | tail -2 | cut -c1-700
  PYTHONPATH=/tmp/site:$PWD/.base timeout $(( L / 2 )) python3 benchmarks/gpu_tile.py --ensembles default --threads 4 > $OUT/gpu_tile_base.log 2>&1; echo "rc $?"
  grep -v Warn $OUT/gpu_tile_base.log | grep -v '^{' | tail -2 | cut -c1-700; }
L=$(left 490); el "== E: gpu_chunk.py, this code, whole head at once (limit $L s)"
[ $L -gt 40 ] && { timeout $L python3 benchmarks/gpu_chunk.py --repeats 2 --head-strip-px 1099511627776 > $OUT/gpu_chunk_wholehead.log 2>&1; echo "rc $?"
  grep -E "^x|^torch" $OUT/gpu_chunk_wholehead.log | cut -c1-330; }
el done
