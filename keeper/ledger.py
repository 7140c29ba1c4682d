"""The keeper's persistent ledger: SQLite (stdlib sqlite3, WAL).

Holds ticks, transactions with every attempt (hash, fees, raw signed bytes), tx events, the
local nonce view and the epoch idempotency locks. Transactions and attempts are written BEFORE
broadcast, so a restart can resolve them instead of sending twice. A corrupt, locked or newer
store raises LedgerError; it is never reset silently.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from keeper.errors import LedgerError
from keeper.models import TickRecord

SCHEMA_VERSION = 1
FROZEN = {"frozen": True, "slots": True, "kw_only": True}

_SCHEMA = """
CREATE TABLE ticks (
  id INTEGER PRIMARY KEY, vault TEXT NOT NULL, chain_id INTEGER, block_number INTEGER,
  decision TEXT NOT NULL, reason TEXT NOT NULL, verdict TEXT, tx_id INTEGER,
  started_ts REAL NOT NULL, finished_ts REAL NOT NULL, details TEXT NOT NULL DEFAULT '{}');
CREATE INDEX ticks_vault ON ticks (vault, id);
CREATE TABLE txs (
  id INTEGER PRIMARY KEY, chain_id INTEGER NOT NULL, sender TEXT NOT NULL,
  nonce INTEGER NOT NULL, purpose TEXT NOT NULL, vault TEXT, epoch_key TEXT,
  to_addr TEXT, value_wei TEXT NOT NULL DEFAULT '0', data TEXT NOT NULL DEFAULT '0x',
  gas_limit INTEGER NOT NULL, status TEXT NOT NULL, mined_hash TEXT, receipt_block INTEGER,
  receipt_block_hash TEXT, receipt_status INTEGER, gas_used INTEGER,
  effective_gas_price_wei TEXT, error TEXT, created_ts REAL NOT NULL, updated_ts REAL NOT NULL);
CREATE INDEX txs_status ON txs (chain_id, sender, status);
CREATE INDEX txs_epoch ON txs (vault, epoch_key);
CREATE TABLE attempts (
  id INTEGER PRIMARY KEY, tx_id INTEGER NOT NULL REFERENCES txs(id), hash TEXT NOT NULL UNIQUE,
  max_fee_wei TEXT NOT NULL, priority_fee_wei TEXT NOT NULL, raw_tx BLOB NOT NULL,
  created_ts REAL NOT NULL);
CREATE TABLE tx_events (
  id INTEGER PRIMARY KEY, tx_id INTEGER NOT NULL REFERENCES txs(id), kind TEXT NOT NULL,
  detail TEXT NOT NULL DEFAULT '', ts REAL NOT NULL);
CREATE TABLE nonces (
  chain_id INTEGER NOT NULL, address TEXT NOT NULL, next_nonce INTEGER NOT NULL,
  updated_ts REAL NOT NULL, PRIMARY KEY (chain_id, address));
CREATE TABLE epoch_locks (
  vault TEXT NOT NULL, epoch TEXT NOT NULL, owner TEXT NOT NULL, expires_ts REAL NOT NULL,
  done INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (vault, epoch));
