"""MIS's pygeoapi feature provider: pygeoapi's PostgreSQL provider, made fast on big tables.

``MISProvider`` subclasses :class:`pygeoapi.provider.sql.PostgreSQLProvider` and keeps
its interface (``query``, ``get``, ``get_fields``, ``create``, ``update``, ``delete``)
but answers differently where the stock provider is slow on tables of millions of rows:

- **no full count(*) per page**: ``numberMatched`` is counted only where the table is
  small (fewer than :data:`EXACT_COUNT_BELOW` rows, estimated from the planner's
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
  round trip; for a JSON page the features' text goes into the response as PostgreSQL
  wrote it (:data:`RAW_FEATURES`), never parsed and re-serialised in Python;
- **lean pages**: a collection may name ``default_properties`` (roxels do): a page's
  features carry those unless ``properties=`` asks for others; every property stays a
  queryable, and one item (``/items/{id}``) carries them all;
- **plans**: reads run on their own pools in autocommit; unfiltered pages and items are
  prepared and planned once per connection, filtered pages for their values (see
  :func:`get_read_engine`); a bbox on a point collection is ``&&`` (the index) plus exact
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
reflected columns, vocabulary index) is cached per (connection, view).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import math
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field, replace
from typing import Any

from pygeoapi.provider.base import (
    BaseProvider,
    ProviderConnectionError,
    ProviderGenericError,
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
)
from pygeoapi.provider.sql import PostgreSQLProvider
from sqlalchemy import (
    BigInteger,
    Integer,
    MetaData,
    Table,
    and_,
    bindparam,
    case,
    create_engine,
    false,
    func,
    literal_column,
    select,
    text,
    true,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DBAPIError, NoSuchTableError
from sqlalchemy.sql import column as sql_column
from sqlalchemy.sql import table as sql_table

from mis.catalogue import partitions
from mis.catalogue.postgres import follow_embedded

LOGGER = logging.getLogger(__name__)

#: The pygeoapi ``APIRequest`` being served; set by :mod:`mis.api.app` around each call
#: into pygeoapi, so that the provider can write its ``next`` link and read ``cursor``.
CURRENT_REQUEST: contextvars.ContextVar[Any] = contextvars.ContextVar("mis_api_request", default=None)

#: Set by :mod:`mis.api.app` around each call into pygeoapi: a JSON page's features are left
#: here as the JSON text PostgreSQL built (``holder["features"]``) and spliced into
#: pygeoapi's serialised response, instead of being parsed into dicts only for pygeoapi to
#: serialise them again.
RAW_FEATURES: contextvars.ContextVar[dict | None] = contextvars.ContextVar("mis_raw_features", default=None)

#: Runs in the first statement of a page of a run-partitioned collection (``_read_by_run``).
FIRST_RUNS = 4
#: The next runs of a run-partitioned collection, in key order.
RUNS_FROM = text(f"SELECT id FROM public.{partitions.RUNS} WHERE id >= :start ORDER BY id LIMIT :n")
#: Tables with fewer rows than this (pg_class.reltuples) get an exact numberMatched.
EXACT_COUNT_BELOW = 200_000
#: Longest a query of the API may run (ms); past it the client gets a 400, not a hung worker.
STATEMENT_TIMEOUT_MS = 30_000
#: Decimal digits of coordinates in GeoJSON (9: < 0.1 mm in degrees, µm in metres).
GEOJSON_DIGITS = 9
#: Query parameters the provider reads itself (never property filters).
CURSOR_PARAM = "cursor"
#: What OGC API - Features (Parts 1-4, CQL2) and pygeoapi let a listing carry besides
#: property filters; any other parameter is a 400 naming it (a typo in a filter would
#: otherwise answer with everything).
PAGE_PARAMS = frozenset({"f", "lang", "limit", "offset", "bbox", "bbox-crs", "datetime", "properties", "sortby",
                         "skipGeometry", "crs", "filter", "filter-lang", "filter-crs", "resulttype", "q",
                         CURSOR_PARAM})
#: ... one item (``/items/{id}``), and a write (Part 4, with MIS's options).
ITEM_PARAMS = frozenset({"f", "lang", "crs", "properties", "skipGeometry"})
WRITE_PARAMS = frozenset({"f", "lang", "dry_run", "cascade"})
#: Columns holding JSON, with the JSON type of their values: a ``text`` column of these
#: names is JSON the view wrote itself (``pub.roxels``: cheaper than a cast to json, which
#: parses every value again) and goes into a feature as it is.
JSON_TEXT_COLUMNS = {"composition": "object", "pixelWindow": "array"}
#: Text columns holding a path of this server (``/iiif/3/...``, made by the views of
#: digits, commas and slashes only): the views cannot know the server's public URL, the
#: provider can; features carry them as absolute URLs (a QGIS Identify opens them), typed
#: ``format: uri``.
SERVER_PATH_COLUMNS = {"imageRegion", "iiifManifest"}
#: Vocabulary scheme(s) of each classified property (to resolve terms of hierarchy filters).
FIELD_SCHEMES: dict[str, list[str]] = {
    "lithology": ["lithology"],
    "mineral": ["mineral", "segmentation-class"],
    "dominantClass": ["mineral", "segmentation-class"],
    "sampleType": ["sample-type"],
    "drillingMethod": ["drilling-method"],
    "depositModel": ["deposit-model"],
    "occurrenceType": ["occurrence-type"],
}
#: Hierarchy queryable suffix: ``lithology_broader`` = lithology at or under a concept.
BROADER_SUFFIX = "_broader"
#: In the vocabulary collections, the queryable of "this concept and everything under it".
NARROWER_OF = "narrowerOf"


class CatalogueUnavailable(ProviderConnectionError):
    """The catalogue database cannot be reached (restarting, down): HTTP 503, and the
    server's middleware adds ``Retry-After``; the pools reconnect once it is back."""

    http_status_code = 503
    ogc_exception_code = "ServiceUnavailable"

    def __init__(self, msg: str = "the catalogue database is not reachable; try again shortly") -> None:
        super().__init__(msg, user_msg=msg)


