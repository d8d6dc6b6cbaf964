"""A wheel install works from another folder and never reads the checkout.

The wheel is built from a copy of the project (so the checkout gets no ``build/``), installed
without its dependencies into a fresh venv, and the dependencies are made importable from
this interpreter's site-packages through a ``.pth`` line. A plain path line does not run
the ``.pth`` files inside that folder, so the editable install of the checkout stays unseen:
the ``mis`` imported is the wheel's. ``mis demo --small --no-serve`` then runs there against
the test database while an audit hook records every file the process opens.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from mis import resources

REPO = Path(__file__).resolve().parents[1]
#: What the build needs from the project (setup.py copies the shipped files into the wheel).
BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "src", *resources.SHIPPED)

#: Runs in the new venv: mis's resources, then the demo under an audit hook of every open.
PROBE = """
import json, sys
opened = []
sys.addaudithook(lambda event, args: opened.append(args[0]) if event == "open" and isinstance(args[0], str) else None)
import mis
from mis import resources
from mis.api.config import template_path
found = {"mis": mis.__file__, "template": str(template_path()),
         **{name: str(resources.path(name)) for name in resources.SHIPPED}}
from mis.cli import app
try:
    app(["demo", "--small", "--no-serve"], prog_name="mis")
except SystemExit as exc:
    found["exit"] = exc.code
found["opened"] = sorted(set(opened))
with open(sys.argv[1], "w") as fh:
    json.dump(found, fh)
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("wheel-src")
    for name in BUILD_INPUTS:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        else:
            shutil.copy2(path, src / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(src)], check=True, capture_output=True, text=True, env=_clean_env(), timeout=600)
    (built,) = out.glob("mis-*.whl")
    return built


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without PYTHONPATH (which points at the checkout's src/)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return {**env, **extra}


def test_the_wheel_ships_the_project_files(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for name in resources.SHIPPED:
        assert any(n == f"mis/_data/{name}" or n.startswith(f"mis/_data/{name}/") for n in names), name
    assert "mis/_data/alembic/env.py" in names and "mis/_data/ontology/mineral.ttl" in names
    assert "mis/vocab/data/mis-schemes.yml" in names
    assert not [n for n in names if "__pycache__" in n]


@pytest.mark.slow
def test_a_wheel_install_runs_the_demo_from_another_folder_without_the_checkout(wheel, db_url, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    new_site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   check=True, capture_output=True, text=True, env=_clean_env()).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(new_site), str(wheel)],
                   check=True, capture_output=True, text=True, env=_clean_env(), timeout=300)
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()}
    (new_site / "mis-deps.pth").write_text("".join(f"{p}\n" for p in sorted(ours) if Path(p).is_dir()))
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    report = tmp_path / "probe.json"
    result = subprocess.run(
        [str(python), "-c", PROBE, str(report)], cwd=cwd, capture_output=True, text=True, timeout=900,
        env=_clean_env(MIS_DATABASE_URL=db_url, MIS_HOME=str(tmp_path / "home")))
    assert result.returncode == 0 and report.is_file(), result.stdout[-3000:] + result.stderr[-3000:]
    found = json.loads(report.read_text())
    assert found.get("exit") in (None, 0), result.stdout[-3000:] + result.stderr[-3000:]
    assert "sample deposit" in result.stdout, result.stdout[-3000:]
    assert Path(found["mis"]).is_relative_to(new_site)
    for name in (*resources.SHIPPED, "template"):
        assert Path(found[name]).is_relative_to(new_site / "mis" / "_data"), (name, found[name])
    # the dependencies' site-packages may lie inside the checkout (its .venv): those are not the checkout's files
    deps = [Path(p) for p in ours]
    from_checkout = [p for p in found["opened"] if Path(p).is_absolute() and Path(p).is_relative_to(REPO)
                     and not any(Path(p).is_relative_to(d) for d in deps)]
    assert not from_checkout, from_checkout[:20]
    elsewhere_mis = [p for p in found["opened"] if "/src/mis/" in p]
    assert not elsewhere_mis, elsewhere_mis[:20]
