"""Publication views rebuilt: roxels carry their drill core (id and name).

Revision ID: 0004
Revises: 0003

The views are read from schema/ at run time, so this re-installs the current ones; a
modeller can then ask for "roxels of hole QA-001 between 100 and 200 m" in one filter.
"""

from __future__ import annotations

from alembic import op

from mis.catalogue import views

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    views.install(op)


def downgrade() -> None:
    views.install(op)  # the views of schema/ are the only ones there are
