# Two commands do all set-up on a fresh machine (Python 3.11 + venv): `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

# torch==2.13.0 first: a CPU build on local disk; anything unpinned would pull a multi-GB CUDA build.
# The package and its test extras (s3fs and moto together, so botocore stays compatible) in ONE pip command.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
	touch $@

# the real native 10 m scene (s2sr_cloud/sample10m: L1C crop of tile 18SVG, CC0), store + quick-look + HTML report
demo: setup
	$(BIN)/s2sr run --catalog sample10m --collection sentinel-2-l1c --out demo.zarr --overwrite --report

# 2 pytest-xdist workers: many tests wait on subprocesses, servers and S3 retries (tests/conftest.py)
test: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

bench: setup
	$(BIN)/python benchmarks/bench_pipeline.py

clean:
	rm -rf demo.zarr demo_quicklook.png demo_report.html demo_stac .pytest_cache
