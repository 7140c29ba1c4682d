"""Oracle price history for the live forecast: one sample per vault per hour of block time.

Stored in the keeper's store (keeper/store: a SQLite file beside the ledger, or the shared
PostgreSQL database). The forecast stage reads it; the app appends each snapshot's feed answers.
With too little history, the forecast falls back to configured default volatilities (documented
in the README).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from keeper.errors import LedgerError
from keeper.models import VaultState
from keeper.store import open_store
from keeper.store.engine import DB_ERRORS, StoreUrl, parse_store, store_error
from keeper.store.schema import price_history
from keeper.store.upsert import upsert

HOUR_S = 3600


class PriceHistory:
    """Hourly oracle answers per vault, in asset order (floats: forecasting only)."""

    def __init__(self, path: str | Path | StoreUrl) -> None:
        self.store = path if isinstance(path, StoreUrl) else parse_store(path)
        self.path = self.store.path or Path(self.store.shown)
        try:
            self.engine = open_store(self.store)
        except LedgerError as err:
            raise LedgerError(
                f"price history {self.store.shown} is unusable: {err.message}. Fix: move the "
                "file aside (it is never reset silently)"
            ) from err

    def record(self, state: VaultState, block_ts: int) -> None:
        self.record_many([state], block_ts)

    def record_many(self, states: list[VaultState], block_ts: int) -> None:
        """Keep the latest answer of each hour (an upsert: later ticks in an hour overwrite);
        one transaction for all vaults of a tick."""
        hour = block_ts // HOUR_S * HOUR_S
        rows = [
            {
                "vault": s.address,
                "hour_ts": hour,
                "prices": ",".join(str(a.feed.answer / 10**a.feed.decimals) for a in s.assets),
            }
            for s in states
            if s.assets and not s.feed_problems
        ]
        if not rows:
            return
        try:
            with self.engine.connect().execution_options(write=True) as c, c.begin():
                upsert(c, price_history, rows, keys=("vault", "hour_ts"))
        except DB_ERRORS as err:
            why = store_error(self.store, err, 5).message
            raise LedgerError(f"price history write failed: {why}") from err

    def series(self, vault: str, n_assets: int, max_rows: int = 24 * 90) -> list[list[float]]:
        """Hourly rows, oldest first; rows from another basket size are skipped."""
        query = (
            select(price_history.c.prices)
            .where(price_history.c.vault == vault)
            .order_by(price_history.c.hour_ts.desc())
            .limit(max_rows)
        )
        try:
            with self.engine.connect() as c:
                rows = c.execute(query).all()
        except DB_ERRORS as err:
            raise store_error(self.store, err, 5) from err
        out = [[float(x) for x in r[0].split(",")] for r in reversed(rows)]
        return [r for r in out if len(r) == n_assets]

    def close(self) -> None:
        self.engine.dispose()
