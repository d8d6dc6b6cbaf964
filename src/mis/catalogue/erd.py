"""The catalogue's ER diagram, generated from the models (Mermaid ``erDiagram``).

``docs/architecture.md`` embeds the output between markers; a test regenerates it and
fails when the document and the models disagree, so the diagram cannot go stale.
Run ``python -m mis.catalogue.erd --write docs/architecture.md`` after a schema change.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from sqlalchemy import Table

from mis.catalogue.models import Base

BEGIN, END = "<!-- erd:begin -->", "<!-- erd:end -->"


def _type(column) -> str:
    name = type(column.type).__name__
    if name == "Geometry":
        return column.type.geometry_type.lower().replace("z", "Z") if column.type.geometry_type else "geometry"
    if name == "ARRAY":
        return f"{type(column.type.item_type).__name__.lower()}_array"
    return name.lower()


def _references(table: Table) -> list[tuple[str, str]]:
    """(referenced table, column) of each foreign key, and of each link a partitioned
    table keeps by other means (``info["references"]`` on the column; see models.Roxel)."""
    refs = [(fk.column.table.name, fk.parent.name) for fk in table.foreign_keys]
    refs += [(c.info["references"].split(".")[0], c.name) for c in table.columns if "references" in c.info]
    return refs


def _entity(table: Table) -> list[str]:
    fks = {column for _, column in _references(table)}
    lines = [f"    {table.name} {{"]
    for column in table.columns:
        keys = ",".join(k for k, on in (("PK", column.primary_key), ("FK", column.name in fks)) if on)
        lines.append(f"        {_type(column)} {column.name}{' ' + keys if keys else ''}")
    lines.append("    }")
    return lines


def mermaid() -> str:
    """The whole schema as a Mermaid erDiagram: entities, then one relation per foreign key."""
    lines = ["erDiagram"]
    tables = sorted(Base.metadata.tables.values(), key=lambda t: t.name)
    for table in tables:
        lines += _entity(table)
    relations = sorted((parent, table.name, column) for table in tables for parent, column in _references(table))
    for parent, child, column in relations:
        lines.append(f'    {parent} ||--o{{ {child} : "{column}"')
    return "\n".join(lines)


def embed(document: str) -> str:
    """``document`` with the diagram between the markers replaced by the current one."""
    block = f"{BEGIN}\n```mermaid\n{mermaid()}\n```\n{END}"
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(document):
        raise ValueError(f"the document has no {BEGIN} ... {END} markers")
    return pattern.sub(lambda _m: block, document)


def main() -> None:
    parser = argparse.ArgumentParser(description="Print or embed the catalogue ER diagram.")
    parser.add_argument("--write", type=Path, help="Markdown file whose erd markers to update")
    args = parser.parse_args()
    if args.write:
        args.write.write_text(embed(args.write.read_text()))
    else:
        print(mermaid())


if __name__ == "__main__":
    main()
