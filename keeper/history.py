"""The history the forecast stage learns from: hourly oracle prices per vault, and hourly gas per
chain (median base fee and median tip). One sample per hour of block time.

Stored in the keeper's store (keeper/store: a SQLite file beside the ledger, or the shared
PostgreSQL database). The app appends each snapshot's feed answers and, once an hour, the
chain's gas; the forecast stage reads both. `seed_*` lets a replay start with the same history
the backtester fits on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Table, select

from keeper.errors import LedgerError
from keeper.models import GasHour, OracleHistory, VaultState
from keeper.store import open_store
from keeper.store.engine import DB_ERRORS, StoreUrl, parse_store, store_error
from keeper.store.schema import gas_history, price_history
from keeper.store.upsert import upsert

HOUR_S = 3600
MAX_HOURS = 24 * 90  # the forecast's window: 90 days


_NO_HOURS = np.empty(0, dtype=np.int64)


def hour_of(ts: int) -> int:
    return ts // HOUR_S * HOUR_S


def _parse(rows: Sequence[Any], n_assets: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """(hours, prices) of the rows whose basket has `n_assets` assets."""
    parsed = [(int(h), p.split(",")) for h, p in rows]
    kept = [(h, px) for h, px in parsed if len(px) == n_assets]
    hours = np.fromiter((h for h, _ in kept), dtype=np.int64, count=len(kept))
    prices = np.array([px for _, px in kept], dtype=float).reshape(len(kept), n_assets)
    return hours, prices


class PriceHistory:
    """Hourly oracle answers per vault (asset order) and hourly gas per chain."""

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
        self._cache: dict[tuple[str, int], tuple[NDArray[np.int64], NDArray[np.float64]]] = {}

    # ------------------------------------------------------------ oracle prices

    def record(self, state: VaultState, block_ts: int) -> None:
        self.record_many([state], block_ts)

    def record_many(self, states: list[VaultState], block_ts: int) -> None:
        """Keep the latest answer of each hour (an upsert: later ticks in an hour overwrite);
        one transaction for all vaults of a tick."""
        hour = hour_of(block_ts)
        rows = [
            {
                "vault": s.address,
                "hour_ts": hour,
                "prices": ",".join(str(a.feed.answer / 10**a.feed.decimals) for a in s.assets),
            }
            for s in states
            if s.assets and not s.feed_problems
        ]
        self._write(price_history, rows, ("vault", "hour_ts"))

    def seed_prices(self, vault: str, hours: Iterable[tuple[int, tuple[float, ...]]]) -> None:
        """Load hourly prices (hour, prices in asset order) recorded elsewhere."""
        rows = [
            {"vault": vault, "hour_ts": hour_of(h), "prices": ",".join(str(p) for p in px)}
            for h, px in hours
        ]
        self._write(price_history, rows, ("vault", "hour_ts"))
        for key in [k for k in self._cache if k[0] == vault]:
            del self._cache[key]  # older hours changed: read the vault's history afresh

    def oracle_history(self, vault: str, n_assets: int) -> OracleHistory:
        """The vault's last MAX_HOURS hourly rows, oldest first; rows from another basket size
        are skipped.
        Kept in memory between ticks: each call reads only the hours from the last one held
        (that hour may have been rewritten), so a tick costs one small query per vault."""
        key = (vault, n_assets)
        hours, prices = self._cache.get(key, (_NO_HOURS, np.empty((0, n_assets))))
        cols = (price_history.c.hour_ts, price_history.c.prices)
        if hours.size:
            query = (
                select(*cols)
                .where(price_history.c.vault == vault, price_history.c.hour_ts >= int(hours[-1]))
                .order_by(price_history.c.hour_ts)
            )
            rows = self._read(query)
        else:
            query = (
                select(*cols)
                .where(price_history.c.vault == vault)
                .order_by(price_history.c.hour_ts.desc())
                .limit(MAX_HOURS)
            )
            rows = self._read(query)[::-1]
        new_h, new_px = _parse(rows, n_assets)
        if new_h.size:
            keep = hours < new_h[0]
            hours = np.concatenate([hours[keep], new_h])[-MAX_HOURS:]
            prices = np.concatenate([prices[keep], new_px])[-MAX_HOURS:]
            self._cache[key] = (hours, prices)
        return OracleHistory(hours_ts=hours, prices=prices)

    # ------------------------------------------------------------ gas

    def has_gas_hour(self, chain_id: int, hour_ts: int) -> bool:
        query = select(gas_history.c.hour_ts).where(
            gas_history.c.chain_id == chain_id, gas_history.c.hour_ts == hour_of(hour_ts)
        )
        return bool(self._read(query))

    def record_gas(self, chain_id: int, hours: Iterable[GasHour]) -> None:
        rows = [
            {
                "chain_id": chain_id,
                "hour_ts": hour_of(g.hour_ts),
                "base_fee_wei": str(g.base_fee_wei),
                "tip_wei": str(g.tip_wei),
            }
            for g in hours
        ]
        self._write(gas_history, rows, ("chain_id", "hour_ts"))

    def gas_history(self, chain_id: int, max_rows: int = MAX_HOURS) -> list[GasHour]:
        """The chain's hourly gas, oldest first."""
        g = gas_history.c
        query = (
            select(g.hour_ts, g.base_fee_wei, g.tip_wei)
            .where(g.chain_id == chain_id)
            .order_by(g.hour_ts.desc())
            .limit(max_rows)
        )
        return [
            GasHour(hour_ts=int(h), base_fee_wei=int(b), tip_wei=int(t))
            for h, b, t in reversed(self._read(query))
        ]

    # ------------------------------------------------------------ plumbing

    def _write(self, table: Table, rows: list[dict[str, Any]], keys: tuple[str, ...]) -> None:
        if not rows:
            return
        try:
            with self.engine.connect().execution_options(write=True) as c, c.begin():
                upsert(c, table, rows, keys=keys)
        except DB_ERRORS as err:
            why = store_error(self.store, err, 5).message
            raise LedgerError(f"price history write failed: {why}") from err

    def _read(self, query: Any) -> list[Any]:
        try:
            with self.engine.connect() as c:
                return list(c.execute(query).all())
        except DB_ERRORS as err:
            raise store_error(self.store, err, 5) from err

    def close(self) -> None:
        self.engine.dispose()
