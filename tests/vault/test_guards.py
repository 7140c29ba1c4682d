"""Every rebalance guard fires with its own custom error; bad admin parameters are refused."""

from __future__ import annotations

import ape
import pytest
from ape import chain, project
from vaultlib import BASKET, E8, E18, Env, basket_configs, deploy, limits_tuple

pytestmark = pytest.mark.chain

ZERO = "0x" + "00" * 20


def buy_weth(env: Env, usdc: int = 100_000) -> list[tuple]:
    return [env.leg("USDC", "WETH", usdc * 10**6)]


# ─────────────────────────── roles ───────────────────────────


def test_rebalance_reverts_for_non_keeper(env: Env) -> None:
    for who in (env.alice, env.admin, env.guardian):
        with ape.reverts(env.vault.AccessControlUnauthorizedAccount):
            env.vault.rebalance(buy_weth(env), env.deadline(), 0, sender=who)


def test_admin_setters_revert_for_keeper(env: Env) -> None:
    with ape.reverts(env.vault.AccessControlUnauthorizedAccount):
        env.vault.setRouter(env.alice, True, sender=env.keeper)
    with ape.reverts(env.vault.AccessControlUnauthorizedAccount):
        env.vault.setLimits(limits_tuple(), sender=env.keeper)
    with ape.reverts(env.vault.AccessControlUnauthorizedAccount):
        env.vault.setBasket(basket_configs(env), sender=env.keeper)
    with ape.reverts(env.vault.AccessControlUnauthorizedAccount):
        env.vault.pause(sender=env.keeper)


def test_keeper_role_is_rotatable(env: Env) -> None:
    env.vault.revokeRole(env.vault.KEEPER_ROLE(), env.keeper, sender=env.admin)
    with ape.reverts(env.vault.AccessControlUnauthorizedAccount):
        env.rebalance(buy_weth(env))
    env.vault.grantRole(env.vault.KEEPER_ROLE(), env.bob, sender=env.admin)
    env.rebalance(buy_weth(env), sender=env.bob)


# ─────────────────────────── router and path ───────────────────────────


def test_rebalance_reverts_for_router_not_whitelisted(env: Env) -> None:
    rogue = project.SkimRouter.deploy(sender=env.attacker)
    with ape.reverts(env.vault.RouterNotAllowed, router=rogue.address):
        env.rebalance([env.leg("USDC", "WETH", 10**9, router=rogue.address)])
    env.vault.setRouter(env.router, False, sender=env.admin)
    with ape.reverts(env.vault.RouterNotAllowed):
        env.rebalance(buy_weth(env))


def test_multihop_path_executes_and_is_checked(env: Env) -> None:
    usdc_weth_wbtc = env.path("USDC", 500, "WETH", 3000, "WBTC")
    env.rebalance([env.leg("USDC", "WBTC", 100_000 * 10**6, path=usdc_weth_wbtc)])
    assert env.kv().assets[1].heldRaw > 0
    env.warp(3601)
    wrong_end = env.path("USDC", 500, "WETH")
    with ape.reverts(env.vault.PathMismatch):
        env.rebalance([env.leg("USDC", "WBTC", 10**9, path=wrong_end)])
    with ape.reverts(env.vault.BadPath):
        env.rebalance([env.leg("USDC", "WBTC", 10**9, path=usdc_weth_wbtc[:-1])])


def test_path_through_a_non_basket_token_reverts(env: Env) -> None:
    outsider = project.MockERC20.deploy("X", "X", 18, sender=env.attacker)
    path = env.path("USDC", 500) + bytes.fromhex(outsider.address[2:]) + env.path(3000, "WETH")
    with ape.reverts(env.vault.NotBasketAsset, token=outsider.address):
        env.rebalance([env.leg("USDC", "WETH", 10**9, path=path)])


# ─────────────────────────── oracle ───────────────────────────


def test_rebalance_reverts_when_1h_feed_stale(env: Env) -> None:
    now = chain.pending_timestamp
    weth = env.feeds["WETH"]
    weth.setRoundData(env.price_e8("WETH"), now - 3601, sender=env.deployer)
    with ape.reverts(env.vault.StaleFeed, feed=weth.address, heartbeat=3600):
        env.rebalance(buy_weth(env))


