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

import numpy as np
from numpy.typing import NDArray

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


_NO_HOURS = np.empty(0, dtype=np.int64)


def hour_of(ts: int) -> int:
    return ts // HOUR_S * HOUR_S


def _parse(rows: list[tuple[int, str]], n_assets: int
           ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """(hours, prices) of the rows whose basket has `n_assets` assets."""
    parsed = [(int(h), p.split(",")) for h, p in rows]
    kept = [(h, px) for h, px in parsed if len(px) == n_assets]
    hours = np.fromiter((h for h, _ in kept), dtype=np.int64, count=len(kept))
    prices = np.array([px for _, px in kept], dtype=float).reshape(len(kept), n_assets)
    return hours, prices


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
        self._cache: dict[tuple[str, int], tuple[NDArray[np.int64], NDArray[np.float64]]] = {}

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
        for key in [k for k in self._cache if k[0] == vault]:
            del self._cache[key]  # older hours changed: read the vault's history afresh

    def oracle_history(self, vault: str, n_assets: int) -> OracleHistory:
        """The vault's last MAX_HOURS hourly rows, oldest first; rows from another basket size
        are skipped.
        Kept in memory between ticks: each call reads only the hours from the last one held
        (that hour may have been rewritten), so a tick costs one small query per vault."""
        key = (vault, n_assets)
        hours, prices = self._cache.get(key, (_NO_HOURS, np.empty((0, n_assets))))
        if hours.size:
            rows = self.conn.execute(
                "SELECT hour_ts, prices FROM price_history WHERE vault = ? AND hour_ts >= ? "
                "ORDER BY hour_ts", (vault, int(hours[-1]))).fetchall()
        else:
            rows = self.conn.execute(
                "SELECT hour_ts, prices FROM price_history WHERE vault = ? "
                "ORDER BY hour_ts DESC LIMIT ?", (vault, MAX_HOURS)).fetchall()[::-1]
        new_h, new_px = _parse(rows, n_assets)
        if new_h.size:
            keep = hours < new_h[0]
            hours = np.concatenate([hours[keep], new_h])[-MAX_HOURS:]
            prices = np.concatenate([prices[keep], new_px])[-MAX_HOURS:]
            self._cache[key] = (hours, prices)
        return OracleHistory(hours_ts=hours, prices=prices)

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
