"""The vocabulary as the feature provider's filters need it: terms resolved to concepts,
concepts expanded to everything narrower, labels and URIs turned into concept ids.

The index of every term (:class:`mis.vocab.lookup.TermIndex`) is read once per database
and trusted for ``settings().terms_ttl_s`` seconds: a page filtered by ``lithology_broader``
would otherwise read the whole vocabulary for each request. The narrower concepts of each
concept asked for are remembered beside it, for as long as the index is.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy.orm import Session

from mis.api.errors import MISInvalidQuery
from mis.api.meta import ViewMeta
from mis.settings import settings
from mis.vocab.lookup import AmbiguousTermError, TermIndex, UnknownTermError, narrower

__all__ = ["clear", "concept_ids_for", "narrower_uris", "uri_ids"]


class _Cached:
    """One database's term index, until when it is trusted, and what was derived from it."""

    def __init__(self, index: TermIndex) -> None:
        #: the time-to-live is read once per refresh: settings() reads the environment
        #: (about 1 ms), too much for every filtered page
        self.valid_until = time.monotonic() + settings().terms_ttl_s
        self.index = index
        #: concept URI -> the URIs of it and every concept below it
        self.narrower: dict[str, list[str]] = {}
        #: the short name the views show (notation, else label) -> concept ids
        self.symbols: dict[str, list[int]] | None = None


_TERMS: dict[str, _Cached] = {}
_LOCK = threading.Lock()


def _terms(meta: ViewMeta) -> _Cached:
    cached = _TERMS.get(meta.url)
    if cached is not None and time.monotonic() < cached.valid_until:
        return cached
    with Session(meta.engine) as session:
        cached = _Cached(TermIndex.from_session(session))
    with _LOCK:
        _TERMS[meta.url] = cached
    return cached


def narrower_uris(meta: ViewMeta, term: str, schemes: list[str] | None) -> list[str]:
    """URIs of the concept ``term`` names (URI, label or notation) and all below it."""
    cached = _terms(meta)
    if not schemes:  # always a list: TermIndex.resolve(term, None) pops from its own index
        schemes = sorted({t.scheme for t in cached.index.terms.values()})
    try:
        concept = cached.index.resolve(term, schemes)
    except (UnknownTermError, AmbiguousTermError) as exc:
        raise MISInvalidQuery(str(exc)) from None
    if concept.uri not in cached.narrower:
        with Session(meta.engine) as session:
            cached.narrower[concept.uri] = narrower(session, concept.uri)
    return cached.narrower[concept.uri]


def concept_ids_for(meta: ViewMeta, column: str, values: list[Any]) -> list[int]:
    """Integer ids of the concepts whose ``column`` value (the short name shown in the
    views, ``pub.symbol``: notation, else label; or the URI) is one of ``values``."""
    cached = _terms(meta)
    if cached.symbols is None:
        symbols: dict[str, list[int]] = {}
        for term in cached.index.terms.values():
            symbols.setdefault(term.notation or term.pref_label, []).append(term.id)
        cached.symbols = symbols
    ids: list[int] = []
    for value in values:
        if column.endswith("_uri"):
            found = cached.index.terms.get(str(value))
            ids += [found.id] if found else []
        else:
            ids += cached.symbols.get(str(value), [])
    return sorted(set(ids))


def uri_ids(meta: ViewMeta, uris: list[str]) -> list[int]:
    """Integer ids of the concepts of ``uris`` (those the vocabulary knows)."""
    index = _terms(meta).index
    return sorted({index.terms[u].id for u in uris if u in index.terms})


def clear() -> None:
    """Forget every cached vocabulary."""
    with _LOCK:
        _TERMS.clear()
