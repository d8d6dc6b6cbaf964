"""The SQL of the feature provider's pages: GeoJSON written by PostgreSQL, keyset paging.

- **GeoJSON built in PostgreSQL**: each feature is one concatenation of JSON fragments
  with ``ST_AsGeoJSON`` (and ``ST_Transform`` for ``crs=``), no ORM objects and no shapely
  round trip (:meth:`FeatureSQL.feature_sql`);
- **keyset pagination**: pages are read ``WHERE id > :cursor ORDER BY id LIMIT n + 1`` and
  the next link carries ``cursor=<last id>`` (the request's other parameters kept), so
  page 5,000 costs what page 1 costs (:meth:`FeatureSQL.keyset_page`,
  :meth:`FeatureSQL.next_links`);
- **run by run**: a collection whose table is partitioned by run is ordered by
  ``(run_id, id)`` and its pages are read one run's partition after the other, a few runs
  per statement (:meth:`FeatureSQL.read_by_run`); its cursor is ``<run_id>_<id>``.
"""

from __future__ import annotations

import json
import math
import urllib.parse
from dataclasses import dataclass
from typing import Any

import pyproj
from sqlalchemy import BigInteger, Integer, bindparam, case, func, literal_column, select, text, true, tuple_
from sqlalchemy import types as T
from sqlalchemy.dialects.postgresql import ARRAY, JSON, JSONB, REAL
from sqlalchemy.engine import Connection
from sqlalchemy.sql import column as sql_column
from sqlalchemy.sql import table as sql_table

from mis.api.errors import MISInvalidQuery
from mis.api.meta import JSON_TEXT_COLUMNS, SERVER_PATH_COLUMNS, ViewMeta
from mis.api.options import CollectionOptions
from mis.catalogue import partitions
from mis.catalogue.ids import bigint

__all__ = ["CURSOR_PARAM", "FIRST_RUNS", "GEOJSON_DIGITS", "FeatureSQL", "target_crs"]

#: Runs in the first statement of a page of a run-partitioned collection (:meth:`FeatureSQL.read_by_run`).
FIRST_RUNS = 4
#: The next runs of a run-partitioned collection, in key order.
RUNS_FROM = text(f"SELECT id FROM public.{partitions.RUNS} WHERE id >= :start ORDER BY id LIMIT :n")
#: Decimal digits of coordinates in GeoJSON (9: < 0.1 mm in degrees, µm in metres).
GEOJSON_DIGITS = 9
#: The query parameter of a keyset page's position (written in next links).
CURSOR_PARAM = "cursor"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _concat(pieces: list[str]) -> str:
    """``concat(...)`` of SQL text expressions (nested: a function takes at most 100)."""
    while len(pieces) > 90:
        pieces = [f"concat({', '.join(pieces[i:i + 90])})" for i in range(0, len(pieces), 90)]
    return f"concat({', '.join(pieces)})"


def _real_json_sql(column: str, kind: Any) -> str:
    """The JSON text of a real column's value, always with a fraction or an exponent.

    PostgreSQL writes a whole real as an integer (``29424``, ``10``), and clients that type
    a field from the values they see (QGIS reads the first page; GDAL a document) then make
    it an integer field and drop every later value that is not one (areas, azimuths such as
    270.6). So a whole value gets ``.0``: below 10^6 (``real``) or 10^15 (``double
    precision``) PostgreSQL writes it as plain digits, above that with an exponent, which
    already reads as real; ``numeric`` has no exponent, so its whole values (scale 0) get
    ``.0`` too. Non-finite values stay ``to_json``'s strings."""
    if isinstance(kind, T.Float):
        digits = 1e6 if isinstance(kind, REAL) else 1e15
        return (f"CASE WHEN abs({column}) < {digits:.0f} AND {column} = trunc({column}) "
                f"THEN {column}::text || '.0' ELSE to_json({column})::text END")
    return f"CASE WHEN scale({column}) = 0 THEN {column}::text || '.0' ELSE to_json({column})::text END"


