"""Alembic environment: the MIS models are the target; PostGIS objects are not ours."""

from __future__ import annotations

from alembic import context
from geoalchemy2 import alembic_helpers
from sqlalchemy import create_engine, pool

from mis.catalogue.locate import database_url
from mis.catalogue.models import Base
from mis.catalogue.partitions import is_partition

config = context.config
target_metadata = Base.metadata

#: Tables created by the postgis extension itself (never ours to drop or compare).
POSTGIS_TABLES = {"spatial_ref_sys", "topology", "layer"}


def include_object(obj, name, obj_type, reflected, compare_to):  # noqa: ANN001
    if obj_type == "table" and (name in POSTGIS_TABLES or is_partition(name)):
        return False
    return alembic_helpers.include_object(obj, name, obj_type, reflected, compare_to)


def run_migrations_online() -> None:
    url = config.attributes.get("url") or database_url()
    connectable = config.attributes.get("connection") or create_engine(url, poolclass=pool.NullPool)
    options = dict(
        target_metadata=target_metadata,
        include_object=include_object,
        process_revision_directives=alembic_helpers.writer,
        render_item=alembic_helpers.render_item,
        compare_type=True,
        compare_server_default=False,
    )
    if hasattr(connectable, "connect") and not hasattr(connectable, "execute"):
        with connectable.connect() as connection:
            context.configure(connection=connection, **options)
            with context.begin_transaction():
                context.run_migrations()
    else:
        context.configure(connection=connectable, **options)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
