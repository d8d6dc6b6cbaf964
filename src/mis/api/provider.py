"""MIS's pygeoapi feature provider: PostGIS views served fast on tables of millions of rows.

``MISProvider`` is a :class:`pygeoapi.provider.base.BaseProvider`, as pygeoapi's own
providers are, with the interface pygeoapi 0.21 calls (``fields``/``get_fields``,
``query``, ``get``, ``create``, ``update``, ``delete``); pygeoapi's PostgreSQL provider
reflects the table through psycopg2 on every request and is slow on big tables, where
this one answers differently:

- **no full count(*) per page**: ``numberMatched`` is counted only where the table is
  small (fewer than ``settings().exact_count_below`` rows, estimated from the planner's
  statistics of the ``mis.count_table`` named in the configuration, summed over its run
  partitions) or when the client asks
  (``resulttype=hits``); otherwise it is omitted, as OGC API - Features allows;
- **keyset pagination**: pages are read ``WHERE id > :cursor ORDER BY id LIMIT n + 1``
  and the provider writes its own ``next`` link carrying ``cursor=<last id>`` (the
  request's other parameters kept), so page 5,000 costs what page 1 costs. ``offset``
  still works (it is what the first link a client builds may carry), and so does
  ``sortby`` (with offset paging);
- **run by run**: a collection whose table is partitioned by run (grains, roxels; the
  configuration says ``partitioned_by: run_id``) is ordered by ``(run_id, id)`` and its
  pages are read one run's partition after the other (a ``LATERAL`` subquery per run, a
  few runs per statement), so that a page stops reading as soon as it is full and
  PostgreSQL plans only the partitions it reads: a bbox page over 50 runs reads the ten
  or so runs that fill it instead of every run's matches followed by a sort. Its cursor
  is ``<run_id>_<id>``;
- **GeoJSON built in PostgreSQL**: each feature is one concatenation of JSON fragments
  with ``ST_AsGeoJSON`` (and ``ST_Transform`` for ``crs=``), no ORM objects and no shapely
  round trip (:mod:`mis.api.feature_sql`); for a JSON page the features' text goes into the response as PostgreSQL
  wrote it (:data:`RAW_FEATURES`), never parsed and re-serialised in Python;
- **lean pages**: a collection may name ``default_properties`` (roxels do): a page's
  features carry those unless ``properties=`` asks for others; every property stays a
  queryable, and one item (``/items/{id}``) carries them all;
- **plans**: reads run on their own pools in autocommit; unfiltered pages and items are
  prepared and planned once per connection, filtered pages for their values (see
  :func:`mis.catalogue.engines.read_engine`); a bbox on a point collection is ``&&`` (the index) plus exact
  x/y ranges, a third of ``ST_Intersects``' cost per candidate;
- **filters**: CQL2 (text or JSON; pygeofilter to SQLAlchemy, every value a bound
  parameter), property equality (values converted to the column's type first, a bad
  value is a 400), ``bbox`` (2D or 3D), ``datetime`` on the configured ``time_field``,
  and **concept hierarchy**: for a classification published as ``X`` + ``X_uri``
  (``lithology``, ``mineral``, ``dominantClass`` ...), the queryable ``X_broader``
  takes a URI, label or notation and matches that concept and every narrower one
  (``lithology_broader=igneous rock``, or in CQL2 ``lithology_broader = 'igneous rock'``).

- **class filters as index conditions**: where a view publishes a classification with its
  integer concept id beside it (``dominantClass`` + ``dominantClass_id``, ``mineral`` +
  ``mineral_id``), equality, ``IN`` and hierarchy filters on the label or the URI are
  turned into ``X_id IN (...)`` so that PostgreSQL combines the table's class index with
  the spatial one instead of joining the vocabulary first;
- sessions run with ``jit=off``: on a page query PostgreSQL's JIT compiles for longer than
  the query runs (over a second on a 5-million-row bbox page).

Any problem caused by the request (unknown property, value of the wrong type, bad CQL,
a query that runs past ``statement_timeout``) is a 400 with a one-line reason, never a
500 with a stack trace. Writes (``create``/``update``/``delete``) go through
:mod:`mis.api.writes` (the registration service and the explicit-cascade delete).

The provider is instantiated by pygeoapi on every request; everything costly (engine,
reflected columns, vocabulary index) is cached per (connection, view). Its rooms:
:mod:`mis.api.meta` (what it knows of a view), :mod:`mis.api.terms` (the vocabulary),
:mod:`mis.api.cql` (CQL2), :mod:`mis.api.feature_sql` (statements and paging),
:mod:`mis.api.errors` (what a client sees of a problem), :mod:`mis.api.options` (the
collection's ``mis:`` block); engines come from :mod:`mis.catalogue.engines`.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
from http import HTTPStatus
from typing import Any

from pygeoapi.provider.base import BaseProvider, ProviderItemNotFoundError
from sqlalchemy import BigInteger, and_, bindparam, case, false, func, literal_column, select, true
from sqlalchemy import types as T
from sqlalchemy.exc import DBAPIError

from mis.api import meta as view_meta
from mis.api import terms, writes
from mis.api.auth import WriteRefused, authorise_write
from mis.api.cql import cql_to_sql
from mis.api.datetimes import parse_datetime
from mis.api.errors import CatalogueUnavailable, MISInvalidQuery, db_error
from mis.api.feature_sql import CURSOR_PARAM, FeatureSQL
from mis.api.options import options_of
from mis.api.terms import concept_ids_for, narrower_uris, uri_ids
from mis.catalogue import engines
from mis.catalogue.ids import bigint

__all__ = ["CURRENT_REQUEST", "RAW_FEATURES", "CatalogueUnavailable", "MISInvalidQuery", "MISProvider",
           "dispose_engines"]

#: The pygeoapi ``APIRequest`` being served; set by :mod:`mis.api.patches` around each call
#: into pygeoapi, so that the provider can write its ``next`` link and read ``cursor``.
CURRENT_REQUEST: contextvars.ContextVar[Any] = contextvars.ContextVar("mis_api_request", default=None)

#: Set by :mod:`mis.api.patches` around each call into pygeoapi: a JSON page's features are
#: left here as the JSON text PostgreSQL built (``holder["features"]``) and spliced into
#: pygeoapi's serialised response, instead of being parsed into dicts only for pygeoapi to
#: serialise them again.
RAW_FEATURES: contextvars.ContextVar[dict | None] = contextvars.ContextVar("mis_raw_features", default=None)

#: What OGC API - Features (Parts 1-4, CQL2) and pygeoapi let a listing carry besides
#: property filters; any other parameter is a 400 naming it (a typo in a filter would
#: otherwise answer with everything).
PAGE_PARAMS = frozenset({"f", "lang", "limit", "offset", "bbox", "bbox-crs", "datetime", "properties", "sortby",
                         "skipGeometry", "crs", "filter", "filter-lang", "filter-crs", "resulttype", "q",
                         CURSOR_PARAM})
#: ... one item (``/items/{id}``), and a write (Part 4, with MIS's options).
ITEM_PARAMS = frozenset({"f", "lang", "crs", "properties", "skipGeometry"})
WRITE_PARAMS = frozenset({"f", "lang", "dry_run", "cascade"})


def dispose_engines() -> None:
    """Close every pooled connection and forget every cached view and vocabulary (server
    shutdown, tests)."""
    engines.dispose_engines()
    view_meta.clear()
    terms.clear()


def _convert(name: str, value: str, spec: dict[str, Any]) -> Any:
    """A query-string value converted to the property's type (400 if it is not one)."""
    kind = spec.get("type")
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            number = float(value)
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError
            return number
        if kind == "boolean":
            if value.lower() in ("true", "1", "yes"):
                return True
            if value.lower() in ("false", "0", "no"):
                return False
            raise ValueError
        if spec.get("format") == "date":
            return dt.date.fromisoformat(value)
        if spec.get("format") == "date-time":
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MISInvalidQuery(f"{name}: {value!r} is not a valid {spec.get('format') or kind}") from None
    if kind in ("object", "array"):
        raise MISInvalidQuery(f"{name} is a JSON {kind}: filter it with CQL2 on another property")
    return value


