"""Set-up is complete: every system program and file MIS or its tests use comes from the list.

CI runs on a machine that keeps whatever was ever installed on it, so a package installed
by hand once hides a missing install step forever (the PostGIS extension did: the list had
``postgis``, which holds only client tools). This test makes the suite itself notice: for
each system path used, it asks dpkg which package owns it and asserts that package is in the
dependency closure of ``scripts/debian-packages.txt`` *without* Recommends, exactly what
``scripts/setup.sh`` installs with ``--no-install-recommends``.

A test or module that starts using another system program or file adds it to
:data:`REQUIREMENTS`.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

import pytest

from mis.catalogue.postgres import PostgresError, find_bindir, postgis_files

LIST = Path(__file__).resolve().parents[1] / "scripts" / "debian-packages.txt"

pytestmark = pytest.mark.skipif(shutil.which("dpkg") is None, reason="not a Debian system (no dpkg)")


def debian_packages(path: Path = LIST) -> list[str]:
    """The package names in the list, as ``scripts/setup.sh`` reads them (``#`` starts a comment)."""
    names = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return [n for n in names if n]


def _program(name: str) -> Callable[[], Path]:
    def locate() -> Path:
        found = shutil.which(name)
        assert found, f"{name} is not on PATH"
        return Path(found)

    return locate


def _server(name: str) -> Callable[[], Path]:
    return lambda: find_bindir() / name


def _qgis_core() -> Path:
    """The ``qgis.core`` package that ``/usr/bin/python3`` imports (the bindings tests/qgis_client.py uses)."""
    out = subprocess.run(["/usr/bin/python3", "-c", "import qgis.core; print(qgis.core.__file__)"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, f"/usr/bin/python3 cannot import qgis.core: {out.stderr.strip()[-300:]}"
    return Path(out.stdout.strip())


def _postgis(index: int) -> Callable[[], Path]:
    return lambda: postgis_files(find_bindir())[index]


#: What the package and its tests use from the system, with how to find each.
REQUIREMENTS: dict[str, Callable[[], Path]] = {
    "PostgreSQL server (postgres)": _server("postgres"),
    "initdb": _server("initdb"),
    "pg_ctl": _server("pg_ctl"),
    "postgis.control": _postgis(0),
    "PostGIS library": _postgis(1),
    "ogrinfo (GDAL's OGC API client)": _program("ogrinfo"),
    "ogr2ogr (the guides' GeoPackage recipe)": _program("ogr2ogr"),
    "chromium (web page tests)": _program("chromium"),
    "qgis (QGIS, the OGC API client of tests/test_qgis.py)": _program("qgis"),
    "QGIS Python bindings (tests/qgis_client.py)": _qgis_core,
    "curl (the guides' HTTP recipes)": _program("curl"),
    "psql (the README's recipe)": _program("psql"),
    "useradd (the unprivileged server user, when run as root)": _program("useradd"),
    "bash (scripts, guide recipes)": _program("bash"),
    "g++ (torch.compile's C++ backend, the forest's fast path)": _program("g++"),
}


def _playwright_node() -> Path:
    from playwright._impl._driver import compute_driver_executable

    return Path(compute_driver_executable()[0])


#: Binaries whose shared libraries must come from the list too: the programs above, and
#: those that Python packages ship (Playwright's node driver needs libatomic.so.1, which a
#: minimal Debian lacks).
BINARIES: dict[str, Callable[[], Path]] = {
    **{k: REQUIREMENTS[k] for k in ("PostgreSQL server (postgres)", "PostGIS library",
                                    "ogrinfo (GDAL's OGC API client)", "chromium (web page tests)")},
    "Playwright's node driver": _playwright_node,
}


def _spellings(path: Path) -> list[str]:
    """``path``, what it links to, and their other spelling under merged /usr (dpkg knows
    ``/bin/bash`` and ``/usr/lib/x86_64-linux-gnu/libatomic.so.1``, ldd and PATH may say
    ``/usr/bin/bash`` and ``/lib/x86_64-linux-gnu/libatomic.so.1``)."""
    out = []
    for p in dict.fromkeys([str(path), str(path.resolve())]):
        out += [p, p.removeprefix("/usr")] if p.startswith("/usr/") else [p, "/usr" + p]
    return list(dict.fromkeys(out))


def owners(paths: list[Path]) -> dict[Path, str | None]:
    """The Debian package that installed each path (one dpkg call for all)."""
    spellings = {p: _spellings(p) for p in paths}
    out = subprocess.run(["dpkg", "-S", *{s for v in spellings.values() for s in v}],
                         capture_output=True, text=True, check=False)
    by_file: dict[str, str] = {}
    for line in out.stdout.splitlines():
        if line.startswith("diversion by") or ": " not in line:
            continue
        packages, file = line.split(": ", 1)
        by_file[file.strip()] = packages.split(",")[0].split(":")[0].strip()
    return {p: next((by_file[s] for s in spellings[p] if s in by_file), None) for p in paths}


def owner(path: Path) -> str | None:
    """The Debian package that installed ``path`` (or the file a symlink points to)."""
    return owners([path])[path]


@functools.cache
def in_every_debian(package: str) -> bool:
    """Essential or priority-required packages: on every Debian, debootstrap minbase included."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Essential} ${Priority}", package],
                         capture_output=True, text=True, check=False).stdout.split()
    return "yes" in out or "required" in out


@functools.cache
def closure(packages: tuple[str, ...]) -> frozenset[str]:
    """Every package that installing ``packages`` with ``--no-install-recommends`` pulls in."""
    out = subprocess.run(
        ["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
         "--no-breaks", "--no-replaces", "--no-enhances", *packages],
        capture_output=True, text=True, check=True,
    )
    return frozenset(line.strip() for line in out.stdout.splitlines() if line and not line[0].isspace())


def brought_by_the_list(package: str | None) -> bool:
    """Whether installing the list (without Recommends) on any Debian gives ``package``."""
    return bool(package) and (package in closure(tuple(debian_packages())) or in_every_debian(package))


def test_the_list_parses_like_setup_sh_reads_it() -> None:
    script = (
        "mapfile -t P < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' -e 's/[[:space:]]//g' "
        f"'{LIST}'); printf '%s\\n' \"${{P[@]}}\""
    )
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split() == debian_packages()
    assert "postgresql-postgis" in debian_packages(), "the PostGIS extension, not only its client tools"


@pytest.mark.parametrize("what", list(REQUIREMENTS))
def test_every_system_requirement_comes_from_the_list(what: str) -> None:
    path = REQUIREMENTS[what]()
    assert path.exists(), f"{what}: {path} does not exist; run scripts/setup.sh"
    package = owner(path)
    assert package, f"{what}: {path} belongs to no Debian package; it must come from scripts/debian-packages.txt"
    assert brought_by_the_list(package), (
        f"{what}: {path} comes from the Debian package {package}, which installing "
        f"scripts/debian-packages.txt ({' '.join(debian_packages())}) with --no-install-recommends does not bring: "
        "add it (or a package that depends on it) to the list"
    )


@pytest.mark.parametrize("what", list(BINARIES))
def test_shared_libraries_come_from_the_list(what: str) -> None:
    binary = BINARIES[what]()
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False).stdout
    assert "not found" not in out, f"{what} ({binary}) misses shared libraries:\n{out}"
    libraries = [Path(line.split("=>", 1)[1].split("(")[0].strip()) for line in out.splitlines()
                 if "=>" in line and "/" in line.split("=>", 1)[1]]
    strays = {str(lib): package for lib, package in owners(libraries).items() if not brought_by_the_list(package)}
    assert not strays, (
        f"{what} ({binary}) loads libraries that installing scripts/debian-packages.txt does not bring "
        f"(library: owning package): {strays}; add those packages to the list"
    )


def test_the_interpreter_is_python_3_11() -> None:
    # The interpreter itself may come from Debian (python3 + python3-venv in the list) or
    # from elsewhere (pyenv); what MIS needs of it is the version setup.sh checks.
    assert sys.version_info[:2] == (3, 11)
    if sys.base_prefix == "/usr":  # Debian's: venv needs python3-venv, torch.compile Python.h
        for needed in (Path(f"/usr/lib/python3.{sys.version_info[1]}/ensurepip/__init__.py"),
                       Path(sysconfig.get_paths()["include"]) / "Python.h"):
            assert brought_by_the_list(owner(needed)), f"{needed} ({owner(needed)}) is not from the list"
    else:  # an interpreter of its own (pyenv, a build): it brings its headers itself
        assert (Path(sysconfig.get_paths()["include"]) / "Python.h").exists(), "torch.compile needs Python.h"


def test_a_server_without_postgis_names_the_missing_file_and_its_package(tmp_path: Path) -> None:
    # A PostgreSQL 15 installation laid out as Debian does, but without the extension.
    bindir = tmp_path / "lib" / "postgresql" / "15" / "bin"
    bindir.mkdir(parents=True)
    (bindir / "postgres").write_text("")
    share = tmp_path / "share" / "postgresql" / "15"
    (share / "extension").mkdir(parents=True)
    pg_config = bindir / "pg_config"
    pg_config.write_text(
        f"#!/bin/sh\ncase $1 in --sharedir) echo {share};; --pkglibdir) echo {bindir.parent / 'lib'};; esac\n")
    pg_config.chmod(0o755)
    with pytest.raises(PostgresError) as err:
        find_bindir([bindir])
    message = str(err.value)
    assert f"postgis.control not found in {share / 'extension'}: install postgresql-15-postgis-3" in message
    assert "postgis-3.so not found" in message and "(or postgresql-postgis)" in message
