#!/usr/bin/env bash
set -u
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || pwd)"
S=$(date +%s)
[ -f /tmp/site/.ok ] || { mkdir -p /tmp/site /tmp/bin && tar -xJf .whl/site312.tar.xz -C /tmp/site; }
[ -f .whl/zt.tar ] && tar -xf .whl/zt.tar -C /tmp/site/zarr  # zarr.testing (a pytest plugin): the first bundle lacked it
printf '#!%s\nimport sys\nfrom rustac import main\nsys.argv[0] = "rustac"\nsys.exit(main())\n' "$(command -v python3)" > /tmp/bin/rustac
chmod +x /tmp/bin/rustac; touch /tmp/site/.ok
export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/bin:$PATH PYTHONUNBUFFERED=1
PYTHON=python3 timeout 300 bash benchmarks/gpu.sh > $OUT/gpu_sh.log 2>&1; echo "gpu.sh rc $?"; grep -E "passed|failed|error" $OUT/gpu_sh.log | tail -3; tail -1 $OUT/gpu_sh.log | cut -c1-600
echo "[$(( $(date +%s) - S )) s] done"
