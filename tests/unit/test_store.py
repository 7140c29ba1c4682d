"""The store on both backends: migrations (an existing SQLite ledger opens and migrates, a newer
store is refused), leases with fencing tokens (dead owners on this host, expiry across hosts,
races between keepers), nonce claims shared by keepers, the price history, and clear errors."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from keeper.errors import LedgerError
from keeper.history import PriceHistory
from keeper.ledger import Ledger
from keeper.models import GasHour
from keeper.store import open_store, parse_store
from keeper.store.leases import host_id, owner_id
from keeper.store.migrate import head_revision
from tests.unit.test_ledger import SENDER, new_tx

# The schema the first (SQLite-only) keeper wrote, verbatim: such a file must migrate in place.
V1_SCHEMA = """
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


def _v1_ledger(path: Path) -> None:
    with sqlite3.connect(path) as c:
        c.executescript(V1_SCHEMA)
        c.execute(
            "INSERT INTO txs (chain_id, sender, nonce, purpose, vault, epoch_key, gas_limit, "
            "status, created_ts, updated_ts) VALUES (31337, ?, 4, 'rebalance', 'main', '3', "
            "300000, 'pending', 1, 1)",
            (SENDER,),
        )
        c.execute(
            "INSERT INTO attempts (tx_id, hash, max_fee_wei, priority_fee_wei, raw_tx, "
            "created_ts) VALUES (1, '0xaa', '30000000000', '2000000000', X'02ff', 1)"
        )
        c.execute("INSERT INTO ticks (vault, decision, reason, started_ts, finished_ts) "
                  "VALUES ('main', 'hold', 'in band', 1, 1)")
        c.execute("INSERT INTO epoch_locks VALUES ('main', '2', 'old:1:a', 0, 1)")
        c.execute("PRAGMA user_version = 1")


def test_existing_sqlite_ledger_of_the_first_schema_migrates_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keeper.sqlite"
    _v1_ledger(path)
    with Ledger(path) as led:
        (row,) = led.pending_txs(31337, SENDER)
        assert (row.nonce, row.epoch_key, row.owner) == (4, "3", None)
        assert row.attempts[0].raw_tx == b"\x02\xff"
        assert led.recent_decisions()[0].reason == "in band"
        assert led.epoch_owner("main", "2") == ("old:1:a", 0.0, True)
        assert not led.acquire_epoch("main", "2", "new", ttl_s=60)  # done stays done
        assert led.take_lease("main", "3", "new", ttl_s=60) == 1  # the token column exists
    with sqlite3.connect(path) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == 2  # an old keeper refuses it
        assert c.execute("SELECT version_num FROM alembic_version").fetchone()[0] == (
            head_revision()
        )
    history = tmp_path / "keeper-history.sqlite"
    with sqlite3.connect(history) as c:  # the first keeper's history file: one table
        c.execute("CREATE TABLE price_history (vault TEXT NOT NULL, hour_ts INTEGER NOT NULL, "
                  "prices TEXT NOT NULL, PRIMARY KEY (vault, hour_ts))")
        c.execute("INSERT INTO price_history VALUES ('0xv', 3600, '1.0,2.0')")
    h = PriceHistory(history)
    assert h.oracle_history("0xv", 2).prices.tolist() == [[1.0, 2.0]]
    h.record_gas(31337, [GasHour(hour_ts=3600, base_fee_wei=10**9, tip_wei=10**8)])
    assert h.gas_history(31337) == [GasHour(hour_ts=3600, base_fee_wei=10**9, tip_wei=10**8)]
    h.close()


def test_store_of_a_newer_keeper_is_refused_untouched(store_url: str) -> None:
    Ledger(store_url).close()
    engine = open_store(parse_store(store_url))
    with engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(LedgerError, match=r"schema revision 9999, newer than this keeper .*up"):
        Ledger(store_url)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(store_url: str) -> None:
    with Ledger(store_url) as led:
        dead = f"{host_id()}:{_dead_pid()}:abc"
        assert led.take_lease("main", "5", dead, ttl_s=900) == 1
        assert led.take_lease("main", "5", owner_id("me"), ttl_s=900) == 2  # not 900 s later
        assert led.orphaned_leases() == []


def test_lease_of_another_host_expires_and_the_old_token_is_fenced_off(store_url: str) -> None:
    with Ledger(store_url) as led:
        other = "other-host/abcd:123:x"
        t1 = led.take_lease("main", "5", other, ttl_s=60, now_ts=1000)
        assert t1 == 1
        assert led.take_lease("main", "5", "me:1:y", ttl_s=60, now_ts=1059) == 0  # still held
        assert led.renew_lease("main", "5", other, t1, ttl_s=60, now_ts=1030)  # renewed to 1090
        assert led.take_lease("main", "5", "me:1:y", ttl_s=60, now_ts=1089) == 0
        assert led.orphaned_leases() == [("main", "5", other)]  # expired by the real clock
        t2 = led.take_lease("main", "5", "me:1:y", ttl_s=60, now_ts=1091)
        assert t2 == 2
        # the old holder comes back after a pause: its token no longer matches -> no broadcast
        assert not led.renew_lease("main", "5", other, t1, ttl_s=60, now_ts=1092)
        assert led.renew_lease("main", "5", "me:1:y", t2, ttl_s=60, now_ts=1092)
        assert led.take_lease("main", "6", other, ttl_s=60, now_ts=1092) == 3  # per vault
        led.finish_epoch("main", "5", "me:1:y", done=True)
        assert not led.renew_lease("main", "5", "me:1:y", t2, ttl_s=60, now_ts=1093)


