"""A throwaway PostgreSQL server for the test session, and the `store_url` fixture that runs a
test against both backends (a fresh SQLite file, a fresh PostgreSQL database).

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` system user
(`runuser -u postgres --`) from a temp dir that user owns; it listens on 127.0.0.1 and a free
port, and is stopped and removed at the end of the session. Started on first use only.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BACKENDS = ("sqlite", "postgresql")


@dataclass
class PgServer:
    port: int
    base: Path
    counter: itertools.count[int]

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def new_database(self) -> str:
        """A fresh, empty database: its postgresql:// URL."""
        import psycopg

        name = f"vk_{os.getpid()}_{next(self.counter)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(base: Path) -> list[str]:
    if os.geteuid() != 0:
        return []
    user = pwd.getpwnam("postgres")
    os.chown(base, user.pw_uid, user.pw_gid)
    return ["runuser", "-u", "postgres", "--"]


def start_pg() -> tuple[PgServer, list[str]]:
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        pytest.fail(
            "initdb/pg_ctl not on PATH: the store tests need PostgreSQL 15 "
            "(apt-get install postgresql-15, then put its bin/ on PATH)"
        )
    base = Path(tempfile.mkdtemp(prefix="vk-pg-"))
    run_as = _as_postgres(base)
    data, port = base / "data", _free_port()
    subprocess.run(
        [*run_as, "initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run(
        [*run_as, "pg_ctl", "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    return PgServer(port=port, base=base, counter=itertools.count()), run_as


def stop_pg(server: PgServer, run_as: list[str]) -> None:
    subprocess.run(
        [*run_as, "pg_ctl", "-D", str(server.base / "data"), "-m", "immediate", "stop"],
        check=False,
        capture_output=True,
    )
    shutil.rmtree(server.base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server, run_as = start_pg()
    try:
        yield server
    finally:
        stop_pg(server, run_as)


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store of each backend: a SQLite file path, or a new PostgreSQL database URL."""
    if request.param == "sqlite":
        return str(tmp_path / "keeper.sqlite")
    server: PgServer = request.getfixturevalue("pg_server")
    return server.new_database()