class MISInvalidQuery(ProviderInvalidQueryError):
    """A request the provider cannot answer because of what it asks: HTTP 400."""

    ogc_exception_code = "InvalidParameterValue"

    def __init__(self, msg: str) -> None:
        super().__init__(msg, user_msg=msg)


# --------------------------------------------------------------------------- shared state
@dataclass
class _Meta:
    """What the provider knows about one view (cached per connection + view)."""

    engine: Engine
    table: Table
    #: property name -> JSON-schema-ish {'type', 'format'} (no geometry, no id)
    fields: dict[str, dict[str, Any]]
    #: virtual hierarchy queryables: name -> (uri column, schemes)
    hierarchy: dict[str, tuple[str, list[str] | None]]
    exact_count: bool
    url: str
    #: classification label column -> the view's integer concept id column (big tables:
    #: filters on the label or URI become index conditions on the id)
    concept_ids: dict[str, str] = field(default_factory=dict)
    #: the view's aliases in statements ("t", "f"), made once
    aliases: dict[str, Any] = field(default_factory=dict)
    #: the run column of a view over a table partitioned by run (pages are read run by run)
    by_run: str | None = None
    #: statements of items and unfiltered keyset pages, by collection and shape (CRS ...)
    pages: dict[tuple, Any] = field(default_factory=dict)


_META: dict[tuple, _Meta] = {}
_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()


def _connection_url(data: Any) -> str:
    """A SQLAlchemy URL (psycopg 3) from a pygeoapi ``data`` block or a URL string."""
    if isinstance(data, str):
        from mis.catalogue.locate import normalise_url

        return normalise_url(data)
    return URL.create(
        "postgresql+psycopg", username=data.get("user"), password=data.get("password"),
        host=data.get("host"), port=int(data.get("port", 5432)), database=data.get("dbname"),
    ).render_as_string(hide_password=False)


def get_engine(url: str) -> Engine:
    """One pooled engine per database for every collection (writes, pages, metadata)."""
    with _LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            engine = follow_embedded(create_engine(
                url, pool_size=8, max_overflow=8, pool_pre_ping=True,
                connect_args={"options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c jit=off",
                              "application_name": "mis-api"}))
            _ENGINES[url] = engine
        return engine


def get_read_engine(url: str, *, filtered: bool = False) -> Engine:
    """The engines of the provider's reads (pages and items): their own pools, in
    autocommit (no BEGIN and ROLLBACK round trips around a page's one SELECT), no ping
    before each checkout (:func:`_read` retries once on a connection the server dropped),
    and no parallel workers (starting them costs more than a page query gains: the planner
    would otherwise gather a bbox page from two workers on a two-core machine).

    Plans: an unfiltered page (``id > cursor ORDER BY id``, or run by run), an item by id
    or an offset page has one best plan whatever its values, and planning it over the
    views' joins and a table's partitions costs as much as running it (5 ms of a 10 ms
    page over 50 run partitions); so these statements are prepared on first use and
    planned once per connection (``plan_cache_mode=force_generic_plan``). A filtered page's best plan
    depends on its values (a small bbox or a whole deposit, a rare class or a common one):
    ``filtered=True`` gives the pool whose sessions plan every execution for its values
    (``force_custom_plan``; PostgreSQL's own choice may settle on a generic plan that reads
    the whole table in id order for a small bbox)."""
    key = f"read{'-filtered' if filtered else ''}:{url}"
    with _LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            options = (f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c jit=off "
                       "-c max_parallel_workers_per_gather=0 "
                       f"-c plan_cache_mode={'force_custom_plan' if filtered else 'force_generic_plan'}")
            engine = follow_embedded(create_engine(
                url, pool_size=8, max_overflow=8, pool_pre_ping=False, isolation_level="AUTOCOMMIT",
                connect_args={"options": options, "application_name": "mis-api",
                              **({} if filtered else {"prepare_threshold": 0})}))
            _ENGINES[key] = engine
        return engine


def _read(engine: Engine, run):
    """``run(connection)`` on a pooled read connection; once more on a fresh connection
    if the server had dropped the pooled one (restart, idle timeout)."""
    for attempt in (1, 2):
        try:
            with engine.connect() as conn:
                return run(conn)
        except DBAPIError as exc:
            if attempt == 1 and exc.connection_invalidated:
                engine.pool.dispose()  # every pooled connection predates the drop
                continue
            raise


def dispose_engines() -> None:
    """Close every pooled connection (server shutdown, tests)."""
    with _LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()
        _META.clear()
        _TERMS.clear()


def _json_type(column) -> dict[str, Any]:
    from sqlalchemy import types as T
    from sqlalchemy.dialects.postgresql import JSON, JSONB

    t = column.type
    if column.name in JSON_TEXT_COLUMNS and isinstance(t, (T.String, JSON, JSONB)):
        return {"type": JSON_TEXT_COLUMNS[column.name]}
    if column.name in SERVER_PATH_COLUMNS and isinstance(t, T.String):
        return {"type": "string", "format": "uri"}
    if isinstance(t, (JSON, JSONB)):
        return {"type": "object"}
    if isinstance(t, T.Boolean):
        return {"type": "boolean"}
    if isinstance(t, (T.Integer,)):
        return {"type": "integer"}
    if isinstance(t, (T.Float, T.Numeric)):
        return {"type": "number"}
    if isinstance(t, T.DateTime):
        return {"type": "string", "format": "date-time"}
    if isinstance(t, T.Date):
        return {"type": "string", "format": "date"}
    return {"type": "string"}


