"""Opening the store: which backend a `store:` value names, the engine with its per-backend
settings, and database errors as one-line LedgerErrors that name the fix.

SQLite: WAL journaling, `synchronous = FULL` (a persisted attempt must survive a crash), a busy
timeout, and BEGIN IMMEDIATE for writes (two keepers on one file queue instead of failing).
PostgreSQL (psycopg 3): a pool that pings before use, so a restarted database heals by itself.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import Connection

from keeper.errors import LedgerError

_PG_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")
_PASSWORD = re.compile(r"(://[^:/@]+):[^@]*@")


def hide_password(text: str) -> str:
    return _PASSWORD.sub(r"\1:***@", text)


@dataclass(frozen=True, slots=True)
class StoreUrl:
    """Where the store lives: a SQLite file or a PostgreSQL database."""

    kind: str  # "sqlite" | "postgresql"
    url: str  # the SQLAlchemy URL
    path: Path | None = None  # the SQLite file

    @property
    def shown(self) -> str:
        """For messages: the file, or the URL without its password."""
        return str(self.path) if self.path is not None else hide_password(self.url)

    @property
    def shared(self) -> bool:
        return self.kind == "postgresql"


def parse_store(value: str | Path) -> StoreUrl:
    """`postgresql://user:pass@host:5432/db`, `sqlite:///path`, or a plain file path."""
    text = str(value)
    if text.startswith(_PG_SCHEMES):
        rest = text.split("://", 1)[1]
        return StoreUrl(kind="postgresql", url=f"postgresql+psycopg://{rest}")
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    elif "://" in text:
        raise LedgerError(
            f"store {hide_password(text)}: unknown kind: use postgresql://... or a "
            "SQLite file path"
        )
    path = Path(text).expanduser()
    return StoreUrl(kind="sqlite", url=f"sqlite:///{path}", path=path)


def open_engine(store: StoreUrl, busy_timeout_s: float = 5.0) -> Engine:
    """An engine for `store` (no connection is made yet)."""
    if store.kind == "postgresql":
        return create_engine(
            store.url,
            pool_pre_ping=True,
            pool_size=4,
            max_overflow=4,
            connect_args={"connect_timeout": max(1, int(busy_timeout_s))},
        )
    assert store.path is not None
    try:
        store.path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LedgerError(
            f"ledger {store.path} cannot be opened ({err}): check the path and its permissions"
        ) from err
    engine = create_engine(
        store.url,
        connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
    )
    _sqlite_events(engine, busy_timeout_s)
    return engine


def _sqlite_events(engine: Engine, busy_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi: sqlite3.Connection, _record: Any) -> None:
        dbapi.isolation_level = None  # we issue BEGIN ourselves (below)
        dbapi.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        dbapi.execute("PRAGMA synchronous = FULL")
        dbapi.execute("PRAGMA foreign_keys = ON")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def prepare_sqlite(engine: Engine, store: StoreUrl, busy_timeout_s: float) -> None:
    """Integrity check and WAL (persistent, so only a new file switches). SQLite answers a
    switch that meets another connection's lock with SQLITE_BUSY at once, without its busy
    handler, so the switch is retried here until the busy timeout."""
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        check = raw.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise LedgerError(
                f"ledger {store.shown} failed its integrity check ({check}): move it aside and "
                "restore a backup; it is never reset automatically"
            )
        deadline = time.monotonic() + busy_timeout_s
        while True:
            try:
                mode = raw.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)
                continue
            if str(mode).lower() != "wal":
                raise LedgerError(
                    f"ledger {store.shown} cannot use WAL journaling (got {mode!r}): put it on "
                    "a local file system"
                )
            return


def store_error(store: StoreUrl, err: BaseException, busy_timeout_s: float) -> LedgerError:
    """A database error as one line that names the fix (never the password)."""
    orig = getattr(err, "orig", None) or err
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    if store.kind == "postgresql":
        if isinstance(err, exc.OperationalError | exc.InterfaceError):
            return LedgerError(
                f"store {store.shown} is unreachable ({hide_password(text)}): is "
                "PostgreSQL running and the URL right? the keeper retries with backoff"
            )
        return LedgerError(f"store {store.shown}: {hide_password(text)}")
    if "locked" in text or "busy" in text:
        return LedgerError(
            f"ledger {store.shown} is locked by another process (waited {busy_timeout_s:g} s): "
            "is another keeper running on this file?"
        )
    if isinstance(orig, sqlite3.DatabaseError) and not isinstance(orig, sqlite3.OperationalError):
        return LedgerError(
            f"ledger {store.shown} is corrupt or not a SQLite database ({text}): move it "
            "aside and restore a backup; it is never reset automatically"
        )
    if "unable to open" in text:
        return LedgerError(
            f"ledger {store.shown} cannot be opened ({text}): check the path and its permissions"
        )
    return LedgerError(f"ledger {store.shown}: {text}")


DB_ERRORS = (exc.SQLAlchemyError, sqlite3.Error)
