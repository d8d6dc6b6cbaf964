"""MIS's options of one collection: the ``mis:`` block of its provider in ``pygeoapi-config.yml``.

pygeoapi passes a provider's configuration through as a plain dict; read with ``.get`` in
many places, a misspelt key (``feature_link: false``) would be silently ignored and the
collection served otherwise than configured. :class:`CollectionOptions` names every key
and its type, refuses any other (``extra="forbid"``), and :func:`validate_collections`
checks each collection when the configuration is built, naming the collection and key.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["CollectionOptions", "Parent", "options_of", "validate_collections"]


class Parent(BaseModel):
    """The collection each feature links up to (``rel=up``), and the property naming it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    collection: str
    field: str


class CollectionOptions(BaseModel):
    """The ``mis:`` block of a collection's provider (see the comment atop the template)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: What writes to this collection register (none: the collection is read-only).
    kind: Literal["deposits", "collars", "surveys", "samples"] | None = None
    #: The collection each feature links up to.
    parent: Parent | None = None
    #: False: leave the per-feature ``up`` link out (big collections: the property says it).
    feature_links: bool = True
    #: The table whose estimated size decides whether ``numberMatched`` is counted exactly.
    count_table: str | None = None
    #: The run column of a view over a table partitioned by run (pages read run by run).
    partitioned_by: str | None = None
    #: The properties a page's features carry unless ``properties=`` asks for others.
    default_properties: tuple[str, ...] = ()
    #: The concept scheme a vocabulary collection shows (rows of ``pub.concepts``).
    scheme: str | None = None
    #: Filled in by :func:`mis.api.config.build_config`: the server's public URL and the
    #: collection's id (for links the provider writes).
    base_url: str = ""
    collection: str = ""


def _problem(collection: str, error: ValidationError) -> str:
    """One line for the first problem, a misspelt key before any other."""
    problems = sorted(error.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = problems[0]
    key = ".".join(str(part) for part in first["loc"]) or "mis"
    if first["type"] == "extra_forbidden":
        model = Parent if first["loc"][:1] == ("parent",) else CollectionOptions
        return f"collection {collection!r}: unknown key mis.{key} (known: {', '.join(model.model_fields)})"
    return f"collection {collection!r}: mis.{key}: {first['msg']}"


def options_of(collection: str, block: Any) -> CollectionOptions:
    """The validated options of ``block`` (a provider's ``mis:``; None: the defaults);
    ValueError naming the collection and the key."""
    try:
        return CollectionOptions.model_validate(block or {})
    except ValidationError as exc:
        raise ValueError(_problem(collection, exc)) from None


def validate_collections(config: dict[str, Any]) -> None:
    """Check every provider's ``mis:`` block of a pygeoapi configuration (ValueError)."""
    for cid, resource in (config.get("resources") or {}).items():
        for provider in resource.get("providers") or []:
            if "mis" in provider:
                options_of(cid, provider["mis"])
