"""Catalogue queries several rooms ask: a record with the drill core and deposit it belongs to.

Natural keys of the catalogue nest (a plug is named within its drill core, a drill core
within its deposit), so the API's writes, the IIIF routes, the pages, the registration and
the export all read a record together with its drill core and deposit. The joins are
written here once: as typed functions (:func:`hole_by_id`, :func:`holes_named`,
:func:`plug_ref`, :func:`station_ref`) returning small frozen dataclasses, and as the
``FROM`` clauses they use (:data:`HOLE_WITH_DEPOSIT`, :data:`PLUG_WITH_HOLE`,
:data:`STATION_WITH_HOLE`; aliases ``d``, ``h``, ``p``, ``s``) for statements that select
more columns.

Style: the catalogue package's queries are SQL text (:func:`sqlalchemy.text`, named
parameters) run on a SQLAlchemy :class:`~sqlalchemy.engine.Connection`. The statements
are fixed joins and PostGIS calls that read as the SQL in the documentation, which Core's
expression builder would only re-spell; and the ``FROM`` clauses, being text, are shared
with the registration's psycopg cursors (its transaction is psycopg's own), which run the
same joins with ``%s`` parameters. The ORM (:mod:`mis.catalogue.models`) stays for whole
records (deletes, sessions); the feature provider builds Core statements because its
statements are composed per request.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

__all__ = ["DEPOSIT_OF_HOLE", "HOLE_WITH_DEPOSIT", "PLUG_WITH_HOLE", "STATION_WITH_HOLE", "HoleRef", "PlugRef",
           "StationRef", "hole_by_id", "holes_named", "plug_ref", "station_ref"]

#: The deposit of drill core ``h`` (as ``d``).
DEPOSIT_OF_HOLE = "JOIN deposit d ON d.id = h.deposit_id"
#: Drill cores ``h`` with their deposit ``d``.
HOLE_WITH_DEPOSIT = f"drillcore h {DEPOSIT_OF_HOLE}"
#: Plugs ``p`` with their drill core ``h`` and deposit ``d``.
PLUG_WITH_HOLE = f"plug p JOIN drillcore h ON h.id = p.drillcore_id {DEPOSIT_OF_HOLE}"
#: Survey stations ``s`` with their drill core ``h`` and deposit ``d``.
STATION_WITH_HOLE = f"survey_station s JOIN drillcore h ON h.id = s.drillcore_id {DEPOSIT_OF_HOLE}"

_HOLE = f"SELECT h.id, h.name, h.deposit_id, d.name, h.dip, h.azimuth, h.length_m FROM {HOLE_WITH_DEPOSIT} "


@dataclass(frozen=True)
class HoleRef:
    """A drill core, its deposit, its collar orientation and length."""

    id: int
    name: str
    deposit_id: int
    deposit: str
    dip: float | None
    azimuth: float | None
    length_m: float | None


@dataclass(frozen=True)
class PlugRef:
    """A plug (sample) and the drill core and deposit that name it."""

    id: int
    name: str
    drillcore_id: int
    drillcore: str
    deposit: str


@dataclass(frozen=True)
class StationRef:
    """A survey station and the drill core and deposit it belongs to."""

    id: int
    depth_m: float
    drillcore_id: int
    drillcore: str
    deposit: str


def hole_by_id(conn: Connection, hole_id: int) -> HoleRef | None:
    """Drill core ``hole_id`` with its deposit (None if there is none)."""
    row = conn.execute(text(_HOLE + "WHERE h.id = :i"), {"i": hole_id}).first()
    return HoleRef(*row) if row is not None else None


def holes_named(conn: Connection, name: str, deposit: str | None = None) -> list[HoleRef]:
    """Drill cores called ``name`` (in ``deposit``, where given: then at most one)."""
    if deposit is None:
        rows = conn.execute(text(_HOLE + "WHERE h.name = :n ORDER BY h.id"), {"n": name}).all()
    else:
        rows = conn.execute(text(_HOLE + "WHERE h.name = :n AND d.name = :d"), {"n": name, "d": deposit}).all()
    return [HoleRef(*row) for row in rows]


def plug_ref(conn: Connection, plug_id: int) -> PlugRef | None:
    """Plug ``plug_id`` with its drill core and deposit (None if there is none)."""
    row = conn.execute(text(f"SELECT p.id, p.name, h.id, h.name, d.name FROM {PLUG_WITH_HOLE} WHERE p.id = :i"),
                       {"i": plug_id}).first()
    return PlugRef(*row) if row is not None else None


def station_ref(conn: Connection, station_id: int) -> StationRef | None:
    """Survey station ``station_id`` with its drill core and deposit (None if there is none)."""
    row = conn.execute(text(f"SELECT s.id, s.depth_m, h.id, h.name, d.name FROM {STATION_WITH_HOLE} "
                            "WHERE s.id = :i"), {"i": station_id}).first()
    return StationRef(*row) if row is not None else None
