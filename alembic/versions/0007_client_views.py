"""Publication views rebuilt for real clients: own ids, links to pixels and images, dated traces.

Revision ID: 0007
Revises: 0006

Every view carries its feature's id as a named property too (``deposit_id`` of a deposit,
``plug_id`` of a plug, ``grain_id`` of a grain ...): QGIS 3.22 numbers the features it
reads itself and shows no feature id. ``pub.grains`` gains ``pixelWindow`` (the grain's box in level-0 pixels, [y, x, height,
width], as roxels have it) and ``imageRegion``, ``pub.roxels`` gains ``imageRegion`` (the
IIIF Image API request of those pixels, a path the API makes absolute), ``pub.plugs``
``iiifManifest`` (the plug's IIIF manifest, where it has images), and
``pub.drillcore_traces`` the drilling dates (``drillStartDate``, ``drillEndDate``: the
traces' time, so they take ``datetime`` filters and have a temporal extent). The views are
read from schema/ at run time, so this re-installs the current ones.
"""

from __future__ import annotations

from alembic import op

from mis.catalogue import views

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    views.install(op)


def downgrade() -> None:
    views.install(op)  # the views of schema/ are the only ones there are
