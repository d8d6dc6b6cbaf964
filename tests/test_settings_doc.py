"""docs/settings.md lists exactly the MIS_* variables that mis.settings.Settings reads."""

from __future__ import annotations

import re
from pathlib import Path

from mis.settings import Settings

DOC = Path(__file__).resolve().parents[1] / "docs" / "settings.md"


def test_the_settings_table_names_every_field_and_nothing_else():
    documented = re.findall(r"^\| `(MIS_[A-Z0-9_]+)` \|", DOC.read_text(encoding="utf-8"), flags=re.MULTILINE)
    prefix = Settings.model_config.get("env_prefix", "")
    assert prefix == "MIS_"
    fields = [f"{prefix}{name.upper()}" for name in Settings.model_fields]
    assert sorted(documented) == sorted(fields)
    assert len(documented) == len(set(documented))


def test_an_empty_variable_counts_as_unset(monkeypatch):
    monkeypatch.setenv("MIS_DEVICE", "")
    monkeypatch.setenv("MIS_HOME", "")
    assert Settings().device is None and Settings().home == Path(".mis")