"""


class TxStatus(StrEnum):
    PENDING = "pending"
    MINED = "mined"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    REPLACED = "replaced"
    DROPPED = "dropped"
    CANCELLED = "cancelled"


OPEN_STATUSES = (TxStatus.PENDING, TxStatus.MINED)


@dataclass(**FROZEN)
class AttemptRow:
    hash: str
    max_fee_wei: int
    priority_fee_wei: int
    raw_tx: bytes
    created_ts: float


@dataclass(**FROZEN)
class TxRow:
    id: int
    chain_id: int
    sender: str
    nonce: int
    purpose: str
    vault: str | None
    epoch_key: str | None
    to_addr: str | None
    value_wei: int
    data: str
    gas_limit: int
    status: TxStatus
    mined_hash: str | None
    receipt_block: int | None
    receipt_block_hash: str | None
    receipt_status: int | None
    gas_used: int | None
    effective_gas_price_wei: int | None
    error: str | None
    attempts: tuple[AttemptRow, ...]


@dataclass(**FROZEN)
class NewTx:
    """What to persist before the first broadcast."""

    chain_id: int
    sender: str
    nonce: int
    purpose: str
    gas_limit: int
    to_addr: str | None = None
    value_wei: int = 0
    data: str = "0x"
    vault: str | None = None
    epoch_key: str | None = None


def _wrap(path: Path, err: sqlite3.Error, busy_timeout_s: float) -> LedgerError:
    text = str(err)
    if "locked" in text or "busy" in text:
        return LedgerError(
            f"ledger {path} is locked by another process (waited {busy_timeout_s:g} s): "
            "is another keeper running on this file?"
        )
    if isinstance(err, sqlite3.DatabaseError) and not isinstance(err, sqlite3.OperationalError):
        return LedgerError(
            f"ledger {path} is corrupt or not a SQLite database ({text}): move it aside and "
            "restore a backup; it is never reset automatically"
        )
    return LedgerError(f"ledger {path}: {text}")


class Ledger:
    """The SQLite ledger. One connection, used from one thread at a time (callers lock)."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()  # one connection shared by the scheduler's threads
        self._conn = self._connect()

    # ------------------------------------------------------------ opening

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
        except (OSError, sqlite3.Error) as err:
            raise LedgerError(
                f"ledger {self.path} cannot be opened ({err}): check the path and its permissions"
            ) from err
        try:
            self._init(conn)
        except sqlite3.Error as err:
            conn.close()
            raise _wrap(self.path, err, self.busy_timeout_s) from err
        except LedgerError:
            conn.close()
            raise
        return conn

    def _init(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise LedgerError(
                f"ledger {self.path} failed its integrity check ({check}): move it "
                "aside and restore a backup; it is never reset automatically"
            )
        self._enable_wal(conn)
        conn.execute("PRAGMA synchronous = FULL")  # a persisted attempt must survive a crash
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("BEGIN IMMEDIATE")  # two keepers opening a new file: one creates it
        try:
            self._create_or_check_schema(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _create_or_check_schema(self, conn: sqlite3.Connection) -> None:
        """Inside the write lock, so the version read and the creation are one step."""
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif version > SCHEMA_VERSION:
            raise LedgerError(
                f"ledger {self.path} has schema {version}, newer than this keeper "
                f"({SCHEMA_VERSION}): upgrade the keeper"
            )

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL (persistent, so only a new file switches). SQLite answers a switch that
        meets another connection's lock with SQLITE_BUSY at once, without its busy handler, so
        the switch is retried here until the busy timeout."""
        deadline = time.monotonic() + self.busy_timeout_s
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)
                continue
            if str(mode).lower() != "wal":
                raise LedgerError(
                    f"ledger {self.path} cannot use WAL journaling (got {mode!r}): put it on a "
                    "local file system"
                )
            return

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; any sqlite error becomes a LedgerError."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as err:
                raise _wrap(self.path, err, self.busy_timeout_s) from err
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except sqlite3.Error as err:
                self._conn.execute("ROLLBACK")
                raise _wrap(self.path, err, self.busy_timeout_s) from err
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        try:
            with self._lock:
                cur = self._conn.execute(sql, args)
                cur.row_factory = sqlite3.Row
                return list(cur.fetchall())
        except sqlite3.Error as err:
            raise _wrap(self.path, err, self.busy_timeout_s) from err

    # ------------------------------------------------------------ ticks

    def record_tick(self, tick: TickRecord) -> int:
        return self.record_ticks([tick])[0]

    def record_ticks(self, ticks: list[TickRecord]) -> list[int]:
        """Record several ticks in one transaction (one fsync per keeper tick, not per vault)."""
        now = time.time()
        ids = []
        with self._tx() as c:
            for tick in ticks:
                cur = c.execute(
                    "INSERT INTO ticks (vault, chain_id, block_number, decision, reason, verdict, "
                    "tx_id, started_ts, finished_ts, details) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (tick.vault, tick.chain_id, tick.block_number, tick.decision, tick.reason,
                     tick.verdict, tick.tx_id, tick.started_ts or now, tick.finished_ts or now,
                     tick.details),
                )
                ids.append(int(cur.lastrowid or 0))
        return ids

    def recent_decisions(self, vault: str | None = None, limit: int = 20) -> list[TickRecord]:
        """Newest first."""
        where, args = ("WHERE vault = ?", (vault,)) if vault else ("", ())
        rows = self._read(f"SELECT * FROM ticks {where} ORDER BY id DESC LIMIT ?", (*args, limit))
        return [TickRecord(**{k: v for k, v in dict(r).items() if k != "id"}) for r in rows]

    # ------------------------------------------------------------ transactions

    def create_tx(self, new: NewTx) -> int:
        now = time.time()
        with self._tx() as c:
            cur = c.execute(
                "INSERT INTO txs (chain_id, sender, nonce, purpose, vault, epoch_key, to_addr, "
                "value_wei, data, gas_limit, status, created_ts, updated_ts) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    new.chain_id,
                    new.sender,
                    new.nonce,
                    new.purpose,
                    new.vault,
                    new.epoch_key,
                    new.to_addr,
                    str(new.value_wei),
                    new.data,
                    new.gas_limit,
                    TxStatus.PENDING,
                    now,
                    now,
                ),
            )
            tx_id = int(cur.lastrowid or 0)
            self._event(c, tx_id, "created", f"nonce={new.nonce}")
            return tx_id

    def add_attempt(
        self, tx_id: int, tx_hash: str, max_fee_wei: int, priority_fee_wei: int, raw_tx: bytes
    ) -> None:
        """Persist a signed attempt; call BEFORE broadcasting it."""
        with self._tx() as c:
            c.execute(
                "INSERT INTO attempts (tx_id, hash, max_fee_wei, priority_fee_wei, raw_tx, "
                "created_ts) VALUES (?,?,?,?,?,?)",
                (tx_id, tx_hash, str(max_fee_wei), str(priority_fee_wei), raw_tx, time.time()),
            )
            self._event(
                c, tx_id, "signed", f"{tx_hash} max_fee={max_fee_wei} tip={priority_fee_wei}"
            )

    def add_event(self, tx_id: int, kind: str, detail: str = "") -> None:
        with self._tx() as c:
            self._event(c, tx_id, kind, detail)

    @staticmethod
    def _event(c: sqlite3.Connection, tx_id: int, kind: str, detail: str) -> None:
        c.execute(
            "INSERT INTO tx_events (tx_id, kind, detail, ts) VALUES (?,?,?,?)",
            (tx_id, kind, detail, time.time()),
        )

    def events(self, tx_id: int) -> list[tuple[str, str]]:
        rows = self._read(
            "SELECT kind, detail FROM tx_events WHERE tx_id = ? ORDER BY id", (tx_id,)
        )
        return [(r["kind"], r["detail"]) for r in rows]

    def set_tx_status(
        self, tx_id: int, status: TxStatus, *, error: str | None = None, **receipt: Any
    ) -> None:
        """Update status; `receipt` may set mined_hash, receipt_block, receipt_block_hash,
        receipt_status, gas_used, effective_gas_price_wei (None clears them on a reorg)."""
        allowed = {
            "mined_hash",
            "receipt_block",
            "receipt_block_hash",
            "receipt_status",
            "gas_used",
            "effective_gas_price_wei",
        }
        if set(receipt) - allowed:
            raise ValueError(f"unknown receipt fields: {sorted(set(receipt) - allowed)}")
        if receipt.get("effective_gas_price_wei") is not None:
            receipt["effective_gas_price_wei"] = str(receipt["effective_gas_price_wei"])
        sets = "".join(f", {k} = ?" for k in receipt)
        with self._tx() as c:
            c.execute(
                f"UPDATE txs SET status = ?, error = ?, updated_ts = ?{sets} WHERE id = ?",
                (str(status), error, time.time(), *receipt.values(), tx_id),
            )
            self._event(c, tx_id, str(status), error or "")

    def get_tx(self, tx_id: int) -> TxRow:
        rows = self._read("SELECT * FROM txs WHERE id = ?", (tx_id,))
        if not rows:
            raise LedgerError(f"ledger {self.path}: no transaction with id {tx_id}")
        return self._tx_row(rows[0])

    def _tx_row(self, r: sqlite3.Row) -> TxRow:
        atts = self._read("SELECT * FROM attempts WHERE tx_id = ? ORDER BY id", (r["id"],))
        attempts = tuple(
            AttemptRow(
                hash=a["hash"],
                max_fee_wei=int(a["max_fee_wei"]),
                priority_fee_wei=int(a["priority_fee_wei"]),
                raw_tx=bytes(a["raw_tx"]),
                created_ts=a["created_ts"],
            )
            for a in atts
        )
        egp = r["effective_gas_price_wei"]
        fields = {k: v for k, v in dict(r).items() if k not in ("created_ts", "updated_ts")}
        fields.update(
            status=TxStatus(r["status"]),
            value_wei=int(r["value_wei"]),
            effective_gas_price_wei=None if egp is None else int(egp),
        )
        return TxRow(**fields, attempts=attempts)

    def pending_txs(self, chain_id: int | None = None, sender: str | None = None) -> list[TxRow]:
        """Transactions not yet final (pending or mined-but-unconfirmed), oldest nonce first."""
        sql = "SELECT * FROM txs WHERE status IN (?, ?)"
        args: list[Any] = [str(s) for s in OPEN_STATUSES]
        if chain_id is not None:
            sql, args = sql + " AND chain_id = ?", [*args, chain_id]
        if sender is not None:
            sql, args = sql + " AND lower(sender) = lower(?)", [*args, sender]
        return [self._tx_row(r) for r in self._read(sql + " ORDER BY nonce, id", tuple(args))]

    def txs_for_epoch(self, vault: str, epoch_key: str) -> list[TxRow]:
        rows = self._read(
            "SELECT * FROM txs WHERE vault = ? AND epoch_key = ? ORDER BY id", (vault, epoch_key)
        )
        return [self._tx_row(r) for r in rows]

    # ------------------------------------------------------------ nonces

    def load_nonce(self, chain_id: int, address: str) -> int | None:
        rows = self._read(
            "SELECT next_nonce FROM nonces WHERE chain_id = ? AND address = ?",
            (chain_id, address.lower()),
        )
        return int(rows[0]["next_nonce"]) if rows else None

    def save_nonce(self, chain_id: int, address: str, next_nonce: int) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO nonces (chain_id, address, next_nonce, updated_ts) VALUES (?,?,?,?) "
                "ON CONFLICT (chain_id, address) DO UPDATE SET next_nonce = excluded.next_nonce, "
                "updated_ts = excluded.updated_ts",
                (chain_id, address.lower(), next_nonce, time.time()),
            )

    # ------------------------------------------------------------ epoch locks

    def acquire_epoch(
        self, vault: str, epoch: str | int, owner: str, ttl_s: float, now_ts: float | None = None
    ) -> bool:
        """Take the (vault, epoch) lock for `owner`; False if another owner holds an unexpired
        lock or the epoch is already done. Re-acquiring one's own lock extends it."""
        now = time.time() if now_ts is None else now_ts
        with self._tx() as c:
            row = c.execute(
                "SELECT owner, expires_ts, done FROM epoch_locks WHERE vault = ? AND epoch = ?",
                (vault, str(epoch)),
            ).fetchone()
            if row is not None and (row[2] or (row[0] != owner and row[1] > now)):
                return False
            c.execute(
                "INSERT INTO epoch_locks (vault, epoch, owner, expires_ts) VALUES (?,?,?,?) "
                "ON CONFLICT (vault, epoch) DO UPDATE SET owner = excluded.owner, "
                "expires_ts = excluded.expires_ts",
                (vault, str(epoch), owner, now + ttl_s),
            )
            return True

    def finish_epoch(self, vault: str, epoch: str | int, owner: str | None, *, done: bool) -> None:
        """done=True marks the epoch executed forever; done=False releases the lock.
        owner=None acts for any owner (restart recovery: the old owner is gone)."""
        who, args = ("", ()) if owner is None else (" AND owner = ?", (owner,))
        with self._tx() as c:
            if done:
                c.execute(
                    "INSERT INTO epoch_locks (vault, epoch, owner, expires_ts, done) "
                    "VALUES (?,?,?,0,1) ON CONFLICT (vault, epoch) DO UPDATE SET done = 1 "
                    f"WHERE epoch_locks.done = 0{who.replace('owner', 'epoch_locks.owner')}",
                    (vault, str(epoch), owner or "recovery", *args),
                )
            else:
                c.execute(
                    f"DELETE FROM epoch_locks WHERE vault = ? AND epoch = ? AND done = 0{who}",
                    (vault, str(epoch), *args),
                )

    def epoch_owner(self, vault: str, epoch: str | int) -> tuple[str, float, bool] | None:
        rows = self._read(
            "SELECT owner, expires_ts, done FROM epoch_locks WHERE vault = ? AND epoch = ?",
            (vault, str(epoch)),
        )
        return (rows[0]["owner"], rows[0]["expires_ts"], bool(rows[0]["done"])) if rows else None


def details_json(details: dict[str, Any]) -> str:
    """Serialise tick details for TickRecord.details."""
    return json.dumps(details, sort_keys=True, default=str)
