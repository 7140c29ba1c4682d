"""The keeper's store: one SQL database holding the ledger, the epoch leases and the price and
gas history. SQLite (a local file, the embedded default) or PostgreSQL (shared by keepers on
several machines), through SQLAlchemy 2; the schema is migrated by Alembic on open.
"""

from keeper.store.engine import StoreUrl, open_engine, parse_store

__all__ = ["StoreUrl", "open_engine", "parse_store"]
