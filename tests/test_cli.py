"""Every verb of `mis` documents itself with an example."""

from __future__ import annotations

import typer.main
from typer.testing import CliRunner

from mis.cli import app

runner = CliRunner()


def _commands(group, prefix=()):
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name)


def test_top_level_help_lists_the_verbs():
    out = runner.invoke(app, ["--help"]).output
    for verb in ("db", "vocab", "register", "export", "demo", "delete"):
        assert verb in out


def test_every_verb_has_help_with_an_example():
    verbs = list(_commands(typer.main.get_command(app)))
    assert len(verbs) >= 12
    for verb in verbs:
        result = runner.invoke(app, [*verb, "--help"])
        assert result.exit_code == 0, verb
        assert "Example:" in result.output, f"mis {' '.join(verb)} --help has no example"


def test_help_and_predict_import_nothing_they_do_not_use():
    """`mis --help` must not wait for the catalogue, the database drivers or torch, and
    `mis predict` (mis.segment.predict) not for scikit-learn (versions come from package
    metadata)."""
    import subprocess
    import sys

    code = ("import sys, mis.cli; a = set(sys.modules); import mis.segment.predict; b = set(sys.modules); "
            "print(sorted(m for m in a if m.split('.')[0] in {'torch', 'sqlalchemy', 'psycopg', 'sklearn', 'zarr', "
            "'mis'} and (m.startswith('mis.catalogue') or not m.startswith('mis')))); "
            "print(sorted(m for m in b if m.split('.')[0] in {'sklearn', 'sqlalchemy', 'psycopg'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:2] == ["[]", "[]"], out
