"""Servers for the store tests: PostgreSQL (Debian's binaries) and DynamoDB (moto's server).

Servers are session-scoped; each test gets a fresh database (or table prefix), so the suite
stays fast. Without the binaries a backend is skipped with the reason, except under CI
(``CI`` set), where a missing backend fails the run instead of hiding it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_USER = "postgres"
PG_PASSWORD = "s3cret-pw"  # trust authentication ignores it; tests check it is never printed


def unavailable(reason: str) -> None:
    """Skip, or fail under CI, where every backend must run."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the store tests need every backend)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin(name: str) -> str | None:
    """Debian keeps initdb and pg_ctl in /usr/lib/postgresql/VERSION/bin, off PATH."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return candidates[-1] if candidates else None


class PostgresServer:
    """A throwaway PostgreSQL cluster in a temporary directory, on a free loopback port.

    PostgreSQL refuses to run as root: as root, the cluster belongs to the ``postgres``
    user and its commands run through ``runuser``.
    """

    password = PG_PASSWORD

    def __init__(self) -> None:
        initdb, self.pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
        if not initdb or not self.pg_ctl:
            unavailable(
                "PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql"
            )
        self.as_user: list[str] = []
        self.root = Path(tempfile.mkdtemp(prefix="codeclab-pg-"))
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(PG_USER)
            except KeyError:
                unavailable("running as root and there is no 'postgres' user to run PostgreSQL")
            if not shutil.which("runuser"):
                unavailable("running as root and runuser is missing: cannot run PostgreSQL")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.as_user = ["runuser", "-u", PG_USER, "--"]
        self.data = self.root / "data"
        self.port = free_port()
        self._run(
            initdb, "-D", str(self.data), "-U", PG_USER, "--auth=trust", "-E", "UTF8", "--no-sync"
        )
        self.start()

    def _run(self, *command: str) -> None:
        done = subprocess.run(
            [*self.as_user, *command], capture_output=True, text=True, timeout=120
        )
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stdout}{done.stderr}")

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
            "-c full_page_writes=off -c synchronous_commit=off"
        )
        log = str(self.root / "server.log")
        self._run(self.pg_ctl, "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._run(self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str = "postgres", *, password: bool = True) -> str:
        secret = f":{PG_PASSWORD}" if password else ""
        return f"postgresql+psycopg://{PG_USER}{secret}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user={PG_USER} dbname=postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed: pip install 'psycopg[binary]'")
    server = PostgresServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture()
def own_pg() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, which it may stop and start."""
    with postgres_server() as server:
        yield server


@pytest.fixture()
def pg_url(pg_server: PostgresServer) -> str:
    return pg_server.create_database()


@pytest.fixture()
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'lab.db'}"


def dynamo_available() -> bool:
    try:
        import codeclab.store.dynamo  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        unavailable("moto's server is not installed: pip install 'moto[server]'")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture()
def dynamo_url(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh table prefix on moto's DynamoDB, with fake credentials for this test only."""
    from codeclab.store.dynamo import ENDPOINT_ENV

    monkeypatch.setenv(ENDPOINT_ENV, moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return f"dynamodb://t{uuid.uuid4().hex[:12]}?region=us-east-1"


FIXTURES = {"sqlite": "sqlite_url", "postgresql": "pg_url", "dynamodb": "dynamo_url"}
SQL_BACKENDS = ["sqlite", "postgresql"]
BACKENDS = [*SQL_BACKENDS, *(["dynamodb"] if dynamo_available() else [])]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty store of every backend in turn."""
    return request.getfixturevalue(FIXTURES[request.param])


@pytest.fixture(params=SQL_BACKENDS)
def sql_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty SQL database (SQLite, then PostgreSQL)."""
    return request.getfixturevalue(FIXTURES[request.param])
