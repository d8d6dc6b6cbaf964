"""The one engine registry (mis.catalogue.engines): one engine per database and use, its
pools and session options from mis.settings (no connection is opened here)."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from mis.catalogue import engines
from mis.catalogue.session import get_engine

URL = "postgresql+psycopg://nobody:secret@127.0.0.1:1/none"


@pytest.fixture(autouse=True)
def _fresh():
    engines.dispose_engines()
    yield
    engines.dispose_engines()


def test_one_engine_per_database_and_use():
    api = engines.engine(URL, engines.Use.API)
    assert engines.engine(URL, engines.Use.API) is api
    assert get_engine(URL) is engines.engine(URL) is not api
    assert engines.read_engine(URL) is engines.engine(URL, engines.Use.READ)
    assert len({id(e) for e in (api, get_engine(URL), engines.read_engine(URL),
                                engines.read_engine(URL, filtered=True))}) == 4
    engines.dispose_engines()
    assert engines.engine(URL, engines.Use.API) is not api  # forgotten once disposed


def test_pools_and_sessions_follow_the_settings(monkeypatch):
    monkeypatch.setenv("MIS_POOL_SIZE", "3")
    monkeypatch.setenv("MIS_POOL_OVERFLOW", "2")
    monkeypatch.setenv("MIS_STATEMENT_TIMEOUT_MS", "1234")
    api = engines.engine(URL, engines.Use.API)
    read = engines.read_engine(URL)
    filtered = engines.read_engine(URL, filtered=True)
    for engine in (api, read, filtered):
        assert engine.pool.size() == 3 and engine.pool._max_overflow == 2
        assert make_url(str(engine.url)).database == "none"
    assert read.dialect._on_connect_isolation_level == "AUTOCOMMIT"
    assert api.dialect._on_connect_isolation_level != "AUTOCOMMIT"
    options = {use: engines._session_options(use) for use in (engines.Use.API, engines.Use.READ,
                                                              engines.Use.READ_FILTERED)}
    assert all("statement_timeout=1234" in o and "jit=off" in o for o in options.values())
    assert "plan_cache_mode=force_generic_plan" in options[engines.Use.READ]
    assert "plan_cache_mode=force_custom_plan" in options[engines.Use.READ_FILTERED]
    assert "plan_cache_mode" not in options[engines.Use.API]
