"""Read the project's SKOS ontology (``ontology/*.ttl``) into plain typed records.

    schemes, concepts = read_ontology()

The records mirror the catalogue tables ``concept_scheme`` and ``concept``; the database
loader turns them into rows. Reading needs rdflib only (no database).

The ontology directory is ``$MIS_ONTOLOGY_DIR`` when set, otherwise the project's
``ontology/`` (shipped with the package, or the checkout's: :mod:`mis.resources`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from rdflib import Graph, Literal, URIRef
from rdflib.namespace import DCTERMS, RDF, SKOS

from mis import resources
from mis.settings import settings

MIS_DEF = "https://w3id.org/mis/def#"
ENV_ONTOLOGY_DIR = "MIS_ONTOLOGY_DIR"


class OntologyError(ValueError):
    """The ontology is missing or breaks a rule; the message names the file."""


@dataclass(frozen=True)
class ConceptScheme:
    key: str  # e.g. "lithology", "mineral"
    uri: str
    title: str
    description: str | None
    source: str | None  # several dct:source values are joined with " ; "
    licence: str | None


@dataclass
class Concept:
    uri: str
    scheme_key: str
    pref_label: str  # English where there is one
    labels: dict[str, str]  # prefLabel per language tag ("" = no tag)
    alt_labels: list[str]
    notation: str | None
    definition: str | None
    broader: list[str]
    properties: dict[str, Any] = field(default_factory=dict)
    # properties: the mis: values by local name (formula, density_g_cm3 (float),
    # crystalSystem, colour, isGroup (bool), mineralClass, imaStatus, symbolSource,
    # hierarchyKey), "exactMatch" (list of URIs) and "source" (dct:source) where present.


def ontology_dir() -> Path:
    """The directory holding ``*.ttl``: ``$MIS_ONTOLOGY_DIR`` or the project's ``ontology/``."""
    configured = settings().ontology_dir
    if configured:
        if not configured.is_dir():
            raise OntologyError(f"{ENV_ONTOLOGY_DIR}={configured}: not a directory")
        return configured
    candidate = resources.path("ontology")
    if candidate.is_dir() and any(candidate.glob("*.ttl")):
        return candidate
    raise OntologyError(
        f"no ontology/ directory with *.ttl at {candidate}; set {ENV_ONTOLOGY_DIR} to the "
        "directory that holds the vocabularies (built by `mis vocab build`)"
    )


def _python(value: Literal | URIRef) -> Any:
    if isinstance(value, URIRef):
        return str(value)
    v = value.toPython()
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, bool | int | float | str):
        return v
    return str(value)


def _text(values: list[Literal], prefer: str = "en") -> str | None:
    """One literal: the preferred language, else untagged, else the first tag (sorted)."""
    if not values:
        return None
    by_lang: dict[str, str] = {}
    for v in sorted(values, key=lambda v: (v.language or "", str(v))):
        by_lang.setdefault(v.language or "", str(v))
    for lang in (prefer, ""):
        if lang in by_lang:
            return by_lang[lang]
    return by_lang[sorted(by_lang)[0]]


def _read_file(path: Path) -> tuple[list[ConceptScheme], list[Concept]]:
    g = Graph()
    try:
        g.parse(path, format="turtle")
    except Exception as exc:  # rdflib raises many types
        raise OntologyError(f"{path}: not readable as Turtle: {exc}") from exc
    schemes: list[ConceptScheme] = []
    concepts: list[Concept] = []
    scheme_uris = sorted(s for s in g.subjects(RDF.type, SKOS.ConceptScheme)
                         if isinstance(s, URIRef))
    for scheme in scheme_uris:
        keys = sorted(str(k) for k in g.objects(scheme, DCTERMS.identifier))
        key = keys[0] if keys else path.stem
        title = _text([o for o in g.objects(scheme, DCTERMS.title) if isinstance(o, Literal)])
        if not title:
            raise OntologyError(f"{path}: scheme {scheme} has no dct:title")
        sources = sorted(str(o) for o in g.objects(scheme, DCTERMS.source))
        licences = sorted(str(o) for o in g.objects(scheme, DCTERMS.license))
        schemes.append(ConceptScheme(
            key=key, uri=str(scheme), title=title,
            description=_text([o for o in g.objects(scheme, DCTERMS.description)
                               if isinstance(o, Literal)]),
            source=" ; ".join(sources) or None,
            licence=" ; ".join(licences) or None,
        ))
        members = sorted(c for c in g.subjects(SKOS.inScheme, scheme) if isinstance(c, URIRef))
        for c in members:
            pref = [o for o in g.objects(c, SKOS.prefLabel) if isinstance(o, Literal)]
            if not pref:
                raise OntologyError(f"{path}: concept {c} has no skos:prefLabel")
            labels: dict[str, str] = {}
            for lit in sorted(pref, key=lambda v: (v.language or "", str(v))):
                labels.setdefault(lit.language or "", str(lit))
            alt = sorted({str(o) for o in g.objects(c, SKOS.altLabel)})
            notations = sorted(str(o) for o in g.objects(c, SKOS.notation))
            props: dict[str, Any] = {}
            for p, o in sorted(g.predicate_objects(c)):
                if str(p).startswith(MIS_DEF):
                    name = str(p)[len(MIS_DEF):]
                    value = _python(o)  # type: ignore[arg-type]
                    if name in props:  # several values: a sorted list
                        prev = props[name]
                        props[name] = sorted([*prev, value] if isinstance(prev, list)
                                             else [prev, value], key=str)
                    else:
                        props[name] = value
            matches = sorted(str(o) for o in g.objects(c, SKOS.exactMatch))
            if matches:
                props["exactMatch"] = matches
            source = _text([o for o in g.objects(c, DCTERMS.source) if isinstance(o, Literal)])
            if source:
                props["source"] = source
            concepts.append(Concept(
                uri=str(c),
                scheme_key=key,
                pref_label=_text(pref) or "",
                labels=labels,
                alt_labels=alt,
                notation=notations[0] if notations else None,
                definition=_text([o for o in g.objects(c, SKOS.definition)
                                  if isinstance(o, Literal)]),
                broader=sorted(str(o) for o in g.objects(c, SKOS.broader)),
                properties=props,
            ))
    return schemes, concepts


def read_ontology(path: Path | str | None = None) -> tuple[list[ConceptScheme], list[Concept]]:
    """Every concept scheme and concept of the ``*.ttl`` files in ``path``.

    ``path`` defaults to :func:`ontology_dir`. Files without a ``skos:ConceptScheme`` (the
    ``mis-def.ttl`` property definitions) contribute nothing. Schemes are ordered by key,
    concepts by scheme key then URI.
    """
    directory = Path(path) if path is not None else ontology_dir()
    files = sorted(directory.glob("*.ttl"))
    if not files:
        raise OntologyError(f"{directory}: no *.ttl files")
    schemes: list[ConceptScheme] = []
    concepts: list[Concept] = []
    for f in files:
        file_schemes, file_concepts = _read_file(f)
        schemes += file_schemes
        concepts += file_concepts
    keys: dict[str, str] = {}
    for s in schemes:
        if s.key in keys:
            raise OntologyError(
                f"{directory}: scheme key {s.key!r} used by {keys[s.key]} and {s.uri}")
        keys[s.key] = s.uri
    seen: set[str] = set()
    for c in concepts:
        if c.uri in seen:
            raise OntologyError(f"{directory}: concept {c.uri} is in more than one scheme")
        seen.add(c.uri)
    schemes.sort(key=lambda s: s.key)
    concepts.sort(key=lambda c: (c.scheme_key, c.uri))
    return schemes, concepts
