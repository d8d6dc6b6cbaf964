"""Engines and transactions: every write in MIS is one ``with transaction():`` block."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from mis.catalogue.locate import database_url


@lru_cache(maxsize=8)
def get_engine(url: str | None = None) -> Engine:
    """A pooled engine for ``url`` (default: :func:`mis.catalogue.locate.database_url`)."""
    from mis.catalogue.postgres import follow_embedded

    return follow_embedded(create_engine(url or database_url(), pool_pre_ping=True, future=True))


@contextmanager
def transaction(url: str | None = None) -> Iterator[Session]:
    """A session whose work commits at the end of the block, or rolls back on any error."""
    factory = sessionmaker(get_engine(url), expire_on_commit=False)
    with factory.begin() as session:
        yield session
