"""The keeper's store: one SQL database holding the ledger, the epoch leases and the price and
gas history. SQLite (a local file, the embedded default) or PostgreSQL (shared by keepers on
several machines), through SQLAlchemy 2; the schema is migrated by Alembic on open.
"""

from __future__ import annotations

from sqlalchemy import Engine

from keeper.errors import LedgerError
from keeper.store.engine import (
    DB_ERRORS,
    StoreUrl,
    open_engine,
    parse_store,
    prepare_sqlite,
    store_error,
)
from keeper.store.migrate import upgrade

__all__ = ["StoreUrl", "open_store", "parse_store"]


def open_store(store: StoreUrl, busy_timeout_s: float = 5.0) -> Engine:
    """An engine on `store`, checked and migrated to this keeper's schema."""
    engine = open_engine(store, busy_timeout_s)
    try:
        if store.kind == "sqlite":
            prepare_sqlite(engine, store, busy_timeout_s)
        upgrade(engine, store)
    except LedgerError:
        engine.dispose()
        raise
    except DB_ERRORS as err:
        engine.dispose()
        raise store_error(store, err, busy_timeout_s) from err
    return engine
