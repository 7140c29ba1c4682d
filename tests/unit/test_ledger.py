"""keeper.ledger: persist/restore, schema version, corrupt and locked files, epoch locks."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from keeper.errors import LedgerError
from keeper.ledger import SCHEMA_VERSION, Ledger, NewTx, TxStatus
from keeper.models import TickRecord
from keeper.store.migrate import head_revision

SENDER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def new_tx(nonce: int = 0, **kw: object) -> NewTx:
    base: dict[str, object] = {
        "chain_id": 31337,
        "sender": SENDER,
        "nonce": nonce,
        "purpose": "rebalance",
        "gas_limit": 300_000,
        "to_addr": "0x" + "ab" * 20,
        "vault": "main",
        "epoch_key": "7",
    }
    return NewTx(**{**base, **kw})  # type: ignore[arg-type]


def test_schema_is_versioned_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "state" / "keeper.sqlite"
    Ledger(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == head_revision()
    conn.execute("PRAGMA user_version = 9")
    conn.commit()
    conn.close()
    with pytest.raises(LedgerError, match="has schema 9, newer than this keeper \\(2\\): upgrade"):
        Ledger(path)


def test_tx_and_attempts_survive_a_restart(store_url: str) -> None:
    path = store_url
    with Ledger(path) as led:
        tx_id = led.create_tx(new_tx(nonce=4))
        led.add_attempt(tx_id, "0x" + "01" * 32, 30_000_000_000, 2_000_000_000, b"\x02raw-1")
        led.add_attempt(tx_id, "0x" + "02" * 32, 33_750_000_000, 2_250_000_000, b"\x02raw-2")
        led.save_nonce(31337, SENDER, 5)
    with Ledger(path) as led:  # a new process
        (row,) = led.pending_txs(31337, SENDER.lower())
        assert (row.id, row.nonce, row.status, row.epoch_key) == (tx_id, 4, TxStatus.PENDING, "7")
        assert [a.raw_tx for a in row.attempts] == [b"\x02raw-1", b"\x02raw-2"]
        assert [a.max_fee_wei for a in row.attempts] == [30_000_000_000, 33_750_000_000]
        assert led.load_nonce(31337, SENDER) == 5 and led.load_nonce(1, SENDER) is None
        led.set_tx_status(
            tx_id,
            TxStatus.MINED,
            mined_hash=row.attempts[1].hash,
            receipt_block=10,
            receipt_block_hash="0x" + "cd" * 32,
            receipt_status=1,
            gas_used=21_000,
            effective_gas_price_wei=10**19,
        )
        assert led.pending_txs()[0].status == TxStatus.MINED  # mined is still open
        led.set_tx_status(tx_id, TxStatus.CONFIRMED)
        assert led.pending_txs() == []
        done = led.get_tx(tx_id)
        assert done.effective_gas_price_wei == 10**19 and done.gas_used == 21_000
        assert [k for k, _ in led.events(tx_id)] == [
            "created",
            "signed",
            "signed",
            "mined",
            "confirmed",
        ]
        assert [r.id for r in led.txs_for_epoch("main", "7")] == [tx_id]


def test_reorg_clears_receipt_fields(store_url: str) -> None:
    with Ledger(store_url) as led:
        tx_id = led.create_tx(new_tx())
        led.set_tx_status(
            tx_id,
            TxStatus.MINED,
            mined_hash="0x1",
            receipt_block=3,
            receipt_block_hash="0x2",
            receipt_status=1,
            gas_used=1,
            effective_gas_price_wei=1,
        )
        led.set_tx_status(
            tx_id,
            TxStatus.PENDING,
            error="reorg",
            mined_hash=None,
            receipt_block=None,
            receipt_block_hash=None,
            receipt_status=None,
            gas_used=None,
            effective_gas_price_wei=None,
        )
        row = led.get_tx(tx_id)
        assert (row.status, row.mined_hash, row.receipt_block, row.error) == (
            TxStatus.PENDING,
            None,
            None,
            "reorg",
        )
        with pytest.raises(ValueError, match="unknown receipt fields: \\['colour'\\]"):
            led.set_tx_status(tx_id, TxStatus.FAILED, colour="red")
        with pytest.raises(LedgerError, match="no transaction with id 99"):
            led.get_tx(99)


def test_ticks_and_recent_decisions(store_url: str) -> None:
    with Ledger(store_url) as led:
        for i, vault in enumerate(["main", "other", "main"]):
            led.record_tick(
                TickRecord(
                    vault=vault,
                    decision="hold",
                    reason=f"r{i}",
                    block_number=100 + i,
                    chain_id=31337,
                )
            )
        led.record_tick(
            TickRecord(
                vault="main",
                decision="rebalance",
                reason="outside band",
                verdict="ok",
                tx_id=1,
                details='{"dev_bps": 612}',
            )
        )
        got = led.recent_decisions("main", limit=2)
        assert [(t.decision, t.reason) for t in got] == [
            ("rebalance", "outside band"),
            ("hold", "r2"),
        ]
        assert got[0].details == '{"dev_bps": 612}' and got[0].started_ts > 0
        assert len(led.recent_decisions()) == 4


def test_corrupt_file_raises_and_is_not_reset(tmp_path: Path) -> None:
    path = tmp_path / "keeper.sqlite"
    garbage = b"this is not a database" * 100
    path.write_bytes(garbage)
    with pytest.raises(LedgerError) as info:
        Ledger(path)
    assert info.value.message == (
        f"ledger {path} is corrupt or not a SQLite database (file is not a database): move it "
        "aside and restore a backup; it is never reset automatically"
    )
    assert path.read_bytes() == garbage


def test_locked_file_waits_bounded_then_raises(tmp_path: Path) -> None:
    path = tmp_path / "keeper.sqlite"
    led = Ledger(path, busy_timeout_s=0.3)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        t0 = time.monotonic()
        with pytest.raises(LedgerError) as info:
            led.record_tick(TickRecord(vault="main", decision="hold", reason="x"))
        waited = time.monotonic() - t0
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert info.value.message == (
        f"ledger {path} is locked by another process (waited 0.3 s): is another keeper running "
        "on this file?"
    )
    assert 0.25 <= waited < 3
    led.record_tick(TickRecord(vault="main", decision="hold", reason="after unlock"))
    assert led.recent_decisions()[0].reason == "after unlock"
    led.close()


def _open_fresh_ledgers(paths: list[str], barrier: Any, errors: Any) -> None:
    for path in paths:
        barrier.wait()  # every process opens the same new file at the same moment
        try:
            Ledger(path).close()
        except LedgerError as err:
            errors.put(err.message)


def test_processes_opening_a_new_file_together_all_succeed(tmp_path: Path) -> None:
    """Two keepers started together on a new ledger: one creates the schema, the other waits
    (it used to fail with "table ticks already exists" or a false "locked" error)."""
    ctx = mp.get_context("spawn")
    paths = [str(tmp_path / f"k{i}.sqlite") for i in range(8)]
    barrier, errors = ctx.Barrier(3), ctx.Queue()
    procs = [
        ctx.Process(target=_open_fresh_ledgers, args=(paths, barrier, errors)) for _ in range(3)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
    assert [proc.exitcode for proc in procs] == [0, 0, 0]
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    assert failures == []
    for path in paths:
        Ledger(path).close()
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_unopenable_path_is_a_ledger_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(LedgerError, match=r"cannot be opened .*check the path"):
        Ledger(tmp_path / "file" / "keeper.sqlite")


def test_epoch_lock_lets_one_instance_execute_an_epoch(store_url: str) -> None:
    path = store_url
    a, b = Ledger(path), Ledger(path)  # two keeper instances, one file
    try:
        assert a.acquire_epoch("main", 5, "keeper-a", ttl_s=60, now_ts=1000)
        assert not b.acquire_epoch("main", 5, "keeper-b", ttl_s=60, now_ts=1010)
        assert b.acquire_epoch("main", 6, "keeper-b", ttl_s=60, now_ts=1010)  # other epoch
        assert a.acquire_epoch("main", 5, "keeper-a", ttl_s=60, now_ts=1020)  # own: extends
        assert not b.acquire_epoch("main", 5, "keeper-b", ttl_s=60, now_ts=1079)
        assert b.acquire_epoch("main", 5, "keeper-b", ttl_s=60, now_ts=1081)  # a's expired
        assert a.epoch_owner("main", 5) == ("keeper-b", 1141, False)
        b.finish_epoch("main", 5, "keeper-b", done=True)
        assert not a.acquire_epoch("main", 5, "keeper-a", ttl_s=60, now_ts=9999)  # done forever
        assert not b.acquire_epoch("main", 5, "keeper-b", ttl_s=60, now_ts=9999)
        b.finish_epoch("main", 6, "keeper-b", done=False)  # released without executing
        assert a.acquire_epoch("main", 6, "keeper-a", ttl_s=60, now_ts=1011)
    finally:
        a.close()
        b.close()


def test_recovery_can_finish_an_epoch_for_a_vanished_owner(store_url: str) -> None:
    with Ledger(store_url) as led:
        assert led.acquire_epoch("main", 8, "crashed-pid", ttl_s=600, now_ts=1000)
        led.finish_epoch("main", 8, "someone-else", done=True)  # not the owner: no effect
        assert led.epoch_owner("main", 8) == ("crashed-pid", 1600, False)
        led.finish_epoch("main", 8, None, done=True)  # recovery acts for any owner
        assert led.epoch_owner("main", 8) == ("crashed-pid", 1600, True)
        led.finish_epoch("main", 9, None, done=True)  # no lock row yet: recorded as done
        assert led.epoch_owner("main", 9) == ("recovery", 0, True)
        assert not led.acquire_epoch("main", 9, "new", ttl_s=60)


# ---------------------------------------------------------------- the nonce view kept in the ledger


class FakeNode:
    def __init__(self, latest: int, pending: int) -> None:
        self.counts = {"latest": latest, "pending": pending}
        self.calls = 0

    def __call__(self, block: str) -> int:
        self.calls += 1
        return self.counts[block]


def test_nonce_manager_reserves_persists_and_resyncs(store_url: str) -> None:
    from keeper.send.nonce import NonceManager

    node = FakeNode(latest=3, pending=4)
    with Ledger(store_url) as led:
        nm = NonceManager(led, 31337, SENDER, node, resync_interval_s=3600)
        try:
            assert [nm.reserve(), nm.reserve()] == [4, 5]  # first reserve syncs from pending
            assert led.load_nonce(31337, SENDER) == 6
            nm.release(5)  # never broadcast: handed back
            assert nm.next_nonce == 5 and led.load_nonce(31337, SENDER) == 5
            nm.release(2)  # not the newest: ignored
            assert nm.next_nonce == 5
            node.counts = {"latest": 9, "pending": 9}  # someone else used the key
            assert nm.sync().next_nonce == 9 and nm.reserve() == 9
            nm.resync_interval_s = 0  # a stale view resyncs before reserving
            node.counts = {"latest": 12, "pending": 12}
            assert nm.reserve() == 12
        finally:
            nm.close()


def test_nonce_gap_is_detected_from_ledger_and_node(store_url: str) -> None:
    from keeper.send.nonce import NonceManager

    with Ledger(store_url) as led:
        led.create_tx(new_tx(nonce=7))  # ours, but the node forgot it
        nm = NonceManager(led, 31337, SENDER, FakeNode(latest=5, pending=5))
        try:
            state = nm.sync()
        finally:
            nm.close()
    assert (state.next_nonce, state.ledger_pending, state.gaps) == (8, (7,), (5, 6))
    assert state.missing_from_node == (7,)


def test_one_nonce_manager_per_account_in_a_process(tmp_path: Path) -> None:
    from keeper.errors import NonceError
    from keeper.send.nonce import NonceManager

    with Ledger(tmp_path / "k.sqlite") as led:
        first = NonceManager(led, 31337, SENDER, FakeNode(0, 0))
        with pytest.raises(NonceError, match="already have an owner in this process"):
            NonceManager(led, 31337, SENDER.lower(), FakeNode(0, 0))
        NonceManager(led, 1, SENDER, FakeNode(0, 0)).close()  # another chain is fine
        first.close()
        NonceManager(led, 31337, SENDER, FakeNode(0, 0)).close()


def test_one_ledger_is_safe_to_share_between_threads(store_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with Ledger(store_url) as led:

        def work(i: int) -> None:
            for j in range(20):
                tx_id = led.create_tx(new_tx(nonce=i * 100 + j, epoch_key=f"{i}-{j}"))
                led.add_attempt(tx_id, f"0x{i:02x}{j:062x}", 1, 1, b"raw")
                led.record_tick(TickRecord(vault=f"v{i}", decision="hold", reason="ok"))

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(work, range(4)))
        assert len(led.pending_txs()) == 80 and len(led.recent_decisions(limit=100)) == 80
