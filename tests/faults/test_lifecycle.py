"""B. Transaction lifecycle (fault tests 6-15), each through Keeper.tick in Mode.SEND (15: the CLI
in a process that is killed): what was sent, the ledger, and the final vault state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from typer.testing import CliRunner
from web3.exceptions import ContractLogicError

from keeper.app import Keeper, Mode
from keeper.chain.contracts import encode_call
from keeper.chain.errors import name_revert
from keeper.config import load_config
from keeper.ledger import Ledger, TxRow
from keeper.runtime import Runtime
from keeper.wiring import unlock
from tests.faults.conftest import (
    GWEI,
    ChainCtl,
    Kit,
    edit_config,
    epoch,
    in_band,
    push_out_of_band,
    set_rpc_urls,
    ticks,
    txs,
)
from tests.faults.proxy import RpcProxy
from tests.txkit import persist_gapped_tx, sign_transfer

pytestmark = pytest.mark.chain
SINK = "0x000000000000000000000000000000000000dEaD"


def _pending(keeper: Keeper) -> TxRow:
    (row,) = keeper.deps.ledger.pending_txs()
    return row


def _assert_bumped(row: TxRow) -> None:
    for prev, nxt in zip(row.attempts, row.attempts[1:], strict=False):
        assert nxt.max_fee_wei * 1000 >= prev.max_fee_wei * 1125
        assert nxt.priority_fee_wei * 1000 >= prev.priority_fee_wei * 1125


def _kinds(keeper: Keeper, tx_id: int) -> list[str]:
    return [k for k, _ in keeper.deps.ledger.events(tx_id)]


def _revert_of(kit: Kit, data: str) -> str:
    try:
        kit.env.w3.eth.call({"from": kit.env.keeper, "to": kit.env.vault, "data": data})
    except ContractLogicError as err:
        return name_revert(err.data if isinstance(err.data, str) else None) or str(err)
    return "no revert"


def test_unmined_tx_is_replaced_with_bumps_of_at_least_12_5_percent(
    kit: Kit, chain: ChainCtl
) -> None:
    push_out_of_band(kit.env)
    e0 = epoch(kit.env)

    def before(call: int) -> None:
        if call == 1:
            chain.stick(_pending(keeper).gas_limit)
        if call == 4:
            chain.unstick()

    keeper = kit.keeper(waiter=chain.waiter(before), replace_after_blocks=1)
    chain.automine(False)
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "sent", r.reason
    ((tx_id, status, purpose, receipt, _),) = txs(kit.env)
    row = keeper.deps.ledger.get_tx(tx_id)
    assert (status, purpose, receipt) == ("confirmed", "rebalance", 1)
    assert len(row.attempts) >= 3 and "replaced" in _kinds(keeper, tx_id)
    _assert_bumped(row)
    assert chain.sent_count(kit.env.keeper) == 1 and epoch(kit.env) == e0 + 1
    assert chain.pool(kit.env.keeper) == {}


def test_replacement_underpriced_answer_bumps_further_at_same_nonce(
    kit: Kit, chain: ChainCtl, proxies: Callable[[], RpcProxy]
) -> None:
    proxy = proxies()
    set_rpc_urls(kit.env, [proxy.url])
    proxy.reject_sends = {2: "replacement transaction underpriced"}
    push_out_of_band(kit.env)

    def before(call: int) -> None:
        if call == 1:
            chain.stick(_pending(keeper).gas_limit)
        if call == 3:
            chain.unstick()

    keeper = kit.keeper(waiter=chain.waiter(before), replace_after_blocks=1)
    chain.automine(False)
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "sent", r.reason
    ((tx_id, status, *_),) = txs(kit.env)
    row = keeper.deps.ledger.get_tx(tx_id)
    assert status == "confirmed" and "rejected:replacement_underpriced" in _kinds(keeper, tx_id)
    assert len(row.attempts) >= 3
    _assert_bumped(row)
    assert chain.sent_count(kit.env.keeper) == 1 and in_band(kit.env)


def test_dropped_tx_in_flight_is_rebroadcast(kit: Kit, chain: ChainCtl) -> None:
    push_out_of_band(kit.env)

    def before(call: int) -> None:
        if call == 1:
            chain.rpc("anvil_dropTransaction", _pending(keeper).attempts[0].hash)

    keeper = kit.keeper(waiter=chain.waiter(before), replace_after_blocks=5)
    chain.automine(False)
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "sent", r.reason
    ((tx_id, status, *_),) = txs(kit.env)
    kinds = _kinds(keeper, tx_id)
    assert status == "confirmed" and "rebroadcast" in kinds and kinds.count("broadcast") == 2
    assert len(keeper.deps.ledger.get_tx(tx_id).attempts) == 1  # the same signed bytes
    assert chain.sent_count(kit.env.keeper) == 1 and in_band(kit.env)


def test_nonce_gap_is_filled_before_the_rebalance(kit: Kit, chain: ChainCtl) -> None:
    account = unlock(load_config(kit.env.config))
    with Ledger(kit.env.ledger) as led:  # persisted at nonce 1 while nonce 0 never went out
        persist_gapped_tx(kit.env.w3, led, account)
    keeper = kit.keeper()  # start-up: resync, NOOP at the gap, the queued tx confirms
    push_out_of_band(kit.env)
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "sent", r.reason
    rows = [(s, p) for _, s, p, _, _ in txs(kit.env)]
    assert rows == [("confirmed", "test"), ("confirmed", "noop"), ("confirmed", "rebalance")]
    assert keeper.deps.ledger.get_tx(3).nonce == 2
    assert chain.sent_count(kit.env.keeper) == 3 and chain.pool(kit.env.keeper) == {}


def test_nonce_already_used_elsewhere_is_caught_before_signing(kit: Kit, chain: ChainCtl) -> None:
    keeper = kit.keeper()
    assert keeper.deps.sender is not None
    assert keeper.deps.sender.nonces.sync().next_nonce == 0
    account = unlock(load_config(kit.env.config))
    outside = sign_transfer(account, 0, value=0)
    kit.env.w3.eth.send_raw_transaction(outside.raw_transaction)  # same key, someone else
    push_out_of_band(kit.env)
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "sent", r.reason
    rows = txs(kit.env)
    assert rows[-1][1:3] == ("confirmed", "rebalance")
    assert keeper.deps.ledger.get_tx(rows[-1][0]).nonce == 1
    assert all(s != "failed" for _, s, *_ in rows)
    assert chain.sent_count(kit.env.keeper) == 2 and in_band(kit.env)


def test_gas_ceiling_stops_bumping_and_alerts(
    kit: Kit, chain: ChainCtl, caplog: pytest.LogCaptureFixture
) -> None:
    edit_config(kit.env.config, "max_fee_gwei: 100", "max_fee_gwei: 3")
    push_out_of_band(kit.env)
    e0 = epoch(kit.env)

    def before(call: int) -> None:
        if call == 1:
            chain.stick(_pending(keeper).gas_limit)

    keeper = kit.keeper(waiter=chain.waiter(before), replace_after_blocks=1)
    chain.automine(False)
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "error" and "FeeCapExceeded" in r.reason
    row = _pending(keeper)  # left pending, not forgotten
    assert len(row.attempts) >= 2 and all(a.max_fee_wei <= 3 * GWEI for a in row.attempts)
    assert "fee_cap" in _kinds(keeper, row.id)
    for _ in range(3):
        chain.mine()
    assert len(keeper.deps.ledger.get_tx(row.id).attempts) == len(row.attempts)  # no bumping
    assert chain.sent_count(kit.env.keeper) == 0 and epoch(kit.env) == e0
    assert ticks(kit.env)[-1][0] == "error"
    alerts = [r for r in caplog.records if "ALERT gas ceiling reached" in r.getMessage()]
    assert len(alerts) == 1


def test_deadline_passed_cancels_with_a_noop(kit: Kit, chain: ChainCtl) -> None:
    push_out_of_band(kit.env)
    e0 = epoch(kit.env)

    def before(call: int) -> None:
        if call == 1:
            chain.stick(_pending(keeper).gas_limit)
            chain.rpc("evm_increaseTime", 400)  # past the plan's 300 s deadline

    keeper = kit.keeper(waiter=chain.waiter(before), replace_after_blocks=3)
    chain.automine(False)
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "failed" and "cancelled" in r.reason
    ((tx_id, status, *_),) = txs(kit.env)
    row = keeper.deps.ledger.get_tx(tx_id)
    assert status == "cancelled" and "deadline_passed" in _kinds(keeper, tx_id)
    landed = kit.env.w3.eth.get_transaction(row.mined_hash)  # type: ignore[arg-type]
    assert landed["to"] == kit.env.keeper and landed["value"] == 0 and landed["gas"] == 21_000
    assert landed["nonce"] == row.nonce
    assert chain.sent_count(kit.env.keeper) == 1 and epoch(kit.env) == e0
    assert _revert_of(kit, row.data).startswith("DeadlinePassed")  # the call could only revert


def test_reverted_receipt_is_classified_and_not_retried(kit: Kit, chain: ChainCtl) -> None:
    push_out_of_band(kit.env)
    guardian = kit.env.w3.eth.accounts[2]
    e0 = epoch(kit.env)

    def before(call: int) -> None:
        if call == 1:  # the guardian's pause lands first in the same block
            chain.rpc(
                "eth_sendTransaction",
                {
                    "from": guardian,
                    "to": kit.env.vault,
                    "data": "0x" + encode_call("RebalancingVault", "pause").hex(),
                    "maxFeePerGas": hex(500 * GWEI),
                    "maxPriorityFeePerGas": hex(200 * GWEI),
                },
            )

    keeper = kit.keeper(waiter=chain.waiter(before))
    chain.automine(False)
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "failed"
    ((tx_id, status, _, receipt, error),) = txs(kit.env)
    assert (status, receipt) == ("failed", 0)
    assert error is not None and "EnforcedPause" in error and "not retried" in error
    assert len(keeper.deps.ledger.get_tx(tx_id).attempts) == 1
    chain.automine(True)
    (again,) = keeper.tick(Mode.SEND)
    assert again.verdict == "hold" and again.reason == "vault is paused"
    assert chain.sent_count(kit.env.keeper) == 1 and epoch(kit.env) == e0


def test_insufficient_funds_alerts_once_and_halts_the_vault(
    kit: Kit, chain: ChainCtl, caplog: pytest.LogCaptureFixture
) -> None:
    keeper = kit.keeper()
    chain.rpc("anvil_setBalance", kit.env.keeper, "0x0")
    push_out_of_band(kit.env)
    rt = Runtime(keeper.cfg, keeper, Mode.SEND, runtime_id=f"faults-{os.getpid()}-funds")
    try:
        for _ in range(3):
            rt.run_once("main")
    finally:
        rt.stop()
    assert "main" in rt.halted and "cannot pay for gas" in rt.halted["main"]
    assert [t[0] for t in ticks(kit.env)] == ["halted"]  # one tick; the halted vault stops
    ((tx_id, status, _, _, error),) = txs(kit.env)
    assert status == "failed" and error is not None and error.startswith("insufficient_funds")
    assert len(keeper.deps.ledger.get_tx(tx_id).attempts) == 1
    alerts = [r for r in caplog.records if r.levelname == "ERROR" and "halted" in r.getMessage()]
    assert len(alerts) == 1
    assert chain.sent_count(kit.env.keeper) == 0 and chain.pool(kit.env.keeper) == {}


def _wait_for_attempt(ledger_path: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    import sqlite3

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the keeper process exited before broadcasting"
        try:
            with sqlite3.connect(ledger_path) as c:
                if c.execute("SELECT COUNT(*) FROM tx_events WHERE kind = 'broadcast'").fetchone()[
                    0
                ]:
                    return
        except sqlite3.OperationalError:
            pass  # not created yet
        time.sleep(0.1)
    raise AssertionError("no broadcast within the timeout")


def test_killed_after_broadcast_recovers_on_restart_without_double_rebalance(
    kit: Kit, chain: ChainCtl
) -> None:
    push_out_of_band(kit.env)
    e0 = epoch(kit.env)
    chain.automine(False)
    cmd = [
        sys.executable,
        "-c",
        "from keeper.cli import main; main()",
        "rebalance",
        "--yes",
        "--config",
        str(kit.env.config),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_attempt(str(kit.env.ledger), proc, 90)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert chain.pool(kit.env.keeper)  # broadcast, not mined
    chain.mine()  # it lands while the keeper is down
    chain.automine(True)
    from keeper.cli import app

    out = CliRunner().invoke(app, ["rebalance", "--yes", "--config", str(kit.env.config)])
    assert out.exit_code == 0, out.output
    ((tx_id, status, purpose, receipt, _),) = txs(kit.env)
    assert (status, purpose, receipt) == ("confirmed", "rebalance", 1)
    with Ledger(kit.env.ledger) as led:
        assert "recovering" in [k for k, _ in led.events(tx_id)]
        assert len(led.get_tx(tx_id).attempts) == 1
    assert ticks(kit.env)[-1][0] == "hold"  # the restarted keeper sees the done rebalance
    assert chain.sent_count(kit.env.keeper) == 1 and epoch(kit.env) == e0 + 1
