"""ERC-4626 at the edges: views that never revert or lie on a bad feed, checked casts at absurd
balances, "redeem all" after a loss, and the rolling loss cap. docs/vault.md has the rules."""

from __future__ import annotations

import ape
import pytest
from ape import chain, project
from vaultlib import E18, MAX_UINT, Env, basket_configs, deploy, fast, limits_tuple

pytestmark = pytest.mark.chain
USDC = 10**6


def _stale(env: Env, symbol: str = "WBTC") -> None:
    env.feeds[symbol].setRoundData(env.price_e8(symbol), chain.pending_timestamp - 4000,
                                   sender=env.deployer)


def _views(env: Env, who) -> dict[str, int]:
    v = env.vault
    return {"totalAssets": v.totalAssets(), "maxDeposit": v.maxDeposit(who),
            "maxMint": v.maxMint(who), "maxWithdraw": v.maxWithdraw(who),
            "maxRedeem": v.maxRedeem(who), "convertToShares": v.convertToShares(10**6),
            "convertToAssets": v.convertToAssets(10**12)}


@pytest.mark.parametrize("cap", [None, 1_100_000 * USDC])
def test_stale_feed_views_answer_and_max_is_zero(env: Env, cap: int | None) -> None:
    if cap is not None:
        env.vault.setLimits(limits_tuple(depositCapRaw=cap), sender=env.admin)
    ta = env.vault.totalAssets()
    _stale(env)
    views = _views(env, env.alice)  # none of them reverts
    assert views["totalAssets"] == ta  # the stale answer is in bounds: the same estimate
    for name in ("maxDeposit", "maxMint", "maxWithdraw", "maxRedeem"):
        assert views[name] == 0, name  # the actions would revert, so nothing is available
    with ape.reverts(env.vault.StaleFeed):
        env.vault.deposit(USDC, env.bob, sender=env.bob)
    with ape.reverts(env.vault.StaleFeed):
        env.vault.previewDeposit(USDC)
    with ape.reverts(env.vault.StaleFeed):
        env.vault.redeem(10**12, env.alice, env.alice, sender=env.alice)
    env.refresh_feeds()  # a fresh answer reopens everything
    assert env.vault.maxRedeem(env.alice) == env.vault.balanceOf(env.alice)
    env.vault.deposit(USDC, env.bob, sender=env.bob)


def _harness_basket(env: Env, **feed_over: str) -> list[tuple]:
    cfg = basket_configs(env)
    out = []
    for c in cfg:
        sym = env.symbol(c[0])
        out.append((c[0], feed_over.get(sym, c[1]), *c[2:]))
    return out


def test_unreadable_and_future_feeds(env: Env) -> None:
    harness = project.FeedHarness.deploy(8, env.price_e8("WETH"), sender=env.deployer)
    env.vault.setBasket(_harness_basket(env, WETH=harness.address), sender=env.admin)
    ta = env.vault.totalAssets()
    harness.setBroken(True, sender=env.deployer)
    assert env.vault.maxDeposit(env.bob) == 0 and env.vault.maxRedeem(env.alice) == 0
    assert env.vault.totalAssets() <= ta  # valued at its lower bound meanwhile, never more
    assert not env.vault.keeperView().feedsOk
    with ape.reverts(env.vault.FeedUnreadable, feed=harness.address):
        env.vault.deposit(USDC, env.bob, sender=env.bob)
    with ape.reverts(env.vault.FeedUnreadable, feed=harness.address):
        env.rebalance([env.leg("USDC", "WETH", 100_000 * USDC)])
    harness.setBroken(False, sender=env.deployer)
    future = chain.pending_timestamp + 3600
    harness.set(env.price_e8("WETH"), future, sender=env.deployer)
    assert env.vault.maxWithdraw(env.alice) == 0
    with ape.reverts(env.vault.FeedFromFuture, feed=harness.address, updatedAt=future):
        env.rebalance([env.leg("USDC", "WETH", 100_000 * USDC)])


