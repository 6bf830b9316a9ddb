"""STAC layer: search a STAC API, map catalog-specific asset keys to canonical bands, serve the embedded sample."""

from .items import SceneInfo, describe_items, normalize_item
from .search import search_items

__all__ = ["SceneInfo", "describe_items", "normalize_item", "search_items"]
