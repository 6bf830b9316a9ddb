#!/usr/bin/env bash
# Round 11's third device call (issue 12): gpu_chunk.py now calls the chunk function as the pipeline does (uint16
# DN out, not decoded on the host: call 2's figures for this code included a host-side decode the pipeline never
# runs). B/C: this code / round 10's (.base, 2e1435e) on the same blocks; then gpu.sh with the time left.
set -u
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || pwd)"
S=$(date +%s); el() { echo "[$(( $(date +%s) - S )) s] $*"; }
left() { echo $(( ${1} - ($(date +%s) - S) )); }
mkdir -p /tmp/site /tmp/bin && tar -xJf .whl/site312.tar.xz -C /tmp/site
printf '#!%s\nimport sys\nfrom rustac import main\nsys.argv[0] = "rustac"\nsys.exit(main())\n' "$(command -v python3)" > /tmp/bin/rustac
chmod +x /tmp/bin/rustac
export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/bin:$PATH PYTHONUNBUFFERED=1 S2SR_SHARED=$PWD/.tile
el unpacked
el "== B: gpu_chunk.py, this code"
timeout 80 python3 benchmarks/gpu_chunk.py --repeats 2 > $OUT/gpu_chunk_new.log 2>&1; echo "rc $?"
grep -E "^x|^torch" $OUT/gpu_chunk_new.log | cut -c1-330
el "== C: gpu_chunk.py, round 10 code (2e1435e)"
timeout 70 python3 .base/benchmarks/gpu_chunk.py --repeats 2 > $OUT/gpu_chunk_base.log 2>&1; echo "rc $?"
grep -E "^x|^torch" $OUT/gpu_chunk_base.log | cut -c1-330
L=$(left 225); el "== A: gpu.sh (limit $L s)"
[ $L -gt 60 ] && { PYTHON=python3 timeout $L bash benchmarks/gpu.sh > $OUT/gpu_sh.log 2>&1; echo "gpu.sh rc $?"
  grep -E "passed|failed|error" $OUT/gpu_sh.log | tail -2; grep -v Warn $OUT/gpu_sh.log | tail -1 | cut -c1-1200; }
el done
