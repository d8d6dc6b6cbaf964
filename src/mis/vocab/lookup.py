"""Resolve what people type to concept URIs, and walk the hierarchy.

Data managers type "Ccp", "chalcopyrite" or "CHALCOPYRITE"; all must land on the same
URI, and a typo must fail with a suggestion rather than invent a new class. Matching is
on prefLabel (every language), altLabels, notation (IMA symbols, commodity codes), the
URI and its last path segment, case-insensitively; an exact-case notation wins over a
case-folded one, so that symbols differing only by case stay distinct.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import literal, select
from sqlalchemy.orm import Session

from mis.catalogue import models as m
from mis.vocab.names import local_name


class UnknownTermError(LookupError):
    """A term that names no loaded concept (the message suggests the closest ones)."""

    def __init__(self, term: str, scheme: str | None, suggestions: list[str]) -> None:
        where = f" in scheme '{scheme}'" if scheme else ""
        hint = f"; did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        super().__init__(f"unknown term {term!r}{where}{hint}")
        self.term, self.scheme, self.suggestions = term, scheme, suggestions


class AmbiguousTermError(LookupError):
    def __init__(self, term: str, uris: list[str]) -> None:
        super().__init__(f"term {term!r} is ambiguous: it names {', '.join(sorted(uris))}; use the URI")
        self.term, self.uris = term, uris


@dataclass(frozen=True)
class Term:
    uri: str
    id: int
    scheme: str
    pref_label: str
    notation: str | None


class TermIndex:
    """An in-memory index of the loaded vocabulary, for resolving many terms quickly."""

    def __init__(self, terms: list[Term], names: list[tuple[str, str, bool]]) -> None:
        self.terms = {t.uri: t for t in terms}
        self._exact: dict[str, set[str]] = defaultdict(set)  # exact-case notation -> uris
        self._folded: dict[str, set[str]] = defaultdict(set)  # casefolded name -> uris
        for uri, name, is_notation in names:
            if is_notation:
                self._exact[name].add(uri)
            self._folded[name.casefold()].add(uri)

    @classmethod
    def from_session(cls, session: Session, schemes: list[str] | None = None) -> TermIndex:
        query = select(m.Concept)
        if schemes:
            query = query.where(m.Concept.scheme.in_(schemes))
        terms, names = [], []
        for c in session.scalars(query):
            terms.append(Term(c.uri, c.id, c.scheme, c.pref_label, c.notation))
            names.append((c.uri, c.uri, False))
            names.append((c.uri, local_name(c.uri), False))
            names.append((c.uri, c.pref_label, False))
            names += [(c.uri, label, False) for label in c.labels.values() if isinstance(label, str)]
            names += [(c.uri, label, False) for label in c.alt_labels]
            if c.notation:
                names.append((c.uri, c.notation, True))
        return cls(terms, names)

    def _in(self, uris: set[str], scheme: str | list[str] | None) -> set[str]:
        if scheme is None:
            return set(uris)  # a copy: callers may pop from it
        allowed = {scheme} if isinstance(scheme, str) else set(scheme)
        return {u for u in uris if self.terms[u].scheme in allowed}

    def resolve(self, term: str, scheme: str | list[str] | None = None) -> Term:
        """The one concept ``term`` names (in ``scheme``), else a helpful error."""
        text = term.strip()
        for candidates in (self._exact.get(text, set()), self._folded.get(text.casefold(), set())):
            found = self._in(candidates, scheme)
            if len(found) == 1:
                return self.terms[found.pop()]
            if len(found) > 1:
                raise AmbiguousTermError(term, list(found))
        raise UnknownTermError(term, scheme if isinstance(scheme, str) else None,
                               self.suggest(text, scheme))

    def suggest(self, text: str, scheme: str | list[str] | None = None, n: int = 3) -> list[str]:
        """Closest known names (pref labels and notations) to ``text``."""
        names: dict[str, str] = {}
        for name, uris in self._folded.items():
            for uri in self._in(uris, scheme):
                names.setdefault(name, self.terms[uri].pref_label)
        close = difflib.get_close_matches(text.casefold(), list(names), n=n * 3, cutoff=0.6)
        out: list[str] = []
        for name in close:
            label = names[name]
            if label not in out:
                out.append(label)
        return out[:n]

    def search(self, text: str, scheme: str | None = None, limit: int = 10) -> list[Term]:
        """Terms whose names contain ``text``, then fuzzy matches (for ``mis vocab search``)."""
        needle = text.strip().casefold()
        hits: list[str] = []
        for name, uris in sorted(self._folded.items(), key=lambda kv: (kv[0] != needle, len(kv[0]))):
            if needle in name:
                hits += [u for u in sorted(self._in(uris, scheme)) if u not in hits]
        if not hits:
            for label in self.suggest(text, scheme, n=limit):
                hits += [u for u in sorted(self._in(self._folded[label.casefold()], scheme)) if u not in hits]
        return [self.terms[u] for u in hits[:limit]]


def resolve(session: Session, term: str, scheme: str | list[str] | None = None) -> Term:
    """Resolve one term against the database (build a :class:`TermIndex` for many)."""
    return TermIndex.from_session(session, [scheme] if isinstance(scheme, str) else scheme).resolve(term, scheme)


def narrower(session: Session, uri: str, *, include_self: bool = True) -> list[str]:
    """Every concept below ``uri`` in the (poly)hierarchy, transitively: e.g. all igneous rocks."""
    tree = (
        select(literal(uri).label("uri")).cte("tree", recursive=True)
    )
    tree = tree.union(
        select(m.ConceptBroader.concept_uri).join(tree, m.ConceptBroader.broader_uri == tree.c.uri)
    )
    found = set(session.scalars(select(tree.c.uri)))
    if not include_self:
        found.discard(uri)
    return sorted(found)


def broader(session: Session, uri: str) -> list[str]:
    """The direct broader concepts of ``uri`` (several in a polyhierarchy)."""
    return sorted(session.scalars(
        select(m.ConceptBroader.broader_uri).where(m.ConceptBroader.concept_uri == uri)))