def _load_meta(provider_def: dict) -> _Meta:
    url = _connection_url(provider_def["data"])
    schema = "pub"
    data = provider_def["data"]
    if isinstance(data, dict) and data.get("search_path"):
        schema = data["search_path"][0]
    key = (url, schema, provider_def["table"], provider_def.get("geom_field"))
    meta = _META.get(key)
    if meta is not None:
        return meta
    import geoalchemy2  # noqa: F401 - registers the geometry type for reflection

    engine = get_engine(url)
    try:
        table = Table(provider_def["table"], MetaData(), schema=schema, autoload_with=engine)
    except NoSuchTableError:
        raise ProviderConnectionError(user_msg=f"view {schema}.{provider_def['table']} not found: run `mis db migrate`")
    except DBAPIError as exc:
        raise CatalogueUnavailable(f"cannot reach the catalogue: {str(exc.orig).splitlines()[0]}")
    id_field = provider_def.get("id_field", "id")
    geom = provider_def.get("geom_field")
    if id_field not in table.c:
        raise ProviderConnectionError(user_msg=f"{schema}.{table.name} has no id column {id_field!r}")
    fields = {c.name: _json_type(c) for c in table.c if c.name not in (id_field, geom)}
    hierarchy: dict[str, tuple[str, list[str] | None]] = {}
    for name in list(fields):
        if name.endswith("_uri") and name[:-4] in fields:
            base = name[:-4]
            hierarchy[base + BROADER_SUFFIX] = (name, FIELD_SCHEMES.get(base))
    if "uri" in fields and "prefLabel" in fields:
        hierarchy[NARROWER_OF] = ("uri", None)
    concept_ids = {name: f"{name}_id" for name in fields
                   if f"{name}_id" in fields and f"{name}_uri" in fields and fields[f"{name}_id"]["type"] == "integer"}
    exact = True
    count_table = (provider_def.get("mis") or {}).get("count_table")
    if count_table:
        try:
            with engine.connect() as conn:
                n = conn.execute(text(partitions.ESTIMATED_ROWS), {"t": f"public.{count_table}"}).scalar()
        except DBAPIError as exc:
            raise _db_error(exc)
        exact = n is None or n < EXACT_COUNT_BELOW
    by_run = (provider_def.get("mis") or {}).get("partitioned_by")
    if by_run is not None and (by_run != partitions.KEY or by_run not in table.c):
        raise ProviderConnectionError(user_msg=f"{schema}.{table.name}: partitioned_by must name its run "
                                               f"column {partitions.KEY!r} (one partition per run)")
    meta = _Meta(engine, table, fields, hierarchy, exact, url, concept_ids, by_run=by_run)
    _META[key] = meta
    return meta


# --------------------------------------------------------------------------- vocabulary
_TERMS: dict[str, tuple[float, Any, dict[str, list[str]]]] = {}
TERMS_TTL_S = 60.0


def _term_index(meta: _Meta):
    from sqlalchemy.orm import Session

    from mis.vocab.lookup import TermIndex

    cached = _TERMS.get(meta.url)
    if cached and time.monotonic() - cached[0] < TERMS_TTL_S:
        return cached[1], cached[2]
    with Session(meta.engine) as session:
        index = TermIndex.from_session(session)
    _TERMS[meta.url] = (time.monotonic(), index, {})
    return index, _TERMS[meta.url][2]


def narrower_uris(meta: _Meta, term: str, schemes: list[str] | None) -> list[str]:
    """URIs of the concept ``term`` names (URI, label or notation) and all below it."""
    from sqlalchemy.orm import Session

    from mis.vocab.lookup import AmbiguousTermError, UnknownTermError, narrower

    index, memo = _term_index(meta)
    if not schemes:  # always a list: TermIndex.resolve(term, None) pops from its own index
        schemes = sorted({t.scheme for t in index.terms.values()})
    try:
        concept = index.resolve(term, schemes)
    except (UnknownTermError, AmbiguousTermError) as exc:
        raise MISInvalidQuery(str(exc))
    if concept.uri not in memo:
        with Session(meta.engine) as session:
            memo[concept.uri] = narrower(session, concept.uri)
    return memo[concept.uri]


def concept_ids_for(meta: _Meta, column: str, values: list[Any]) -> list[int]:
    """Integer ids of the concepts whose ``column`` value (the short name shown in the
    views, ``pub.symbol``: notation, else label; or the URI) is one of ``values``."""
    index, memo = _term_index(meta)
    if "__symbols__" not in memo:
        symbols: dict[str, list[int]] = {}
        for term in index.terms.values():
            symbols.setdefault(term.notation or term.pref_label, []).append(term.id)
        memo["__symbols__"] = symbols  # type: ignore[assignment]
    ids: list[int] = []
    for value in values:
        if column.endswith("_uri"):
            term = index.terms.get(str(value))
            ids += [term.id] if term else []
        else:
            ids += memo["__symbols__"].get(str(value), [])  # type: ignore[union-attr]
    return sorted(set(ids))


def _uri_ids(meta: _Meta, uris: list[str]) -> list[int]:
    index, _memo = _term_index(meta)
    return sorted({index.terms[u].id for u in uris if u in index.terms})


