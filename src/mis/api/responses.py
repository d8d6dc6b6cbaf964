"""What MIS changes in pygeoapi's answers before they leave: links that compose, media types.

pygeoapi 0.21 writes the JSON ``items`` link of a collection as ``.../items?f=json``; GDAL's
OAPIF driver builds a feature's URL by appending ``/{id}`` to it, and asks for
``items?f=json/1`` (a 400): ``ogrinfo OAPIF:... drillcores -fid 1`` fails. The link goes
out as ``.../items`` (GeoJSON is what a client asking for JSON gets there anyway), so
``{items}/{id}`` and ``{items}?limit=...`` both mean what they say.

pygeoapi also labels GeoJSON answers with the server's JSON media type
(``application/json``); features and feature collections are ``application/geo+json``
(OGC API - Features Part 1, requirement /req/geojson/content).

:func:`adjust` is applied to every answer of pygeoapi's API functions
(:mod:`mis.api.app` wraps their calls).
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

__all__ = ["GEOJSON", "adjust", "compose_href"]

GEOJSON = "application/geo+json"
_JSON_TYPES = ("application/json", GEOJSON)


def _kind(api_call: Any) -> str | None:
    """"features" for pygeoapi's item(s) functions, "collections" for its collection
    descriptions (compared as objects: pygeoapi's decorators hide their names)."""
    from pygeoapi import api
    from pygeoapi.api import itemtypes

    if api_call in (itemtypes.get_collection_items, itemtypes.get_collection_item):
        return "features"
    if api_call is api.describe_collections:
        return "collections"
    return None


def compose_href(href: str) -> str:
    """``href`` without its ``f=json`` query parameter (others kept), so that a client can
    append a path segment or parameters to it."""
    parts = urllib.parse.urlsplit(href)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
             if not (k == "f" and v == "json")]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _compose_items_links(collection: dict[str, Any]) -> None:
    for link in collection.get("links") or []:
        if isinstance(link, dict) and link.get("rel") == "items" and link.get("type") in _JSON_TYPES:
            link["href"] = compose_href(str(link.get("href", "")))


def adjust(api_call: Any, headers: dict[str, Any], status: int, content: Any) -> tuple[dict, int, Any]:
    """The ``(headers, status, content)`` of pygeoapi's ``api_call`` with the changes above."""
    content_type = str(headers.get("Content-Type", ""))
    is_json = content_type.split(";")[0].strip() == "application/json"
    if not is_json or status != 200:
        return headers, status, content
    kind = _kind(api_call)
    if kind == "features":
        headers = {**headers, "Content-Type": GEOJSON + content_type[len("application/json"):]}
    elif kind == "collections" and isinstance(content, (str, bytes)):
        try:
            doc = json.loads(content)
        except ValueError:
            return headers, status, content
        if isinstance(doc, dict):
            for collection in doc.get("collections", [doc]):
                if isinstance(collection, dict):
                    _compose_items_links(collection)
            content = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    return headers, status, content
