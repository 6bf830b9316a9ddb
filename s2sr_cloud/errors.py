"""One exception tree. Every message says what went wrong and what the user can do about it.

The CLI prints ``str(err)`` on one line and exits with ``err.exit_code``.
"""

from __future__ import annotations


class S2SRError(Exception):
    """Base of every error s2sr-cloud raises on purpose."""

    exit_code = 1


class ConfigError(S2SRError):
    """A job option is invalid (bbox, datetime, band, scale, file)."""

    exit_code = 2


class CatalogError(S2SRError):
    """The STAC API could not be reached or answered badly."""

    exit_code = 3


class NoScenesError(S2SRError):
    """The search matched no usable scene."""

    exit_code = 4


class AssetError(S2SRError):
    """An item lacks a band asset or describes it inconsistently."""

    exit_code = 5


class ReadError(S2SRError):
    """A raster could not be read."""

    exit_code = 6


class OutputError(S2SRError):
    """The output store exists, is incomplete, or cannot be written."""

    exit_code = 7


class ModelError(S2SRError):
    """A model is unknown or its weights do not match their registry entry."""

    exit_code = 8


class IntegrityError(S2SRError):
    """``s2sr verify`` found bad chunks or a damaged store."""

    exit_code = 9
