"""The collateral position: adjustCollateral for every action, its guards, and the ripcord."""

from __future__ import annotations

import ape
import pytest
from vaultlib import E18, Env, collateral_tuple, limits_tuple

pytestmark = pytest.mark.chain
SUPPLY, WITHDRAW, BORROW, REPAY = range(4)
USDC = 10**6


def _levered(env: Env, weth: int = 100, borrow_usdc: int = 90_000) -> Env:
    env.adjust(SUPPLY, "WETH", weth * E18)
    env.warp(3601)
    env.adjust(BORROW, "USDC", borrow_usdc * USDC)
    env.warp(3601)
    return env


def test_each_action_moves_the_position_and_emits(balanced: Env) -> None:
    env = balanced
    tx = env.adjust(SUPPLY, "WETH", 50 * E18)
    ev = tx.decode_logs(env.vault.CollateralAdjusted)[0]
    assert (ev.action, ev.amount) == (SUPPLY, 50 * E18)
    assert env.supplied("WETH") == 50 * E18
    env.warp(3601)
    nav0 = env.nav()
    tx = env.adjust(BORROW, "USDC", 30_000 * USDC)
    assert tx.decode_logs(env.vault.CollateralAdjusted)[0].ltvBps > 0
    assert abs(env.nav() - nav0) < E18  # borrowing is NAV-neutral
    kv = env.kv()
    assert kv.debtBase > 0 and kv.healthFactor >= 13 * E18 // 10
    env.warp(3601)
    env.adjust(REPAY, "USDC", 10_000 * USDC)
    env.warp(3601)
    env.adjust(WITHDRAW, "WETH", 10 * E18)
    assert env.supplied("WETH") == 40 * E18
    weth = next(a for a in env.kv().assets if env.symbol(a.token) == "WETH")
    usdc = next(a for a in env.kv().assets if env.symbol(a.token) == "USDC")
    assert (weth.suppliedRaw, weth.borrowedRaw) == (40 * E18, 0)  # the pool's own balances
    assert (usdc.suppliedRaw, usdc.borrowedRaw) == (0, env.owed("USDC")) and env.owed("USDC") > 0


def test_ltv_above_max_after_action_reverts(balanced: Env) -> None:
    env = balanced
    env.adjust(SUPPLY, "WETH", 100 * E18)  # ~228k USD
    env.warp(3601)
    with ape.reverts(env.vault.LtvTooHigh, maxLtvBps=5000):
        env.adjust(BORROW, "USDC", 130_000 * USDC)  # LTV ~57% > 50%


def test_health_below_minimum_after_action_reverts(balanced: Env) -> None:
    env = balanced
    env.vault.setCollateralParams(collateral_tuple(env, minHealthFactor=2 * E18), sender=env.admin)
    env.adjust(SUPPLY, "WETH", 100 * E18)
    env.warp(3601)
    with ape.reverts(env.vault.HealthTooLow, minHealthFactor=2 * E18):
        env.adjust(BORROW, "USDC", 100_000 * USDC)  # LTV ~44% < 50% but HF ~1.9 < 2.0


def test_collateral_guards(balanced: Env) -> None:
    env = balanced
    with ape.reverts(env.vault.NotDebtAsset):
        env.adjust(BORROW, "WETH", E18)
    with ape.reverts(env.vault.AccessControlUnauthorizedAccount):
        env.adjust(SUPPLY, "WETH", E18, sender=env.alice)
    with ape.reverts(env.vault.InsufficientBalance):
        env.adjust(SUPPLY, "WETH", 800 * E18)
    env.vault.setLimits(limits_tuple(maxTradeE18=1_000 * E18, ripcordMaxTradeE18=E18),
                        sender=env.admin)
    with ape.reverts(env.vault.TradeTooLarge):
        env.adjust(SUPPLY, "WETH", E18)
    env.vault.setLimits(limits_tuple(), sender=env.admin)
    env.adjust(SUPPLY, "WETH", E18)
    with ape.reverts(env.vault.CooldownActive):
        env.adjust(SUPPLY, "WETH", E18)


def test_collateral_disabled_without_pool(market) -> None:
    from vaultlib import deploy

    env = deploy(market, with_pool=False)
    with ape.reverts(env.vault.LendingDisabled):
        env.adjust(SUPPLY, "USDC", USDC)


