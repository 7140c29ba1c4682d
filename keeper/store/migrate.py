"""Run the store's Alembic migrations on open (both backends), inside one write transaction, so
two keepers opening a new store together create it once. A store written by a newer keeper is
refused, never touched."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import Connection

from keeper.errors import LedgerError
from keeper.store.engine import StoreUrl

if TYPE_CHECKING:
    from alembic.config import Config

# The newest migration in keeper/store/migrations/versions (tests/unit/test_store.py checks it
# against Alembic's own head). A store already there opens without loading Alembic, about a
# third of a second of every one-shot command's start-up.
SCHEMA_HEAD = "0003"

# Serialises concurrent migrations on PostgreSQL (SQLite serialises on BEGIN IMMEDIATE).
_MIGRATION_LOCK = 0x6B656570  # "keep"
# The first keeper versioned its SQLite ledger with PRAGMA user_version = 1 and refuses
# anything higher: a migrated file carries 2, so an older keeper will not write to it.
LEGACY_USER_VERSION = 2


def _config(conn: Connection) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "keeper.store:migrations")
    cfg.attributes["connection"] = conn
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config(None)).get_current_head()  # type: ignore[arg-type]
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    if "alembic_version" not in inspect(conn).get_table_names():
        return None
    row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return None if row is None else str(row[0])


def upgrade(engine: Engine, store: StoreUrl) -> None:
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        if store.kind == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        else:
            _check_legacy_version(conn, store)
        current = current_revision(conn)
        if current == SCHEMA_HEAD:
            return
        _upgrade(conn, store, current)


def _upgrade(conn: Connection, store: StoreUrl, current: str | None) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    cfg = _config(conn)
    if current is not None:
        try:
            ScriptDirectory.from_config(cfg).get_revision(current)
        except CommandError as err:
            raise LedgerError(
                f"ledger {store.shown} has schema revision {current}, newer than this "
                f"keeper ({head_revision()}): upgrade the keeper"
            ) from err
    command.upgrade(cfg, "head")
    if store.kind == "sqlite":
        conn.exec_driver_sql(f"PRAGMA user_version = {LEGACY_USER_VERSION}")


def _check_legacy_version(conn: Connection, store: StoreUrl) -> None:
    version = int(conn.exec_driver_sql("PRAGMA user_version").scalar() or 0)
    if version > LEGACY_USER_VERSION:
        raise LedgerError(
            f"ledger {store.shown} has schema {version}, newer than this keeper "
            f"({LEGACY_USER_VERSION}): upgrade the keeper"
        )
