"""The keeper's persistent ledger, on the store (keeper/store): SQLite or PostgreSQL.

Holds ticks, transactions with every attempt (hash, fees, raw signed bytes), tx events, the
nonce view and the epoch leases. Transactions and attempts are written BEFORE broadcast, so a
restart can resolve them instead of sending twice. Nonces are claimed and their transaction row
written in one store transaction, so keepers sharing an account and a store never hand out one
nonce twice. A corrupt, locked, unreachable or newer store raises LedgerError; it is never
reset silently.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, CursorResult, Row

from keeper.errors import LedgerError
from keeper.models import TickRecord
from keeper.store import leases, open_store
from keeper.store.engine import DB_ERRORS, StoreUrl, parse_store, store_error
from keeper.store.leases import LeaseView
from keeper.store.migrate import LEGACY_USER_VERSION
from keeper.store.schema import attempts, epoch_locks, nonces, tx_events, txs
from keeper.store.schema import ticks as ticks_t

SCHEMA_VERSION = LEGACY_USER_VERSION
FROZEN = {"frozen": True, "slots": True, "kw_only": True}


class TxStatus(StrEnum):
    PENDING = "pending"
    MINED = "mined"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    REPLACED = "replaced"
    DROPPED = "dropped"
    CANCELLED = "cancelled"


OPEN_STATUSES = (TxStatus.PENDING, TxStatus.MINED)
_OPEN = [str(s) for s in OPEN_STATUSES]
_RECEIPT_FIELDS = frozenset(
    {
        "mined_hash",
        "receipt_block",
        "receipt_block_hash",
        "receipt_status",
        "gas_used",
        "effective_gas_price_wei",
    }
)


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
    owner: str | None = None


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
    owner: str | None = None


class Ledger:
    """The ledger on a SQLite file or a PostgreSQL database; safe to share between threads."""

    def __init__(self, path: str | Path | StoreUrl, *, busy_timeout_s: float = 5.0) -> None:
        self.store = path if isinstance(path, StoreUrl) else parse_store(path)
        self.path = self.store.path or Path(self.store.shown)
        self.busy_timeout_s = busy_timeout_s
        self.engine = open_store(self.store, busy_timeout_s)

    # ------------------------------------------------------------ opening

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """One write transaction; any database error becomes a LedgerError."""
        try:
            with self.engine.connect().execution_options(write=True) as c, c.begin():
                yield c
        except DB_ERRORS as err:
            raise store_error(self.store, err, self.busy_timeout_s) from err

    def _read(self, query: Any) -> list[Row[Any]]:
        try:
            with self.engine.connect() as c:
                return list(c.execute(query).all())
        except DB_ERRORS as err:
            raise store_error(self.store, err, self.busy_timeout_s) from err

    # ------------------------------------------------------------ ticks

    def record_tick(self, tick: TickRecord) -> int:
        return self.record_ticks([tick])[0]

    def record_ticks(self, ticks: list[TickRecord]) -> list[int]:
        """Record several ticks in one transaction (one fsync per keeper tick, not per vault)."""
        now = time.time()
        ids = []
        with self._tx() as c:
            for t in ticks:
                values = {
                    "vault": t.vault,
                    "chain_id": t.chain_id,
                    "block_number": t.block_number,
                    "decision": t.decision,
                    "reason": t.reason,
                    "verdict": t.verdict,
                    "tx_id": t.tx_id,
                    "started_ts": t.started_ts or now,
                    "finished_ts": t.finished_ts or now,
                    "details": t.details,
                }
                ids.append(_new_id(c.execute(insert(ticks_t).values(**values))))
        return ids

    def recent_decisions(self, vault: str | None = None, limit: int = 20) -> list[TickRecord]:
        """Newest first."""
        query = select(ticks_t).order_by(ticks_t.c.id.desc()).limit(limit)
        if vault:
            query = query.where(ticks_t.c.vault == vault)
        return [
            TickRecord(**{k: v for k, v in r._mapping.items() if k != "id"})
            for r in self._read(query)
        ]

    # ------------------------------------------------------------ transactions

    def create_tx(self, new: NewTx) -> int:
        with self._tx() as c:
            return self._insert_tx(c, new)

    def _insert_tx(self, c: Connection, new: NewTx) -> int:
        now = time.time()
        values = {
            "chain_id": new.chain_id,
            "sender": new.sender,
            "nonce": new.nonce,
            "purpose": new.purpose,
            "vault": new.vault,
            "epoch_key": new.epoch_key,
            "to_addr": new.to_addr,
            "value_wei": str(new.value_wei),
            "data": new.data,
            "gas_limit": new.gas_limit,
            "status": str(TxStatus.PENDING),
            "created_ts": now,
            "updated_ts": now,
            "owner": new.owner,
        }
        tx_id = _new_id(c.execute(insert(txs).values(**values)))
        self._event(c, tx_id, "created", f"nonce={new.nonce}")
        return tx_id

    def add_attempt(
        self, tx_id: int, tx_hash: str, max_fee_wei: int, priority_fee_wei: int, raw_tx: bytes
    ) -> None:
        """Persist a signed attempt; call BEFORE broadcasting it."""
        with self._tx() as c:
            c.execute(
                insert(attempts).values(
                    tx_id=tx_id,
                    hash=tx_hash,
                    max_fee_wei=str(max_fee_wei),
                    priority_fee_wei=str(priority_fee_wei),
                    raw_tx=raw_tx,
                    created_ts=time.time(),
                )
            )
            self._event(
                c, tx_id, "signed", f"{tx_hash} max_fee={max_fee_wei} tip={priority_fee_wei}"
            )

    def add_event(self, tx_id: int, kind: str, detail: str = "") -> None:
        with self._tx() as c:
            self._event(c, tx_id, kind, detail)

    @staticmethod
    def _event(c: Connection, tx_id: int, kind: str, detail: str) -> None:
        c.execute(insert(tx_events).values(tx_id=tx_id, kind=kind, detail=detail, ts=time.time()))

    def events(self, tx_id: int) -> list[tuple[str, str]]:
        rows = self._read(
            select(tx_events.c.kind, tx_events.c.detail)
            .where(tx_events.c.tx_id == tx_id)
            .order_by(tx_events.c.id)
        )
        return [(str(r.kind), str(r.detail)) for r in rows]

    def set_tx_status(
        self, tx_id: int, status: TxStatus, *, error: str | None = None, **receipt: Any
    ) -> None:
        """Update status; `receipt` may set mined_hash, receipt_block, receipt_block_hash,
        receipt_status, gas_used, effective_gas_price_wei (None clears them on a reorg)."""
        if set(receipt) - _RECEIPT_FIELDS:
            raise ValueError(f"unknown receipt fields: {sorted(set(receipt) - _RECEIPT_FIELDS)}")
        if receipt.get("effective_gas_price_wei") is not None:
            receipt["effective_gas_price_wei"] = str(receipt["effective_gas_price_wei"])
        with self._tx() as c:
            c.execute(
                update(txs)
                .where(txs.c.id == tx_id)
                .values(status=str(status), error=error, updated_ts=time.time(), **receipt)
            )
            self._event(c, tx_id, str(status), error or "")

    def get_tx(self, tx_id: int) -> TxRow:
        rows = self._read(select(txs).where(txs.c.id == tx_id))
        if not rows:
            raise LedgerError(f"ledger {self.store.shown}: no transaction with id {tx_id}")
        return self._tx_rows(rows)[0]

    def _tx_rows(self, rows: list[Row[Any]]) -> list[TxRow]:
        ids = [r.id for r in rows]
        atts: dict[int, list[AttemptRow]] = {i: [] for i in ids}
        if ids:
            query = select(attempts).where(attempts.c.tx_id.in_(ids)).order_by(attempts.c.id)
            for a in self._read(query):
                atts[a.tx_id].append(
                    AttemptRow(
                        hash=a.hash,
                        max_fee_wei=int(a.max_fee_wei),
                        priority_fee_wei=int(a.priority_fee_wei),
                        raw_tx=bytes(a.raw_tx),
                        created_ts=a.created_ts,
                    )
                )
        return [_tx_row(r, tuple(atts[r.id])) for r in rows]

    def pending_txs(self, chain_id: int | None = None, sender: str | None = None) -> list[TxRow]:
        """Transactions not yet final (pending or mined-but-unconfirmed), oldest nonce first."""
        query = select(txs).where(txs.c.status.in_(_OPEN)).order_by(txs.c.nonce, txs.c.id)
        if chain_id is not None:
            query = query.where(txs.c.chain_id == chain_id)
        if sender is not None:
            query = query.where(func.lower(txs.c.sender) == sender.lower())
        return self._tx_rows(self._read(query))

    def txs_for_epoch(self, vault: str, epoch_key: str) -> list[TxRow]:
        query = (
            select(txs).where(txs.c.vault == vault, txs.c.epoch_key == epoch_key).order_by(txs.c.id)
        )
        return self._tx_rows(self._read(query))

    # ------------------------------------------------------------ nonces

    def load_nonce(self, chain_id: int, address: str) -> int | None:
        rows = self._read(
            select(nonces.c.next_nonce).where(
                nonces.c.chain_id == chain_id, nonces.c.address == address.lower()
            )
        )
        return int(rows[0][0]) if rows else None

    def save_nonce(self, chain_id: int, address: str, next_nonce: int) -> None:
        with self._tx() as c:
            _put_nonce(c, chain_id, address, next_nonce)

    def claim_nonce(
        self,
        chain_id: int,
        address: str,
        floor: int,
        build: Callable[[int], NewTx] | None = None,
    ) -> tuple[int, int | None]:
        """Claim the next nonce of (chain, address) and, with `build`, write its transaction row
        in the same store transaction: (nonce, tx id). The nonce is at least `floor` (the node's
        count), the stored next nonce and one above every open transaction of the account."""
        with self._tx() as c:
            leases.lock_vault(c, f"nonce:{chain_id}:{address.lower()}")
            stored = c.execute(
                select(nonces.c.next_nonce).where(
                    nonces.c.chain_id == chain_id, nonces.c.address == address.lower()
                )
            ).scalar()
            top = _open_max_nonce(c, chain_id, address)
            nonce = max(floor, int(stored or 0), -1 if top is None else top + 1)
            tx_id = self._insert_tx(c, build(nonce)) if build is not None else None
            _put_nonce(c, chain_id, address, nonce + 1)
        return nonce, tx_id

    def release_nonce(self, chain_id: int, address: str, nonce: int) -> bool:
        """Hand back `nonce` if it is still the newest claimed one (never broadcast)."""
        with self._tx() as c:
            result = c.execute(
                update(nonces)
                .where(
                    nonces.c.chain_id == chain_id,
                    nonces.c.address == address.lower(),
                    nonces.c.next_nonce == nonce + 1,
                )
                .values(next_nonce=nonce, updated_ts=time.time())
            )
            return result.rowcount == 1

    def resync_nonce(
        self, chain_id: int, address: str, latest: int, pending: int
    ) -> tuple[int, tuple[int, ...]]:
        """Set the next nonce from the node's counts and the open transactions, in one store
        transaction: (next nonce, our open nonces >= latest)."""
        with self._tx() as c:
            leases.lock_vault(c, f"nonce:{chain_id}:{address.lower()}")
            rows = c.execute(
                select(txs.c.nonce).where(
                    txs.c.chain_id == chain_id,
                    func.lower(txs.c.sender) == address.lower(),
                    txs.c.status.in_(_OPEN),
                    txs.c.nonce >= latest,
                )
            ).all()
            ours = tuple(sorted({int(r[0]) for r in rows}))
            nxt = max(latest, pending, (ours[-1] + 1) if ours else 0)
            _put_nonce(c, chain_id, address, nxt)
        return nxt, ours

    # ------------------------------------------------------------ epoch leases

    def take_lease(
        self, vault: str, epoch: str | int, owner: str, ttl_s: float, now_ts: float | None = None
    ) -> int:
        """Take the (vault, epoch) lease for `owner`: its fencing token, or 0 if another live
        owner holds an unexpired lease or the epoch is done. Taking one's own lease again
        extends it with a new token."""
        with self._tx() as c:
            now = leases.db_now(c) if now_ts is None else now_ts
            return leases.take(c, vault, str(epoch), owner, ttl_s, now)

    def acquire_epoch(
        self, vault: str, epoch: str | int, owner: str, ttl_s: float, now_ts: float | None = None
    ) -> bool:
        return self.take_lease(vault, epoch, owner, ttl_s, now_ts) > 0

    def renew_lease(
        self,
        vault: str,
        epoch: str | int,
        owner: str,
        token: int,
        ttl_s: float,
        now_ts: float | None = None,
    ) -> bool:
        """The fence: extend the lease if `owner` still holds it with `token`; False if it
        expired or another keeper took it."""
        with self._tx() as c:
            now = leases.db_now(c) if now_ts is None else now_ts
            return leases.renew(c, vault, str(epoch), owner, token, ttl_s, now)

    def finish_epoch(self, vault: str, epoch: str | int, owner: str | None, *, done: bool) -> None:
        """done=True marks the epoch executed forever; done=False releases the lease.
        owner=None acts for any owner (recovery: the old owner is gone)."""
        key = (epoch_locks.c.vault == vault, epoch_locks.c.epoch == str(epoch))
        mine = () if owner is None else (epoch_locks.c.owner == owner,)
        with self._tx() as c:
            leases.lock_vault(c, vault)
            if not done:
                c.execute(delete(epoch_locks).where(*key, epoch_locks.c.done == 0, *mine))
                return
            held = leases.view(c, vault, str(epoch))
            if held is None:
                c.execute(
                    insert(epoch_locks).values(
                        vault=vault, epoch=str(epoch), owner=owner or "recovery", expires_ts=0,
                        done=1, token=0,
                    )
                )
            elif not held.done and (owner is None or held.owner == owner):
                c.execute(update(epoch_locks).where(*key).values(done=1))

    def epoch_owner(self, vault: str, epoch: str | int) -> tuple[str, float, bool] | None:
        held = self.lease(vault, epoch)
        return None if held is None else (held.owner, held.expires_ts, held.done)

    def lease(self, vault: str, epoch: str | int) -> LeaseView | None:
        try:
            with self.engine.connect() as c:
                return leases.view(c, vault, str(epoch))
        except DB_ERRORS as err:
            raise store_error(self.store, err, self.busy_timeout_s) from err

    def release_orphaned_leases(self) -> int:
        """Free the leases whose owner is gone (expired, or a dead process of this host) and
        that left no open transaction to resume (those are taken over by recovery instead).
        Returns how many were freed."""
        freed = 0
        with self._tx() as c:
            for vault, epoch, owner in leases.orphans(c, leases.db_now(c)):
                if _open_tx_under(c, vault, epoch):
                    continue
                leases.lock_vault(c, vault)
                c.execute(
                    delete(epoch_locks).where(
                        epoch_locks.c.vault == vault,
                        epoch_locks.c.epoch == epoch,
                        epoch_locks.c.owner == owner,
                        epoch_locks.c.done == 0,
                    )
                )
                freed += 1
        return freed

    def orphaned_leases(self) -> list[tuple[str, str, str]]:
        """Unfinished leases whose owner is gone: (vault, epoch, owner)."""
        try:
            with self.engine.connect() as c:
                return leases.orphans(c, leases.db_now(c))
        except DB_ERRORS as err:
            raise store_error(self.store, err, self.busy_timeout_s) from err


def _open_tx_under(c: Connection, vault: str, epoch: str) -> bool:
    """An open transaction driven under the (vault, epoch) lease (or account:/nonce: lease)."""
    if vault.startswith("account:") and epoch.startswith("nonce:"):
        where = (
            func.lower(txs.c.sender) == vault.removeprefix("account:"),
            txs.c.nonce == int(epoch.removeprefix("nonce:")),
        )
    else:
        where = (txs.c.vault == vault, txs.c.epoch_key == epoch)
    query = select(func.count()).select_from(txs).where(*where, txs.c.status.in_(_OPEN))
    return bool(c.execute(query).scalar())


def _new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _put_nonce(c: Connection, chain_id: int, address: str, next_nonce: int) -> None:
    key = (nonces.c.chain_id == chain_id, nonces.c.address == address.lower())
    now = time.time()
    if c.execute(update(nonces).where(*key).values(next_nonce=next_nonce, updated_ts=now)).rowcount:
        return
    c.execute(
        insert(nonces).values(
            chain_id=chain_id, address=address.lower(), next_nonce=next_nonce, updated_ts=now
        )
    )


def _open_max_nonce(c: Connection, chain_id: int, address: str) -> int | None:
    top = c.execute(
        select(func.max(txs.c.nonce)).where(
            txs.c.chain_id == chain_id,
            func.lower(txs.c.sender) == address.lower(),
            txs.c.status.in_(_OPEN),
        )
    ).scalar()
    return None if top is None else int(top)


def _tx_row(r: Row[Any], atts: tuple[AttemptRow, ...]) -> TxRow:
    m = dict(r._mapping)
    egp = m.pop("effective_gas_price_wei")
    for k in ("created_ts", "updated_ts"):
        m.pop(k)
    m.update(
        status=TxStatus(m["status"]),
        value_wei=int(m["value_wei"]),
        effective_gas_price_wei=None if egp is None else int(egp),
    )
    return TxRow(**m, attempts=atts)


def details_json(details: dict[str, Any]) -> str:
    """Serialise tick details for TickRecord.details."""
    return json.dumps(details, sort_keys=True, default=str)
