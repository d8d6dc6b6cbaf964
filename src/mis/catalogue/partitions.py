"""The per-run partitions of ``grain`` and ``roxel``.

Each segmentation run keeps its grains in ``grain_run_<id>`` and its roxels in
``roxel_run_<id>`` (``LIST (run_id)`` partitions; why: :class:`mis.catalogue.models.Roxel`).
There are two ways a run gets them:

- **with the run row** (any INSERT into ``segmentation_run``): a trigger creates both,
  with every index, so plain INSERTs, the ORM and ``COPY`` into ``grain``/``roxel`` work
  as on ordinary tables;
- **bulk** (the run writer, :mod:`mis.ingest.writer`): the transaction says
  ``SET LOCAL mis.run_partitions = 'manual'``, fills bare tables (:func:`create_bare`:
  no index, no trigger) with ``COPY`` and :func:`attach` es them at the end, which makes
  PostgreSQL build each index in one sorted pass and check each foreign key with one
  join instead of per-row work.

Either way a run's partitions go with it (:func:`drop`, or the trigger after a run's
DELETE, which is refused while they hold rows).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["TABLES", "KEY", "RUNS", "partition_name", "is_partition", "create_bare", "attach", "drop", "MANUAL",
           "ESTIMATED_ROWS"]

#: The run-partitioned tables, in the order their partitions are attached (roxels
#: reference grains); drop in reverse.
TABLES = ("grain", "roxel")

#: The partition key of :data:`TABLES`, and the table whose rows it names (one partition
#: of each per row).
KEY = "run_id"
RUNS = "segmentation_run"

#: What a transaction sets to make its run's partitions itself.
MANUAL = "SET LOCAL mis.run_partitions = 'manual'"

_PARTITION = re.compile(r"^(grain|roxel)_run_\d+$")


def partition_name(table: str, run_id: int) -> str:
    """``roxel_run_7``: the partition of ``table`` holding run ``run_id``."""
    if table not in TABLES:
        raise ValueError(f"{table!r} is not partitioned by run")
    return f"{table}_run_{int(run_id)}"


def is_partition(name: str) -> bool:
    """Whether a table name is a run partition (migrations compare parents only)."""
    return bool(_PARTITION.match(name))


def create_bare(cursor: Any, table: str, run_id: int) -> str:
    """An empty table shaped like ``table``, for run ``run_id`` only, without indexes.

    It carries the parent's columns, defaults, NOT NULLs and CHECKs (ATTACH demands
    them), a CHECK on the run id (so ATTACH can skip scanning the table to prove it) and
    an id default drawn from the parent's sequence (ids stay unique across runs).
    """
    name = partition_name(table, run_id)
    cursor.execute(
        f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS, "
        f"CONSTRAINT ck_{name}_run CHECK (run_id = {int(run_id)}))")
    seq = cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,)).fetchone()[0]
    cursor.execute(f"ALTER TABLE {name} ALTER COLUMN id SET DEFAULT nextval('{seq}'::regclass)")
    return name


def attach(cursor: Any, run_id: int) -> None:
    """Attach a run's bare tables: indexes built in bulk, foreign keys checked set-based."""
    cursor.execute(f"ALTER TABLE grain ATTACH PARTITION {partition_name('grain', run_id)} "
                   f"FOR VALUES IN ({int(run_id)})")
    cursor.execute("SELECT mis_run_grain_fk(%s)", (int(run_id),))
    cursor.execute(f"ALTER TABLE roxel ATTACH PARTITION {partition_name('roxel', run_id)} "
                   f"FOR VALUES IN ({int(run_id)})")


def drop(execute: Callable[[str], object], run_ids: list[int]) -> None:
    """Drop the partitions of runs (their grains and roxels): instant, whatever their size.

    Takes an ACCESS EXCLUSIVE lock on ``grain`` and ``roxel`` until the transaction ends,
    so callers do it last.
    """
    names = [partition_name(t, r) for r in run_ids for t in reversed(TABLES)]
    if names:
        execute(f"DROP TABLE IF EXISTS {', '.join(names)}")


#: Estimated rows of a table (``:t``, schema-qualified) from the planner's statistics: a
#: partitioned table's own ``reltuples`` is only set by a manual ANALYZE (autovacuum never
#: analyzes it), so it is the sum over its partitions.
ESTIMATED_ROWS = """
SELECT CASE WHEN p.relkind = 'p'
            THEN (SELECT coalesce(sum(greatest(c.reltuples, 0)), 0) FROM pg_inherits i
                  JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = p.oid)
            ELSE greatest(p.reltuples, 0) END
FROM pg_class p WHERE p.oid = to_regclass(:t)
"""
