"""CQL2 filters of the feature provider: limits, MIS's rewrites, and SQL.

A parsed filter (pygeofilter's AST, from CQL2 text or JSON) is checked for depth, then
rewritten (:func:`rewrite_cql`) before pygeofilter turns it into a SQLAlchemy condition
with every value a bound parameter (:func:`cql_to_sql`):

- hierarchy queryables (``lithology_broader = 'igneous rock'``) become ``X_uri IN (...)``
  over the concept and every narrower one (:mod:`mis.api.terms`);
- where a view publishes a classification's integer concept id beside it
  (``dominantClass`` + ``dominantClass_id``), equality and ``IN`` on the label or URI
  become ``X_id IN (...)``, which the big tables index;
- geometries in CRS84 (pygeoapi's name for the storage CRS, which PostGIS cannot read as
  an SRID) are given EPSG:4326, the views' SRID with the same axis order.

Anything the filter cannot mean is a :class:`~mis.api.errors.MISInvalidQuery` (400).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import shapely.geometry
from pygeofilter import ast, values
from pygeofilter.backends.sqlalchemy.evaluate import SQLAlchemyFilterEvaluator
from sqlalchemy import true
from sqlalchemy.sql.elements import ClauseElement

from mis.api.errors import MISInvalidQuery
from mis.api.meta import ViewMeta
from mis.api.terms import concept_ids_for, narrower_uris, uri_ids

__all__ = ["MAX_CQL_DEPTH", "cql_depth", "cql_to_sql", "rewrite_cql"]

#: Deepest CQL2 expression a filter may be (each level is a recursion in translation and
#: in SQL compilation; no real filter comes near it).
MAX_CQL_DEPTH = 64


def _storage_geometry(node: values.Geometry) -> values.Geometry:
    """A filter's geometry in the views' SRID (400 for an invalid one or another CRS)."""
    geometry = dict(node.geometry)
    try:
        shape = shapely.geometry.shape(geometry)
        if shape.is_empty:
            raise ValueError("empty geometry")
    except Exception as exc:  # noqa: BLE001 - shapely raises many kinds
        raise MISInvalidQuery(f"filter: not a valid geometry ({str(exc)[:120]})") from None
    name = str(geometry.get("crs", {}).get("properties", {}).get("name", ""))
    if not name or "CRS84" in name.upper() or name.endswith("::4326"):
        geometry["crs"] = {"properties": {"name": "urn:ogc:def:crs:EPSG::4326"}}
    else:
        raise MISInvalidQuery(f"filter geometry in an unexpected CRS {name!r}: use filter-crs")
    return values.Geometry(geometry)


def rewrite_cql(node: Any, meta: ViewMeta) -> Any:
    """``node`` with MIS's rewrites (see the module docstring) applied throughout."""
    if isinstance(node, values.Geometry):
        return _storage_geometry(node)
    if isinstance(node, ast.BBox):
        return replace(node, lhs=rewrite_cql(node.lhs, meta), crs=None)
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
            return ast.In(ast.Attribute(meta.concept_ids[base]), uri_ids(meta, uris), False)
        return ast.In(ast.Attribute(column), uris, False)
    by_id = _id_column(meta, node)
    if by_id is not None:
        return by_id
    if isinstance(node, ast.Node) and hasattr(node, "__dataclass_fields__"):
        changes = {}
        for name in node.__dataclass_fields__:
            value = getattr(node, name)
            if isinstance(value, (ast.Node, values.Geometry)):
                changes[name] = rewrite_cql(value, meta)
            elif isinstance(value, list):
                changes[name] = [rewrite_cql(v, meta) if isinstance(v, (ast.Node, values.Geometry)) else v
                                 for v in value]
        return replace(node, **changes) if changes else node
    return node


def _id_column(meta: ViewMeta, node: Any) -> Any:
    """``dominantClass = 'Ccp'`` / ``IN (...)`` (or on the ``_uri``) as a condition on the
    concept id column, which the big tables index; None when the node is not one."""
    if not meta.concept_ids or not isinstance(node, (ast.Equal, ast.In)) or not isinstance(node.lhs, ast.Attribute):
        return None
    name = node.lhs.name
    base = name[:-4] if name.endswith("_uri") else name
    if base not in meta.concept_ids:
        return None
    listed = [node.rhs] if isinstance(node, ast.Equal) else list(node.sub_nodes)
    if not all(isinstance(v, str) for v in listed):
        return None
    ids = concept_ids_for(meta, name, listed)
    return ast.In(ast.Attribute(meta.concept_ids[base]), ids, isinstance(node, ast.In) and node.not_)


def cql_depth(node: Any) -> int:
    """Depth of a parsed CQL2 expression, counted without recursion (and no further than
    just past :data:`MAX_CQL_DEPTH`)."""
    deepest, todo = 0, [(node, 1)]
    while todo:
        current, depth = todo.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_CQL_DEPTH:
            return deepest
        if isinstance(current, ast.Node):
            todo += [(child, depth + 1) for child in current.get_sub_nodes() if isinstance(child, ast.Node)]
    return deepest


def cql_to_sql(filterq: Any, meta: ViewMeta, columns: Any) -> Any:
    """A SQLAlchemy condition for a parsed CQL2 filter; 400 for anything it cannot mean."""
    if not isinstance(filterq, ast.Node):  # e.g. a POSTed JSON list or number
        raise MISInvalidQuery("filter: not a CQL2 expression (give an object such as "
                              '{"op": "=", "args": [{"property": "name"}, "x"]})')
    if cql_depth(filterq) > MAX_CQL_DEPTH:
        raise MISInvalidQuery(f"filter: nested deeper than {MAX_CQL_DEPTH} levels")
    node = rewrite_cql(filterq, meta)
    mapping = {name: columns[name] for name in columns.keys()}
    try:
        condition = SQLAlchemyFilterEvaluator(mapping, undefined_as_null=False).evaluate(node)
    except KeyError as exc:
        name = exc.args[0] if exc.args else "?"
        known = ", ".join(sorted(set(meta.fields) | set(meta.hierarchy)))
        raise MISInvalidQuery(f"unknown property or function in filter: {name!r} (queryables: {known})") from None
    except MISInvalidQuery:
        raise
    except Exception as exc:  # noqa: BLE001 - pygeofilter raises plain exceptions for what it cannot translate
        raise MISInvalidQuery(f"cannot apply this filter: {type(exc).__name__}: {str(exc)[:200]}") from None
    if isinstance(condition, bool):
        return true() if condition else ~true()
    if not isinstance(condition, ClauseElement):
        raise MISInvalidQuery(f"filter: not a condition ({type(condition).__name__})")
    return condition
