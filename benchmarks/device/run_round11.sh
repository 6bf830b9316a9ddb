#!/usr/bin/env bash
# Round 11's device calls (issue 12), carrying .whl (build_bundle.sh, xz -9e), .tile (the decimated 29RKH tile's 12
# band COGs + item as .tile/data/<name>) and .base (an earlier s2sr_cloud beside this commit's
# benchmarks/gpu_chunk.py; data dirs as links into this tree). The steps named run in order:
#   gpu_sh      benchmarks/gpu.sh: the gpu tests and the sample benchmark
#   chunk_new   gpu_chunk.py with this code      chunk_base  the same with .base's code, on the same blocks
#   tile        the whole tile on one GPU worker, 4 threads, this code then .base's (with the task stream)
#   wholehead   gpu_chunk.py with BandSR's head whole (strips off)
# Call 1 (H100; .base = round 9, 008f79c): gpu_sh chunk_new chunk_base tile wholehead
# Call 2 (H100; .base = round 10, 2e1435e): gpu_sh chunk_new chunk_base tile
# Call 3 (H200; .base = round 10): chunk_new chunk_base gpu_sh   (gpu_chunk.py now calls the chunk function as
#   the pipeline does: call 2's chunk_new included a host-side DN decode the pipeline never runs)
# Round 14 (H200; .base = round 11's final code, fa5fb9b, with this commit's gpu_chunk.py: x10 blocks of 732 px
#   for both): gpu_sh chunk_new chunk_base tile; then tile tile
# Round 14, calls 3 and 4 (new = the malloc trim in the band loop kept off CUDA, commit 0218ed2, reverted after:
#   no gain measured; .v0 = the code before it): tile3 tile3, then tile3
#   tile3       the whole tile with this code, .v0's and .base's, in turn
set -u
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || pwd)"
. benchmarks/device/unpack.sh
el unpacked; nvidia-smi -L; nproc
chunk() {  # $1: log name, then gpu_chunk.py's path and arguments
  local log=$1; shift
  timeout 110 python3 "$@" --repeats 2 > $OUT/$log.log 2>&1; echo "rc $?"; grep -E "^x|^torch" $OUT/$log.log | cut -c1-330
}
for step in "$@"; do
  case $step in
    gpu_sh) L=$(left 450); el "== gpu.sh (limit $L s)"; [ $L -gt 60 ] || continue
      PYTHON=python3 timeout $(( L < 170 ? L : 170 )) bash benchmarks/gpu.sh > $OUT/gpu_sh.log 2>&1; echo "gpu.sh rc $?"
      grep -E "passed|failed|error" $OUT/gpu_sh.log | tail -3; grep -v Warn $OUT/gpu_sh.log | tail -2 | cut -c1-1200 ;;
    chunk_new) el "== gpu_chunk.py, this code"; chunk gpu_chunk_new benchmarks/gpu_chunk.py ;;
    chunk_base) el "== gpu_chunk.py, .base's code"; chunk gpu_chunk_base .base/benchmarks/gpu_chunk.py ;;
    wholehead) L=$(left 490); el "== gpu_chunk.py, this code, whole head (limit $L s)"; [ $L -gt 40 ] || continue
      chunk gpu_chunk_wholehead benchmarks/gpu_chunk.py --head-strip-px 1099511627776 ;;
    tile) L=$(left 420); el "== whole tile, this code then .base's, 4 threads (limit $L s)"; [ $L -gt 40 ] || continue
      for code in new base; do
        P=/tmp/site:$PWD; [ $code = base ] && P=/tmp/site:$PWD/.base
        PYTHONPATH=$P timeout $(( L / 2 )) python3 benchmarks/gpu_tile.py --ensembles default --threads 4 \
          > $OUT/gpu_tile_$code.log 2>&1; echo "rc $?"
        grep -v Warn $OUT/gpu_tile_$code.log | grep -v '^{' | tail -3 | cut -c1-900
      done ;;
    tile3) L=$(left 240); el "== whole tile, this code, .v0's, .base's, 4 threads (limit $L s)"; [ $L -gt 40 ] || continue
      N=$(( ${N:-0} + 1 ))
      for code in new v0 base; do
        P=/tmp/site:$PWD; [ $code = new ] || P=/tmp/site:$PWD/.$code
        PYTHONPATH=$P timeout 60 python3 benchmarks/gpu_tile.py --ensembles default --threads 4 \
          > $OUT/gpu_tile_${code}_$N.log 2>&1; echo "$code rc $?"
        grep -v Warn $OUT/gpu_tile_${code}_$N.log | grep -v '^{' | tail -3 | cut -c1-900
      done ;;
  esac
done
el done