def test_rebalance_reverts_when_24h_feed_stale_but_not_before(env: Env) -> None:
    now = chain.pending_timestamp
    link = env.feeds["LINK"]
    # two hours old: stale for a 1 h feed, fine for LINK's 24 h heartbeat
    link.setRoundData(env.price_e8("LINK"), now - 7200, sender=env.deployer)
    env.rebalance(buy_weth(env))
    env.warp(3601, refresh=False)
    for s in ("WETH", "WBTC", "USDC"):
        env.set_price(s, env.price_e8(s))
    link.setRoundData(env.price_e8("LINK"), chain.pending_timestamp - 86401, sender=env.deployer)
    with ape.reverts(env.vault.StaleFeed, feed=link.address, heartbeat=86400):
        env.rebalance(buy_weth(env))


def test_deposit_and_withdraw_refuse_a_stale_feed(env: Env) -> None:
    env.feeds["WBTC"].setRoundData(env.price_e8("WBTC"), chain.pending_timestamp - 4000,
                                   sender=env.deployer)
    with ape.reverts(env.vault.StaleFeed):
        env.vault.deposit(10**6, env.bob, sender=env.bob)
    with ape.reverts(env.vault.StaleFeed):
        env.vault.redeem(10**12, env.alice, env.alice, sender=env.alice)


@pytest.mark.parametrize("answer", [0, -1, -2000 * E8])
def test_rebalance_reverts_on_non_positive_answer(env: Env, answer: int) -> None:
    env.set_price("WETH", answer)
    with ape.reverts(env.vault.BadAnswer, answer=answer):
        env.rebalance(buy_weth(env))


def test_rebalance_reverts_on_answer_out_of_bounds(env: Env) -> None:
    cfg = env.vault.keeperView().assets[0]
    env.set_price("WETH", int(cfg.maxAnswer) + 1)
    with ape.reverts(env.vault.AnswerOutOfBounds):
        env.rebalance(buy_weth(env))
    env.set_price("WETH", int(cfg.minAnswer) - 1)
    with ape.reverts(env.vault.AnswerOutOfBounds):
        env.rebalance(buy_weth(env))


def test_keeper_view_never_reverts_on_bad_feeds(env: Env) -> None:
    env.set_price("WETH", 0)
    env.feeds["LINK"].setRoundData(env.price_e8("LINK"), chain.pending_timestamp - 10**6,
                                   sender=env.deployer)
    kv = env.vault.keeperView()
    assert not kv.feedsOk
    weth, _, link, usdc = kv.assets
    assert (weth.feedOk, weth.answer, weth.valueE18) == (False, 0, 0)
    assert not link.feedOk and link.updatedAt > 0
    assert usdc.feedOk and usdc.weightBps > 0


# ─────────────────────────── size, time, tickets ───────────────────────────


def test_rebalance_reverts_when_trade_over_cap(env: Env) -> None:
    env.vault.setLimits(limits_tuple(maxTradeE18=150_000 * E18, ripcordMaxTradeE18=10 * E18),
                        sender=env.admin)
    legs = [env.leg("USDC", "WETH", 100_000 * 10**6), env.leg("USDC", "WBTC", 60_000 * 10**6)]
    with ape.reverts(env.vault.TradeTooLarge, capE18=150_000 * E18):
        env.rebalance(legs)
    env.rebalance(legs[:1])


def test_second_rebalance_inside_cooldown_reverts(env: Env) -> None:
    env.rebalance(buy_weth(env))
    ready_at = int(env.vault.lastRebalanceTs()) + 3600
    with ape.reverts(env.vault.CooldownActive, readyAt=ready_at):
        env.rebalance(buy_weth(env))
    env.warp(3601)
    env.rebalance(buy_weth(env))


def test_rebalance_reverts_after_deadline(env: Env) -> None:
    deadline = chain.pending_timestamp - 1
    with ape.reverts(env.vault.DeadlinePassed, deadline=deadline):
        env.vault.rebalance(buy_weth(env), deadline, env.epoch(), sender=env.keeper)


def test_stale_epoch_reverts_so_racing_keepers_cannot_both_execute(env: Env) -> None:
    plan, epoch = buy_weth(env), env.epoch()
    env.vault.rebalance(plan, env.deadline(), epoch, sender=env.keeper)
    env.warp(3601)
    with ape.reverts(env.vault.BadEpoch, given=epoch, current=epoch + 1):
        env.vault.rebalance(plan, env.deadline(), epoch, sender=env.keeper)


def test_empty_plan_and_zero_amount_revert(env: Env) -> None:
    with ape.reverts(env.vault.EmptyPlan):
        env.rebalance([])
    with ape.reverts(env.vault.ZeroAmount):
        env.rebalance([env.leg("USDC", "WETH", 0)])


# ─────────────────────────── slippage, loss, direction ───────────────────────────