def test_keepers_racing_for_one_epoch_get_one_lease(store_url: str) -> None:
    ledgers = [Ledger(store_url) for _ in range(6)]
    barrier = threading.Barrier(len(ledgers))
    tokens: list[int] = []

    def race(i: int) -> None:
        barrier.wait()
        tokens.append(ledgers[i].take_lease("main", "9", f"other-host/{i}:1:x", ttl_s=60))

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(ledgers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for led in ledgers:
        led.close()
    assert sorted(tokens) == [0, 0, 0, 0, 0, 1]


def test_keepers_sharing_an_account_never_claim_one_nonce_twice(store_url: str) -> None:
    """Three keepers (each its own connection pool, as separate processes have) claim nonces
    and write their rows at once."""
    ledgers = [Ledger(store_url) for _ in range(3)]
    got: list[int] = []

    def claim(led: Ledger) -> None:
        for _ in range(10):
            nonce, _tx = led.claim_nonce(31337, SENDER, 0, lambda k: new_tx(nonce=k, vault=None))
            got.append(nonce)

    threads = [threading.Thread(target=claim, args=(led,)) for led in ledgers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    try:
        assert sorted(got) == list(range(30))
        assert sorted(r.nonce for r in ledgers[0].pending_txs()) == list(range(30))
        assert ledgers[0].load_nonce(31337, SENDER) == 30
    finally:
        for led in ledgers:
            led.close()


def _open_new(url: str, barrier: Any, errors: Any) -> None:
    barrier.wait()
    try:
        Ledger(url).close()
    except LedgerError as err:
        errors.put(err.message)


def test_keepers_opening_a_new_postgresql_store_together_migrate_it_once(
    pg_server: Any,
) -> None:
    url = pg_server.new_database()
    ctx = mp.get_context("spawn")
    barrier, errors = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_open_new, args=(url, barrier, errors)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert errors.empty()
    with Ledger(url) as led:
        assert led.create_tx(new_tx()) == 1


def test_price_and_gas_history_upsert_per_hour_on_both_backends(store_url: str) -> None:
    from tests.unit.bt_helpers import make_state

    state = make_state([4000, 3000, 1000, 2000])
    prices = [a.feed.answer / 10**a.feed.decimals for a in state.assets]
    h = PriceHistory(store_url)
    try:
        h.record_many([state], block_ts=7200 + 5)
        h.record_many([state], block_ts=7200 + 60)  # the same hour: overwritten, not added
        h.record_many([state], block_ts=10_800)
        got = h.oracle_history(state.address, 4)
        assert got.prices.tolist() == [prices, prices] and got.hours_ts.tolist() == [7200, 10_800]
        assert h.oracle_history(state.address, 3).prices.size == 0
        assert h.oracle_history("0xother", 4).prices.size == 0
        gas = [GasHour(hour_ts=3600 + i * 3600, base_fee_wei=i, tip_wei=1) for i in (1, 2)]
        h.record_gas(1, gas)
        h.record_gas(1, [GasHour(hour_ts=10_800 + 5, base_fee_wei=7, tip_wei=1)])  # upsert
        assert h.gas_history(1) == [gas[0], GasHour(hour_ts=10_800, base_fee_wei=7, tip_wei=1)]
        assert h.has_gas_hour(1, 10_800 + 60) and not h.has_gas_hour(2, 10_800)
    finally:
        h.close()


def test_unreachable_postgresql_is_one_clear_error_without_the_password() -> None:
    with pytest.raises(LedgerError) as info:
        Ledger("postgresql://keeper:s3cret@127.0.0.1:1/keeper", busy_timeout_s=1)
    msg = info.value.message
    assert msg.startswith("store postgresql+psycopg://keeper:***@127.0.0.1:1/keeper is unreachable")
    assert "s3cret" not in str(info.value) and "retries with backoff" in msg


def test_leases_left_without_a_transaction_are_freed_and_those_with_one_kept(
    store_url: str,
) -> None:
    with Ledger(store_url) as led:
        gone = "other-host/abcd:1:x"
        led.take_lease("main", "1", gone, ttl_s=60, now_ts=1000)  # expired, nothing written
        led.take_lease("main", "2", gone, ttl_s=60, now_ts=1000)  # expired, tx left open
        led.create_tx(new_tx(epoch_key="2"))
        led.take_lease("main", "3", gone, ttl_s=600)  # still live
        assert led.release_orphaned_leases() == 1
        assert led.lease("main", "1") is None
        assert led.lease("main", "2") is not None and led.lease("main", "3") is not None
        assert led.take_lease("main", "2", owner_id("me"), ttl_s=60) > 0  # recovery's turn


def test_the_schema_head_the_store_opens_fast_at_is_alembics_head() -> None:
    """A store already at SCHEMA_HEAD opens without Alembic: a new migration must move it."""
    from keeper.store.migrate import SCHEMA_HEAD

    assert head_revision() == SCHEMA_HEAD


def test_a_current_store_opens_without_loading_alembic(tmp_path: Path) -> None:
    code = ("import sys; from keeper.ledger import Ledger; from pathlib import Path; "
            f"Ledger(Path({str(tmp_path / 'l.sqlite')!r})); "
            "print(any(m.split('.')[0] == 'alembic' for m in sys.modules))")
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert (first.stdout.strip(), again.stdout.strip()) == ("True", "False")
