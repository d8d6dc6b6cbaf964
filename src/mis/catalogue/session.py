"""Engines and transactions: every write in MIS is one ``with transaction():`` block."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mis.catalogue import engines
from mis.catalogue.locate import database_url


def get_engine(url: str | None = None) -> Engine:
    """The pooled catalogue engine for ``url`` (default: :func:`mis.catalogue.locate.database_url`),
    from the one registry (:mod:`mis.catalogue.engines`)."""
    return engines.engine(url or database_url())


@contextmanager
def transaction(url: str | None = None) -> Iterator[Session]:
    """A session whose work commits at the end of the block, or rolls back on any error."""
    factory = sessionmaker(get_engine(url), expire_on_commit=False)
    with factory.begin() as session:
        yield session


def psycopg_cursor(session: Session) -> Any:
    """A psycopg cursor on ``session``'s own connection, inside its transaction: the
    registration and the export use psycopg directly for ``COPY`` and array parameters."""
    raw = session.connection().connection.driver_connection
    if raw is None:
        raise RuntimeError("the session's connection is closed")
    return raw.cursor()