def _skim_router(env: Env, short_by: int) -> object:
    skim = project.SkimRouter.deploy(sender=env.attacker)
    skim.setShortBy(short_by, sender=env.attacker)
    for s in ("WETH", "WBTC", "LINK", "USDC"):
        env.fund(skim, s, 10**6 * 10 ** env.market.tokens[s].decimals)
    env.vault.setRouter(skim, True, sender=env.admin)
    return skim


def test_swap_one_unit_below_oracle_floor_reverts(env: Env) -> None:
    skim = _skim_router(env, short_by=1)
    leg = env.leg("USDC", "WETH", 100_000 * 10**6, router=skim.address)
    oracle_out = 100_000 * 10**6 * 10**12 * E8 // env.price_e8("WETH")
    min_out = -(-oracle_out * 9900 // 10_000)
    with ape.reverts(env.vault.SlippageExceeded, amountOut=min_out - 1, minOut=min_out):
        env.rebalance([leg])
    skim.setShortBy(0, sender=env.attacker)
    env.rebalance([leg])  # exactly at the floor passes


def test_real_router_enforces_the_vault_floor(env: Env, push_price) -> None:
    push_price("WETH", 300)  # pool and feed move together
    env.feeds["WETH"].setAnswer(env.price_e8("WETH") * 10_000 // 10_300, sender=env.deployer)
    # the feed says WETH is 3% cheaper than the pool: the 1% floor cannot be met
    with ape.reverts("Too little received"):
        env.rebalance(buy_weth(env))


def test_skimming_router_trips_cumulative_loss_cap(env: Env) -> None:
    skim = _skim_router(env, short_by=0)
    env.vault.setLimits(limits_tuple(lossCapBps=30), sender=env.admin)
    leg = env.leg("USDC", "WETH", 200_000 * 10**6, router=skim.address)
    env.rebalance([leg])  # loses 1% of 200k = 2,000 of a 3,000 cap (0.2% of NAV, 30 bps cap)
    assert int(env.vault.lossInWindowE8()) == pytest.approx(2_000 * 10**8 // 1_000_000, rel=1e-3)
    env.warp(3601)
    with ape.reverts(env.vault.LossCapExceeded):
        env.rebalance([leg])
    # the window rolls: the first loss is forgotten once a whole period (plus at most one
    # bucket of a third of it) has passed
    env.warp(86400 + 86400 // 3)
    env.rebalance([leg])


def test_rebalance_reverts_when_weights_move_away_from_target(balanced: Env, push_price) -> None:
    env = balanced
    push_price("WETH", 1200)  # WETH now over its target by more than the inner band
    assert env.weights()["WETH"] > BASKET["WETH"][0] + BASKET["WETH"][1]
    with ape.reverts(env.vault.NotCloserToTarget):
        env.rebalance([env.leg("USDC", "WETH", 20_000 * 10**6)])
    env.rebalance([env.leg("WETH", "USDC", 10 * E18)])


def test_rebalance_reverts_when_inside_inner_bands(balanced: Env) -> None:
    with ape.reverts(balanced.vault.NothingToRebalance):
        balanced.rebalance([balanced.leg("USDC", "WETH", 1_000 * 10**6)])


def test_rebalance_keeps_collateral_ratio_check(env: Env) -> None:
    """A rebalance never touches the pool position, but the health guard runs after it: an LTV made
    too high by a price move blocks rebalances until the position is fixed."""
    env.rebalance(env.plan_to_target())
    env.warp(3601)
    env.adjust(0, "WETH", 100 * E18)
    env.warp(3601)
    env.adjust(2, "USDC", 90_000 * 10**6)
    env.set_price("WETH", env.price_e8("WETH") * 55 // 100)
    env.set_price("WBTC", env.price_e8("WBTC") * 2)  # push WBTC out of band so a trade is wanted
    env.warp(3601)
    with ape.reverts(env.vault.LtvTooHigh):
        env.rebalance([env.leg("WBTC", "USDC", 10**7)])


# ─────────────────────────── pause ───────────────────────────


def test_pause_stops_rebalance_and_deposit_but_not_withdraw(env: Env) -> None:
    env.vault.pause(sender=env.guardian)
    with ape.reverts(env.vault.EnforcedPause):
        env.rebalance(buy_weth(env))
    with ape.reverts(env.vault.EnforcedPause):
        env.vault.deposit(10**6, env.bob, sender=env.bob)
    with ape.reverts(env.vault.EnforcedPause):
        env.adjust(0, "USDC", 10**6)
    assert env.vault.maxDeposit(env.bob) == 0
    before = env.tokens["USDC"].balanceOf(env.alice)
    env.vault.withdraw(1_000 * 10**6, env.alice, env.alice, sender=env.alice)
    env.vault.redeem(env.vault.balanceOf(env.alice) // 2, env.alice, env.alice, sender=env.alice)
    assert env.tokens["USDC"].balanceOf(env.alice) > before + 1_000 * 10**6
    with ape.reverts(env.vault.AccessControlUnauthorizedAccount):
        env.vault.unpause(sender=env.guardian)
    env.vault.unpause(sender=env.admin)
    env.rebalance(buy_weth(env))


def test_reentrant_router_cannot_reenter(env: Env) -> None:
    evil = project.ReentrantRouter.deploy(sender=env.attacker)
    env.vault.setRouter(evil, True, sender=env.admin)
    evil.setPayload(env.vault.deposit.encode_input(10**6, env.attacker), sender=env.attacker)
    with ape.reverts(env.vault.ReentrancyGuardReentrantCall):
        env.rebalance([env.leg("USDC", "WETH", 10**9, router=evil.address)])


# ─────────────────────────── bad parameters ───────────────────────────


def test_weights_not_summing_to_10000_revert(env: Env) -> None:
    cfg = basket_configs(env, LINK=(999, 200, 500, 86400))
    with ape.reverts(env.vault.WeightsSumInvalid, sumBps=9999, expectedBps=10_000):
        env.vault.setBasket(cfg, sender=env.admin)


def test_duplicate_asset_reverts(env: Env) -> None:
    cfg = basket_configs(env)
    weth = list(cfg[0])
    weth[2] = 2000
    cfg = [tuple(weth), tuple(weth), *cfg[1:]]
    with ape.reverts(env.vault.DuplicateAsset, token=env.tokens["WETH"].address):
        env.vault.setBasket(cfg, sender=env.admin)


def test_slippage_above_sane_maximum_reverts(env: Env) -> None:
    with ape.reverts(env.vault.SlippageTooHigh, maxSlippageBps=501, saneMaxBps=500):
        env.vault.setLimits(limits_tuple(maxSlippageBps=501), sender=env.admin)


def test_other_bad_parameters_revert(env: Env) -> None:
    with ape.reverts(env.vault.BandsInvalid):
        env.vault.setBasket(basket_configs(env, WETH=(4000, 500, 500, 3600)), sender=env.admin)
    with ape.reverts(env.vault.BandsInvalid):
        env.vault.setBasket(basket_configs(env, WETH=(4000, 200, 5001, 3600)), sender=env.admin)
    with ape.reverts(env.vault.HeartbeatInvalid):
        env.vault.setBasket(basket_configs(env, WETH=(4000, 200, 500, 3 * 86400)), sender=env.admin)
    with ape.reverts(env.vault.ParamOutOfRange):
        env.vault.setLimits(limits_tuple(lossCapBps=1001), sender=env.admin)
    with ape.reverts(env.vault.ParamOutOfRange):
        env.vault.setLimits(limits_tuple(ripcordMaxTradeE18=3_000_000 * E18), sender=env.admin)
    no_usdc = [c for c in basket_configs(env, WETH=(6000, 200, 500, 3600))
               if c[0] != env.tokens["USDC"].address]
    with ape.reverts(env.vault.AssetStillHeld):  # the seeded USDC cannot leave
        env.vault.setBasket(no_usdc, sender=env.admin)
    empty = deploy(env.market, seed=False)
    with ape.reverts(empty.vault.DepositAssetMissing):
        empty.vault.setBasket(no_usdc, sender=empty.admin)


def test_asset_cannot_leave_basket_while_held(balanced: Env) -> None:
    env = balanced
    cfg = [c for c in basket_configs(env, WETH=(5000, 200, 500, 3600))
           if c[0] != env.tokens["LINK"].address]
    with ape.reverts(env.vault.AssetStillHeld):
        env.vault.setBasket(cfg, sender=env.admin)


def test_every_state_change_emits_an_event(env: Env) -> None:
    tx = env.rebalance(buy_weth(env))
    names = [log.event_name for log in tx.events if log.contract_address == env.vault.address]
    assert names[-1] == "Rebalanced"
    assert len(tx.decode_logs(env.vault.Swapped)) == 1
    tx = env.vault.setRouter(env.alice, True, sender=env.admin)
    assert len(tx.decode_logs(env.vault.RouterSet)) == 1
    tx = env.vault.setLimits(limits_tuple(), sender=env.admin)
    assert len(tx.decode_logs(env.vault.LimitsSet)) == 1
    tx = env.vault.setBasket(basket_configs(env), sender=env.admin)
    assert len(tx.decode_logs(env.vault.AssetConfigured)) == 4
    assert env.vault.address != ZERO
