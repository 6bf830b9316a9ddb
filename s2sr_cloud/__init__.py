"""s2sr-cloud: cloud-native batch super-resolution of Sentinel-2 L2A with exact spectral consistency.

The API (``search``, ``load``, ``super_resolve``, ``write``, ``open_output``, ``input_for``) is imported on first
use, so that ``s2sr_cloud.ops`` and ``s2sr_cloud.model`` (pure numpy/torch) load without dask, odc or GDAL.
"""

from typing import Any

from . import bands
from ._version import __version__

_API = ("input_for", "load", "open_output", "run", "search", "super_resolve", "write")


def __getattr__(name: str) -> Any:
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 's2sr_cloud' has no attribute {name!r}")


__all__ = ["__version__", "bands", *_API]
