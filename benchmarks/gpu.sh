#!/usr/bin/env bash
# One command for anyone holding a GPU: the gpu-marked tests, then the benchmark on the embedded sample (needs
# only the repository and its .venv; reads nothing outside it). Prints the same JSON line as benchmarks/run.py
# as its LAST line. Budget: < 5 min on one H100 with a 16-core host.
#   bash benchmarks/gpu.sh
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda available:", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "NO CUDA: this torch build ($("$PY" -c 'import torch; print(torch.__version__)')) cannot see a GPU." \
       "The project's .venv carries the CPU build (torch==2.13.0 from local disk); install a CUDA build of the" \
       "same version into the venv to check the GPU claims. Running the CPU path of the same checks instead."
  DEVICE=cpu
else
  DEVICE=cuda
fi
echo "== pytest -m gpu (tests/test_gpu.py, the gpu tests in tests/test_predictors.py and tests/test_ops.py)"
timeout 150 "$PY" -m pytest -q -m gpu tests/test_gpu.py tests/test_predictors.py tests/test_ops.py -p no:cacheprovider \
  2>&1 | tail -15
echo "== benchmark (embedded sample, device $DEVICE)"
S2SR_TORCH_THREADS=${S2SR_TORCH_THREADS:-1} timeout 200 "$PY" benchmarks/run.py --quick --data sample --device "$DEVICE" --workers 1
