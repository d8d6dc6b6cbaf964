"""docs/architecture.md shows the schema as the models define it."""

from pathlib import Path

from mis.catalogue.erd import embed, mermaid

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def test_architecture_diagram_matches_the_models():
    text = DOC.read_text()
    assert embed(text) == text, "run: python -m mis.catalogue.erd --write docs/architecture.md"


def test_every_table_and_foreign_key_is_drawn():
    diagram = mermaid()
    for table in ("deposit", "drillcore", "plug", "image", "segmentation_run", "grain", "roxel", "concept"):
        assert f"    {table} {{" in diagram
    assert 'drillcore ||--o{ plug : "drillcore_id"' in diagram
