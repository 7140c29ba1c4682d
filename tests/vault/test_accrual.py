"""The vault values its lending position as the pool holds it: aToken balances (supply with
interest) and variable debt token balances (debt with interest), net of what a third-party
liquidation took. NAV, totalAssets, share prices and keeperView follow them to the unit, and the
vault can unwind whatever is left. docs/lending.md, "How the vault values the position"."""

from __future__ import annotations

from typing import Any

import ape
import pytest
from ape import project
from vaultlib import E18, FLAG_DEBT, MAX_UINT, Env, basket_configs, collateral_tuple
from web3 import Web3

from keeper.localnet.liquidator import Liquidator
from tests.aavekit import Aave

pytestmark = pytest.mark.chain
SUPPLY, WITHDRAW, BORROW, REPAY = range(4)
USDC = 10**6
DAY = 86_400


def _levered(env: Env, weth: int = 100, ltv_bps: int = 4_000) -> int:
    """Supply `weth` WETH, then borrow USDC to `ltv_bps` of its value; returns the USDC borrowed."""
    env.adjust(SUPPLY, "WETH", weth * E18)
    env.warp(3601)
    borrow = weth * env.price_e8("WETH") * ltv_bps // 10_000 // 100  # E8 -> raw USDC
    env.adjust(BORROW, "USDC", borrow)
    env.warp(3601)
    return borrow


def _busy_market(w3: Web3, env: Env) -> None:
    """A third party borrows WETH (so WETH suppliers earn interest) and 150M of the 200M USDC
    (75% utilisation, so USDC debt grows at about 2.9% a year), against WBTC."""
    aave = Aave(w3, env.market)
    whale = w3.eth.accounts[8]
    aave.supply(whale, "WBTC", 6_000 * 10**8)
    aave.supply(whale, "WETH", 1_000 * E18)
    aave.borrow(whale, "WETH", 700 * E18)
    aave.borrow(whale, "USDC", 150_000_000 * USDC)


def _assert_valued_as_the_pool_holds_it(env: Env) -> None:
    nav, ta = env.pool_value()
    assert env.nav() == nav
    assert env.vault.totalAssets() == ta
    kv = env.kv()
    assert kv.navE18 == nav
    for a in kv.assets:
        s = env.symbol(a.token)
        assert (a.suppliedRaw, a.borrowedRaw) == (env.supplied(s), env.owed(s)), s


def test_nav_and_share_price_count_30_days_of_supply_and_debt_interest(
    balanced: Env, w3: Web3
) -> None:
    env = balanced
    _busy_market(w3, env)
    borrowed = _levered(env)
    env.warp(30 * DAY)
    # interest moved both sides away from what the vault supplied and borrowed
    assert env.supplied("WETH") > 100 * E18
    assert env.owed("USDC") > borrowed
    _assert_valued_as_the_pool_holds_it(env)
    # ERC-4626 prices shares from that NAV: redeeming pays shares * (ta + 1) / (supply + 10^6)
    _, ta = env.pool_value()
    shares = env.vault.balanceOf(env.alice) // 10  # the idle USDC covers it
    supply = env.vault.totalSupply()
    assert env.vault.convertToAssets(supply) == supply * (ta + 1) // (supply + 10**6)
    assert env.vault.convertToShares(ta) == ta * (supply + 10**6) // (ta + 1)
    assert env.vault.previewRedeem(shares) == shares * (ta + 1) // (supply + 10**6)
    assert env.vault.previewDeposit(1_000 * USDC) == 1_000 * USDC * (supply + 10**6) // (ta + 1)
    paid = env.vault.redeem(shares, env.alice, env.alice, sender=env.alice).return_value
    # the redeem's block is a second or more later, with that much more interest: value it there,
    # from the balances after it plus the USDC it paid out (exact at the USDC feed's $1.00000000)
    assert env.price_e8("USDC") == 10**8
    nav_after, _ = env.pool_value()
    ta_then = (nav_after + paid * 10**12) // 10**12
    assert paid == shares * (ta_then + 1) // (supply + 10**6)


