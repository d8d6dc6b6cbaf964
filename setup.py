"""Build hook: the wheel ships the project's run-time files as ``mis/_data/`` (see :mod:`mis.resources`).

The repository keeps ``alembic/``, ``schema/``, ``ontology/`` and ``pygeoapi-config.yml`` at
the top level, where the project layout names them; package data cannot reach outside the
package, so ``build_py`` copies them into the built package instead. Everything else is
in ``pyproject.toml``. An editable install gets no copies: it reads the checkout's own.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: The same names as ``mis.resources.SHIPPED`` (tests/test_wheel.py checks the wheel has each).
SHIPPED = ("alembic", "schema", "ontology", "pygeoapi-config.yml")


class BuildPyWithProjectFiles(build_py):
    """``build_py`` plus a copy of each shipped project file into ``<build>/mis/_data/``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "mis" / "_data"
        shutil.rmtree(target, ignore_errors=True)  # no stale files from an earlier build
        target.mkdir(parents=True)
        for name in SHIPPED:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(source, target / name)


setup(cmdclass={"build_py": BuildPyWithProjectFiles})
