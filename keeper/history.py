"""Oracle price history for the live forecast: one sample per vault per hour of block time.

Stored beside the ledger (its own table, its own connection). The forecast stage reads it; the
app appends each snapshot's feed answers. With too little history, the forecast falls back to
configured default volatilities (documented in the README).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from keeper.errors import LedgerError
from keeper.models import VaultState

HOUR_S = 3600
SCHEMA = """CREATE TABLE IF NOT EXISTS price_history (
  vault TEXT NOT NULL, hour_ts INTEGER NOT NULL, prices TEXT NOT NULL,
  PRIMARY KEY (vault, hour_ts))"""


class PriceHistory:
    """Hourly oracle answers per vault, in asset order (floats: forecasting only)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False)
            self.conn.execute(SCHEMA)
            self.conn.commit()
        except sqlite3.Error as err:
            raise LedgerError(
                f"price history {self.path} is unusable: {err}. Fix: move the file "
                "aside (it is never reset silently)"
            ) from err

    def record(self, state: VaultState, block_ts: int) -> None:
        self.record_many([state], block_ts)

    def record_many(self, states: list[VaultState], block_ts: int) -> None:
        """Keep the latest answer of each hour (an upsert: later ticks in an hour overwrite);
        one transaction for all vaults of a tick."""
        hour = block_ts // HOUR_S * HOUR_S
        rows = [
            (s.address, hour, ",".join(str(a.feed.answer / 10**a.feed.decimals) for a in s.assets))
            for s in states
            if s.assets and not s.feed_problems
        ]
        try:
            self.conn.executemany("INSERT OR REPLACE INTO price_history VALUES (?, ?, ?)", rows)
            self.conn.commit()
        except sqlite3.Error as err:
            raise LedgerError(f"price history write failed: {err}") from err

    def series(self, vault: str, n_assets: int, max_rows: int = 24 * 90) -> list[list[float]]:
        """Hourly rows, oldest first; rows from another basket size are skipped."""
        rows = self.conn.execute(
            "SELECT prices FROM price_history WHERE vault = ? ORDER BY hour_ts DESC LIMIT ?",
            (vault, max_rows),
        ).fetchall()
        out = [[float(x) for x in r[0].split(",")] for r in reversed(rows)]
        return [r for r in out if len(r) == n_assets]

    def close(self) -> None:
        self.conn.close()