def test_after_a_liquidation_nav_follows_the_pool_and_the_position_unwinds(
    balanced: Env, w3: Web3, push_price: Any
) -> None:
    """WETH -43%: LTV 48% -> 84%, health factor about 0.98, so a third party may repay half the
    debt and take that much WETH plus Aave's 5% bonus. The vault then values what is left, and
    repays and withdraws all of it (the amounts it supplied and borrowed are no longer there)."""
    env = balanced
    borrowed = _levered(env, weth=100, ltv_bps=4_800)
    push_price("WETH", -4_300)
    env.refresh_feeds()
    liquidator = Liquidator(w3, env.market, w3.eth.accounts[9])
    _assert_valued_as_the_pool_holds_it(env)
    nav_before, supply = env.nav(), env.vault.totalSupply()
    price_before = env.vault.convertToAssets(supply)
    (done,) = liquidator.sweep(env.vault.address)
    assert done.collateral_seized_raw > 0 and done.debt_repaid_raw >= borrowed // 2
    _assert_valued_as_the_pool_holds_it(env)
    # the NAV fell by the collateral taken beyond the debt repaid, at the vault's own prices
    # (within a few units: a block of interest and each side's rounding)
    weth_e18, usdc_e18 = env.price_e8("WETH") * 10**10, env.price_e8("USDC") * 10**10
    loss = done.collateral_seized_raw * weth_e18 // E18 - done.debt_repaid_raw * usdc_e18 // USDC
    assert loss > 10**21  # more than $1,000: the stored principal would have hidden it
    assert abs((nav_before - env.nav()) - loss) <= 10**13  # 0.00001 USD
    # and the share price with it, to the unit
    _, ta = env.pool_value()
    assert env.vault.convertToAssets(supply) == supply * (ta + 1) // (supply + 10**6) < price_before
    left_weth, left_debt = env.supplied("WETH"), env.owed("USDC")
    assert 0 < left_weth < 100 * E18 - done.collateral_seized_raw + E18
    env.warp(3601)
    tx = env.adjust(REPAY, "USDC", borrowed)  # what it borrowed: more than is left to repay
    repaid = tx.decode_logs(env.vault.CollateralAdjusted)[0].amount
    assert repaid >= left_debt and env.owed("USDC") == 0
    assert env.lending_bits() == (1, 0)  # WETH (basket index 0) still supplied, no debt
    env.warp(3601)
    weth_before = env.tokens["WETH"].balanceOf(env.vault)
    tx = env.adjust(WITHDRAW, "WETH", 100 * E18)  # what it supplied: more than is left
    got = tx.decode_logs(env.vault.CollateralAdjusted)[0].amount
    assert got >= left_weth and env.supplied("WETH") == 0
    assert env.tokens["WETH"].balanceOf(env.vault) == weth_before + got
    assert env.lending_bits() == (0, 0)  # nothing left to read
    _assert_valued_as_the_pool_holds_it(env)


