#!/usr/bin/env bash
# Round 9's one device call (issue 12): carry .whl (benchmarks/device/build_bundle.sh, recompressed xz -9e to fit),
# .tile (the 12 band COGs + item of the decimated 29RKH tile, laid out as .tile/data/<name>) and .base (round 7's
# s2sr_cloud, commit 56dc9ff, data dirs as links into this tree). A: gpu.sh (gpu tests + sample benchmark);
# B: the whole tile with this code, 4 then 1 worker threads; C: the same with round 7's code, 4 threads (the A/B on
# one machine); D: gpu_chunk.py with the time left.
set -u
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || pwd)"
S=$(date +%s); el() { echo "[$(( $(date +%s) - S )) s] $*"; }
mkdir -p /tmp/site /tmp/bin && tar -xJf .whl/site312.tar.xz -C /tmp/site
printf '#!%s\nimport sys\nfrom rustac import main\nsys.argv[0] = "rustac"\nsys.exit(main())\n' "$(command -v python3)" > /tmp/bin/rustac
chmod +x /tmp/bin/rustac
export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/bin:$PATH PYTHONUNBUFFERED=1 S2SR_SHARED=$PWD/.tile
el unpacked; nvidia-smi -L; nproc
python3 -c "import torch, dask, distributed, zarr, odc.stac, rasterio, rustac; import s2sr_cloud.pipeline.run, s2sr_cloud.cli; print('imports ok', torch.__version__, dask.__version__, zarr.__version__)" 2>&1 | tail -2
el "== A: gpu.sh"
PYTHON=python3 timeout 200 bash benchmarks/gpu.sh > $OUT/gpu_sh.log 2>&1; echo "gpu.sh rc $?"
grep -E "passed|failed|error" $OUT/gpu_sh.log | tail -3; grep -v Warn $OUT/gpu_sh.log | tail -9 | cut -c1-700
el "== B: whole tile, this code"
timeout 170 python3 benchmarks/gpu_tile.py --ensembles default --threads 4,1 > $OUT/gpu_tile_new.log 2>&1; echo "rc $?"
grep -v Warn $OUT/gpu_tile_new.log | grep -v '^{' | tail -3 | cut -c1-900
el "== C: whole tile, round 7 code (56dc9ff)"
PYTHONPATH=/tmp/site:$PWD/.base timeout 110 python3 benchmarks/gpu_tile.py --ensembles default --threads 4 > $OUT/gpu_tile_base.log 2>&1; echo "rc $?"
grep -v Warn $OUT/gpu_tile_base.log | grep -v '^{' | tail -2 | cut -c1-900
L=$(( 500 - ($(date +%s) - S) )); el "== D: gpu_chunk.py (limit $L s)"
[ $L -gt 30 ] && { timeout $L python3 benchmarks/gpu_chunk.py --repeats 2 > $OUT/gpu_chunk.log 2>&1; echo "rc $?"; grep -v Warn $OUT/gpu_chunk.log | tail -6 | cut -c1-900; }
el done