# --------------------------------------------------------------------------- CQL2
def _rewrite_cql(node: Any, meta: _Meta) -> Any:
    """Replace hierarchy queryables (``X_broader = 'term'``) by ``X_uri IN (...)``."""
    from pygeofilter import ast, values

    if isinstance(node, values.Geometry):
        # pygeoapi names the storage CRS 'urn:ogc:def:crs:OGC::CRS84', which PostGIS cannot
        # read as an SRID; the views store lon/lat in EPSG:4326, CRS84's axis order.
        geometry = dict(node.geometry)
        try:
            import shapely.geometry

            shape = shapely.geometry.shape(geometry)
            if shape.is_empty:
                raise ValueError("empty geometry")
        except Exception as exc:  # noqa: BLE001 - shapely raises many kinds
            raise MISInvalidQuery(f"filter: not a valid geometry ({str(exc)[:120]})")
        name = str(geometry.get("crs", {}).get("properties", {}).get("name", ""))
        if not name or "CRS84" in name.upper() or name.endswith("::4326"):
            geometry["crs"] = {"properties": {"name": "urn:ogc:def:crs:EPSG::4326"}}
        else:
            raise MISInvalidQuery(f"filter geometry in an unexpected CRS {name!r}: use filter-crs")
        return values.Geometry(geometry)
    if isinstance(node, ast.BBox):
        return replace(node, lhs=_rewrite_cql(node.lhs, meta), crs=None)
    if isinstance(node, ast.Attribute):
        if node.name in meta.hierarchy:
            raise MISInvalidQuery(f"{node.name} can only be used as {node.name} = '<concept>'")
        return node
    if isinstance(node, ast.Equal) and isinstance(node.lhs, ast.Attribute) and node.lhs.name in meta.hierarchy:
        if not isinstance(node.rhs, str):
            raise MISInvalidQuery(f"{node.lhs.name} needs a concept: a URI, label or notation in quotes")
        column, schemes = meta.hierarchy[node.lhs.name]
        uris = narrower_uris(meta, node.rhs, schemes)
        base = column[:-4]
        if base in meta.concept_ids:
            return ast.In(ast.Attribute(meta.concept_ids[base]), _uri_ids(meta, uris), False)
        return ast.In(ast.Attribute(column), uris, False)
    by_id = _id_column(meta, node)
    if by_id is not None:
        return by_id
    if isinstance(node, ast.Node) and hasattr(node, "__dataclass_fields__"):
        changes = {}
        for name in node.__dataclass_fields__:
            value = getattr(node, name)
            if isinstance(value, (ast.Node, values.Geometry)):
                changes[name] = _rewrite_cql(value, meta)
            elif isinstance(value, list):
                changes[name] = [_rewrite_cql(v, meta) if isinstance(v, (ast.Node, values.Geometry)) else v
                                 for v in value]
        return replace(node, **changes) if changes else node
    return node


def _id_column(meta: _Meta, node: Any) -> Any:
    """``dominantClass = 'Ccp'`` / ``IN (...)`` (or on the ``_uri``) as a condition on the
    concept id column, which the big tables index; None when the node is not one."""
    from pygeofilter import ast

    if not meta.concept_ids or not isinstance(node, (ast.Equal, ast.In)) or not isinstance(node.lhs, ast.Attribute):
        return None
    name = node.lhs.name
    base = name[:-4] if name.endswith("_uri") else name
    if base not in meta.concept_ids:
        return None
    values = [node.rhs] if isinstance(node, ast.Equal) else list(node.sub_nodes)
    if not all(isinstance(v, str) for v in values):
        return None
    ids = concept_ids_for(meta, name, values)
    return ast.In(ast.Attribute(meta.concept_ids[base]), ids, isinstance(node, ast.In) and node.not_)


#: Deepest CQL2 expression a filter may be (each level is a recursion in translation and
#: in SQL compilation; no real filter comes near it).
MAX_CQL_DEPTH = 64


def _cql_depth(node: Any) -> int:
    """Depth of a parsed CQL2 expression, counted without recursion."""
    from pygeofilter import ast

    deepest, todo = 0, [(node, 1)]
    while todo:
        current, depth = todo.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_CQL_DEPTH:
            return deepest
        if isinstance(current, ast.Node):
            todo += [(child, depth + 1) for child in current.get_sub_nodes() if isinstance(child, ast.Node)]
    return deepest


def cql_to_sql(filterq: Any, meta: _Meta, columns) -> Any:
    """A SQLAlchemy condition for a parsed CQL2 filter; 400 for anything it cannot mean."""
    from pygeofilter import ast
    from pygeofilter.backends.sqlalchemy.evaluate import SQLAlchemyFilterEvaluator
    from sqlalchemy.sql.elements import ClauseElement

    if not isinstance(filterq, ast.Node):  # e.g. a POSTed JSON list or number
        raise MISInvalidQuery("filter: not a CQL2 expression (give an object such as "
                              '{"op": "=", "args": [{"property": "name"}, "x"]})')
    if _cql_depth(filterq) > MAX_CQL_DEPTH:
        raise MISInvalidQuery(f"filter: nested deeper than {MAX_CQL_DEPTH} levels")
    node = _rewrite_cql(filterq, meta)
    mapping = {name: columns[name] for name in columns.keys()}
    try:
        condition = SQLAlchemyFilterEvaluator(mapping, undefined_as_null=False).evaluate(node)
    except KeyError as exc:
        name = exc.args[0] if exc.args else "?"
        known = ", ".join(sorted(set(meta.fields) | set(meta.hierarchy)))
        raise MISInvalidQuery(f"unknown property or function in filter: {name!r} (queryables: {known})")
    except MISInvalidQuery:
        raise
    except Exception as exc:  # pygeofilter raises plain exceptions for what it cannot translate
        raise MISInvalidQuery(f"cannot apply this filter: {type(exc).__name__}: {str(exc)[:200]}")
    if isinstance(condition, bool):
        return true() if condition else ~true()
    if not isinstance(condition, ClauseElement):
        raise MISInvalidQuery(f"filter: not a condition ({type(condition).__name__})")
    return condition


# --------------------------------------------------------------------------- the provider
_ASCII_INTEGER = re.compile(r"-?[0-9]{1,19}")