def test_the_ripcord_withdraws_from_the_real_supply_after_a_liquidation(
    balanced: Env, w3: Web3, push_price: Any
) -> None:
    """After a partial liquidation (health factor back at about 1.1) the ripcord may need more
    WETH than the wallet holds: it withdraws the shortfall from what the pool still holds (here 5%
    of it, which Aave allows at that health factor), and refuses more than the pool holds."""
    env = balanced
    env.vault.setCollateralParams(collateral_tuple(env, ripcordLtvBps=6_000), sender=env.admin)
    held = env.tokens["WETH"].balanceOf(env.vault) // E18
    _levered(env, weth=held - 5, ltv_bps=4_800)  # nearly all of it: the legs stay small
    push_price("WETH", -4_300)
    env.refresh_feeds()
    Liquidator(w3, env.market, w3.eth.accounts[9]).sweep(env.vault.address)
    left = env.supplied("WETH")
    held = env.tokens["WETH"].balanceOf(env.vault)
    too_much = [env.leg("WETH", "USDC", held + left + 1)]
    with ape.reverts(env.vault.InsufficientBalance):
        env.vault.ripcord(too_much, 0, env.deadline(), env.epoch(), sender=env.keeper)
    ltv0 = env.vault.collateralRatio()[0]
    legs = [env.leg("WETH", "USDC", held + left // 20)]
    env.vault.ripcord(legs, MAX_UINT, env.deadline(), env.epoch(), sender=env.keeper)
    assert env.vault.collateralRatio()[0] < ltv0
    assert abs(env.supplied("WETH") - (left - left // 20)) <= 1  # Aave's rounding of the burn
    _assert_valued_as_the_pool_holds_it(env)


def test_debt_asset_changes_only_with_no_debt_on_record(balanced: Env) -> None:
    """A third party repays the vault's whole debt on its behalf: the NAV sees it at once; the
    record stays open until a Repay finds nothing to repay, and only then may the debt asset
    change (the NAV reads the configured debt asset's debt token alone)."""
    env = balanced
    _levered(env)
    usdc = env.tokens["USDC"]
    to_weth = (env.tokens["WETH"].address, *collateral_tuple(env)[1:])
    with ape.reverts(env.vault.DebtOutstanding, debtAsset=usdc.address):
        env.vault.setCollateralParams(to_weth, sender=env.admin)
    owed = env.owed("USDC")
    usdc.approve(env.pool.address, MAX_UINT, sender=env.bob)
    # Aave clamps an explicit amount to the debt (MAX_UINT is only for one's own debt)
    env.pool.repay(usdc.address, 2 * owed, 2, env.vault.address, sender=env.bob)
    assert owed > 0 and env.owed("USDC") == 0
    _assert_valued_as_the_pool_holds_it(env)
    with ape.reverts(env.vault.DebtOutstanding):
        env.vault.setCollateralParams(to_weth, sender=env.admin)
    tx = env.adjust(REPAY, "USDC", USDC)  # nothing left: closes the record, moves nothing
    assert tx.decode_logs(env.vault.CollateralAdjusted)[0].amount == 0
    env.vault.setCollateralParams(to_weth, sender=env.admin)
    assert env.vault.collateralParams().debtAsset == to_weth[0]


def test_supply_of_an_asset_the_pool_does_not_list_reverts(env: Env) -> None:
    token = project.MockERC20.deploy("Unlisted", "UNL", 18, sender=env.deployer)
    feed = project.MockAggregator.deploy(8, "UNL / USD", 10**8, sender=env.deployer)
    cfg = basket_configs(env, WETH=(3000, 200, 500, 3600))
    cfg.append((token.address, feed.address, 1000, 200, 500, 3600, 10**7, 10**9))
    env.vault.setBasket(cfg, sender=env.admin)
    token.mint(env.vault, E18, sender=env.deployer)
    with ape.reverts(env.vault.ReserveNotListed, token=token.address):
        env.vault.adjustCollateral(SUPPLY, token.address, E18, env.deadline(), env.epoch(),
                                   sender=env.keeper)


def _trace(w3: Web3, tx_hash: Any) -> dict[str, Any]:
    answer = w3.provider.make_request("debug_traceTransaction", [tx_hash, {"tracer": "callTracer"}])
    return dict(answer["result"])


def _vault_calls(w3: Web3, tx_hash: Any, vault: str) -> set[str]:
    """Addresses the vault itself called (any depth) in a mined transaction, from the callTracer."""
    out: set[str] = set()

    def walk(frame: dict[str, Any]) -> None:
        if frame["from"].lower() == vault.lower():
            out.add(frame["to"].lower())
        for sub in frame.get("calls", []):
            walk(sub)

    walk(_trace(w3, tx_hash))
    return out


def _gas_outside_the_swap(w3: Web3, tx: Any, router: str) -> int:
    """The transaction's gas less the router call's (the Uniswap pool's own cost depends on its
    oracle history, which hours of waiting change; the vault's part must not)."""
    frames = _trace(w3, tx.txn_hash).get("calls", [])
    return int(tx.gas_used) - sum(int(f["gasUsed"], 16) for f in frames
                                  if f["to"].lower() == router.lower())


def test_nav_reads_only_the_pool_balances_of_open_positions(balanced: Env, w3: Web3,
                                                            push_price: Any) -> None:
    """A rebalance of a vault with no lending position calls no aToken, debt token or pool; with
    WETH supplied and USDC borrowed it reads aWETH and USDC's debt token, and no other; closed
    again, it reads nothing more and costs what it cost before the position was opened."""
    env = balanced
    aave = env.market.aave
    pool_tokens = {a.lower() for a in (*aave.a_tokens.values(),
                                       *aave.variable_debt_tokens.values())}
    push_price("WETH", 1_200)
    env.refresh_feeds()
    legs = [env.leg("WETH", "WBTC", 10 * E18)]
    snap = ape.chain.snapshot()
    tx = env.rebalance(legs)
    never_levered_gas = _gas_outside_the_swap(w3, tx, env.router)
    called = _vault_calls(w3, tx.txn_hash, env.vault.address)
    assert not called & (pool_tokens | {env.pool.address.lower()})
    ape.chain.restore(snap)
    _levered(env, weth=20, ltv_bps=3_000)
    assert env.lending_bits() == (1, FLAG_DEBT)
    snap = ape.chain.snapshot()
    tx = env.rebalance(legs)
    # two cold balance reads at least
    assert _gas_outside_the_swap(w3, tx, env.router) > never_levered_gas + 2 * 2_600
    called = _vault_calls(w3, tx.txn_hash, env.vault.address)
    assert called & pool_tokens == {aave.a_tokens["WETH"].lower(),
                                    aave.variable_debt_tokens["USDC"].lower()}
    ape.chain.restore(snap)
    # closed again (all debt repaid, all collateral withdrawn): back to reading nothing
    env.adjust(REPAY, "USDC", 2 * env.owed("USDC"))
    env.warp(3601)
    env.adjust(WITHDRAW, "WETH", 40 * E18)
    env.warp(3601)
    assert env.lending_bits() == (0, 0) and env.supplied("WETH") == env.owed("USDC") == 0
    tx = env.rebalance(legs)
    called = _vault_calls(w3, tx.txn_hash, env.vault.address)
    assert not called & (pool_tokens | {env.pool.address.lower()})
    # the same code path: what differs is only the values in the slots it writes (timestamps, the
    # loss ring's bucket), a few dozen gas
    assert abs(_gas_outside_the_swap(w3, tx, env.router) - never_levered_gas) < 200
