"""Sender against a real node: this module starts its OWN anvil (free port, --silent) and kills it.

Stuck transactions are made with automine off plus a tiny block gas limit (31,000) and a
high-tip filler tx from another account in every block (tests.txkit.ChainCtl): the filler
(21,000) always wins the block, leaving too little gas for our 21,000-gas tx, which stays
pending until the test lifts the limit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import TransactionNotFound

from keeper.chain.anvil import Anvil
from keeper.errors import FeeCapExceeded, SendError
from keeper.ledger import Ledger, TxRow, TxStatus
from keeper.send.sender import Sender, SenderSettings, TxRequest
from tests.txkit import ChainCtl, persist_gapped_tx, sign_transfer

# anvil's standard funded account 0 (mnemonic "test test ... junk"); fine in tests.
KEY0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
GWEI = 10**9
SINK = "0x000000000000000000000000000000000000dEaD"

pytestmark = pytest.mark.chain  # anvil comes from `make setup`: a missing binary fails


@pytest.fixture(scope="module")
def node() -> Iterator[Web3]:
    with Anvil() as anvil:  # free port, in-memory history, always stopped
        yield Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 10}))


@pytest.fixture
def chain(node: Web3) -> Iterator[ChainCtl]:
    snap = node.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    # a 50 gwei filler tip: the fee-following tests read it back from eth_feeHistory
    c = ChainCtl(node, filler=node.eth.accounts[1], filler_tip_gwei=50)
    c.automine(True)
    yield c
    c.automine(True)
    c.unstick()
    node.provider.make_request("evm_revert", [snap])  # type: ignore[arg-type]


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path / "keeper.sqlite") as led:
        yield led


@pytest.fixture
def account() -> LocalAccount:
    return Account.from_key(KEY0)


def settings(**kw: object) -> SenderSettings:
    base: dict[str, object] = {
        "chain_id": 31337,
        "max_fee_wei": 100 * GWEI,
        "confirmations": 1,
        "replace_after_blocks": 1,
        "min_tip_wei": GWEI // 10,
        "block_timeout_s": 5.0,
    }
    return SenderSettings(**{**base, **kw})  # type: ignore[arg-type]


def make_sender(
    w3: Web3, account: LocalAccount, ledger: Ledger, wait: Callable[[int], int], **kw: object
) -> Sender:
    return Sender(w3, account, ledger, settings(**kw), wait_for_block=wait)


REQ = TxRequest(to=SINK, value_wei=1, gas_limit=21_000, purpose="test", vault="main", epoch_key="7")


def _has_receipt(w3: Web3, tx_hash: str) -> bool:
    try:
        w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
    except TransactionNotFound:
        return False
    return True


# ---------------------------------------------------------------- tests


def test_plain_send_is_confirmed_and_recorded(
    chain: ChainCtl, ledger: Ledger, account: LocalAccount
) -> None:
    sender = make_sender(chain.w3, account, ledger, chain.waiter(), confirmations=2)
    try:
        result = sender.send(REQ)
    finally:
        sender.close()
    assert result.ok and result.status == TxStatus.CONFIRMED
    assert result.nonce == 0 and len(result.attempts) == 1
    assert result.tx_hash == result.attempts[0].hash
    assert result.gas_used == 21_000 and result.fee_paid_wei and result.fee_paid_wei > 0
    assert chain.sent_count(account.address) == 1
    row = ledger.get_tx(result.tx_id)
    assert row.status == TxStatus.CONFIRMED and row.receipt_block == result.receipt_block
    assert row.attempts[0].raw_tx  # the signed bytes were persisted
    kinds = [k for k, _ in ledger.events(result.tx_id)]
    assert kinds.index("signed") < kinds.index("broadcast") < kinds.index("confirmed")
    assert ledger.pending_txs() == []


def test_same_epoch_is_not_sent_twice(
    chain: ChainCtl, ledger: Ledger, account: LocalAccount
) -> None:
    sender = make_sender(chain.w3, account, ledger, chain.waiter())
    try:
        sender.send(REQ)
        with pytest.raises(SendError, match="epoch 7 of vault main was already executed"):
            sender.send(REQ)
    finally:
        sender.close()
    assert chain.sent_count(account.address) == 1


@pytest.mark.parametrize("market", [False, True], ids=["ladder", "follows_market"])
def test_stuck_tx_is_replaced_at_same_nonce_with_bumps(
    chain: ChainCtl, ledger: Ledger, account: LocalAccount, market: bool
) -> None:
    chain.rpc("evm_setAutomine", False)
    chain.stick(21_000)

    def before(call: int) -> None:
        if call == 4:
            chain.unstick()

    sender = make_sender(
        chain.w3, account, ledger, chain.waiter(before), reprice_from_market=market
    )
    try:
        result = sender.send(REQ)
    finally:
        sender.close()
    assert result.ok and result.nonce == 0
    assert len(result.attempts) == 4  # sent, then replaced after blocks 1, 2 and 3
    for prev, nxt in zip(result.attempts, result.attempts[1:], strict=False):
        assert nxt.max_fee_wei * 1000 >= prev.max_fee_wei * 1125
        assert nxt.priority_fee_wei * 1000 >= prev.priority_fee_wei * 1125
        if not market:  # the pure x1.125 ladder, rounded up
            assert nxt.max_fee_wei == -(-prev.max_fee_wei * 9 // 8)
            assert nxt.priority_fee_wei == -(-prev.priority_fee_wei * 9 // 8)
    assert chain.sent_count(account.address) == 1  # exactly one landed
    landed = [a.hash for a in result.attempts if _has_receipt(chain.w3, a.hash)]
    assert landed == [result.tx_hash]
    assert chain.pool_size() == 0
    assert "replaced" in [k for k, _ in ledger.events(result.tx_id)]


class _Stopped(Exception):
    """Raised by the block waiter: the keeper stops right after its first broadcast."""


def _stop_after_broadcast(chain: ChainCtl, ledger: Ledger, account: LocalAccount) -> TxRow:
    """Send REQ with a sender that dies while waiting for the block; return the pending row."""

    def stop(target: int) -> int:
        raise _Stopped

    first = make_sender(chain.w3, account, ledger, stop)
    with pytest.raises(_Stopped):
        first.send(REQ)
    first.close()
    (row,) = ledger.pending_txs()
    return row


def test_restart_while_pending_resolves_without_second_send(
    chain: ChainCtl, ledger: Ledger, account: LocalAccount
) -> None:
    chain.rpc("evm_setAutomine", False)
    row = _stop_after_broadcast(chain, ledger, account)
    assert row.status == TxStatus.PENDING and len(row.attempts) == 1
    chain.mine()  # the broadcast tx lands while the keeper is down

    second = make_sender(chain.w3, account, ledger, chain.waiter())
    try:
        (result,) = second.recover_pending()
    finally:
        second.close()
    assert result.ok and result.tx_hash == row.attempts[0].hash
    assert len(result.attempts) == 1  # nothing re-signed
    assert chain.sent_count(account.address) == 1
    assert ledger.pending_txs() == []
    assert "recovering" in [k for k, _ in ledger.events(row.id)]
    held = ledger.epoch_owner("main", "7")
    assert held is not None and held[0] == second.owner_id and held[2]  # epoch 7 is done


def test_dropped_tx_is_rebroadcast(chain: ChainCtl, ledger: Ledger, account: LocalAccount) -> None:
    chain.rpc("evm_setAutomine", False)

    def before(call: int) -> None:
        if call == 1:
            (row,) = ledger.pending_txs()
            chain.rpc("anvil_dropTransaction", row.attempts[0].hash)

    sender = make_sender(chain.w3, account, ledger, chain.waiter(before), replace_after_blocks=5)
    try:
        result = sender.send(REQ)
    finally:
        sender.close()
    assert result.ok and len(result.attempts) == 1  # the same signed bytes went out again
    kinds = [k for k, _ in ledger.events(result.tx_id)]
    assert kinds.count("broadcast") == 2 and "rebroadcast" in kinds
    assert chain.sent_count(account.address) == 1


def test_fee_cap_stops_bumping(chain: ChainCtl, ledger: Ledger, account: LocalAccount) -> None:
    chain.rpc("evm_setAutomine", False)
    chain.stick(21_000)
    cap = 3 * GWEI
    sender = make_sender(chain.w3, account, ledger, chain.waiter(), max_fee_wei=cap)
    try:
        with pytest.raises(FeeCapExceeded, match="cap"):
            sender.send(REQ)
    finally:
        sender.close()
    (row,) = ledger.pending_txs()  # left pending, not forgotten
    assert len(row.attempts) >= 2
    assert all(a.max_fee_wei <= cap for a in row.attempts)
    assert "fee_cap" in [k for k, _ in ledger.events(row.id)]
    for _ in range(3):
        chain.mine()
    assert len(ledger.get_tx(row.id).attempts) == len(row.attempts)  # no further bumps
    assert chain.sent_count(account.address) == 0
    pool = chain.rpc("txpool_content")
    assert isinstance(pool, dict)
    ours = pool["pending"].get(account.address.lower(), {})
    assert list(ours) == ["0"] and ours["0"]["hash"] == row.attempts[-1].hash


def test_wrong_chain_id_is_refused(chain: ChainCtl, ledger: Ledger, account: LocalAccount) -> None:
    sender = Sender(chain.w3, account, ledger, settings(chain_id=1), wait_for_block=chain.waiter())
    try:
        with pytest.raises(SendError, match="refusing to sign: the node reports chain id 31337"):
            sender.send(REQ)
    finally:
        sender.close()
    assert ledger.pending_txs() == [] and chain.pool_size() == 0
    assert chain.sent_count(account.address) == 0


def test_reverted_receipt_is_final_and_not_retried(
    chain: ChainCtl, ledger: Ledger, account: LocalAccount
) -> None:
    revert_initcode = bytes.fromhex("60006000fd")  # PUSH1 0 PUSH1 0 REVERT
    req = TxRequest(to=None, data=revert_initcode, gas_limit=100_000, purpose="deploy")
    sender = make_sender(chain.w3, account, ledger, chain.waiter())
    try:
        result = sender.send(req)
    finally:
        sender.close()
    assert result.status == TxStatus.FAILED and result.receipt_status == 0 and not result.ok
    assert result.error is not None and "reverted" in result.error
    assert len(result.attempts) == 1 and chain.sent_count(account.address) == 1


def test_reorg_that_removes_the_receipt_triggers_rebroadcast(
    chain: ChainCtl, ledger: Ledger, account: LocalAccount
) -> None:
    mined_in: list[int] = []

    def before(call: int) -> None:
        if call == 1:
            (row,) = ledger.pending_txs()
            mined_in.append(int(row.receipt_block or 0))
            chain.rpc("anvil_rollback", 1)  # the block holding our tx disappears

    sender = make_sender(chain.w3, account, ledger, chain.waiter(before), confirmations=3)
    try:
        result = sender.send(REQ)
    finally:
        sender.close()
    assert result.ok and len(result.attempts) == 1
    assert mined_in and result.receipt_block != mined_in[0]
    events = ledger.events(result.tx_id)
    assert any(k == "pending" and "reorg" in d for k, d in events)
    assert [k for k, _ in events].count("broadcast") == 2
    assert chain.sent_count(account.address) == 1


class _TimeoutAfterSend(Web3.HTTPProvider):
    """Forwards eth_sendRawTransaction, then pretends the answer timed out."""

    def make_request(self, method, params):  # type: ignore[no-untyped-def]
        response = super().make_request(method, params)
        if method == "eth_sendRawTransaction":
            import requests

            raise requests.exceptions.ReadTimeout("read timed out")
        return response


def test_broadcast_timeout_that_propagated_is_reconciled_not_resent(
    chain: ChainCtl, ledger: Ledger, account: LocalAccount
) -> None:
    flaky = Web3(_TimeoutAfterSend(chain.w3.provider.endpoint_uri))  # type: ignore[attr-defined]
    sender = Sender(
        chain.w3, account, ledger, settings(), wait_for_block=chain.waiter(), broadcast_w3=flaky
    )
    try:
        result = sender.send(REQ)
    finally:
        sender.close()
    assert result.ok and len(result.attempts) == 1
    assert "broadcast_unsure" in [k for k, _ in ledger.events(result.tx_id)]
    assert chain.sent_count(account.address) == 1


def test_nonce_used_outside_the_keeper_is_caught_before_signing(
    chain: ChainCtl, ledger: Ledger, account: LocalAccount
) -> None:
    sender = make_sender(chain.w3, account, ledger, chain.waiter())
    try:
        assert sender.nonces.sync().next_nonce == 0
        outside = sign_transfer(account, 0, value=0)  # same key, used by someone else
        chain.w3.eth.send_raw_transaction(outside.raw_transaction)  # automine: mined now
        result = sender.send(REQ)
    finally:
        sender.close()
    assert result.ok and result.nonce == 1
    stale = ledger.get_tx(result.tx_id - 1)
    assert stale.nonce == 0 and stale.status == TxStatus.DROPPED and stale.attempts == ()
    assert stale.error is not None and "already mined" in stale.error
    assert chain.sent_count(account.address) == 2


def test_recovery_fills_a_nonce_gap_with_a_noop(
    chain: ChainCtl, ledger: Ledger, account: LocalAccount
) -> None:
    gapped = persist_gapped_tx(chain.w3, ledger, account)  # nonce 1; nonce 0 never went out
    sender = make_sender(chain.w3, account, ledger, chain.waiter())
    try:
        state = sender.nonces.sync()
        assert (state.next_nonce, state.gaps, state.missing_from_node) == (2, (0,), (1,))
        results = sender.recover_pending()
    finally:
        sender.close()
    assert [(r.nonce, r.status) for r in results] == [
        (0, TxStatus.CONFIRMED),
        (1, TxStatus.CONFIRMED),
    ]
    assert ledger.get_tx(results[0].tx_id).purpose == "noop"
    assert results[1].tx_hash == gapped  # not re-signed
    assert chain.sent_count(account.address) == 2


def test_cancel_replaces_a_stuck_tx_with_a_noop(
    chain: ChainCtl, ledger: Ledger, account: LocalAccount
) -> None:
    chain.rpc("evm_setAutomine", False)
    chain.stick(21_000)
    row = _stop_after_broadcast(chain, ledger, account)
    chain.unstick()
    sender = make_sender(chain.w3, account, ledger, chain.waiter())
    try:
        result = sender.cancel(row.id)
    finally:
        sender.close()
    assert result.status == TxStatus.CANCELLED and result.nonce == row.nonce
    assert len(result.attempts) == 2 and result.tx_hash == result.attempts[1].hash
    assert result.attempts[1].max_fee_wei * 1000 >= result.attempts[0].max_fee_wei * 1125
    landed = chain.w3.eth.get_transaction(result.tx_hash)  # type: ignore[arg-type]
    assert landed["to"] == account.address and landed["value"] == 0
    assert chain.sent_count(account.address) == 1


def test_base_fee_spike_reprices_within_the_cap(
    chain: ChainCtl, ledger: Ledger, account: LocalAccount
) -> None:
    chain.rpc("evm_setAutomine", False)

    def before(call: int) -> None:
        if call == 1:  # x10 base fee in one block: our tx can no longer pay
            chain.rpc("anvil_setNextBlockBaseFeePerGas", hex(10 * GWEI))

    sender = make_sender(chain.w3, account, ledger, chain.waiter(before), replace_after_blocks=5)
    try:
        result = sender.send(REQ)
    finally:
        sender.close()
    assert result.ok and len(result.attempts) >= 2
    assert all(a.max_fee_wei <= 100 * GWEI for a in result.attempts)
    assert result.attempts[-1].max_fee_wei >= 10 * GWEI
    assert chain.sent_count(account.address) == 1


def test_insufficient_funds_halts_without_retrying(chain: ChainCtl, ledger: Ledger) -> None:
    from keeper.errors import Halt

    poor = Account.create()
    sender = make_sender(chain.w3, poor, ledger, chain.waiter())
    try:
        with pytest.raises(Halt, match=f"keeper account {poor.address} cannot pay for gas"):
            sender.send(REQ)
        assert sender.nonces.next_nonce == 0  # the unused nonce was handed back
    finally:
        sender.close()
    row = ledger.get_tx(1)
    assert row.status == TxStatus.FAILED and len(row.attempts) == 1
    assert row.error is not None and row.error.startswith("insufficient_funds")
    assert chain.pool_size() == 0


def test_one_nonce_owner_per_account(
    chain: ChainCtl, ledger: Ledger, account: LocalAccount
) -> None:
    from keeper.errors import NonceError

    first = make_sender(chain.w3, account, ledger, chain.waiter())
    try:
        with pytest.raises(NonceError, match="already have an owner in this process"):
            make_sender(chain.w3, account, ledger, chain.waiter())
    finally:
        first.close()
    make_sender(chain.w3, account, ledger, chain.waiter()).close()  # free again after close


def test_epoch_held_by_another_instance_is_not_sent(
    chain: ChainCtl, ledger: Ledger, account: LocalAccount
) -> None:
    assert ledger.acquire_epoch("main", "7", "other-host:123:abc", ttl_s=600)
    sender = make_sender(chain.w3, account, ledger, chain.waiter())
    try:
        with pytest.raises(
            SendError,
            match=r"epoch 7 of vault main is being executed by "
            r"another keeper instance \(other-host:123:abc\): not sending",
        ):
            sender.send(REQ)
    finally:
        sender.close()
    assert ledger.pending_txs() == [] and chain.sent_count(account.address) == 0


class _BlackHole(Web3.HTTPProvider):
    """A private endpoint that accepts eth_sendRawTransaction and never forwards it."""

    sent = 0

    def make_request(self, method, params):  # type: ignore[no-untyped-def]
        if method == "eth_sendRawTransaction":
            _BlackHole.sent += 1
            return {"jsonrpc": "2.0", "id": 1, "result": "0x" + "00" * 32}
        return super().make_request(method, params)


def test_private_send_falls_back_to_public_when_not_included(
    chain: ChainCtl, ledger: Ledger, account: LocalAccount
) -> None:
    private = Web3(_BlackHole(chain.w3.provider.endpoint_uri))  # type: ignore[attr-defined]
    _BlackHole.sent = 0
    sender = Sender(
        chain.w3,
        account,
        ledger,
        settings(private_fallback_blocks=2, replace_after_blocks=10),
        wait_for_block=chain.waiter(),
        broadcast_w3=private,
    )
    try:
        result = sender.send(REQ)
    finally:
        sender.close()
    assert result.ok and len(result.attempts) == 1 and _BlackHole.sent == 1
    kinds = [k for k, _ in ledger.events(result.tx_id)]
    assert kinds.index("public_fallback") < kinds.index("mined")
    assert chain.sent_count(account.address) == 1


def test_swap_bearing_tx_never_goes_public(
    chain: ChainCtl, ledger: Ledger, account: LocalAccount
) -> None:
    private = Web3(_BlackHole(chain.w3.provider.endpoint_uri))  # type: ignore[attr-defined]
    req = TxRequest(to=SINK, value_wei=1, gas_limit=21_000, purpose="rebalance", private_only=True)
    sender = Sender(
        chain.w3,
        account,
        ledger,
        settings(private_fallback_blocks=1, replace_after_blocks=10, max_wait_blocks=4),
        wait_for_block=chain.waiter(),
        broadcast_w3=private,
    )
    try:
        with pytest.raises(SendError, match="not confirmed after 4 blocks; left pending"):
            sender.send(req)
    finally:
        sender.close()
    (row,) = ledger.pending_txs()
    assert "public_fallback" not in [k for k, _ in ledger.events(row.id)]
    assert chain.sent_count(account.address) == 0 and chain.pool_size() == 0


def test_gas_limit_is_estimated_with_headroom_and_reverts_are_caught(
    chain: ChainCtl, ledger: Ledger, account: LocalAccount
) -> None:
    sender = make_sender(chain.w3, account, ledger, chain.waiter())
    try:
        result = sender.send(TxRequest(to=SINK, value_wei=1, purpose="test"))
        with pytest.raises(SendError, match="gas estimate failed"):
            sender.send(TxRequest(to=None, data=bytes.fromhex("60006000fd"), purpose="deploy"))
    finally:
        sender.close()
    assert result.ok and ledger.get_tx(result.tx_id).gas_limit == 21_000 * 6 // 5
    assert len(ledger.pending_txs()) == 0 and chain.sent_count(account.address) == 1
