"""C. Reorgs (fault tests 16-18) through Keeper.tick in Mode.SEND."""

from __future__ import annotations

import pytest
from web3.exceptions import ContractLogicError

from keeper.app import Keeper, Mode
from keeper.chain.errors import name_revert
from tests.faults.conftest import ChainCtl, Kit, epoch, in_band, push_out_of_band, txs
from tests.txkit import planned_calldata

pytestmark = pytest.mark.chain


def _kinds(keeper: Keeper, tx_id: int) -> list[tuple[str, str]]:
    return keeper.deps.ledger.events(tx_id)


def test_reorg_that_removes_our_tx_is_detected_and_resubmitted(kit: Kit, chain: ChainCtl) -> None:
    push_out_of_band(kit.env)
    e0 = epoch(kit.env)
    removed: list[tuple[int, str]] = []

    def before(call: int) -> None:
        # act once the keeper has recorded the receipt: under load the first look can come
        # before the tx is mined, and rolling back a block without it proves nothing
        rows = keeper.deps.ledger.pending_txs()
        if not removed and rows and rows[0].receipt_block is not None:
            row = rows[0]
            removed.append((int(row.receipt_block or 0), str(row.receipt_block_hash)))
            chain.rpc("anvil_rollback", 1)  # depth-1 reorg: the block with our tx is gone
            chain.rpc("anvil_dropTransaction", row.attempts[0].hash)  # and no node re-adds it

    keeper = kit.keeper(waiter=chain.waiter(before), confirmations=3)
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "sent", r.reason
    ((tx_id, status, *_),) = txs(kit.env)
    row = keeper.deps.ledger.get_tx(tx_id)
    events = _kinds(keeper, tx_id)
    assert status == "confirmed" and len(removed) == 1 and removed[0][0] > 0
    assert row.receipt_block_hash != removed[0][1]  # re-mined in a block of the new chain
    assert any(k == "pending" and "reorg" in d for k, d in events)
    assert [k for k, _ in events].count("broadcast") == 2 and len(row.attempts) == 1
    assert chain.sent_count(kit.env.keeper) == 1 and epoch(kit.env) == e0 + 1  # executed once
    assert in_band(kit.env)


def test_reorg_that_reincludes_our_tx_does_not_duplicate(kit: Kit, chain: ChainCtl) -> None:
    push_out_of_band(kit.env)
    e0 = epoch(kit.env)
    first: list[str] = []

    def before(call: int) -> None:
        if call == 1:
            (row,) = keeper.deps.ledger.pending_txs()
            first.append(str(row.receipt_block_hash))
            raw = "0x" + row.attempts[0].raw_tx.hex()
            other = {"from": chain.filler, "to": chain.filler, "value": "0x1"}
            # same height, a different block: another tx first, then ours
            chain.rpc("anvil_reorg", 1, [[other, 0], [raw, 0]])

    keeper = kit.keeper(waiter=chain.waiter(before), confirmations=3)
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "sent", r.reason
    ((tx_id, status, *_),) = txs(kit.env)
    row = keeper.deps.ledger.get_tx(tx_id)
    assert status == "confirmed" and row.receipt_block_hash != first[0]
    canonical = kit.env.w3.eth.get_block(row.receipt_block)["hash"].hex()  # type: ignore[arg-type]
    assert row.receipt_block_hash.removeprefix("0x") == canonical.removeprefix("0x")  # type: ignore[union-attr]
    assert [k for k, _ in _kinds(keeper, tx_id)].count("broadcast") == 1  # never resent
    assert chain.sent_count(kit.env.keeper) == 1 and epoch(kit.env) == e0 + 1


def test_reorg_that_undoes_the_price_move_makes_the_keeper_recompute(
    kit: Kit, chain: ChainCtl
) -> None:
    keeper = kit.keeper()
    fork_point = chain.rpc("evm_snapshot")
    head0 = int(kit.env.w3.eth.block_number)
    push_out_of_band(kit.env)
    (seen,) = keeper.tick(Mode.CHECK)
    assert seen.action == "rebalance" and seen.verdict == "planned"
    stale = planned_calldata(keeper)
    moved_to = int(kit.env.w3.eth.block_number)
    chain.rpc("evm_revert", fork_point)  # the blocks with the price move are reorged away
    for _ in range(moved_to - head0 + 1):
        chain.mine()
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "hold" and r.action == "hold", r.reason
    assert r.block is not None and seen.block is not None and r.block > seen.block
    assert chain.sent_count(kit.env.keeper) == 0 and txs(kit.env) == []
    with pytest.raises(ContractLogicError) as err:  # the stale plan could not execute
        kit.env.w3.eth.call({"from": kit.env.keeper, "to": kit.env.vault, "data": stale})
    reason = name_revert(err.value.data if isinstance(err.value.data, str) else None)
    assert reason is not None