def bigint(value: Any) -> int:
    """``value`` as a PostgreSQL bigint (ValueError if it is not an integer in range).

    Only canonical spellings: ASCII digits, an optional minus. Python's ``int`` also
    reads ``3_6`` (36), Arabic-Indic or full-width digits and surrounding blanks, which
    would make one record answer to many URLs."""
    text = str(value)
    if not _ASCII_INTEGER.fullmatch(text):
        raise ValueError(f"{text[:40]!r} is not an integer (ASCII digits, at most 19)")
    number = int(text)
    if not -2 ** 63 <= number < 2 ** 63:
        raise ValueError(f"{value!r} is out of the bigint range")
    return number


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _concat(pieces: list[str]) -> str:
    """``concat(...)`` of SQL text expressions (nested: a function takes at most 100)."""
    while len(pieces) > 90:
        pieces = [f"concat({', '.join(pieces[i:i + 90])})" for i in range(0, len(pieces), 90)]
    return f"concat({', '.join(pieces)})"


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
        raise MISInvalidQuery(f"{name}: {value!r} is not a valid {spec.get('format') or kind}")
    if kind in ("object", "array"):
        raise MISInvalidQuery(f"{name} is a JSON {kind}: filter it with CQL2 on another property")
    return value


def _real_json_sql(column: str, kind) -> str:
    """The JSON text of a real column's value, always with a fraction or an exponent.

    PostgreSQL writes a whole real as an integer (``29424``, ``10``), and clients that type
    a field from the values they see (QGIS reads the first page; GDAL a document) then make
    it an integer field and drop every later value that is not one (areas, azimuths such as
    270.6). So a whole value gets ``.0``: below 10^6 (``real``) or 10^15 (``double
    precision``) PostgreSQL writes it as plain digits, above that with an exponent, which
    already reads as real; ``numeric`` has no exponent, so its whole values (scale 0) get
    ``.0`` too. Non-finite values stay ``to_json``'s strings."""
    from sqlalchemy import types as T
    from sqlalchemy.dialects.postgresql import REAL

    if isinstance(kind, T.Float):
        digits = 1e6 if isinstance(kind, REAL) else 1e15
        return (f"CASE WHEN abs({column}) < {digits:.0f} AND {column} = trunc({column}) "
                f"THEN {column}::text || '.0' ELSE to_json({column})::text END")
    return f"CASE WHEN scale({column}) = 0 THEN {column}::text || '.0' ELSE to_json({column})::text END"


def _db_error(exc: DBAPIError) -> ProviderGenericError:
    """A request-caused database error as a 400 with PostgreSQL's first line."""
    import psycopg

    orig = exc.orig
    if isinstance(orig, psycopg.errors.QueryCanceled):
        return MISInvalidQuery(
            f"the query ran longer than {STATEMENT_TIMEOUT_MS // 1000} s and was cancelled: "
            "narrow it (bbox, filter, limit)")
    if isinstance(orig, (psycopg.errors.DataError, psycopg.errors.ProgrammingError,
                         psycopg.errors.SyntaxError, psycopg.errors.UndefinedFunction)):
        first = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
        return MISInvalidQuery(f"the catalogue refused this query: {first}")
    if isinstance(orig, psycopg.errors.InternalError_) and "geometry" in str(orig):
        return MISInvalidQuery(f"the catalogue refused a geometry of this query: {str(orig).splitlines()[0]}")
    if isinstance(orig, (psycopg.OperationalError, psycopg.InterfaceError)) or exc.connection_invalidated:
        return CatalogueUnavailable()
    return ProviderConnectionError(user_msg=f"database error: {type(orig).__name__}")


