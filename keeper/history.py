"""The history the forecast stage learns from: hourly oracle prices per vault, and hourly gas per
chain (median base fee and median tip). One sample per hour of block time.

Stored beside the ledger (its own tables, its own connection). The app appends each snapshot's
feed answers and, once an hour, the chain's gas; the forecast stage reads both. `seed_*` lets a
replay start with the same history the backtester fits on.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from keeper.errors import LedgerError
from keeper.models import GasHour, OracleHistory, VaultState

HOUR_S = 3600
MAX_HOURS = 24 * 90  # the forecast's window: 90 days
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS price_history (
  vault TEXT NOT NULL, hour_ts INTEGER NOT NULL, prices TEXT NOT NULL,
  PRIMARY KEY (vault, hour_ts))""",
    """CREATE TABLE IF NOT EXISTS gas_history (
  chain_id INTEGER NOT NULL, hour_ts INTEGER NOT NULL, base_fee_wei TEXT NOT NULL,
  tip_wei TEXT NOT NULL, PRIMARY KEY (chain_id, hour_ts))""",
)


def hour_of(ts: int) -> int:
    return ts // HOUR_S * HOUR_S


class PriceHistory:
    """Hourly oracle answers per vault (asset order) and hourly gas per chain."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False)
            for statement in SCHEMA:
                self.conn.execute(statement)
            self.conn.commit()
        except sqlite3.Error as err:
            raise LedgerError(
                f"price history {self.path} is unusable: {err}. Fix: move the file "
                "aside (it is never reset silently)"
            ) from err

    # ------------------------------------------------------------ oracle prices

    def record(self, state: VaultState, block_ts: int) -> None:
        self.record_many([state], block_ts)

    def record_many(self, states: list[VaultState], block_ts: int) -> None:
        """Keep the latest answer of each hour (an upsert: later ticks in an hour overwrite);
        one transaction for all vaults of a tick."""
        hour = hour_of(block_ts)
        rows = [
            (s.address, hour, ",".join(str(a.feed.answer / 10**a.feed.decimals) for a in s.assets))
            for s in states
            if s.assets and not s.feed_problems
        ]
        self._write("INSERT OR REPLACE INTO price_history VALUES (?, ?, ?)", rows)

    def seed_prices(self, vault: str, hours: Iterable[tuple[int, tuple[float, ...]]]) -> None:
        """Load hourly prices (hour, prices in asset order) recorded elsewhere."""
        rows = [(vault, hour_of(h), ",".join(str(p) for p in px)) for h, px in hours]
        self._write("INSERT OR REPLACE INTO price_history VALUES (?, ?, ?)", rows)

    def oracle_history(self, vault: str, n_assets: int, max_rows: int = MAX_HOURS
                       ) -> OracleHistory:
        """The vault's hourly rows, oldest first; rows from another basket size are skipped."""
        rows = self.conn.execute(
            "SELECT hour_ts, prices FROM price_history WHERE vault = ? "
            "ORDER BY hour_ts DESC LIMIT ?",
            (vault, max_rows),
        ).fetchall()
        parsed = [(int(h), tuple(float(x) for x in p.split(","))) for h, p in reversed(rows)]
        kept = [(h, px) for h, px in parsed if len(px) == n_assets]
        return OracleHistory(hours_ts=tuple(h for h, _ in kept),
                             prices=tuple(px for _, px in kept))

    # ------------------------------------------------------------ gas

    def has_gas_hour(self, chain_id: int, hour_ts: int) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM gas_history WHERE chain_id = ? AND hour_ts = ?",
            (chain_id, hour_of(hour_ts)),
        ).fetchone()
        return row is not None

    def record_gas(self, chain_id: int, hours: Iterable[GasHour]) -> None:
        rows = [(chain_id, hour_of(g.hour_ts), str(g.base_fee_wei), str(g.tip_wei))
                for g in hours]
        self._write("INSERT OR REPLACE INTO gas_history VALUES (?, ?, ?, ?)", rows)

    def gas_history(self, chain_id: int, max_rows: int = MAX_HOURS) -> list[GasHour]:
        """The chain's hourly gas, oldest first."""
        rows = self.conn.execute(
            "SELECT hour_ts, base_fee_wei, tip_wei FROM gas_history WHERE chain_id = ? "
            "ORDER BY hour_ts DESC LIMIT ?",
            (chain_id, max_rows),
        ).fetchall()
        return [GasHour(hour_ts=int(h), base_fee_wei=int(b), tip_wei=int(t))
                for h, b, t in reversed(rows)]

    # ------------------------------------------------------------ plumbing

    def _write(self, sql: str, rows: Sequence[tuple[object, ...]]) -> None:
        try:
            self.conn.executemany(sql, rows)
            self.conn.commit()
        except sqlite3.Error as err:
            raise LedgerError(f"price history write failed: {err}") from err

    def close(self) -> None:
        self.conn.close()
