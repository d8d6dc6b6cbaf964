"""Publication views: the schema ``pub`` that OGC API - Features serves (schema/*.sql).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 09:00:00.000000
"""

from __future__ import annotations

from alembic import op

from mis.catalogue import views

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    views.install(op)


def downgrade() -> None:
    views.drop(op)