def target_crs(spec: Any) -> tuple[int, bool]:
    """EPSG code of a CrsTransformSpec's target, and whether its first axis is latitude."""
    crs = pyproj.CRS.from_wkt(spec.target_crs_wkt)
    epsg = crs.to_epsg()
    if epsg is None:
        raise MISInvalidQuery("crs: only CRSs with an EPSG code are supported")
    first = crs.axis_info[0].direction.lower() if crs.axis_info else "east"
    return epsg, first in ("north", "south")


@dataclass
class FeatureSQL:
    """The statements of one collection's features (its view, keys and options)."""

    meta: ViewMeta
    id_field: str
    geom: str | None
    options: CollectionOptions

    def alias(self, name: str = "t") -> Any:
        """The view under an alias, made once per view: building an alias's column
        collection costs more than compiling a cached statement."""
        alias = self.meta.aliases.get(name)
        if alias is None:
            alias = self.meta.aliases[name] = self.meta.table.alias(name)
            alias.c  # noqa: B018 - populate the columns now, not in a request's thread
        return alias

    # ------------------------------------------------------------------ GeoJSON
    def geometry_sql(self, crs_transform_spec: Any, alias: str = "t") -> str:
        """The GeoJSON text of the feature's geometry ('null' for none)."""
        if not self.geom:
            return "'null'"
        geom = f"{alias}.{_quote(self.geom)}"
        if crs_transform_spec is not None:
            epsg, flip = target_crs(crs_transform_spec)
            geom = f"ST_Transform({geom}, {epsg})"
            if flip:
                geom = f"ST_FlipCoordinates({geom})"
        return f"coalesce(ST_AsGeoJSON({geom}, {GEOJSON_DIGITS}), 'null')"

    def value_sql(self, name: str, alias: str) -> str:
        """The JSON text of one column's value: output functions where they already write
        JSON (integers, booleans, json), the text of :data:`JSON_TEXT_COLUMNS`, ``to_json``
        (quoting, escaping) for the rest."""
        column = f"{alias}.{_quote(name)}"
        kind = self.meta.table.c[name].type
        if isinstance(kind, (T.Integer, T.Boolean, JSON, JSONB)):
            return f"coalesce({column}::text, 'null')"
        if name in JSON_TEXT_COLUMNS and isinstance(kind, T.String):
            return f"coalesce({column}, 'null')"
        if name in SERVER_PATH_COLUMNS and isinstance(kind, T.String):
            # the views write these paths of digits, commas and slashes only: quoted as they
            # are (to_json's escaping scan costs a fifth of a roxel page)
            prefix = _sql_literal(json.dumps(self.options.base_url)[:-1])
            return f"coalesce({prefix} || {column} || '\"', 'null')"
        if isinstance(kind, (T.Float, T.Numeric)):
            return f"coalesce({_real_json_sql(column, kind)}, 'null')"
        return f"coalesce(to_json({column})::text, 'null')"

    def feature_sql(self, names: list[str], skip_geometry: bool, crs_transform_spec: Any,
                    alias: str = "t") -> str:
        """One SQL expression writing a feature's GeoJSON text.

        Concatenation of JSON fragments (keys quoted here once, values by their output
        functions) rather than ``json_build_object``: PostgreSQL writes no spaces, builds no
        intermediate JSON value, and a JSON column's text (``composition``) goes in as it
        is. Every value is JSON (``to_json`` quotes strings and non-finite numbers)."""
        pieces = [_sql_literal('{"type":"Feature","id":'), self.value_sql(self.id_field, alias),
                  _sql_literal(',"geometry":'),
                  "'null'" if skip_geometry else self.geometry_sql(crs_transform_spec, alias)]
        for k, name in enumerate(names):
            key = ("," if k else "") + json.dumps(name) + ":"
            pieces += [_sql_literal(key if k else ',"properties":{' + key), self.value_sql(name, alias)]
        if not names:
            pieces.append(_sql_literal(',"properties":{'))
        pieces.append(_sql_literal("}"))
        parent, base = self.options.parent, self.options.base_url
        if parent and base and parent.field in self.meta.table.c and self.options.feature_links:
            href = f"{base}/collections/{parent.collection}/items/"
            pieces += [_sql_literal(',"links":[{"rel":"up","type":"application/geo+json","href":'
                                    + json.dumps(href)[:-1]),
                       f"{alias}.{_quote(parent.field)}", _sql_literal('"}]')]
        pieces.append(_sql_literal("}"))
        return _concat(pieces)

    # ------------------------------------------------------------------ order and keys
    def keys(self) -> list[str]:
        """The columns a page is ordered by and its cursor names: ``(run_id, id)`` where
        the table is partitioned by run, else ``id``."""
        return [self.meta.by_run, self.id_field] if self.meta.by_run else [self.id_field]

    def order(self, t: Any, sortby: list[dict]) -> list:
        """ORDER BY clauses of ``sortby`` (400 for an unknown property), then the keys."""
        clauses = []
        for s in sortby or []:
            name = s["property"]
            if name not in t.c or name in (self.geom,):
                raise MISInvalidQuery(f"sortby: unknown property {name!r}")
            col = t.c[name]
            clauses.append(col.asc() if s.get("order", "+") == "+" else col.desc())
        keys = self.keys() if not clauses else [self.id_field]
        return clauses + [t.c[k].asc() for k in keys]

    def cursor(self, value: str) -> list[int]:
        """The key values a ``cursor`` names (as written by :meth:`next_links`)."""
        keys = self.keys()
        parts = value.split("_")
        try:
            if len(parts) != len(keys):
                raise ValueError
            return [bigint(v) for v in parts]
        except ValueError:
            shape = "_".join(f"<{k}>" for k in keys)
            raise MISInvalidQuery(f"cursor must be {shape} (integers), as written in a next link; "
                                  f"got {value!r}") from None

    def after(self, t: Any, cursor: list[int]) -> Any:
        """Rows after the cursor in key order."""
        if len(cursor) == 1:
            return t.c[self.id_field] > cursor[0]
        return tuple_(*(t.c[k] for k in self.keys())) > tuple_(*cursor)

    # ------------------------------------------------------------------ pages
    def keyset_page(self, t: Any, where: list, after: bool, names: list[str], skip_geometry: bool,
                    crs_transform_spec: Any) -> Any:
        """A keyset page's statement: the feature's text, then the page's key values.

        Its values are bound at execution (``page_limit``; ``after_<key>`` of each key
        where ``after``; ``runs``, see below), so that the statement of an unfiltered page
        is built once per view and shape (the provider keeps it: building it costs 2 ms of
        a 10 ms page).

        A collection partitioned by run is read run after run, a batch of runs at a time
        (:meth:`read_by_run`): for each run of the batch (``runs``) in key order, a
        ``LATERAL`` subquery reads that run's matching rows in id order, at most a page of
        them, and the statement stops pulling runs once the page is full. The batch's ids
        are also a condition on the partition key, so that PostgreSQL plans (and, under a
        generic plan, starts) the batch's partitions only, and estimates the subquery's
        rows over a few partitions rather than all of them. Without this, PostgreSQL
        reads every partition's matches and sorts them all by id to keep the first
        thousand (a bbox page over 50 runs: 23 ms of execution instead of 7), and plans
        every partition (5 ms over 50 runs, and growing with their number)."""
        ident = self.id_field
        limit = bindparam("page_limit", type_=Integer)
        if not self.meta.by_run:
            if after:
                where = [*where, t.c[ident] > bindparam(f"after_{ident}", type_=BigInteger)]
            feature_sql = self.feature_sql(names, skip_geometry, crs_transform_spec)
            return (select(literal_column(feature_sql), t.c[ident]).select_from(t).where(*where)
                    .order_by(t.c[ident]).limit(limit))
        runs = sql_table(partitions.RUNS, sql_column("id"), schema="public")
        run = self.meta.by_run
        batch = bindparam("runs", type_=ARRAY(BigInteger))
        inner = select(t).where(t.c[run] == runs.c.id, t.c[run] == func.any(batch), *where)
        if after:  # the cursor's run after its id (an index condition), the later runs whole
            after_run = bindparam(f"after_{run}", type_=BigInteger)
            after_id = bindparam(f"after_{ident}", type_=BigInteger)
            inner = inner.where(t.c[ident] > case((runs.c.id == after_run, after_id), else_=-2 ** 63))
        page = inner.order_by(t.c[ident]).limit(limit).lateral("p")
        feature_sql = self.feature_sql(names, skip_geometry, crs_transform_spec, "p")
        return (select(literal_column(feature_sql), page.c[run], page.c[ident])
                .select_from(runs.join(page, true())).where(runs.c.id == func.any(batch))
                .order_by(runs.c.id, page.c[ident]).limit(limit))

    def offset_page(self, t: Any, conditions: list, cursor: list[int] | None, sortby: list[dict], offset: int,
                    limit: int, names: list[str], skip_geometry: bool, crs_transform_spec: Any) -> Any:
        """An offset (or sorted) page's statement: the page's ids first, then features for
        them alone: PostgreSQL would otherwise compute every skipped feature. The ids go
        back as an array (``id = ANY(...)``), not as a join: on a table partitioned by run,
        a join on id alone would be planned as a hash join over every partition. (With a
        cursor, offset is what pygeoapi's own next links add: rows to skip after it.)"""
        where = list(conditions) + ([self.after(t, cursor)] if cursor is not None else [])
        page = (select(t.c[self.id_field]).select_from(t).where(*where)
                .order_by(*self.order(t, sortby)).offset(offset).limit(limit + 1))
        f = self.alias("f")
        feature_sql = self.feature_sql(names, skip_geometry, crs_transform_spec, "f")
        return (select(literal_column(feature_sql), *(f.c[k] for k in self.keys()))
                .where(f.c[self.id_field] == func.any(func.array(page.scalar_subquery())))
                .order_by(*self.order(f, sortby)))

    def read_by_run(self, conn: Connection, stmt: Any, values: dict, cursor: list[int] | None,
                    limit: int) -> list:
        """A page of a run-partitioned collection: :meth:`keyset_page`'s statement over
        batches of runs, from the cursor's run on, until the page is full.

        The first batch is :data:`FIRST_RUNS` runs (a map's bbox or a plug's filter is
        usually filled by one); each next one is sized from what the runs so far yielded
        (1.5 times the runs the rest of the page would need at that rate), at most four
        times the last, so that a sparse filter gets there in a few statements."""
        start = cursor[0] if cursor else -2 ** 63
        size, rows = FIRST_RUNS, list[Any]()
        while True:
            batch = conn.execute(RUNS_FROM, {"start": start, "n": size}).scalars().all()
            if not batch:
                return rows
            need = limit + 1 - len(rows)
            got = conn.execute(stmt, {**values, "runs": batch, "page_limit": need}).all()
            rows += got
            if len(got) >= need or len(batch) < size:
                return rows
            start = batch[-1] + 1
            rate = len(got) / len(batch)
            wanted = math.ceil(1.5 * (need - len(got)) / rate) if rate else 4 * size
            size = max(FIRST_RUNS, min(4 * size, wanted))

    def next_links(self, params: dict, rows: list, keyset: bool, offset: int, limit: int) -> list[dict]:
        """The ``next`` link of a page that has more: its cursor (keyset pages) or offset,
        the request's other parameters kept."""
        href = f"{self.options.base_url}/collections/{self.options.collection}/items"
        keep = {k: v for k, v in params.items() if k not in ("offset", CURSOR_PARAM)}
        if keyset:
            keep[CURSOR_PARAM] = "_".join(str(v) for v in rows[-1][1:])
        else:
            keep["offset"] = str((offset or 0) + limit)
        keep.setdefault("limit", str(limit))
        return [{"type": "application/geo+json", "rel": "next", "title": "Items (next)",
                 "href": f"{href}?{urllib.parse.urlencode(keep)}"}]
