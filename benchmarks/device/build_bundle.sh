#!/usr/bin/env bash
# How the GPU machine got the packages its image lacks (issue 12, 2026-11-27). The device tool's machine has
# Python 3.12 with a CUDA torch but no dask, zarr, odc-stac, rasterio, rustac...; nothing can be fetched there
# and one call carries at most 64 MiB. So: pure-Python packages copied from this .venv, cp312 wheels for the
# compiled ones (rustac is abi3: copied), debug symbols stripped (282 -> 206 MB), one tar.xz (50 MB) in .whl/.
# The decimated tile (13 MB of COGs) does not fit beside it: run1.sh (carry .whl) unpacks to /tmp/site on the
# machine, run2.sh (carry .tile, laid out as .tile/data/s2a_29rkh_20200219_l2a_decimated) runs within the 30 s
# the machine stays warm. run_device.sh: the first call (held-out bf16, gpu.sh, gpu_chunk.py).
set -eu
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
SP=.venv/lib/python3.11/site-packages; ST=$(mktemp -d); W=$(mktemp -d)
for p in rasterio==1.4.4 pyproj==3.7.2 shapely==2.2.0 numcodecs==0.16.6 google-crc32c==1.9.0; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$W" "$p"
done
for w in "$W"/*.whl; do unzip -q -o "$w" -d "$ST"; done
PURE="affine cachetools click-plugins cligj dask distributed donfig locket odc-geo odc-loader odc-stac partd pystac
pystac-client pystac-core rioxarray tblib zarr zict tornado rustac importlib_metadata
$(.venv/bin/pip list 2>/dev/null | awk '/^pystac-ext-/{print $1}')"
for p in $PURE; do
  .venv/bin/pip show -f "$p" | sed -n '/^Files:/,$p' | tail -n +2 | sed 's/^ *//' | grep -v -e '^\.\.' -e __pycache__ |
    while read -r f; do [ -f "$SP/$f" ] && install -D -m 644 "$SP/$f" "$ST/$f"; done
done
find "$ST" -type d \( -name tests -o -name __pycache__ \) -prune -exec rm -rf {} +
find "$ST" -name "*.so*" -type f -exec strip --strip-debug {} + 2>/dev/null || true
mkdir -p .whl && tar -I "xz -T2 -6" -cf .whl/site312.tar.xz -C "$ST" . && ls -la .whl/site312.tar.xz
