"""G. Concurrency and time (fault tests 27-28): two keeper processes against one vault, and a
keeper whose wall clock is days off the chain's."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from eth_abi import decode

from keeper.app import Mode
from keeper.chain.contracts import _type_str, fn_abi
from tests.faults.conftest import ChainCtl, Kit, epoch, in_band, push_out_of_band, ticks, txs

pytestmark = pytest.mark.chain


def test_two_keeper_processes_make_exactly_one_rebalance_per_epoch(
    kit: Kit, chain: ChainCtl
) -> None:
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
    mined_ts = kit.env.w3.eth.get_block(row.receipt_block)["timestamp"]  # type: ignore[arg-type]
    deadline = _deadline_of(row.data)
    assert 0 < deadline - mined_ts <= 300  # snapshot block time + 300 s, not the wall clock
    assert abs(deadline - (real() + skew_s)) > 86_400
    assert (status, purpose, receipt) == ("confirmed", "rebalance", 1)
    assert chain.sent_count(kit.env.keeper) == 1
