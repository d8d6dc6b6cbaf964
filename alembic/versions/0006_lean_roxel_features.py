"""Publication views rebuilt: roxel composition built without aggregation, LEFT joins.

Revision ID: 0006
Revises: 0005

``pub.roxels`` names a roxel's fractions by concatenation (``pub.named_fractions``,
inlined; zero fractions left out) instead of unnest + ``jsonb_object_agg`` per row, writes
``composition`` and ``pixelWindow`` as JSON text (the API reads them as JSON, without a
cast that would parse each again), and joins its class, run, image, plug and drill core with
LEFT joins (the same rows: every roxel has them), which PostgreSQL drops from a query that
does not read their columns (counts, the ids of an offset page, a page's lean default
properties). The views are read from schema/ at run time, so this re-installs the current
ones.
"""

from __future__ import annotations

from alembic import op

from mis.catalogue import views

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    views.install(op)


def downgrade() -> None:
    views.install(op)  # the views of schema/ are the only ones there are