def test_absurd_balances_saturate_in_views_and_revert_in_actions(env: Env) -> None:
    """5.79e64 raw USDC once wrapped NAV negative (totalAssets 0); 1.158e65 reverted the views."""
    usdc = env.tokens["USDC"]
    fast(usdc.mint, env.vault.address, 579 * 10**62, sender=env.deployer)
    assert env.vault.totalAssets() >= 579 * 10**62  # no silent wrap
    with ape.reverts(env.vault.SafeCastOverflowedUintToInt):
        env.vault.navE18()  # the checked NAV refuses a value past int256
    fast(usdc.mint, env.vault.address, 579 * 10**62, sender=env.deployer)  # 1.158e65 held
    views = _views(env, env.alice)  # still no revert
    # E18 value saturates at 2^256 - 1, so totalAssets reads (2^256 - 1) / 1e12 at USDC = $1
    assert views["totalAssets"] >= MAX_UINT // 10**12 * 99 // 100
    # the checked path would overflow, so nothing is available and the actions refuse
    assert [views[k] for k in ("maxDeposit", "maxMint", "maxWithdraw", "maxRedeem")] == [0] * 4
    with pytest.raises(ape.exceptions.VirtualMachineError, match="overflow"):
        env.vault.deposit(USDC, env.bob, sender=env.bob)


def test_redeem_all_after_a_loss(market, push_price) -> None:
    """A sole holder whose vault lost half, now all idle USDC: redeem(balanceOf) must work."""
    env = deploy(market, seed=False)
    v, bob, usdc = env.vault, env.bob, env.tokens["USDC"]
    two = [c for c in basket_configs(env, USDC=(6000, 200, 500, 86400), WETH=(4000, 200, 500, 3600))
           if env.symbol(c[0]) in ("USDC", "WETH")]
    v.setBasket(two, sender=env.admin)
    v.deposit(100 * USDC, bob, sender=bob)
    env.rebalance([env.leg("USDC", "WETH", 40 * USDC)])
    push_price("WETH", -5000)  # WETH halves: about 20 USDC lost
    env.warp(3601)
    leave = [(c[0], c[1], 10_000 if env.symbol(c[0]) == "USDC" else 0, *c[3:]) for c in two]
    v.setBasket(leave, sender=env.admin)  # WETH's target is now 0: sell it all
    weth_held = env.tokens["WETH"].balanceOf(v)
    env.rebalance([env.leg("WETH", "USDC", weth_held)])
    assert usdc.balanceOf(v) == v.totalAssets() < 100 * USDC  # all idle, after the loss
    shares = v.balanceOf(bob)
    assert v.previewRedeem(shares) <= usdc.balanceOf(v)
    assert v.maxRedeem(bob) == shares  # was convertToShares(idle), a few units short
    before = usdc.balanceOf(bob)
    v.redeem(shares, bob, bob, sender=bob)
    assert v.balanceOf(bob) == 0 and usdc.balanceOf(bob) > before


def test_max_redeem_is_exact_when_idle_is_short(balanced: Env) -> None:
    """maxRedeem is the most shares redeemable from the idle USDC: one more share is refused."""
    v, alice = balanced.vault, balanced.alice
    m = v.maxRedeem(alice)
    assert m < v.balanceOf(alice)
    assert v.previewRedeem(m) <= balanced.tokens["USDC"].balanceOf(v)
    assert v.previewRedeem(m + 1) > balanced.tokens["USDC"].balanceOf(v)
    with ape.reverts(v.ERC4626ExceededMaxRedeem):
        v.redeem(m + 1, alice, alice, sender=alice)
    v.redeem(m, alice, alice, sender=alice)


def _skim(env: Env) -> object:
    skim = project.SkimRouter.deploy(sender=env.attacker)
    for s in ("WETH", "USDC"):
        env.fund(skim, s, 10**6 * 10 ** env.market.tokens[s].decimals)
    env.vault.setRouter(skim, True, sender=env.admin)
    return skim


def test_loss_cap_rolls_across_what_was_a_period_boundary(env: Env) -> None:
    """The fixed window allowed 2x the cap around its reset; the rolling window does not."""
    skim = _skim(env)
    env.vault.setLimits(limits_tuple(lossCapBps=30, cooldown=0), sender=env.admin)
    env.rebalance([env.leg("USDC", "WETH", 1_000 * USDC)])  # the old code started its period here
    env.warp(86400 - 200)
    leg = env.leg("USDC", "WETH", 200_000 * USDC, router=skim.address)  # loses 20 bps of NAV
    env.rebalance([leg])
    env.warp(201)  # past the old period's end
    with ape.reverts(env.vault.LossCapExceeded):
        env.rebalance([leg])