class MISProvider(BaseProvider):
    """A pygeoapi feature provider with keyset paging, GeoJSON from PostGIS, hierarchy
    filters and writes through the registration service (see the module docstring)."""

    def __init__(self, provider_def: dict) -> None:
        super().__init__(provider_def)
        self.table = provider_def["table"]
        self.id_field = provider_def.get("id_field", "id")
        self.geom = provider_def.get("geom_field")
        self.storage_crs = provider_def.get("storage_crs", "http://www.opengis.net/def/crs/OGC/1.3/CRS84")
        block = provider_def.get("mis") or {}
        #: MIS's options of the collection (not ``self.options``: BaseProvider's own)
        self.mis = options_of(str(block.get("collection") or self.table), block)
        self._meta = view_meta.load_meta(provider_def, self.mis)
        self._sql = FeatureSQL(self._meta, self.id_field, self.geom, self.mis)
        self._engine = self._meta.engine
        self._read_engine = engines.read_engine(self._meta.url)
        self._filtered_engine = engines.read_engine(self._meta.url, filtered=True)
        self._fields = dict(self._meta.fields)
        self.include_extra_query_parameters = False

    # ------------------------------------------------------------------ metadata
    def get_fields(self) -> dict[str, dict[str, Any]]:
        """Properties and their types (the queryables), hierarchy filters included."""
        fields = {k: {kk: vv for kk, vv in v.items() if vv is not None} for k, v in self._meta.fields.items()}
        for name, (column, _schemes) in self._meta.hierarchy.items():
            fields[name] = {"type": "string", "title": f"at or under a concept (URI, label or notation) "
                                                       f"in the hierarchy of {column}"}
        return fields

    @property
    def fields(self) -> dict[str, dict[str, Any]]:
        """The queryables: BaseProvider's would be the columns alone, without hierarchy filters."""
        return self.get_fields()

    @staticmethod
    def _known_params(params: dict[str, Any], allowed: set[str] | frozenset[str]) -> None:
        """400 naming the first query parameter that is neither OGC's nor a queryable."""
        unknown = sorted(k for k in params if k not in allowed)
        if unknown:
            raise MISInvalidQuery(f"unknown query parameter {unknown[0]!r}: neither an OGC API parameter nor a "
                                  "queryable of this collection (see its /queryables)")

    # ------------------------------------------------------------------ what a page asks
    def _names(self, select_properties: list[str] | None, *, page: bool = True) -> list[str]:
        """The properties a feature carries: those asked for (``properties=``), else on a page
        the collection's ``default_properties`` (where configured: big collections keep
        their features lean; every property stays a queryable and can be asked for),
        else all."""
        names = list(self._meta.fields)
        if select_properties:
            wanted = set(select_properties)
            unknown = wanted - set(names) - set(self._meta.hierarchy)
            if unknown:
                raise MISInvalidQuery(f"unknown properties: {', '.join(sorted(unknown))}")
            names = [n for n in names if n in wanted]
        elif page and self.mis.default_properties:
            wanted = set(self.mis.default_properties)
            names = [n for n in names if n in wanted]
        if self.properties:
            names = [n for n in names if n in self.properties]
        return names

    def _where(self, t: Any, *, bbox: list, datetime_: str | None, properties: list, filterq: Any) -> list:
        """The conditions of a listing's filters: property equality (hierarchy and class
        filters as concept id conditions where the view has them), bbox, datetime, CQL2."""
        conditions = []
        scheme = self.mis.scheme
        if scheme:
            conditions.append(t.c.scheme == scheme)
        for name, value in properties or []:
            base = name[:-4] if name.endswith("_uri") else name
            if name in self._meta.hierarchy:
                column, schemes = self._meta.hierarchy[name]
                schemes = schemes or ([scheme] if scheme else None)
                uris = narrower_uris(self._meta, str(value), schemes)
                if column[:-4] in self._meta.concept_ids:
                    id_column = self._meta.concept_ids[column[:-4]]
                    conditions.append(t.c[id_column].in_(uri_ids(self._meta, uris)))
                else:
                    conditions.append(t.c[column].in_(uris))
            elif base in self._meta.concept_ids:
                ids = concept_ids_for(self._meta, name, [str(value)])
                conditions.append(t.c[self._meta.concept_ids[base]].in_(ids))
            elif name in self._meta.fields:
                conditions.append(t.c[name] == _convert(name, str(value), self._meta.fields[name]))
        if bbox:
            conditions += self._bbox_conditions(t, bbox)
        if datetime_ not in (None, "", "../.."):
            conditions.append(self._datetime_condition(t, str(datetime_)))
        if filterq is not None:
            conditions.append(cql_to_sql(filterq, self._meta, t.c))
        return conditions

    def _bbox_conditions(self, t: Any, bbox: list) -> list:
        """Features intersecting a 2D or 3D box (CRS84)."""
        if not self.geom:
            raise MISInvalidQuery("bbox: this collection has no geometry")
        if len(bbox) not in (4, 6):
            raise MISInvalidQuery("bbox needs 4 or 6 numbers")
        if len(bbox) == 6:
            minx, miny, minz, maxx, maxy, maxz = bbox
        else:
            (minx, miny, maxx, maxy), minz, maxz = bbox, None, None
        geom = t.c[self.geom]
        envelope = func.ST_MakeEnvelope(minx, miny, maxx, maxy, 4326)
        conditions: list = []
        if self._points():
            # A point intersects the box exactly when its x and y lie in the box's
            # ranges: the index finds the candidates (&&, float boxes), the two ranges
            # decide exactly, at a third of ST_Intersects' cost per candidate row. (In a
            # CASE, which PostgreSQL estimates as a coin toss: as plain ranges on
            # functions it would estimate one row and plan the joins for one.)
            inside = and_(func.ST_X(geom).between(min(minx, maxx), max(minx, maxx)),
                          func.ST_Y(geom).between(min(miny, maxy), max(miny, maxy)))
            conditions += [geom.op("&&")(envelope), case((inside, true()), else_=false())]
        else:
            conditions.append(func.ST_Intersects(geom, envelope))
        if minz is not None:
            conditions.append(and_(func.ST_ZMax(geom) >= minz, func.ST_ZMin(geom) <= maxz))
        return conditions

    def _points(self) -> bool:
        """Whether the geometry column is declared to hold points only (Point, PointZ ...)."""
        if not self.geom:
            return False
        kind = getattr(self._meta.table.c[self.geom].type, "geometry_type", None) or ""
        return kind.upper().rstrip("ZM") == "POINT"

    def _datetime_condition(self, t: Any, datetime_: str) -> Any:
        """Features whose time property lies in the instant or interval (any RFC 3339 one,
        see :mod:`mis.api.datetimes`; a date column compares with the UTC dates)."""
        if not self.time_field or self.time_field not in t.c:
            raise MISInvalidQuery("datetime: this collection has no time property")
        column = t.c[self.time_field]
        try:
            (begin, end), instant = parse_datetime(datetime_)
        except ValueError as exc:
            raise MISInvalidQuery(str(exc)) from None
        dated = isinstance(column.type, T.Date) and not isinstance(column.type, T.DateTime)

        def value(moment: dt.datetime) -> dt.date | dt.datetime:
            return moment.date() if dated else moment

        if instant and begin is not None:
            return column == value(begin)
        parts = []
        if begin is not None:
            parts.append(column >= value(begin))
        if end is not None:
            parts.append(column <= value(end))
        return and_(*parts) if parts else true()

    # ------------------------------------------------------------------ reads
    def query(self, offset=0, limit=10, resulttype="results", bbox=[], datetime_=None, properties=[],  # noqa: B006 - pygeoapi's signature
              sortby=[], select_properties=[], skip_geometry=False, q=None, filterq=None,  # noqa: B006
              crs_transform_spec=None, **kwargs) -> dict[str, Any]:
        """A page of features; see the module docstring for what differs from pygeoapi's."""
        request = CURRENT_REQUEST.get()
        params = dict(request.params) if request is not None else {}
        self._known_params(params, PAGE_PARAMS | set(self.get_fields()))
        sql = self._sql
        t = sql.alias()
        conditions = self._where(t, bbox=bbox, datetime_=datetime_, properties=properties, filterq=filterq)
        keyset = not sortby
        cursor = None
        if params.get(CURSOR_PARAM) not in (None, ""):
            if not keyset:
                raise MISInvalidQuery("cursor cannot be combined with sortby; use offset")
            cursor = sql.cursor(str(params[CURSOR_PARAM]))
        if q:
            raise MISInvalidQuery("q (free text search) is not supported; use filter (CQL2)")

        response: dict[str, Any] = {"type": "FeatureCollection", "features": [], "numberReturned": 0}
        # numberMatched: asked for, or cheap; never on cursor pages (pygeoapi would read
        # numberMatched > offset + limit as "more pages" and add an offset link of its own)
        count = None
        if resulttype == "hits" or (self._meta.exact_count and cursor is None):
            count = select(func.count()).select_from(t).where(*conditions)
        stmt: Any = None
        values: dict[str, Any] = {}
        by_run = False
        if resulttype != "hits":
            names = self._names(select_properties)
            # every statement selects the feature's text, then the page's key values
            if keyset and not offset:
                shape = (self.mis.collection, self.mis.base_url, tuple(names), bool(skip_geometry),
                         getattr(crs_transform_spec, "target_crs_wkt", None), cursor is not None)
                stmt = None if conditions else self._meta.pages.get(shape)
                if stmt is None:
                    stmt = sql.keyset_page(t, conditions, cursor is not None, names, skip_geometry,
                                           crs_transform_spec)
                    if not conditions:
                        self._meta.pages[shape] = stmt
                after = dict(zip(sql.keys(), cursor or [], strict=False))
                values = {"page_limit": limit + 1, **{f"after_{k}": v for k, v in after.items()}}
                by_run = bool(self._meta.by_run)
            else:
                stmt = sql.offset_page(t, conditions, cursor, sortby, offset, limit, names, skip_geometry,
                                       crs_transform_spec)

        def run(conn: Any) -> tuple[int | None, list]:
            matched = conn.execute(count).scalar_one() if count is not None else None
            if stmt is None:
                return matched, []
            if by_run:
                return matched, sql.read_by_run(conn, stmt, values, cursor, limit)
            return matched, conn.execute(stmt, values).all()

        try:
            matched, rows = engines.read(self._filtered_engine if conditions or sortby else self._read_engine, run)
        except DBAPIError as exc:
            raise db_error(exc) from exc
        if matched is not None:
            response["numberMatched"] = matched
        if resulttype == "hits":
            return response
        more = len(rows) > limit
        rows = rows[:limit]
        raw = RAW_FEATURES.get()
        if raw is not None and request is not None and getattr(request, "format", None) in (None, "json"):
            raw["features"] = "[" + ",".join(r[0] for r in rows) + "]"
            response["features"] = []
        else:
            response["features"] = [json.loads(r[0]) for r in rows]
        response["numberReturned"] = len(rows)
        if request is not None:
            response["links"] = sql.next_links(params, rows, keyset, offset, limit) if more else []
        return response

    def get(self, identifier, crs_transform_spec=None, **kwargs) -> dict[str, Any]:
        """One feature by id (404 for an id that is not there or not an integer)."""
        request = CURRENT_REQUEST.get()
        self._known_params(dict(request.params) if request is not None else {}, ITEM_PARAMS)
        try:
            ident = bigint(identifier)
        except ValueError:
            raise ProviderItemNotFoundError(user_msg=f"No such item: {self.id_field}={identifier}.") from None
        shape = ("item", self.mis.collection, self.mis.base_url, getattr(crs_transform_spec, "target_crs_wkt", None))
        stmt = self._meta.pages.get(shape)
        if stmt is None:
            t = self._sql.alias()
            feature_sql = self._sql.feature_sql(self._names(None, page=False), False, crs_transform_spec)
            conditions = [t.c[self.id_field] == bindparam("ident", type_=BigInteger)]
            if self.mis.scheme:
                conditions.append(t.c.scheme == self.mis.scheme)
            stmt = self._meta.pages[shape] = select(literal_column(feature_sql)).select_from(t).where(*conditions)
        try:
            row = engines.read(self._read_engine, lambda conn: conn.execute(stmt, {"ident": ident}).first())
        except DBAPIError as exc:
            raise db_error(exc) from exc
        if row is None:
            raise ProviderItemNotFoundError(user_msg=f"No such item: {self.id_field}={identifier}.")
        return json.loads(row[0])

    # ------------------------------------------------------------------ writes
    def create(self, item: Any) -> Any:
        """POST: register a new record (validation errors: 400 with the registration messages)."""
        return writes.create(self._write_context(), item)

    def update(self, identifier: Any, item: Any) -> Any:
        """PUT: replace a record through the registration service."""
        return writes.replace(self._write_context(), identifier, item)

    def delete(self, identifier: Any) -> Any:
        """DELETE: refused while children exist unless ``?cascade=true``."""
        return writes.remove(self._write_context(), identifier)

    def _write_context(self) -> writes.WriteContext:
        """The context of a write, once the request is authorised: the token is checked
        here, where the write happens, on the request's own headers."""
        request = CURRENT_REQUEST.get()
        try:
            authorise_write(getattr(request, "mis_tokens", None), getattr(request, "mis_raw_headers", None))
        except WriteRefused as exc:
            raise writes.WriteError(str(exc), HTTPStatus(exc.status), exc.code) from None
        kind = self.mis.kind
        if not kind:
            raise MISInvalidQuery("this collection is read-only")
        params = dict(request.params) if request is not None else {}
        return writes.WriteContext(kind=kind, url=self._meta.url, engine=self._engine, params=params,
                                   columns=list(self._meta.fields))

    def __repr__(self) -> str:
        return f"<MISProvider> {self.table}"
