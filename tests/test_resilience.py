"""The server survives its database: a restart of the embedded cluster keeps its port, and
``mis serve`` answers 503 with Retry-After while it is down, then reconnects by itself.

A cluster of its own (the session's one serves every other test), with the small test
vocabulary and the registration test files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from mis.catalogue import migrate
from mis.catalogue.postgres import EmbeddedPostgres, libpq_url
from tests.conftest import FAST_SETTINGS
from tests.test_api_support import LiveServer
from tests.test_register import BASE_FILES, DATA, install_vocabulary

READS = ["/collections/plugs/items?f=json", "/collections/plugs/items/1?f=json",
         "/collections/drillcores/items?f=json&bbox=-72,-17,-71,-16", "/mis/health", "/mis/plug/1"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    from mis.catalogue.register import register

    pg = EmbeddedPostgres(home=tmp_path_factory.mktemp("restart-home"), settings=FAST_SETTINGS)
    url = pg.start().url()
    try:
        migrate.upgrade(url)
        install_vocabulary(url)
        report = register([DATA / f for f in BASE_FILES], url=url)
        assert report.ok, report.render()
        yield pg
    finally:
        from mis.api.provider import dispose_engines
        from mis.catalogue.engines import dispose_engines

        dispose_engines()
        dispose_engines()
        pg.destroy()


def test_restart_keeps_the_port_and_the_server_recovers(cluster: EmbeddedPostgres, tmp_path: Path) -> None:
    url = cluster.state().url()
    port = cluster.state().port
    server = LiveServer(url, tmp_path).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for path in READS:
                assert http.get(path).status_code == 200, path
            with psycopg.connect(libpq_url(url), autocommit=True) as client:  # a client holding a connection
                client.execute("SELECT 1")
                cluster.stop()
            for path in READS:
                r = http.get(path)
                assert r.status_code == 503, (path, r.status_code, r.text[:300])
                assert int(r.headers["retry-after"]) > 0, path
            token = server.token("restart")
            r = http.post("/mis/register", json={"samples": [{"HOLE_ID": "CV-003", "SAMPLE_ID": "R-1", "FROM": 1,
                                                              "TO": 2, "SAMPLE_TYPE": "plug"}]},
                          headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 503 and "nothing was written" in r.json()["description"], r.text
            assert cluster.start().port == port  # its old sockets linger in TIME_WAIT
            for path in READS:
                r = http.get(path)
                assert r.status_code == 200, (path, r.status_code, r.text[:300])
    finally:
        server.stop()


def test_register_without_its_database_says_so_in_one_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from mis.catalogue.postgres import free_port

    env = {**os.environ, "MIS_DATABASE_URL": f"postgresql://mis:x@127.0.0.1:{free_port()}/mis",
           "MIS_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-m", "mis", "register", str(DATA / "samples.csv")], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr
    assert "nothing was written" in result.stderr


def test_the_server_follows_its_cluster_to_another_port(cluster: EmbeddedPostgres, tmp_path: Path) -> None:
    import socket

    url = cluster.state().url()  # the server keeps this URL, with the old port, for as long as it runs
    old = cluster.state().port
    server = LiveServer(url, tmp_path).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            assert all(http.get(path).status_code == 200 for path in READS)
            cluster.stop()
            with socket.socket() as squatter:  # another program takes the port meanwhile
                squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                squatter.bind(("127.0.0.1", old))
                squatter.listen()
                assert cluster.start().port != old
                for path in READS:
                    r = http.get(path)
                    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    finally:
        server.stop()
