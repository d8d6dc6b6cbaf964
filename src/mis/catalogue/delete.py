"""Deleting from the hierarchy: refused while children exist, unless a cascade is asked for.

The database refuses silent cascades (``ON DELETE RESTRICT``); this module is the one
place that deletes a subtree, bottom-up, inside the caller's transaction, and reports
what went.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Select, func, select
from sqlalchemy import delete as sql_delete
from sqlalchemy.orm import Session

from mis.catalogue import partitions
from mis.catalogue.errors import CatalogueError
from mis.catalogue.models import (
    Base,
    Deposit,
    DrillCore,
    Grain,
    Image,
    Plug,
    Rock,
    Roxel,
    SegmentationRun,
)

#: Children of each hierarchy level, in the order they must go (roxels before grains).
CHILDREN: dict[type[Base], list[tuple[type[Base], str]]] = {
    Deposit: [(DrillCore, "deposit_id")],
    DrillCore: [(Plug, "drillcore_id")],
    Plug: [(Rock, "plug_id"), (Image, "plug_id")],
    Image: [(SegmentationRun, "image_id")],
    SegmentationRun: [(Rock, "run_id"), (Roxel, "run_id"), (Grain, "run_id")],  # run partitions
}


@dataclass
class DeleteReport:
    """How many rows of each table a delete removed."""

    counts: dict[str, int] = field(default_factory=dict)
    #: Store URIs of the deleted images: the caller removes them once the delete is
    #: committed (:func:`mis.imagery.catalogue.remove_stores`), never before.
    stores: list[str] = field(default_factory=list)

    def add(self, table: str, n: int) -> None:
        if n:
            self.counts[table] = self.counts.get(table, 0) + n


def children_counts(session: Session, model: type[Base], ident: int) -> dict[str, int]:
    """Direct children of one record, by table, for the refusal message."""
    counts = {}
    for child, fk in CHILDREN.get(model, []):
        n = session.scalar(select(func.count()).where(getattr(child, fk) == ident))
        if n:
            counts[child.__tablename__] = n
    return counts


def delete(session: Session, model: type[Base], ident: int, *, cascade: bool = False) -> DeleteReport:
    """Delete one record; with children present this needs ``cascade=True``."""
    if session.get(model, ident) is None:
        raise CatalogueError(f"{model.__tablename__} {ident} does not exist")
    if not cascade:
        counts = children_counts(session, model, ident)
        if counts:
            listing = ", ".join(f"{n} {table}" for table, n in counts.items())
            raise CatalogueError(
                f"{model.__tablename__} {ident} still has {listing}; nothing was deleted. "
                "Delete those first, or ask for a cascade explicitly (--cascade)."
            )
    report = DeleteReport()
    _delete_subtree(session, model, select(_id(model)).where(_id(model) == ident), report)
    session.expire_all()
    return report


def _delete_subtree(session: Session, model: type[Base], ids: Select, report: DeleteReport) -> None:
    runs = None
    if model is SegmentationRun:  # grains and roxels: their runs' partitions go, rows counted
        runs = list(session.scalars(ids))
        for part in (Roxel, Grain):
            n = session.scalar(select(func.count()).select_from(part).where(part.run_id.in_(runs)))
            report.add(part.__tablename__, n or 0)
    for child, fk in CHILDREN.get(model, []):
        if child in (Roxel, Grain):
            continue
        child_ids = select(_id(child)).where(getattr(child, fk).in_(ids))
        _delete_subtree(session, child, child_ids, report)
    if runs is not None:  # ACCESS EXCLUSIVE on the partitions: last, just before the runs go
        partitions.drop(session.connection().exec_driver_sql, runs)
    if model is Image:
        report.stores += list(session.scalars(select(Image.store_uri).where(Image.id.in_(ids))))
    # a DML statement's result is a CursorResult (rowcount); Session.execute is typed for queries
    result = cast(CursorResult[Any], session.execute(sql_delete(model).where(_id(model).in_(ids))))
    report.add(model.__tablename__, result.rowcount or 0)


def _id(model: type[Base]) -> ColumnElement[int]:
    """The ``id`` key every table of the hierarchy has (``Base`` itself declares none)."""
    return model.__table__.c.id
