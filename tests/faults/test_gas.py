"""D. Gas spike (fault test 19): base fee x10 in one block; the routine rebalance waits, the
collateral ripcord still goes through, priced above the routine cap and within the emergency cap."""

from __future__ import annotations

from dataclasses import replace

import pytest
from web3 import Web3

from keeper.app import Mode
from keeper.localnet import chain as lchain
from keeper.localnet.deploy import write_deployments
from keeper.localnet.market import feed_answer, move_market, set_feed
from keeper.localnet.vault import VaultSetup, deploy_vault, deposit_usdc, seed_basket
from tests.e2e.conftest import KeeperEnv, write_config
from tests.faults.conftest import GWEI, ChainCtl, Kit, edit_config, epoch, txs

pytestmark = pytest.mark.chain
SUPPLY, WITHDRAW, BORROW, REPAY = range(4)


def _warp(env: KeeperEnv, seconds: int) -> None:
    env.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    env.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    for sym in env.market.feeds:  # keep every feed inside its heartbeat
        set_feed(env.w3, env.market, sym, feed_answer(env.w3, env.market, sym)[0])


def _levered_vault(env: KeeperEnv, borrow_usdc: int = 100_000) -> str:
    """A second vault with a collateral position: 100 WETH supplied, USDC borrowed."""
    w3, m = env.w3, env.market
    acc = w3.eth.accounts
    vault = deploy_vault(
        w3,
        m,
        admin=acc[0],
        keeper=env.keeper,
        guardian=acc[2],
        setup=VaultSetup(
            cooldown_s=600,
            target_ltv_bps=3000,
            min_ltv_bps=2000,
            max_ltv_bps=5000,
            ripcord_ltv_bps=6500,
        ),
    )
    lchain.transact(vault.functions.grantRole(vault.functions.KEEPER_ROLE().call(), acc[5]), acc[0])
    deposit_usdc(w3, m, vault, acc[3], 1_000)
    seed_basket(w3, m, vault, 1_000_000)
    steps = ((SUPPLY, "WETH", 100 * 10**18), (BORROW, "USDC", borrow_usdc * 10**6))
    for action, sym, amount in steps:
        ts = w3.eth.get_block("latest")["timestamp"]
        fn = vault.functions.adjustCollateral(
            action, m.tokens[sym].address, amount, ts + 600, vault.functions.epoch().call()
        )
        lchain.transact(fn, acc[5])
        _warp(env, 3601)
    return str(vault.address)


def test_base_fee_x10_routine_waits_ripcord_goes_up_to_emergency_cap(
    kit: Kit, chain: ChainCtl
) -> None:
    env = kit.env
    col = _levered_vault(env)
    write_deployments(
        env.market.with_vault("main", env.vault).with_vault("col", col),
        env.tmp / "deployments.json",
    )
    write_config(env.tmp, str(env.w3.provider.endpoint_uri), vaults=("main", "col"))  # type: ignore[attr-defined]
    edit_config(env.config, "max_fee_gwei: 100", "max_fee_gwei: 5\n  emergency_max_fee_gwei: 100")
    move_market(env.w3, env.market, "WETH", -3_300)  # both leave their bands; col's LTV > 65%
    e_main, e_col = epoch(env), epoch(replace(env, vault=col))
    keeper = kit.keeper()
    chain.rpc("anvil_setNextBlockBaseFeePerGas", hex(10 * GWEI))  # x10 in one block
    chain.mine()
    results = {r.name: r for r in keeper.tick(Mode.SEND)}
    main, rip = results["main"], results["col"]
    assert main.verdict == "hold" and main.action == "rebalance" and "gas spike" in main.reason
    assert rip.action == "deleverage" and rip.verdict == "sent", rip.reason
    ((tx_id, status, purpose, receipt, _),) = txs(env)
    assert (status, purpose, receipt) == ("confirmed", "ripcord", 1)
    row = keeper.deps.ledger.get_tx(tx_id)
    assert all(5 * GWEI < a.max_fee_wei <= 100 * GWEI for a in row.attempts)
    landed = env.w3.eth.get_transaction(row.mined_hash)  # type: ignore[arg-type]
    assert Web3.to_checksum_address(landed["to"]) == col
    assert epoch(env) == e_main and epoch(replace(env, vault=col)) == e_col + 1
    assert chain.sent_count(env.keeper) == 1


def _ltv(env: KeeperEnv, vault: str) -> int:
    v = lchain.at(env.w3, "RebalancingVault", vault)
    return int(v.functions.collateralRatio().call()[0])


def test_an_under_levered_vault_borrows_back_into_its_band(kit: Kit, chain: ChainCtl) -> None:
    """100 WETH supplied against 30k USDC: the LTV sits under its 20% floor, and the keeper
    borrows back toward 30% (a releverage raises the LTV: the simulation must not refuse it)."""
    env = kit.env
    col = _levered_vault(env, borrow_usdc=30_000)
    write_deployments(env.market.with_vault("col", col), env.tmp / "deployments.json")
    write_config(env.tmp, str(env.w3.provider.endpoint_uri), vaults=("col",))  # type: ignore[attr-defined]
    before = _ltv(env, col)
    assert before < 2000
    (r,) = kit.keeper().tick(Mode.SEND)
    assert (r.action, r.verdict) == ("releverage", "sent"), r.reason
    after = _ltv(env, col)
    assert before < after <= 5000 and abs(after - 3000) < abs(before - 3000)
    ((_tx_id, status, purpose, receipt, _),) = txs(env)
    assert (status, receipt) == ("confirmed", 1) and purpose == "releverage"
