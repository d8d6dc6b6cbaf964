"""The one registry of SQLAlchemy engines: one pooled engine per database and use.

An engine owns a connection pool; making one per call would open a connection per call,
and two registries (the catalogue's and the API's, as there were) hold two pools for one
database without knowing of each other, so that neither can close everything. Every
engine of MIS comes from :func:`engine` and :func:`dispose_engines` closes them all.

The uses (:class:`Use`) differ in how their sessions are set up:

- ``CATALOGUE``: commands and services (registration, migrations, pages): SQLAlchemy's
  default pool, a ping before each checkout;
- ``API``: the feature server's writes and metadata reads: a pool of
  ``settings().pool_size`` (+ ``pool_overflow``) connections per process, statements
  cancelled after ``statement_timeout_ms``, no JIT (on a page query PostgreSQL's JIT
  compiles for longer than the query runs);
- ``READ`` and ``READ_FILTERED``: the feature server's pages and items, see
  :func:`read_engine`.

Pool sizes and the statement timeout are read from :func:`mis.settings.settings` when a
database's engine is first made, and kept for as long as it lives.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from mis.catalogue.postgres import follow_embedded
from mis.settings import settings

__all__ = ["Use", "dispose_engines", "engine", "read", "read_engine"]

#: ``application_name`` of the feature server's sessions (seen in ``pg_stat_activity``).
API_APPLICATION = "mis-api"

T = TypeVar("T")


class Use(enum.Enum):
    """What an engine's connections are for (each use has its own pool per database)."""

    CATALOGUE = "catalogue"
    API = "api"
    READ = "read"
    READ_FILTERED = "read-filtered"


_ENGINES: dict[tuple[str, Use], Engine] = {}
_LOCK = threading.Lock()


def _session_options(use: Use) -> str:
    """The PostgreSQL session settings (``-c`` options) of an API use's connections."""
    options = f"-c statement_timeout={settings().statement_timeout_ms} -c jit=off"
    if use is Use.API:
        return options
    plans = "force_custom_plan" if use is Use.READ_FILTERED else "force_generic_plan"
    return f"{options} -c max_parallel_workers_per_gather=0 -c plan_cache_mode={plans}"


def _create(url: str, use: Use) -> Engine:
    if use is Use.CATALOGUE:
        return create_engine(url, pool_pre_ping=True, future=True)
    config = settings()
    pool: dict[str, Any] = {"pool_size": config.pool_size, "max_overflow": config.pool_overflow}
    connect_args: dict[str, Any] = {"options": _session_options(use), "application_name": API_APPLICATION}
    if use is Use.API:
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **pool)
    if use is Use.READ:
        connect_args["prepare_threshold"] = 0  # prepared on first use: planned once per connection
    return create_engine(url, pool_pre_ping=False, isolation_level="AUTOCOMMIT", connect_args=connect_args,
                         **pool)


def engine(url: str, use: Use = Use.CATALOGUE) -> Engine:
    """The pooled engine of ``use`` for database ``url`` (made on first use)."""
    with _LOCK:
        found = _ENGINES.get((url, use))
        if found is None:
            found = _ENGINES[(url, use)] = follow_embedded(_create(url, use))
        return found


def read_engine(url: str, *, filtered: bool = False) -> Engine:
    """The engines of the feature server's reads (pages and items): their own pools, in
    autocommit (no BEGIN and ROLLBACK round trips around a page's one SELECT), no ping
    before each checkout (:func:`read` retries once on a connection the server dropped),
    and no parallel workers (starting them costs more than a page query gains: the planner
    would otherwise gather a bbox page from two workers on a two-core machine).

    Plans: an unfiltered page (``id > cursor ORDER BY id``, or run by run), an item by id
    or an offset page has one best plan whatever its values, and planning it over the
    views' joins and a table's partitions costs as much as running it (5 ms of a 10 ms
    page over 50 run partitions); so these statements are prepared on first use and
    planned once per connection (``plan_cache_mode=force_generic_plan``). A filtered page's
    best plan depends on its values (a small bbox or a whole deposit, a rare class or a
    common one): ``filtered=True`` gives the pool whose sessions plan every execution for
    its values (``force_custom_plan``; PostgreSQL's own choice may settle on a generic plan
    that reads the whole table in id order for a small bbox)."""
    return engine(url, Use.READ_FILTERED if filtered else Use.READ)


def read(source: Engine, run: Callable[[Connection], T]) -> T:
    """``run(connection)`` on a pooled read connection; once more on a fresh connection
    if the server had dropped the pooled one (restart, idle timeout)."""
    for attempt in (1, 2):
        try:
            with source.connect() as conn:
                return run(conn)
        except DBAPIError as exc:
            if attempt == 1 and exc.connection_invalidated:
                source.pool.dispose()  # every pooled connection predates the drop
                continue
            raise
    raise AssertionError("unreachable")  # the second attempt returns or raises


def dispose_engines() -> None:
    """Close every pooled connection of every engine and forget the engines (server
    shutdown, tests that drop a database)."""
    with _LOCK:
        for made in _ENGINES.values():
            made.dispose()
        _ENGINES.clear()
