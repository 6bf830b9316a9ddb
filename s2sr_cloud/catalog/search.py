"""STAC API search through pystac-client."""

from __future__ import annotations

import logging
from typing import Any

import pystac
from pystac_client import Client
from pystac_client.exceptions import APIError

from ..config import redact_url
from ..errors import CatalogError, NoScenesError

log = logging.getLogger(__name__)


def _modifier(url: str) -> Any:
    """Planetary Computer hrefs must be signed; use the planetary-computer package when installed."""
    if "planetarycomputer" not in url:
        return None
    try:
        import planetary_computer  # type: ignore[import-not-found]
    except ImportError:
        raise CatalogError(
            "Planetary Computer assets must be signed: pip install planetary-computer, then re-run") from None
    return planetary_computer.sign_inplace


class SearchResult(list[pystac.Item]):
    """The items taken (at most ``limit``), and whether the search matched more than that."""

    def __init__(self, items: list[pystac.Item], truncated: bool) -> None:
        super().__init__(items)
        self.truncated = truncated


def open_client(url: str) -> Client:
    modifier = _modifier(url)
    try:
        return Client.open(url, modifier=modifier, timeout=30)
    except Exception as err:  # noqa: BLE001 - connection, HTTP and JSON errors all mean the same to the user
        raise CatalogError(f"cannot reach the STAC API at {redact_url(url)} ({err.__class__.__name__}): "
                           "check the URL and your network, or use --catalog sample") from None


def search_items(url: str, collection: str, *, bbox: tuple[float, ...] | None = None,
                 intersects: dict[str, Any] | None = None, datetime: str | None = None,
                 max_cloud: float | None = None, limit: int = 100) -> SearchResult:
    """Items matching the area, dates and cloud limit, sorted by datetime then id (a stable order). One more
    than ``limit`` is asked for, so that a truncated search is known (``.truncated``) and can be reported."""
    client = open_client(url)
    shown = redact_url(url)
    params: dict[str, Any] = {"collections": [collection], "max_items": limit + 1}
    if bbox is not None:
        params["bbox"] = list(bbox)
    if intersects is not None:
        params["intersects"] = intersects
    if datetime is not None:
        params["datetime"] = datetime
    if max_cloud is not None and client.conforms_to("QUERY"):  # APIs without it may return nothing
        params["query"] = {"eo:cloud_cover": {"lte": max_cloud}}
    try:
        items = list(client.search(**params).items())
    except APIError as err:
        raise CatalogError(f"the STAC API at {shown} rejected the search: {redact_url(str(err))[:200]}") from None
    except Exception as err:  # noqa: BLE001
        raise CatalogError(f"searching {shown} failed ({err.__class__.__name__}: {redact_url(str(err))[:200]})"
                           ) from None
    truncated = len(items) > limit
    items = items[:limit]
    if max_cloud is not None:
        items = [it for it in items if (it.properties.get("eo:cloud_cover") or 0) <= max_cloud]
    if not items:
        where = f"bbox {list(bbox)}" if bbox else ("the geometry" if intersects else "anywhere")
        raise NoScenesError(
            f"no {collection} scenes in {shown} for {where}, datetime {datetime or 'any'}"
            f"{f', cloud <= {max_cloud}%' if max_cloud is not None else ''}: widen the dates, area or cloud limit")
    items.sort(key=lambda it: (str(it.properties.get("datetime")), it.id))
    log.info("found %d item(s)%s", len(items), " (more matched)" if truncated else "")
    return SearchResult(items, truncated)
