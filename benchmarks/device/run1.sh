#!/usr/bin/env bash
set -u
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || pwd)"
S=$(date +%s)
[ -f /tmp/site/.ok ] || { mkdir -p /tmp/site /tmp/bin && tar -xJf .whl/site312.tar.xz -C /tmp/site; }
[ -f .whl/zt.tar ] && tar -xf .whl/zt.tar -C /tmp/site/zarr  # zarr.testing (a pytest plugin): first bundle lacked it
printf '#!%s\nimport sys\nfrom rustac import main\nsys.argv[0] = "rustac"\nsys.exit(main())\n' "$(command -v python3)" > /tmp/bin/rustac
chmod +x /tmp/bin/rustac; touch /tmp/site/.ok
export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/bin:$PATH PYTHONUNBUFFERED=1
timeout 150 python3 -m pytest -q -m gpu tests/test_gpu.py tests/test_predictors.py tests/test_evaluate.py -p no:cacheprovider 2>&1 | tee $OUT/pytest_gpu.log | tail -6
echo "[$(( $(date +%s) - S )) s] done"