class MISProvider(PostgreSQLProvider):
    """pygeoapi's PostgreSQL provider with keyset paging, GeoJSON from PostGIS, hierarchy
    filters and writes through the registration service (see the module docstring)."""

    def __init__(self, provider_def: dict):
        # Not PostgreSQLProvider.__init__: that one reflects through psycopg2 on every
        # request; this one shares a psycopg 3 engine and cached metadata.
        BaseProvider.__init__(self, provider_def)
        self.table = provider_def["table"]
        self.id_field = provider_def.get("id_field", "id")
        self.geom = provider_def.get("geom_field")
        self.storage_crs = provider_def.get("storage_crs", "http://www.opengis.net/def/crs/OGC/1.3/CRS84")
        self.mis = dict(provider_def.get("mis") or {})
        self._meta = _load_meta(provider_def)
        self._engine = self._meta.engine
        self._read_engine = get_read_engine(self._meta.url)
        self._filtered_engine = get_read_engine(self._meta.url, filtered=True)
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
        return self.get_fields()

    @fields.setter
    def fields(self, value) -> None:  # BaseProvider assigns it
        pass

    @staticmethod
    def _known_params(params: dict[str, Any], allowed: set[str] | frozenset[str]) -> None:
        """400 naming the first query parameter that is neither OGC's nor a queryable."""
        unknown = sorted(k for k in params if k not in allowed)
        if unknown:
            raise MISInvalidQuery(f"unknown query parameter {unknown[0]!r}: neither an OGC API parameter nor a "
                                  "queryable of this collection (see its /queryables)")

    # ------------------------------------------------------------------ SQL pieces
    def _t(self, name: str = "t"):
        """The view under an alias, made once per view: building an alias's column
        collection costs more than compiling a cached statement."""
        alias = self._meta.aliases.get(name)
        if alias is None:
            alias = self._meta.aliases[name] = self._meta.table.alias(name)
            alias.c  # noqa: B018 - populate the columns now, not in a request's thread
        return alias

    def _geometry_sql(self, crs_transform_spec, alias: str = "t") -> str:
        """The GeoJSON text of the feature's geometry ('null' for none)."""
        if not self.geom:
            return "'null'"
        geom = f"{alias}.{_quote(self.geom)}"
        if crs_transform_spec is not None:
            epsg, flip = _target_crs(crs_transform_spec)
            geom = f"ST_Transform({geom}, {epsg})"
            if flip:
                geom = f"ST_FlipCoordinates({geom})"
        return f"coalesce(ST_AsGeoJSON({geom}, {GEOJSON_DIGITS}), 'null')"

    def _value_sql(self, name: str, alias: str) -> str:
        """The JSON text of one column's value: output functions where they already write
        JSON (integers, booleans, json), the text of :data:`JSON_TEXT_COLUMNS`, ``to_json``
        (quoting, escaping) for the rest."""
        from sqlalchemy import types as T
        from sqlalchemy.dialects.postgresql import JSON, JSONB

        column = f"{alias}.{_quote(name)}"
        kind = self._meta.table.c[name].type
        if isinstance(kind, (T.Integer, T.Boolean, JSON, JSONB)):
            return f"coalesce({column}::text, 'null')"
        if name in JSON_TEXT_COLUMNS and isinstance(kind, T.String):
            return f"coalesce({column}, 'null')"
        if name in SERVER_PATH_COLUMNS and isinstance(kind, T.String):
            # the views write these paths of digits, commas and slashes only: quoted as they
            # are (to_json's escaping scan costs a fifth of a roxel page)
            prefix = _sql_literal(json.dumps(self.mis.get("base_url", ""))[:-1])
            return f"coalesce({prefix} || {column} || '\"', 'null')"
        if isinstance(kind, (T.Float, T.Numeric)):
            return f"coalesce({_real_json_sql(column, kind)}, 'null')"
        return f"coalesce(to_json({column})::text, 'null')"

    def _feature_sql(self, names: list[str], skip_geometry: bool, crs_transform_spec,
                     alias: str = "t") -> str:
        """One SQL expression writing a feature's GeoJSON text.

        Concatenation of JSON fragments (keys quoted here once, values by their output
        functions) rather than ``json_build_object``: PostgreSQL writes no spaces, builds no
        intermediate JSON value, and a JSON column's text (``composition``) goes in as it
        is. Every value is JSON (``to_json`` quotes strings and non-finite numbers)."""
        pieces = [_sql_literal('{"type":"Feature","id":'), self._value_sql(self.id_field, alias),
                  _sql_literal(',"geometry":'),
                  "'null'" if skip_geometry else self._geometry_sql(crs_transform_spec, alias)]
        for k, name in enumerate(names):
            key = ("," if k else "") + json.dumps(name) + ":"
            pieces += [_sql_literal(key if k else ',"properties":{' + key), self._value_sql(name, alias)]
        if not names:
            pieces.append(_sql_literal(',"properties":{'))
        pieces.append(_sql_literal("}"))
        parent = self.mis.get("parent")
        base = self.mis.get("base_url")
        if parent and base and parent.get("field") in self._meta.table.c and self.mis.get("feature_links", True):
            href = f"{base}/collections/{parent['collection']}/items/"
            pieces += [_sql_literal(',"links":[{"rel":"up","type":"application/geo+json","href":'
                                    + json.dumps(href)[:-1]),
                       f"{alias}.{_quote(parent['field'])}", _sql_literal('"}]')]
        pieces.append(_sql_literal("}"))
        return _concat(pieces)

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
        elif page and self.mis.get("default_properties"):
            wanted = set(self.mis["default_properties"])
            names = [n for n in names if n in wanted]
        if self.properties:
            names = [n for n in names if n in self.properties]
        return names

    def _where(self, t, *, bbox, datetime_, properties, filterq) -> list:
        conditions = []
        scheme = self.mis.get("scheme")
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
                    conditions.append(t.c[id_column].in_(_uri_ids(self._meta, uris)))
                else:
                    conditions.append(t.c[column].in_(uris))
            elif base in self._meta.concept_ids:
                ids = concept_ids_for(self._meta, name, [str(value)])
                conditions.append(t.c[self._meta.concept_ids[base]].in_(ids))
            elif name in self._meta.fields:
                conditions.append(t.c[name] == _convert(name, str(value), self._meta.fields[name]))
        if bbox:
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
        if datetime_ not in (None, "", "../.."):
            conditions.append(self._datetime_condition(t, datetime_))
        if filterq is not None:
            conditions.append(cql_to_sql(filterq, self._meta, t.c))
        return conditions

    def _points(self) -> bool:
        """Whether the geometry column is declared to hold points only (Point, PointZ ...)."""
        kind = getattr(self._meta.table.c[self.geom].type, "geometry_type", None) or ""
        return kind.upper().rstrip("ZM") == "POINT"

    def _datetime_condition(self, t, datetime_: str):
        """Features whose time property lies in the instant or interval (any RFC 3339 one,
        see :mod:`mis.api.datetimes`; a date column compares with the UTC dates)."""
        from sqlalchemy import types as T

        from mis.api.datetimes import parse_datetime

        if not self.time_field or self.time_field not in t.c:
            raise MISInvalidQuery("datetime: this collection has no time property")
        column = t.c[self.time_field]
        try:
            (begin, end), instant = parse_datetime(datetime_)
        except ValueError as exc:
            raise MISInvalidQuery(str(exc))
        dated = isinstance(column.type, T.Date) and not isinstance(column.type, T.DateTime)

        def value(moment: dt.datetime):
            return moment.date() if dated else moment

        if instant:
            return column == value(begin)
        parts = []
        if begin is not None:
            parts.append(column >= value(begin))
        if end is not None:
            parts.append(column <= value(end))
        return and_(*parts) if parts else true()

    def _keys(self) -> list[str]:
        """The columns a page is ordered by and its cursor names: ``(run_id, id)`` where
        the table is partitioned by run, else ``id``."""
        return [self._meta.by_run, self.id_field] if self._meta.by_run else [self.id_field]

    def _order(self, t, sortby: list[dict]) -> list:
        clauses = []
        for s in sortby or []:
            name = s["property"]
            if name not in t.c or name in (self.geom,):
                raise MISInvalidQuery(f"sortby: unknown property {name!r}")
            col = t.c[name]
            clauses.append(col.asc() if s.get("order", "+") == "+" else col.desc())
        keys = self._keys() if not clauses else [self.id_field]
        return clauses + [t.c[k].asc() for k in keys]

    def _cursor(self, value: str) -> list[int]:
        """The key values a ``cursor`` names (as written by :meth:`_next_links`)."""
        keys = self._keys()
        parts = value.split("_")
        try:
            if len(parts) != len(keys):
                raise ValueError
            return [bigint(v) for v in parts]
        except ValueError:
            shape = "_".join(f"<{k}>" for k in keys)
            raise MISInvalidQuery(f"cursor must be {shape} (integers), as written in a next link; got {value!r}")

    def _after(self, t, cursor: list[int]):
        """Rows after the cursor in key order."""
        if len(cursor) == 1:
            return t.c[self.id_field] > cursor[0]
        return tuple_(*(t.c[k] for k in self._keys())) > tuple_(*cursor)

    def _keyset_page(self, t, where: list, after: bool, names: list[str], skip_geometry: bool, crs_transform_spec):
        """A keyset page's statement: the feature's text, then the page's key values.

        Its values are bound at execution (``page_limit``; ``after_<key>`` of each key
        where ``after``; ``runs``, see below), so that the statement of an unfiltered page
        is built once per view and shape (:meth:`query` keeps it: building it costs 2 ms of
        a 10 ms page).

        A collection partitioned by run is read run after run, a batch of runs at a time
        (:meth:`_read_by_run`): for each run of the batch (``runs``) in key order, a
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
        if not self._meta.by_run:
            if after:
                where = [*where, t.c[ident] > bindparam(f"after_{ident}", type_=BigInteger)]
            feature_sql = self._feature_sql(names, skip_geometry, crs_transform_spec)
            return (select(literal_column(feature_sql), t.c[ident]).select_from(t).where(*where)
                    .order_by(t.c[ident]).limit(limit))
        runs = sql_table(partitions.RUNS, sql_column("id"), schema="public")
        run = self._meta.by_run
        batch = bindparam("runs", type_=ARRAY(BigInteger))
        inner = select(t).where(t.c[run] == runs.c.id, t.c[run] == func.any(batch), *where)
        if after:  # the cursor's run after its id (an index condition), the later runs whole
            after_run = bindparam(f"after_{run}", type_=BigInteger)
            after_id = bindparam(f"after_{ident}", type_=BigInteger)
            inner = inner.where(t.c[ident] > case((runs.c.id == after_run, after_id), else_=-2 ** 63))
        page = inner.order_by(t.c[ident]).limit(limit).lateral("p")
        feature_sql = self._feature_sql(names, skip_geometry, crs_transform_spec, "p")
        return (select(literal_column(feature_sql), page.c[run], page.c[ident])
                .select_from(runs.join(page, true())).where(runs.c.id == func.any(batch))
                .order_by(runs.c.id, page.c[ident]).limit(limit))

    def _read_by_run(self, conn, stmt, values: dict, cursor: list[int] | None, limit: int) -> list:
        """A page of a run-partitioned collection: :meth:`_keyset_page`'s statement over
        batches of runs, from the cursor's run on, until the page is full.

        The first batch is :data:`FIRST_RUNS` runs (a map's bbox or a plug's filter is
        usually filled by one); each next one is sized from what the runs so far yielded
        (1.5 times the runs the rest of the page would need at that rate), at most four
        times the last, so that a sparse filter gets there in a few statements."""
        start = cursor[0] if cursor else -2 ** 63
        size, rows = FIRST_RUNS, []
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

    # ------------------------------------------------------------------ reads
    def query(self, offset=0, limit=10, resulttype="results", bbox=[], datetime_=None, properties=[],
              sortby=[], select_properties=[], skip_geometry=False, q=None, filterq=None,
              crs_transform_spec=None, **kwargs):
        """A page of features; see the module docstring for what differs from pygeoapi's."""
        request = CURRENT_REQUEST.get()
        params = dict(request.params) if request is not None else {}
        self._known_params(params, PAGE_PARAMS | set(self.get_fields()))
        t = self._t()
        conditions = self._where(t, bbox=bbox, datetime_=datetime_, properties=properties, filterq=filterq)
        keyset = not sortby
        cursor = None
        if params.get(CURSOR_PARAM) not in (None, ""):
            if not keyset:
                raise MISInvalidQuery("cursor cannot be combined with sortby; use offset")
            cursor = self._cursor(str(params[CURSOR_PARAM]))
        if q:
            raise MISInvalidQuery("q (free text search) is not supported; use filter (CQL2)")

        response: dict[str, Any] = {"type": "FeatureCollection", "features": [], "numberReturned": 0}
        # numberMatched: asked for, or cheap; never on cursor pages (pygeoapi would read
        # numberMatched > offset + limit as "more pages" and add an offset link of its own)
        count = None
        if resulttype == "hits" or (self._meta.exact_count and cursor is None):
            count = select(func.count()).select_from(t).where(*conditions)
        stmt, values, by_run = None, {}, False
        if resulttype != "hits":
            names = self._names(select_properties)
            # every statement selects the feature's text, then the page's key values
            if keyset and not offset:
                shape = (self.mis.get("collection"), self.mis.get("base_url"), tuple(names), bool(skip_geometry),
                         getattr(crs_transform_spec, "target_crs_wkt", None), cursor is not None)
                stmt = None if conditions else self._meta.pages.get(shape)
                if stmt is None:
                    stmt = self._keyset_page(t, conditions, cursor is not None, names, skip_geometry,
                                             crs_transform_spec)
                    if not conditions:
                        self._meta.pages[shape] = stmt
                values = {"page_limit": limit + 1, **{f"after_{k}": v for k, v in zip(self._keys(), cursor or [])}}
                by_run = bool(self._meta.by_run)
            else:
                # The page's ids first, then features for them alone: PostgreSQL would
                # otherwise compute every skipped feature. The ids go back as an array
                # (``id = ANY(...)``), not as a join: on a table partitioned by run, a join
                # on id alone would be planned as a hash join over every partition. (With a
                # cursor, offset is what pygeoapi's own next links add: rows to skip after it.)
                where = list(conditions) + ([self._after(t, cursor)] if cursor is not None else [])
                page = (select(t.c[self.id_field]).select_from(t).where(*where)
                        .order_by(*self._order(t, sortby)).offset(offset).limit(limit + 1))
                f = self._t("f")
                feature_sql = self._feature_sql(names, skip_geometry, crs_transform_spec, "f")
                stmt = (select(literal_column(feature_sql), *(f.c[k] for k in self._keys()))
                        .where(f.c[self.id_field] == func.any(func.array(page.scalar_subquery())))
                        .order_by(*self._order(f, sortby)))

        def run(conn):
            matched = conn.execute(count).scalar_one() if count is not None else None
            if stmt is None:
                return matched, []
            if by_run:
                return matched, self._read_by_run(conn, stmt, values, cursor, limit)
            return matched, conn.execute(stmt, values).all()

        try:
            matched, rows = _read(self._filtered_engine if conditions or sortby else self._read_engine, run)
        except DBAPIError as exc:
            raise _db_error(exc)
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
            response["links"] = self._next_links(params, rows, keyset, offset, limit) if more else []
        return response

    def _next_links(self, params: dict, rows, keyset: bool, offset: int, limit: int) -> list[dict]:
        base = self.mis.get("base_url", "")
        href = f"{base}/collections/{self.mis.get('collection', '')}/items"
        keep = {k: v for k, v in params.items() if k not in ("offset", CURSOR_PARAM)}
        if keyset:
            keep[CURSOR_PARAM] = "_".join(str(v) for v in rows[-1][1:])
        else:
            keep["offset"] = str((offset or 0) + limit)
        keep.setdefault("limit", str(limit))
        return [{"type": "application/geo+json", "rel": "next", "title": "Items (next)",
                 "href": f"{href}?{urllib.parse.urlencode(keep)}"}]

    def get(self, identifier, crs_transform_spec=None, **kwargs):
        """One feature by id (404 for an id that is not there or not an integer)."""
        request = CURRENT_REQUEST.get()
        self._known_params(dict(request.params) if request is not None else {}, ITEM_PARAMS)
        try:
            ident = bigint(identifier)
        except ValueError:
            raise ProviderItemNotFoundError(user_msg=f"No such item: {self.id_field}={identifier}.")
        shape = ("item", self.mis.get("collection"), self.mis.get("base_url"),
                 getattr(crs_transform_spec, "target_crs_wkt", None))
        stmt = self._meta.pages.get(shape)
        if stmt is None:
            t = self._t()
            feature_sql = self._feature_sql(self._names(None, page=False), False, crs_transform_spec)
            conditions = [t.c[self.id_field] == bindparam("ident", type_=BigInteger)]
            if self.mis.get("scheme"):
                conditions.append(t.c.scheme == self.mis["scheme"])
            stmt = self._meta.pages[shape] = select(literal_column(feature_sql)).select_from(t).where(*conditions)
        try:
            row = _read(self._read_engine, lambda conn: conn.execute(stmt, {"ident": ident}).first())
        except DBAPIError as exc:
            raise _db_error(exc)
        if row is None:
            raise ProviderItemNotFoundError(user_msg=f"No such item: {self.id_field}={identifier}.")
        return json.loads(row[0])

    # ------------------------------------------------------------------ writes
    def create(self, item):
        """POST: register a new record (validation errors: 400 with the registration messages)."""
        from mis.api import writes

        return writes.create(self._write_context(), item)

    def update(self, identifier, item):
        """PUT: replace a record through the registration service."""
        from mis.api import writes

        return writes.replace(self._write_context(), identifier, item)

    def delete(self, identifier):
        """DELETE: refused while children exist unless ``?cascade=true``."""
        from mis.api import writes

        return writes.remove(self._write_context(), identifier)

    def _write_context(self):
        """The context of a write, once the request is authorised: the token is checked
        here, where the write happens, on the request's own headers."""
        from http import HTTPStatus

        from mis.api.auth import WriteRefused, authorise_write
        from mis.api.writes import WriteContext, WriteError

        request = CURRENT_REQUEST.get()
        try:
            authorise_write(getattr(request, "mis_tokens", None), getattr(request, "mis_raw_headers", None))
        except WriteRefused as exc:
            raise WriteError(str(exc), HTTPStatus(exc.status), exc.code)
        kind = self.mis.get("kind")
        if not kind:
            raise MISInvalidQuery("this collection is read-only")
        params = dict(request.params) if request is not None else {}
        return WriteContext(kind=kind, url=self._meta.url, engine=self._engine, params=params,
                            columns=list(self._meta.fields))

    def __repr__(self) -> str:
        return f"<MISProvider> {self.table}"


def _target_crs(spec) -> tuple[int, bool]:
    """EPSG code of a CrsTransformSpec's target, and whether its first axis is latitude."""
    import pyproj

    crs = pyproj.CRS.from_wkt(spec.target_crs_wkt)
    epsg = crs.to_epsg()
    if epsg is None:
        raise MISInvalidQuery("crs: only CRSs with an EPSG code are supported")
    first = crs.axis_info[0].direction.lower() if crs.axis_info else "east"
    return epsg, first in ("north", "south")
