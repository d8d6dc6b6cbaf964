"""The short name of a vocabulary URI, for tables, legends and logs.

A module of its own (no rdflib, no database) because the CLI, the segmentation reports
and the ingestion logs all print short names and must not pay for loading a vocabulary.
"""

from __future__ import annotations

__all__ = ["local_name"]


def local_name(uri: str) -> str:
    """The last segment of a URI: after the last ``/``, then after a ``#``
    (``https://w3id.org/mis/mineral/quartz`` -> ``quartz``, ``...#Ccp`` -> ``Ccp``)."""
    return uri.rstrip("/").rsplit("/", 1)[-1].rsplit("#", 1)[-1]
