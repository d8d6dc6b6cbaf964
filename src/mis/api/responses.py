"""What MIS changes in pygeoapi's answers before they leave: links that compose, media
types, HTML that works offline.

pygeoapi 0.21 writes the JSON ``items`` link of a collection as ``.../items?f=json``; GDAL's
OAPIF driver builds a feature's URL by appending ``/{id}`` to it, and asks for
``items?f=json/1`` (a 400): ``ogrinfo OAPIF:... drillcores -fid 1`` fails. The link goes
out as ``.../items`` (GeoJSON is what a client asking for JSON gets there anyway), so
``{items}/{id}`` and ``{items}?limit=...`` both mean what they say.

pygeoapi also labels GeoJSON answers with the server's JSON media type
(``application/json``); features and feature collections are ``application/geo+json``
(OGC API - Features Part 1, requirement /req/geojson/content).

pygeoapi's HTML pages load Leaflet, Leaflet.markercluster, Bootstrap and Swagger UI from
unpkg.com: offline the map is blank (``L is not defined``). Their HTML goes out with MIS's vendored
copies instead (:data:`OFFLINE_ASSETS`, files under ``mis/api/static``); the map's base
tiles are MIS's own plain tiles (``/mis/tiles``, :mod:`mis.api.app`), set in the
configuration (:func:`mis.api.config.build_config`). Whatever template renders a page
(pygeoapi's or an override of it), the same CDN addresses are replaced.

:func:`adjust` is applied to every answer of pygeoapi's API functions
(:func:`mis.api.patches.serve_through_mis` wraps their calls; the per-app HTML
configuration is :func:`mis.api.patches.translate_config_per_app`).
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

__all__ = ["GEOJSON", "OFFLINE_ASSETS", "adjust", "compose_href", "offline_html"]

GEOJSON = "application/geo+json"
_JSON_TYPES = ("application/json", GEOJSON)
#: CDN files of pygeoapi 0.21's templates -> MIS's copies (paths under the server's URL).
OFFLINE_ASSETS = {
    "https://unpkg.com/leaflet@1.3.1/dist/leaflet.css": "/static/leaflet/leaflet.css",
    "https://unpkg.com/leaflet@1.3.1/dist/leaflet.js": "/static/leaflet/leaflet.js",
    "https://unpkg.com/bootstrap@5.1.3/dist/css/bootstrap.min.css": "/static/bootstrap/bootstrap.min.css",
    "https://unpkg.com/leaflet.markercluster/dist/MarkerCluster.css": "/static/leaflet.markercluster/MarkerCluster.css",
    "https://unpkg.com/leaflet.markercluster/dist/MarkerCluster.Default.css":
        "/static/leaflet.markercluster/MarkerCluster.Default.css",
    "https://unpkg.com/leaflet.markercluster/dist/leaflet.markercluster-src.js":
        "/static/leaflet.markercluster/leaflet.markercluster.js",
    **{f"https://unpkg.com/swagger-ui-dist/{name}": f"/static/swagger-ui/{name}"
       for name in ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
                    "favicon-16x16.png", "favicon-32x32.png")},
}


#: pygeoapi's item(s) pages fit their map to the features' bounds, which features without
#: geometry (surveys, vocabularies) have not: Leaflet throws "Bounds are not valid".
_FIT = "map.fitBounds(items.getBounds()"


def offline_html(page: str, base_url: str) -> str:
    """``page`` with every CDN file of :data:`OFFLINE_ASSETS` taken from this server (and
    its map fitted to its features only where they have bounds)."""
    for cdn, local in OFFLINE_ASSETS.items():
        page = page.replace(cdn, base_url + local)
    return page.replace(_FIT, "items.getBounds().isValid() && " + _FIT)


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


def adjust(api_call: Any, headers: dict[str, Any], status: int, content: Any, *,
           base_url: str = "") -> tuple[dict, int, Any]:
    """The ``(headers, status, content)`` of pygeoapi's ``api_call`` with the changes above
    (``base_url``: the server's public URL, where the vendored files are)."""
    content_type = str(headers.get("Content-Type", ""))
    if content_type.startswith("text/html") and isinstance(content, str):
        return headers, status, offline_html(content, base_url)
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
