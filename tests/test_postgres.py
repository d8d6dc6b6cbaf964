"""The embedded PostGIS: start, status, stop, restart after a crash, and the external URL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from mis.catalogue import migrate
from mis.catalogue.postgres import EmbeddedPostgres

FAST = {"fsync": "off"}


def mis(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mis", *args], env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def cluster(tmp_path: Path):
    pg = EmbeddedPostgres(home=tmp_path, settings=FAST)
    yield pg
    pg.destroy()


def test_lifecycle_through_the_cli(tmp_path: Path, cluster: EmbeddedPostgres):
    env = {k: v for k, v in os.environ.items() if k != "MIS_DATABASE_URL"} | {"MIS_HOME": str(tmp_path)}
    assert mis("db", "status", env=env).returncode == 3  # stopped
    first = mis("db", "start", env=env)
    assert first.returncode == 0, first.stderr
    assert "PostGIS running on 127.0.0.1:" in first.stdout
    again = mis("db", "start", env=env)  # harmless twice
    assert again.returncode == 0 and again.stdout == first.stdout
    assert mis("db", "migrate", env=env).returncode == 0
    status = mis("db", "status", env=env)
    assert "running" in status.stdout and "PostGIS 3" in status.stdout
    assert f"revision: {migrate.head()}" in status.stdout
    url = mis("db", "url", env=env).stdout.strip()
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        assert conn.execute("SELECT count(*) FROM plug").fetchone()[0] == 0
    assert mis("db", "stop", env=env).stdout.strip() == "stopped"
    assert mis("db", "stop", env=env).stdout.strip() == "not running"


def test_server_runs_unprivileged(cluster: EmbeddedPostgres):
    state = cluster.start()
    with psycopg.connect(state.url().replace("+psycopg", "")) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        # read while connected: the backend exits with the connection (/proc/PID may show root)
        status = Path(f"/proc/{pid}/status").read_text()
    real_uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
    assert real_uid != 0


def test_stale_pid_file_after_a_crash_is_recovered(cluster: EmbeddedPostgres):
    state = cluster.start()
    pidfile = Path(state.data_dir) / "postmaster.pid"
    postmaster = int(pidfile.read_text().splitlines()[0])
    contents = pidfile.read_text()
    os.kill(postmaster, 9)  # crash: the pid file stays behind
    for _ in range(100):
        if not Path(f"/proc/{postmaster}").exists():
            break
        subprocess.run(["sleep", "0.05"])
    pidfile.write_text(contents.replace(str(postmaster), "999999", 1))
    assert not cluster.is_running()
    cluster.start()
    assert cluster.is_running()


def test_external_database_url_wins(tmp_path: Path, db_url: str):
    env = os.environ | {"MIS_HOME": str(tmp_path), "MIS_DATABASE_URL": db_url}
    started = mis("db", "start", env=env)
    assert "MIS_DATABASE_URL is set" in started.stdout
    assert not (tmp_path / "postgres" / "data").exists()
    assert mis("db", "url", env=env).stdout.strip() == db_url
    assert f"revision: {migrate.head()}" in mis("db", "status", env=env).stdout


def test_a_port_whose_last_connections_linger_in_time_wait_is_free() -> None:
    """After a restart the server side of its old connections lingers in TIME_WAIT on the
    port; PostgreSQL binds with SO_REUSEADDR, so the cluster can (and must) keep its port."""
    import socket

    from mis.catalogue.postgres import port_is_free

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    server_side, _ = listener.accept()
    server_side.close()  # the server closes first: its side goes to TIME_WAIT once the client closes
    client.recv(1)
    client.close()
    listener.close()
    assert port_is_free(port)
    with socket.socket() as busy:  # a port someone listens on is still taken
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert not port_is_free(busy.getsockname()[1])
