"""s2sr-cloud: cloud-native batch super-resolution of Sentinel-2 L2A with exact spectral consistency.

The API (``search``, ``load``, ``super_resolve``, ``write``, ``open_output``, ``input_for``) is imported on first
use, so that ``s2sr_cloud.ops`` and ``s2sr_cloud.model`` (pure numpy/torch) load without dask, odc or GDAL.
"""

import os
from typing import Any

# torch's CPU allocator puts tensors of 2 MiB and more on transparent huge pages when this is set (torch reads it
# once, at its first allocation: so here, before anything imports torch; dask worker processes inherit it). On a
# 2-core VM the network's forward spent more time in the kernel, faulting in fresh pages for its activations, than
# computing; with huge pages one x4 chunk function ran 14% faster (benchmarks/RESULTS.md). A value already set
# (THP_MEM_ALLOC_ENABLE=0) wins.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
# oneDNN (torch's CPU convolutions) keeps the convolution primitives it made, each with its scratch memory, for reuse
# with the same shapes (up to 1024 by default). A chunk's band groups, strips and area edges give many shapes: at a
# 732 px x10 block on an area's edge they held about 0.5 GiB that nothing used again. Measured on 2 dask workers,
# the x10 default chunk (benchmarks/rss_diag.py 1098 --grid 732,366 --model default --ensemble 1 --scale 10
# --workers 2): 1024 (the default): 356 s, worker peak 3.48 GiB; 16: 321 s, 2.95 GiB; 0 (no cache): 480 s, 2.69
# GiB. Read when the first primitive is made; a value already set wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")

from ._process import tune_malloc  # noqa: E402

tune_malloc()  # in a dask worker: glibc's mmap threshold back on (see _process)

from . import bands  # noqa: E402
from ._version import __version__  # noqa: E402

_API = ("input_for", "load", "open_output", "run", "search", "super_resolve", "write")


def __getattr__(name: str) -> Any:
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 's2sr_cloud' has no attribute {name!r}")


__all__ = ["__version__", "bands", *_API]