def test_loss_in_any_window_stays_under_the_cap(env: Env) -> None:
    """Losses tried every sixth of a period: the sum over every window of lossPeriod seconds stays
    within the cap, and the budget comes back within a period and a third."""
    skim = _skim(env)
    period = 6 * 3600
    env.vault.setLimits(limits_tuple(lossCapBps=30, cooldown=0, lossPeriod=period),
                        sender=env.admin)
    leg = env.leg("USDC", "WETH", 100_000 * USDC, router=skim.address)  # 10 bps each
    done: list[tuple[int, int]] = []  # (timestamp, loss in 1e-8 of NAV)
    refused = 0
    for _ in range(14):
        nav0 = env.nav()
        try:
            env.rebalance([leg])
            done.append((chain.blocks.head.timestamp, -(-(nav0 - env.nav()) * 10**8 // nav0)))
        except env.vault.LossCapExceeded:
            refused += 1
        env.warp(period // 6)
    cap = 30 * 10**4
    for t, _ in done:  # every window (t - period, t] ending at a loss
        assert sum(loss for s, loss in done if t - period < s <= t) <= cap
    # two fit in a window; the third waits until the first loss's bucket leaves the ring: more
    # than a period and at most a period and a bucket (2 h) after it, wherever t0 fell in its bucket
    hours = [(t - done[0][0]) // 3600 for t, _ in done]
    assert hours[:2] == [0, 1] and 6 <= hours[2] <= 8 and len(done) >= 4, hours
    assert refused >= 8


def test_errors_that_never_fired(env: Env) -> None:
    v, admin = env.vault, env.admin
    usdc = env.tokens["USDC"].address
    with ape.reverts(v.SameToken, token=usdc):
        env.rebalance([(env.router, usdc, usdc, 500, USDC, b"")])
    with ape.reverts(v.BasketSizeInvalid, count=0, maxCount=8):
        v.setBasket([], sender=admin)
    nine = basket_configs(env) * 2 + basket_configs(env)[:1]
    with ape.reverts(v.BasketSizeInvalid, count=9, maxCount=8):
        v.setBasket(nine, sender=admin)
    bad = list(basket_configs(env)[0])
    for lo, hi in ((0, 10), (10, 10), (-5, 10)):
        bad[6], bad[7] = lo, hi
        with ape.reverts(v.FeedBoundsInvalid):
            v.setBasket([tuple(bad), *basket_configs(env)[1:]], sender=admin)
    token19 = project.MockERC20.deploy("T", "T", 19, sender=env.deployer)
    cfg = basket_configs(env)
    with ape.reverts(v.DecimalsInvalid, tokenOrFeed=token19.address, decimals=19):
        v.setBasket([(token19.address, *cfg[0][1:]), *cfg[1:]], sender=admin)
    feed19 = project.FeedHarness.deploy(19, 10**19, sender=env.deployer)
    with ape.reverts(v.DecimalsInvalid, tokenOrFeed=feed19.address, decimals=19):
        v.setBasket([(cfg[0][0], feed19.address, *cfg[0][2:]), *cfg[1:]], sender=admin)


def test_nav_not_positive(balanced: Env) -> None:
    """Debt above everything held: the weights are undefined, so a rebalance refuses to run."""
    env = balanced
    env.adjust(0, "WETH", 150 * E18)  # supply most of the WETH
    env.warp(3601)
    env.adjust(2, "USDC", 160_000 * USDC)  # borrow USDC (LTV ~46%)
    env.warp(3601)
    # redeem everything the idle USDC pays, so the vault keeps mostly the levered WETH
    env.vault.redeem(env.vault.maxRedeem(env.alice), env.alice, env.alice, sender=env.alice)
    lows = {env.symbol(a.token): int(a.minAnswer) for a in env.kv().assets}
    for s in ("WETH", "WBTC", "LINK"):  # every asset at its lowest accepted price
        env.set_price(s, lows[s])
    nav = env.nav()
    assert nav <= 0
    with pytest.raises(env.vault.NavNotPositive) as err:
        env.rebalance([env.leg("WETH", "USDC", E18)])
    # the NAV the call saw: its block's, with the debt's interest of the seconds since (< $0.01)
    got = int(err.value.inputs["navE18"])
    assert got <= nav and nav - got < 10**16
    assert env.vault.totalAssets() == 0 and env.vault.maxWithdraw(env.alice) == 0
