"""Every place MIS replaces something inside pygeoapi 0.21, each a named function.

pygeoapi is used as it is installed; where it does something wrong for MIS, or lacks a
hook MIS needs, one of these functions puts MIS's version in its place. Two patch the
instance of ``pygeoapi.starlette_app`` each MIS app loads (:func:`keep_raw_headers`,
:func:`serve_through_mis`); the others patch pygeoapi's modules for the whole process and
are idempotent (:func:`apply_process_wide` runs them all). ``tests/test_patches.py``
proves each is in effect on a running server and, where it can, that pygeoapi without it
behaves the other way, so that a pygeoapi release that makes one needless is noticed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from pygeoapi import l10n
from pygeofilter.ast import Node
from pygeofilter.parsers.cql2_text import parse as parse_cql2_text
from pygeofilter.parsers.ecql import parse as parse_ecql

from mis.api.auth import TokenStore
from mis.api.datetimes import validate_datetime
from mis.api.provider import CURRENT_REQUEST, RAW_FEATURES
from mis.api.responses import adjust

__all__ = ["FILTER_CONFORMANCE", "RAW_SLOT", "accept_any_datetime", "apply_process_wide", "declare_filtering",
           "keep_raw_headers", "parse_filter_text", "read_cql2_text", "serve_through_mis",
           "translate_config_per_app"]

#: How pygeoapi (``to_json``, compact separators) writes the empty feature list the
#: provider returns when it hands the features over as text.
RAW_SLOT = '"features":[]'

#: What MIS's provider adds to pygeoapi's conformance declaration (Part 3 filtering, CQL2).
FILTER_CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
]


# --------------------------------------------------------------------------- per app
def keep_raw_headers(module: ModuleType, tokens: TokenStore) -> None:
    """Give each ``APIRequest`` of ``module`` the request's raw header list and the
    server's token store (``mis_raw_headers``, ``mis_tokens``).

    pygeoapi 0.21's ``APIRequest`` keeps the headers as a case-folded dict (a header sent
    twice becomes one) and knows nothing of tokens; the provider authorises each write
    itself (:func:`mis.api.auth.authorise_write`), where it happens, on the headers
    exactly as they arrived."""

    class MISRequest(module.APIRequest):  # type: ignore[name-defined]
        @classmethod
        async def from_starlette(cls, request: Any, supported_locales: Any) -> Any:
            api_request = await super().from_starlette(request, supported_locales)
            api_request.mis_raw_headers = list(request.headers.raw)
            api_request.mis_tokens = tokens
            return api_request

    module.APIRequest = MISRequest  # type: ignore[attr-defined]


def serve_through_mis(module: ModuleType, base_url: str) -> None:
    """Replace ``module.call_api_threadsafe`` (which runs every API call in a worker
    thread) by one that tells the provider which request it serves, splices the features'
    JSON text in, and adjusts every answer.

    pygeoapi 0.21 gives a provider only the parsed query arguments, not the request: the
    provider needs it (:data:`~mis.api.provider.CURRENT_REQUEST`) for its keyset ``next``
    links (``cursor=``), unknown-parameter checks and write options. pygeoapi also parses
    the provider's features into dicts only to serialise them again: PostgreSQL's text
    (:data:`~mis.api.provider.RAW_FEATURES`) goes into the page as it is. Every answer
    then goes through :func:`mis.api.responses.adjust` (links that compose, GeoJSON media
    type, offline HTML)."""

    def call_api_threadsafe(loop: asyncio.AbstractEventLoop, api_call: Callable, *args: Any) -> Any:
        asyncio.set_event_loop(loop)
        holder: dict[str, str] = {}
        token = CURRENT_REQUEST.set(args[1] if len(args) > 1 else None)
        raw_token = RAW_FEATURES.set(holder)
        try:
            result = api_call(*args)
        finally:
            RAW_FEATURES.reset(raw_token)
            CURRENT_REQUEST.reset(token)
        raw = holder.get("features")
        if raw is not None:  # splice the features PostgreSQL serialised into pygeoapi's page
            headers, status, content = result
            if isinstance(content, str) and RAW_SLOT in content:
                result = (headers, status, content.replace(RAW_SLOT, '"features":' + raw, 1))
        return adjust(api_call, *result, base_url=base_url)

    module.call_api_threadsafe = call_api_threadsafe  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- process-wide
def declare_filtering() -> None:
    """Declare OGC API - Features Part 3 and CQL2 conformance (idempotent).

    pygeoapi 0.21 filters with CQL2 but does not declare the conformance classes, so that
    clients (QGIS, OWSLib) do not offer filters; the provider implements them."""
    from pygeoapi.api import itemtypes  # here: importing pygeoapi's API costs 0.3 s, needed once an app is made

    for uri in FILTER_CONFORMANCE:
        if uri not in itemtypes.CONFORMANCE_CLASSES_FEATURES:
            itemtypes.CONFORMANCE_CLASSES_FEATURES.append(uri)


def parse_filter_text(text: str) -> Node:
    """CQL2 text as well as ECQL: ECQL is tried first (it reads the common subset more
    leniently), then CQL2 text; ECQL's error when neither reads it."""
    try:
        return parse_ecql(text)
    except Exception as ecql_error:  # noqa: BLE001 - the parsers raise lark's many kinds
        try:
            return parse_cql2_text(text)
        except Exception:  # noqa: BLE001
            raise ecql_error from None


