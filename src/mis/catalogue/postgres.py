"""The embedded default: a private PostgreSQL + PostGIS cluster that MIS runs itself.

Why embedded: a newcomer should get a working catalogue with one command and no database
administration. The cluster lives under ``$MIS_HOME/postgres`` (default ``./.mis``),
listens on 127.0.0.1 only (no Unix socket, so nothing collides with a system cluster) on a
free port, and uses password authentication with a generated password kept in a state
file only the invoking user can read.

PostgreSQL refuses to run as root. When MIS is invoked as root, the server is run as an
unprivileged OS user (Debian's ``postgres`` if present, else a system user ``mispg`` that
MIS creates). If that user cannot reach ``$MIS_HOME`` (e.g. it lies under ``/root``), the
cluster's data directory is placed under ``/var/tmp`` instead and the state file records
where.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mis.settings import mis_home

if TYPE_CHECKING:
    from sqlalchemy import Engine

DATABASE = "mis"
SUPERUSER = "mis"
FALLBACK_OS_USER = "mispg"
class PostgresError(RuntimeError):
    """The embedded cluster could not be set up, started or stopped."""


@dataclass
class ClusterState:
    """What a started cluster leaves behind for later commands (``state.json``)."""

    data_dir: str
    bindir: str
    port: int
    password: str
    os_user: str

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql+psycopg://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"


@dataclass(frozen=True)
class ClusterStatus:
    running: bool
    data_dir: Path
    port: int | None
    url: str | None
    os_user: str | None
    server_version: str | None = None
    postgis_version: str | None = None


def server_bindirs() -> list[Path]:
    """PostgreSQL bin directories that hold a server, newest major version first.

    Debian installs each major version under ``/usr/lib/postgresql/<major>/bin`` (not on
    PATH); other systems put ``pg_ctl`` on PATH.
    """
    candidates: list[Path] = []
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = sorted(
            (p for p in debian.iterdir() if p.name.replace(".", "").isdigit()),
            key=lambda p: float(p.name),
            reverse=True,
        )
        candidates += [v / "bin" for v in versions]
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    return [b for b in dict.fromkeys(candidates) if (b / "postgres").exists()]


def postgis_files(bindir: Path) -> tuple[Path, Path]:
    """Where the server of ``bindir`` looks for PostGIS: its control file and its library.

    Both must exist for ``CREATE EXTENSION postgis``: on Debian the package ``postgis`` holds
    only client tools, the extension is ``postgresql-<major>-postgis-3``.
    """
    sharedir, pkglibdir = _pg_config(bindir, "--sharedir"), _pg_config(bindir, "--pkglibdir")
    major = bindir.parent.name
    share = Path(sharedir) if sharedir else Path(f"/usr/share/postgresql/{major}")
    lib = Path(pkglibdir) if pkglibdir else bindir.parent / "lib"
    return share / "extension" / "postgis.control", lib / "postgis-3.so"


def find_bindir(bindirs: list[Path] | None = None) -> Path:
    """The newest PostgreSQL bin directory (of ``bindirs``, default :func:`server_bindirs`)
    whose installation also has PostGIS.

    When none has, the error names the file that is missing and the Debian package that
    provides it for the major version found, so the fix is one copy-paste away.
    """
    bindirs = server_bindirs() if bindirs is None else bindirs
    if not bindirs:
        raise PostgresError(
            "PostgreSQL server binaries (postgres, initdb, pg_ctl) not found in "
            "/usr/lib/postgresql/*/bin or on PATH: install the Debian package postgresql "
            "(scripts/setup.sh does), or point MIS at an existing PostGIS with MIS_DATABASE_URL."
        )
    missing: list[str] = []
    for bindir in bindirs:
        absent = [f for f in postgis_files(bindir) if not f.exists()]
        if not absent:
            return bindir
        major = bindir.parent.name
        missing += [
            f"{f.name} not found in {f.parent}: install postgresql-{major}-postgis-3 "
            "(or postgresql-postgis)"
            for f in absent
        ]
    raise PostgresError(
        "PostGIS is missing for the PostgreSQL server found: "
        + "; ".join(missing)
        + ". scripts/setup.sh installs it; or point MIS at an existing PostGIS with MIS_DATABASE_URL."
    )


def _pg_config(bindir: Path, option: str) -> str:
    pg_config = bindir / "pg_config"
    if not pg_config.exists():
        return ""
    out = subprocess.run([str(pg_config), option], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether PostgreSQL could listen on ``port``: bound the way it binds (with
    SO_REUSEADDR), so that the sockets of its own last run, lingering in TIME_WAIT after a
    restart, do not count as taken and the cluster keeps its port (clients and a running
    ``mis serve`` keep reaching it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


#: The state files of the embedded clusters this process has read, by their generated
#: password: what lets an engine find its cluster again (:func:`follow_embedded`).
_STATE_FILES: dict[str, Path] = {}


def follow_embedded(engine: Engine) -> Engine:
    """Let ``engine``'s new connections reach its embedded cluster wherever it runs now.

    A server holds its engines for as long as it runs; the cluster it points at may be
    stopped and started meanwhile, and comes back on another port when its own was taken
    while it was down. Each new connection reads the cluster's state file (only when the
    engine's password is one of a cluster this process knows, so external databases are
    untouched) and connects to the port it names: with ``pool_pre_ping`` or a retry on a
    dropped connection, the server follows without a restart.
    """
    from sqlalchemy import event

    password = engine.url.password
    if engine.url.host not in ("127.0.0.1", "localhost") or not password:
        return engine

    @event.listens_for(engine, "do_connect")
    def _where_now(dialect, connection_record, cargs, cparams) -> None:
        state_file = _STATE_FILES.get(password)
        if state_file is None:
            return
        with contextlib.suppress(OSError, ValueError, KeyError):
            cparams["port"] = int(json.loads(state_file.read_text())["port"])

    return engine


class EmbeddedPostgres:
    """Start, stop, inspect and reset the private cluster under ``$MIS_HOME``.

    Every method is safe to call repeatedly: ``start`` on a running cluster does nothing,
    ``stop`` on a stopped one does nothing, and a stale ``postmaster.pid`` left by a crash
    is removed before starting.
    """

    def __init__(self, home: Path | None = None, settings: dict[str, str] | None = None) -> None:
        self.home = (home or mis_home()).absolute()
        self.root = self.home / "postgres"
        self.state_file = self.root / "state.json"
        self.settings = settings or {}

    # -- state -------------------------------------------------------------------------
    def state(self) -> ClusterState | None:
        if not self.state_file.exists():
            return None
        state = ClusterState(**json.loads(self.state_file.read_text()))
        _STATE_FILES[state.password] = self.state_file
        return state

    def _write_state(self, state: ClusterState) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2))
        tmp.chmod(0o600)
        tmp.replace(self.state_file)

    def url(self) -> str:
        state = self.state()
        if state is None or not self.is_running():
            raise PostgresError(
                f"The embedded PostGIS under {self.root} is not running: start it with "
                "'mis db start' (or set MIS_DATABASE_URL)."
            )
        return state.url()

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- OS user -----------------------------------------------------------------------
    def _os_user(self) -> pwd.struct_passwd:
        if os.geteuid() != 0:
            return pwd.getpwuid(os.geteuid())
        for name in ("postgres", FALLBACK_OS_USER):
            with contextlib.suppress(KeyError):
                return pwd.getpwnam(name)
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             FALLBACK_OS_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(FALLBACK_OS_USER)

    def _run_as(self, user: pwd.struct_passwd, args: list[str], **kw) -> subprocess.CompletedProcess:
        """Run a PostgreSQL program as ``user`` (dropping root if we are root)."""
        drop = os.geteuid() == 0 and user.pw_uid != 0
        # the child's environment: ours, with the server user's HOME, a fixed locale and no PGDATA
        env = os.environ.copy()
        env.update(HOME=user.pw_dir if Path(user.pw_dir).is_dir() else "/tmp", LC_ALL="C.UTF-8")
        env.pop("PGDATA", None)
        return subprocess.run(
            args,
            user=user.pw_uid if drop else None,
            group=user.pw_gid if drop else None,
            extra_groups=[] if drop else None,
            cwd="/",
            env=env,
            capture_output=True,
            text=True,
            check=False,
            **kw,
        )

    def _reachable_by(self, user: pwd.struct_passwd, path: Path) -> bool:
        if os.geteuid() != 0:
            return True
        return self._run_as(user, ["test", "-x", str(path)]).returncode == 0

    def _choose_data_dir(self, user: pwd.struct_passwd) -> Path:
        if self._reachable_by(user, self.root):
            return self.root / "data"
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        fallback = Path("/var/tmp") / f"mis-postgres-{digest}"
        fallback.mkdir(mode=0o700, exist_ok=True)
        os.chown(fallback, user.pw_uid, user.pw_gid)
        return fallback / "data"

    # -- lifecycle ---------------------------------------------------------------------
    def is_running(self) -> bool:
        state = self.state()
        if state is None or not Path(state.data_dir).exists():
            return False
        user = pwd.getpwnam(state.os_user)
        result = self._run_as(user, [f"{state.bindir}/pg_ctl", "status", "-D", state.data_dir])
        return result.returncode == 0

    def start(self) -> ClusterState:
        """Initialise the cluster if needed and start it; harmless when already running."""
        with self._lock():
            state = self.state()
            if state is None or not (Path(state.data_dir) / "PG_VERSION").exists():
                state = self._initdb()
            if self.is_running():
                return state
            user = pwd.getpwnam(state.os_user)
            self._clear_stale_pid(Path(state.data_dir))
            if not port_is_free(state.port):
                state.port = free_port()
                self._write_state(state)
            options = f"-p {state.port}"
            log = Path(state.data_dir).parent / "postgres.log"
            result = self._run_as(
                user,
                [f"{state.bindir}/pg_ctl", "start", "-w", "-t", "60", "-D", state.data_dir,
                 "-l", str(log), "-o", options],
            )
            if result.returncode != 0:
                tail = _tail(log)
                raise PostgresError(
                    f"PostgreSQL failed to start in {state.data_dir}:\n{result.stderr.strip()}\n{tail}"
                )
            self._ensure_database(state)
            return state

    def stop(self) -> bool:
        """Stop the cluster; returns False when it was not running."""
        with self._lock():
            state = self.state()
            if state is None or not self.is_running():
                return False
            user = pwd.getpwnam(state.os_user)
            result = self._run_as(
                user, [f"{state.bindir}/pg_ctl", "stop", "-w", "-m", "fast", "-D", state.data_dir]
            )
            if result.returncode != 0:
                raise PostgresError(f"PostgreSQL did not stop: {result.stderr.strip()}")
            return True

    def destroy(self) -> None:
        """Stop the cluster and delete its data directory and state."""
        self.stop()
        with self._lock():
            state = self.state()
            if state is not None:
                shutil.rmtree(Path(state.data_dir).parent if "mis-postgres-" in state.data_dir
                              else state.data_dir, ignore_errors=True)
            for leftover in ("data", "postgres.log", "state.json"):
                path = self.root / leftover
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)

    def status(self) -> ClusterStatus:
        state = self.state()
        data_dir = Path(state.data_dir) if state else self.root / "data"
        if state is None or not self.is_running():
            return ClusterStatus(False, data_dir, state.port if state else None, None,
                                 state.os_user if state else None)
        import psycopg

        with psycopg.connect(libpq_url(state.url()), connect_timeout=5) as conn:
            server_row = conn.execute("SHOW server_version").fetchone()
            postgis_row = conn.execute("SELECT postgis_lib_version()").fetchone()
        server = server_row[0] if server_row else None
        postgis = postgis_row[0] if postgis_row else None
        return ClusterStatus(True, data_dir, state.port, state.url(), state.os_user, server, postgis)

    # -- internals ---------------------------------------------------------------------
    def _initdb(self) -> ClusterState:
        bindir = find_bindir()
        user = self._os_user()
        data_dir = self._choose_data_dir(user)
        if data_dir.exists():
            shutil.rmtree(data_dir)
        parent = data_dir.parent
        parent.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(24)
        pwfile = parent / ".pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if os.geteuid() == 0:
            os.chown(parent, user.pw_uid, user.pw_gid)
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        try:
            result = self._run_as(
                user,
                [f"{bindir}/initdb", "-D", str(data_dir), "-U", SUPERUSER, "-E", "UTF8",
                 "--no-locale", "--auth=scram-sha-256", f"--pwfile={pwfile}"],
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise PostgresError(f"initdb failed in {data_dir}:\n{result.stderr.strip()}")
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": "''",
            "max_connections": "100",
            **{k: v for k, v in self.settings.items()},
        }
        with open(data_dir / "postgresql.conf", "a") as fh:
            fh.write("\n# MIS embedded cluster\n")
            for key, value in conf.items():
                fh.write(f"{key} = {value}\n")
        state = ClusterState(str(data_dir), str(bindir), free_port(), password, user.pw_name)
        self._write_state(state)
        return state

    def _clear_stale_pid(self, data_dir: Path) -> None:
        pidfile = data_dir / "postmaster.pid"
        if not pidfile.exists():
            return
        try:
            pid = int(pidfile.read_text().splitlines()[0])
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            alive = comm.startswith("postgres")
        except (OSError, ValueError, IndexError):
            alive = False
        if not alive:
            pidfile.unlink(missing_ok=True)

    def _ensure_database(self, state: ClusterState) -> None:
        import psycopg

        with psycopg.connect(libpq_url(state.url("postgres")), autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
        with psycopg.connect(libpq_url(state.url()), autocommit=True, connect_timeout=10) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://``) as a libpq connection string, for
    direct psycopg connections."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_until_accepting(url: str, timeout: float = 30.0) -> None:
    """Block until the server behind ``url`` accepts connections."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(libpq_url(url), connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
