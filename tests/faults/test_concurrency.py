"""G. Concurrency and time (fault tests 27-28): two keeper processes against one vault, keepers
that die or lose their lease mid-send (on both store backends), and a keeper whose wall clock is
days off the chain's."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from eth_abi import decode
from sqlalchemy import text

from keeper.app import Mode
from keeper.chain.contracts import _type_str, fn_abi
from tests.faults.conftest import ChainCtl, Kit, epoch, in_band, push_out_of_band, ticks, txs

pytestmark = pytest.mark.chain


def test_two_keeper_processes_make_exactly_one_rebalance_per_epoch(
    shared_kit: Kit, chain: ChainCtl
) -> None:
    """Once per backend: two keepers sharing a SQLite file, or a PostgreSQL database."""
    kit = shared_kit
    push_out_of_band(kit.env)
    e0 = epoch(kit.env)
    chain.automine(False)
    chain.rpc("evm_setIntervalMining", 1)  # 1 s blocks: the two sends overlap in time
    cmd = [
        sys.executable,
        "-c",
        "from keeper.cli import main; main()",
        "rebalance",
        "--yes",
        "--config",
        str(kit.env.config),
    ]
    try:
        procs = [
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        chain.rpc("evm_setIntervalMining", 0)
        chain.automine(True)
    codes = [p.returncode for p in procs]
    assert 0 in codes, outs
    assert chain.sent_count(kit.env.keeper) == 1  # one tx from the shared keeper account
    assert epoch(kit.env) == e0 + 1 and in_band(kit.env)
    rebalances = [t for t in txs(kit.env) if t[2] == "rebalance"]
    assert [(s, r) for _, s, _, r, _ in rebalances] == [("confirmed", 1)]
    sends = [
        (v, why) for v, why, _ in ticks(kit.env) if v != "simulated"
    ]  # the CLI simulates first
    assert len(sends) == 2 and [v for v, _ in sends].count("sent") == 1, sends  # both recorded
    other, why = next((v, w) for v, w in sends if v != "sent")
    # the other found the vault in band, or was refused by the epoch lock / on-chain epoch
    assert other == "hold" or (other == "error" and "epoch" in why.lower()), sends


def _deadline_of(data: str) -> int:
    item = fn_abi("RebalancingVault", "rebalance")
    args = decode([_type_str(p) for p in item["inputs"]], bytes.fromhex(data[10:]))
    return int(args[1])


@pytest.mark.parametrize("skew_s", [3 * 86_400, -3 * 86_400], ids=["ahead_3d", "behind_3d"])
def test_clock_skew_decisions_use_block_time(
    kit: Kit, chain: ChainCtl, monkeypatch: pytest.MonkeyPatch, skew_s: int
) -> None:
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + skew_s)
    keeper = kit.keeper()
    (calm,) = keeper.tick(Mode.SEND)  # feeds are fresh by block time, whatever the wall says
    assert calm.verdict == "hold" and "stale" not in calm.reason and "future" not in calm.reason
    push_out_of_band(kit.env)
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "sent", r.reason
    ((tx_id, status, purpose, receipt, _),) = txs(kit.env)
    row = keeper.deps.ledger.get_tx(tx_id)
    (snap_block,) = [b for v, _, b in ticks(kit.env) if v == "sent"]
    assert snap_block is not None
    header_ts = int(kit.env.w3.eth.get_block(snap_block)["timestamp"])
    deadline = _deadline_of(row.data)
    assert deadline == keeper.last_ts + 300  # the snapshot's block time + 300 s
    assert abs(keeper.last_ts - header_ts) <= 60  # the chain's time, read with the snapshot
    assert abs(deadline - (real() + skew_s)) > 86_400  # never the wall clock
    # confirmed with status 1: the vault checked block.timestamp <= deadline on chain
    assert (status, purpose, receipt) == ("confirmed", "rebalance", 1)
    assert chain.sent_count(kit.env.keeper) == 1


def _lease_holder_then_kill(store: str, vault: str, epoch_key: str) -> None:
    """A keeper process that takes the epoch lease and is killed (-9) before it writes its tx
    row: the lease row names a process that no longer exists."""
    script = (
        "import sys, time\n"
        "from keeper.ledger import Ledger\n"
        "from keeper.store.leases import owner_id\n"
        "led = Ledger(sys.argv[1])\n"
        "assert led.take_lease(sys.argv[2], sys.argv[3], owner_id('dying'), 900) > 0\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, store, vault, epoch_key], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


def test_lease_of_a_keeper_killed_before_writing_its_tx_is_taken_over_at_once(
    shared_kit: Kit, chain: ChainCtl
) -> None:
    kit = shared_kit
    push_out_of_band(kit.env)
    e0 = epoch(kit.env)
    _lease_holder_then_kill(kit.env.store_location, kit.env.vault, str(e0))
    keeper = kit.keeper()
    t0 = time.monotonic()
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "sent", r.reason  # not refused for the 900 s the dead lease claimed
    assert time.monotonic() - t0 < 30
    assert chain.sent_count(kit.env.keeper) == 1 and epoch(kit.env) == e0 + 1
    assert keeper.deps.ledger.orphaned_leases() == []


def test_keeper_that_lost_its_lease_never_broadcasts_and_the_holder_executes_once(
    shared_kit: Kit, chain: ChainCtl
) -> None:
    kit = shared_kit
    push_out_of_band(kit.env)
    e0 = epoch(kit.env)
    keeper = kit.keeper()
    ledger = keeper.deps.ledger
    persist = ledger.add_attempt

    def persist_then_lose_the_lease(*args: Any) -> None:
        persist(*args)  # signed and persisted; then this keeper stalls past its lease
        with ledger.engine.begin() as c:
            c.execute(text("UPDATE epoch_locks SET expires_ts = 0 WHERE done = 0"))
        assert ledger.take_lease(kit.env.vault, str(e0), "other-host/x:1:y", ttl_s=1.5)

    ledger.add_attempt = persist_then_lose_the_lease  # type: ignore[method-assign]
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "error" and "LeaseLost" in r.reason, r.reason
    assert chain.sent_count(kit.env.keeper) == 0 and chain.pool(kit.env.keeper) == {}
    ((tx_id, status, *_),) = txs(kit.env)
    assert status == "pending"  # signed, never broadcast: the lease holder resumes it
    kit.close(keeper)
    time.sleep(1.6)  # the other holder's lease expires (it never came back)
    holder = kit.keeper()  # start-up recovery takes the expired lease and resumes the tx
    assert [(t[0], t[1]) for t in txs(kit.env)] == [(tx_id, "confirmed")]
    row = holder.deps.ledger.get_tx(tx_id)
    assert len(row.attempts) == 1  # the same signed bytes: one nonce, one execution
    (again,) = holder.tick(Mode.SEND)
    assert again.verdict == "hold", again.reason
    assert chain.sent_count(kit.env.keeper) == 1 and epoch(kit.env) == e0 + 1
    assert in_band(kit.env)