def read_cql2_text() -> None:
    """Let ``filter=`` be CQL2 text (idempotent).

    pygeoapi 0.21 parses ``filter=`` as ECQL only, which lacks CQL2's function names
    (``S_INTERSECTS``, ``T_AFTER`` ...): a CQL2 text filter would be a 400."""
    from pygeoapi.api import itemtypes  # here: see declare_filtering

    itemtypes.parse_ecql_text = parse_filter_text


def accept_any_datetime() -> None:
    """Put :func:`mis.api.datetimes.validate_datetime` in pygeoapi's place (idempotent).

    pygeoapi 0.21 checks ``datetime`` against the collection's temporal extent and answers
    a 400 for an interval outside it (the standard: an empty page), and reads only a few
    RFC 3339 spellings."""
    from pygeoapi.api import itemtypes  # here: see declare_filtering

    itemtypes.validate_datetime = validate_datetime


def translate_config_per_app() -> None:
    """Make pygeoapi render each app's HTML with that app's configuration (idempotent).

    pygeoapi 0.21 caches the translated configuration its templates read by locale alone,
    for the whole process (``pygeoapi.l10n._cfg_cache``): a second app in one process (the
    tests run one per module) would render its pages with the first app's server URL, and
    link its styles and images to a server that is gone. The cache is kept per
    configuration object instead."""
    if getattr(l10n.translate_struct, "mis_per_config", False):
        return
    original = l10n.translate_struct
    translated: dict[tuple[int, str], tuple[Any, Any]] = {}
    lock = threading.Lock()

    def translate_struct(struct: Any, locale_: Any, is_config: bool = False) -> Any:
        if not is_config or not struct or not locale_:
            return original(struct, locale_, is_config)
        key = (id(struct), str(locale_))
        with lock:
            hit = translated.get(key)
            if hit is None or hit[0] is not struct:
                l10n._cfg_cache.pop(locale_, None)
                hit = translated[key] = (struct, original(struct, locale_, True))  # struct kept: its id stays its
            return hit[1]

    translate_struct.mis_per_config = True  # type: ignore[attr-defined]
    l10n.translate_struct = translate_struct


def apply_process_wide() -> None:
    """Every process-wide patch (idempotent; :func:`mis.api.app.create_app` runs it)."""
    declare_filtering()
    read_cql2_text()
    accept_any_datetime()
    translate_config_per_app()
