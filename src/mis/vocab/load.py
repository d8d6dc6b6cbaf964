"""Load the SKOS ontology into the ``concept`` tables: idempotent, FK-safe, all or nothing.

Re-loading updates concepts in place (``INSERT ... ON CONFLICT DO UPDATE``), so their
integer ids and every foreign key pointing at them survive. A concept that disappeared
from its scheme's file is deleted only if nothing in the catalogue uses it; otherwise the
whole load is refused with a list of where it is used.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import Progress
from sqlalchemy import Boolean, Column, delete, func, literal_column, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from mis.catalogue import models as m
from mis.catalogue.session import transaction
from mis.vocab.skos import read_ontology


class VocabularyError(ValueError):
    """The vocabulary could not be loaded as asked; nothing was changed."""


@dataclass
class LoadReport:
    """Per scheme: concepts now loaded, and how many were added, updated, removed."""

    concepts: dict[str, int] = field(default_factory=dict)
    added: int = 0
    updated: int = 0
    removed: int = 0

    def summary(self) -> str:
        schemes = ", ".join(f"{k} {n}" for k, n in sorted(self.concepts.items()))
        return (f"{sum(self.concepts.values())} concepts ({schemes}); "
                f"{self.added} added, {self.updated} changed, {self.removed} removed")


def load_vocabularies(
    path: Path | None = None, *, url: str | None = None, schemes: list[str] | None = None,
    progress: bool = True,
) -> LoadReport:
    """Load every scheme of the ontology directory (or only ``schemes``) in one transaction."""
    all_schemes, all_concepts = read_ontology(path) if path else read_ontology()
    if schemes:
        unknown = sorted(set(schemes) - {s.key for s in all_schemes})
        if unknown:
            raise VocabularyError(
                f"unknown scheme(s) {', '.join(unknown)}; known: {', '.join(s.key for s in all_schemes)}"
            )
        all_schemes = [s for s in all_schemes if s.key in schemes]
        all_concepts = [c for c in all_concepts if c.scheme_key in schemes]
    with transaction(url) as session:
        return _load(session, all_schemes, all_concepts, progress)


def _load(session: Session, schemes, concepts, progress: bool) -> LoadReport:
    report = LoadReport()
    keys = [s.key for s in schemes]
    session.execute(
        insert(m.ConceptScheme)
        .values([dict(key=s.key, uri=s.uri, title=s.title, description=s.description,
                      source=s.source, licence=s.licence) for s in schemes])
        .on_conflict_do_update(index_elements=["key"], set_=_excluded(m.ConceptScheme, "key"))
    ) if schemes else None

    rows = [
        dict(uri=c.uri, scheme=c.scheme_key, pref_label=c.pref_label, labels=c.labels,
             alt_labels=list(c.alt_labels), notation=c.notation, definition=c.definition,
             properties=c.properties)
        for c in concepts
    ]
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("loading concepts", total=len(rows))
        for start in range(0, len(rows), 1000):
            batch = insert(m.Concept).values(rows[start:start + 1000])
            col = m.Concept.__table__.c
            stmt = batch.on_conflict_do_update(
                index_elements=["uri"],
                set_=_excluded(m.Concept, "uri", "id"),
                # touch only rows whose content changed, so that a reload reports 0 changes
                where=tuple_(col.scheme, col.pref_label, col.labels, col.alt_labels, col.notation,
                             col.definition, col.properties).is_distinct_from(
                    tuple_(batch.excluded.scheme, batch.excluded.pref_label, batch.excluded.labels,
                           batch.excluded.alt_labels, batch.excluded.notation,
                           batch.excluded.definition, batch.excluded.properties)),
            ).returning(literal_column("xmax = 0", Boolean))  # true when inserted, false when updated
            for (inserted,) in session.execute(stmt):
                if inserted:
                    report.added += 1
                else:
                    report.updated += 1
            bar.advance(task, len(rows[start:start + 1000]))
    new_uris = {c.uri for c in concepts}
    report.removed = _remove_vanished(session, keys, new_uris)
    _replace_broader(session, concepts)
    for c in concepts:
        report.concepts[c.scheme_key] = report.concepts.get(c.scheme_key, 0) + 1
    return report


def _excluded(model: type[m.Base], *skip: str) -> dict[str, Column]:
    table = model.__table__
    stmt = insert(model)
    return {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in skip}


def _replace_broader(session: Session, concepts) -> None:
    wanted = {(c.uri, b) for c in concepts for b in c.broader}
    uris = [c.uri for c in concepts]
    current = set(
        session.execute(
            select(m.ConceptBroader.concept_uri, m.ConceptBroader.broader_uri)
            .where(m.ConceptBroader.concept_uri.in_(uris))
        )
    )
    stale = current - wanted
    if stale:
        session.execute(delete(m.ConceptBroader).where(
            tuple_(m.ConceptBroader.concept_uri, m.ConceptBroader.broader_uri).in_(list(stale))))
    fresh = wanted - current
    existing = set(session.scalars(select(m.Concept.uri).where(
        m.Concept.uri.in_({b for _, b in fresh}))))
    dangling = sorted(f"{n} -> {b}" for n, b in fresh if b not in existing)
    if dangling:
        raise VocabularyError("skos:broader points at concepts that are not loaded: " + "; ".join(dangling[:10]))
    if fresh:
        session.execute(insert(m.ConceptBroader).values(
            [dict(concept_uri=n, broader_uri=b) for n, b in sorted(fresh)]).on_conflict_do_nothing())


def concept_usage(session: Session, uris: list[str]) -> dict[str, list[str]]:
    """Where each of ``uris`` is used: ``{uri: ["plug.lithology_uri (3 rows)", ...]}``."""
    ids = dict(session.execute(select(m.Concept.id, m.Concept.uri).where(m.Concept.uri.in_(uris))).all())
    usage: dict[str, list[str]] = defaultdict(list)
    for table in m.Base.metadata.sorted_tables:
        if table.name in ("concept", "concept_broader"):
            continue
        for fk in table.foreign_keys:
            if fk.column.table.name != "concept":
                continue
            column = fk.parent
            keys = list(ids) if fk.column.name == "id" else uris
            rows = session.execute(
                select(column, func.count()).where(column.in_(keys)).group_by(column)
            )
            for key, n in rows:
                uri = ids[key] if fk.column.name == "id" else key
                usage[uri].append(f"{table.name}.{column.name} ({n} row{'s' if n != 1 else ''})")
    return dict(usage)


def _remove_vanished(session: Session, scheme_keys: list[str], keep: set[str]) -> int:
    vanished = [
        uri for uri in session.scalars(select(m.Concept.uri).where(m.Concept.scheme.in_(scheme_keys)))
        if uri not in keep
    ]
    if not vanished:
        return 0
    used = concept_usage(session, vanished)
    if used:
        lines = [f"  {uri}: used by {', '.join(places)}" for uri, places in sorted(used.items())]
        raise VocabularyError(
            f"{len(used)} concept(s) removed from the ontology are still in use; nothing was "
            "loaded. Re-classify those records first:\n" + "\n".join(lines)
        )
    session.execute(delete(m.Concept).where(m.Concept.uri.in_(vanished)))
    return len(vanished)
