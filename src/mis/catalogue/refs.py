"""Resolving what people type for a drill core or a plug: an id (``12``), a name
(``HOLE``, ``HOLE/PLUG``) or a path with the deposit (``DEPOSIT/HOLE``,
``DEPOSIT/HOLE/PLUG``), names as registered.

One resolver each, so that ``mis report``, ``mis log``, ``mis image add`` and the web
pages read a reference the same way, and one error type (:class:`RefNotFound`) whose
message names what was not found.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from mis.catalogue import models as m
from mis.catalogue.errors import CatalogueError

__all__ = ["RefNotFound", "find_drillcore", "find_plug"]


class RefNotFound(CatalogueError):
    """A drill core or plug reference that names nothing in the catalogue, or more than
    one thing (the message says which, and how to be precise)."""


def find_drillcore(session: Session, ref: str) -> m.DrillCore:
    """A drill core by id, ``HOLE`` or ``DEPOSIT/HOLE``."""
    if ref.isdigit():
        holes = [h] if (h := session.get(m.DrillCore, int(ref))) is not None else []
    else:
        parts = ref.split("/")
        query = select(m.DrillCore)
        if len(parts) == 2:
            query = (query.join(m.Deposit, m.DrillCore.deposit_id == m.Deposit.id)
                     .where(m.Deposit.name == parts[0], m.DrillCore.name == parts[1]))
        else:
            query = query.where(m.DrillCore.name == ref)
        holes = list(session.scalars(query).all())
    if len(holes) != 1:
        raise RefNotFound(f"drill core {ref!r}: " + ("no such hole" if not holes else
                                                     "ambiguous; use DEPOSIT/HOLE or the id"))
    return holes[0]


def find_plug(session: Session, ref: str) -> m.Plug:
    """A plug by id, ``HOLE/PLUG`` or ``DEPOSIT/HOLE/PLUG``."""
    if ref.isdigit():
        plug = session.get(m.Plug, int(ref))
        if plug is None:
            raise RefNotFound(f"plug {ref}: no plug has this id")
        return plug
    parts = ref.split("/")
    if len(parts) not in (2, 3):
        raise RefNotFound(f"plug {ref!r}: give an id, HOLE/PLUG or DEPOSIT/HOLE/PLUG")
    query = (select(m.Plug).join(m.DrillCore, m.Plug.drillcore_id == m.DrillCore.id)
             .where(m.DrillCore.name == parts[-2], m.Plug.name == parts[-1]))
    if len(parts) == 3:
        query = query.join(m.Deposit, m.DrillCore.deposit_id == m.Deposit.id).where(m.Deposit.name == parts[0])
    plugs = session.scalars(query).all()
    if not plugs:
        raise RefNotFound(f"plug {ref!r}: no such plug")
    if len(plugs) > 1:
        raise RefNotFound(f"plug {ref!r}: ambiguous (holes of that name in several deposits); use DEPOSIT/HOLE/PLUG")
    return plugs[0]
