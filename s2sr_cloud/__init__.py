"""s2sr-cloud: cloud-native batch super-resolution of Sentinel-2 L2A with exact spectral consistency."""

from . import bands
from ._version import __version__
from .api import input_for, load, open_output, search, super_resolve, write

__all__ = ["__version__", "bands", "input_for", "load", "open_output", "search", "super_resolve", "write"]
