"""The project files the package needs at run time: migrations, SQL views, ontology, API template.

The repository keeps them where the project layout names them (top-level ``alembic/``,
``schema/``, ``ontology/``, ``pygeoapi-config.yml``); a wheel ships copies of them as
``mis/_data/`` (copied at build time by ``setup.py``). :func:`path` returns the shipped
copy in a wheel install and the checkout's own in an editable install or a source tree,
so an installed package never reaches back into a checkout, and an edit in the checkout is
seen at once while developing.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: What a wheel ships under ``mis/_data/`` (each a top-level file or folder of the project).
SHIPPED: tuple[str, ...] = ("alembic", "schema", "ontology", "pygeoapi-config.yml")


def checkout() -> Path | None:
    """The source tree this package runs from (``src/mis`` in it), or None when installed."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "src" / "mis").is_dir() else None


def path(name: str) -> Path:
    """Where the project file or folder ``name`` (one of :data:`SHIPPED`) is for this install.

    The copy inside the package (``mis/_data/name``) when the package has one, else the
    checkout's. Whether it exists is the caller's check (its error names the ``MIS_*``
    setting that overrides it).
    """
    if name not in SHIPPED:
        raise ValueError(f"{name!r} is not shipped with the package (one of {', '.join(SHIPPED)})")
    shipped = Path(str(resources.files("mis") / "_data" / name))
    root = checkout()
    return root / name if root is not None and not shipped.exists() else shipped