def test_ripcord_closed_until_ltv_reaches_trigger(balanced: Env) -> None:
    env = _levered(balanced)
    with ape.reverts(env.vault.RipcordNotArmed, ripcordLtvBps=6500):
        env.vault.ripcord([], 10_000 * USDC, env.deadline(), env.epoch(), sender=env.keeper)


def test_ripcord_deleverages_after_a_crash(balanced: Env, push_price) -> None:
    env = _levered(balanced, weth=100, borrow_usdc=100_000)  # LTV ~44%
    push_price("WETH", -3300)  # WETH -33%: LTV ~66% >= 65%
    env.refresh_feeds()
    ltv0 = env.vault.collateralRatio()[0]
    assert ltv0 >= 6500
    with ape.reverts(env.vault.LtvTooHigh):  # risk-increasing keeper actions are blocked
        env.adjust(BORROW, "USDC", USDC)
    # sell 30 WETH (more than the wallet holds after supplying, so part comes from collateral)
    held = env.tokens["WETH"].balanceOf(env.vault)
    legs = [env.leg("WETH", "USDC", held + 5 * E18)]
    # the ripcord cap (300k) is tighter than the trade cap
    with ape.reverts(env.vault.TradeTooLarge):
        env.vault.ripcord([env.leg("WETH", "USDC", 400 * E18)], 0, env.deadline(), env.epoch(),
                          sender=env.keeper)
    tx = env.vault.ripcord(legs, 100_000 * USDC, env.deadline(), env.epoch(), sender=env.keeper)
    ev = tx.decode_logs(env.vault.RipcordPulled)[0]
    assert ev.ltvAfterBps < ev.ltvBeforeBps
    assert env.vault.collateralRatio()[0] < ltv0
    assert env.supplied("WETH") == 95 * E18


def test_ripcord_that_does_not_lower_ltv_reverts(balanced: Env, push_price) -> None:
    env = _levered(balanced, weth=100, borrow_usdc=100_000)
    push_price("WETH", -3300)
    env.refresh_feeds()
    # withdrawing collateral and swapping it into USDC without repaying raises the LTV
    legs = [env.leg("WETH", "USDC", env.tokens["WETH"].balanceOf(env.vault) + E18)]
    with ape.reverts(env.vault.LtvNotReduced):
        env.vault.ripcord(legs, 0, env.deadline(), env.epoch(), sender=env.keeper)


def test_adjust_collateral_reverts_when_any_feed_stale(balanced: Env) -> None:
    """Regression pinned from the property run: adjustCollateral once checked only the moved asset's
    feed, so a collateral move succeeded while other feeds (which the pool values the position
    with) were stale. Every feed must now be good."""
    from ape import chain

    env = balanced
    env.feeds["WBTC"].setRoundData(env.price_e8("WBTC"), chain.pending_timestamp - 3601,
                                   sender=env.deployer)
    with ape.reverts(env.vault.StaleFeed, feed=env.feeds["WBTC"].address):
        env.adjust(SUPPLY, "WETH", E18)


def test_partial_deleverage_between_max_and_ripcord_is_allowed(balanced: Env, push_price) -> None:
    """Between maxLtvBps (50%) and the ripcord trigger (65%) the keeper must still be able to repay
    or supply in steps: a Supply/Repay passes when it strictly lowers the LTV; a Borrow does not."""
    env = _levered(balanced, weth=100, borrow_usdc=100_000)  # LTV ~44%
    push_price("WETH", -2000)  # LTV ~55%: over max, under the ripcord trigger
    env.refresh_feeds()
    ltv0 = env.vault.collateralRatio()[0]
    assert 5000 < ltv0 < 6500
    with ape.reverts(env.vault.RipcordNotArmed):
        env.vault.ripcord([], USDC, env.deadline(), env.epoch(), sender=env.keeper)
    env.adjust(REPAY, "USDC", 5_000 * USDC)  # still above 50%, but lower
    ltv1 = env.vault.collateralRatio()[0]
    assert 5000 < ltv1 < ltv0
    env.warp(3601)
    with ape.reverts(env.vault.LtvTooHigh):
        env.adjust(BORROW, "USDC", USDC)
    with ape.reverts(env.vault.LtvTooHigh):
        env.adjust(WITHDRAW, "WETH", E18 // 100)
    env.adjust(SUPPLY, "WETH", 5 * E18)
    assert env.vault.collateralRatio()[0] < ltv1
