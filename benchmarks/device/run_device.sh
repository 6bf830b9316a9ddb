#!/usr/bin/env bash
# device call: unpack the cp312 bundle (deps the GPU image lacks), then held-out bf16, gpu.sh, gpu_chunk.py
set -u
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || pwd)"
S=$(date +%s); el() { echo "[$(( $(date +%s) - S )) s] $*"; }
mkdir -p /tmp/site /tmp/bin && tar -xJf .whl/site312.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
printf '#!%s\nimport sys\nfrom rustac import main\nsys.argv[0] = "rustac"\nsys.exit(main())\n' "$(command -v python3)" > /tmp/bin/rustac
chmod +x /tmp/bin/rustac; export PATH=/tmp/bin:$PATH
el unpacked; nvidia-smi -L; nproc
python3 -c "import torch, numpy, xarray, dask, distributed, zarr, odc.stac, rasterio, rioxarray, pystac_client, rustac, pandas; import s2sr_cloud.pipeline.run, s2sr_cloud.cli; print('imports ok', torch.__version__, numpy.__version__, xarray.__version__, pandas.__version__, dask.__version__, zarr.__version__)" 2>&1 | tail -3
el "== A: held-out fp32 vs bf16"
timeout 120 python3 .whl/eval_bf16.py .whl/heldout cuda $OUT/heldout_bf16.json 2>&1 | grep -v Warning | tail -8
el "== B: gpu.sh"
PYTHON=python3 timeout 330 bash benchmarks/gpu.sh > $OUT/gpu_sh.log 2>&1; echo "gpu.sh rc $?"; tail -25 $OUT/gpu_sh.log
el "== C: gpu_chunk.py"
timeout $(( 560 - ($(date +%s) - S) )) python3 benchmarks/gpu_chunk.py > $OUT/gpu_chunk.log 2>&1; echo "gpu_chunk rc $?"; grep -v Warn $OUT/gpu_chunk.log | tail -9 | cut -c1-1500
el done
