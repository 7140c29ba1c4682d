"""The oracle-vs-TWAP guard: with it on, every hop of every rebalance leg must
trade in a Uniswap v3 pool whose TWAP agrees with the oracles; the ripcord is exempt.

The local pools keep one observation unless a test raises their cardinality (`observations`), as
a fresh mainnet pool would; the guard then fails closed (TwapUnavailable) until the window has
history.
"""

from __future__ import annotations

from decimal import Decimal, getcontext
from typing import Any

import ape
import pytest
from ape import accounts, chain, project
from vaultlib import E18, Env
from web3 import Web3

from keeper.localnet.deploy import LocalMarket
from keeper.localnet.market import keep_observations, move_market
from keeper.localnet.vault import VaultSetup, deploy_vault

pytestmark = pytest.mark.chain
Q96 = 2**96
USDC = 10**6
WINDOW = 1800
MAX_DEV = 300
SUPPLY, WITHDRAW, BORROW, REPAY = range(4)


def _guard_on(env: Env, window: int = WINDOW, max_dev: int = MAX_DEV) -> Any:
    return env.vault.setTwapGuard((env.market.factory, window, max_dev), sender=env.admin)


def _guard(raw: Any) -> tuple[str, int, int]:
    factory, window, max_dev = raw
    return Web3.to_checksum_address(factory), int(window), int(max_dev)


def _pool(env: Env, a: str, b: str, fee: int) -> str:
    key = next(k for k in env.market.pools if set(k.split("/")[:2]) == {a, b} and
               k.endswith(f"/{fee}"))
    return Web3.to_checksum_address(env.market.pools[key])


@pytest.fixture
def observations(w3: Web3, market: LocalMarket) -> None:
    """Every local pool keeps 64 observations from its next swap on (ape's isolation undoes it)."""
    keep_observations(w3, market, 64)


# ─────────────────────────── admin ───────────────────────────


def test_guard_is_off_until_the_admin_sets_it(env: Env) -> None:
    assert _guard(env.vault.twapGuard()) == ("0x" + "00" * 20, 0, 0)
    tx = _guard_on(env)
    (ev,) = tx.decode_logs(env.vault.TwapGuardSet)
    factory = Web3.to_checksum_address(env.market.factory)
    assert _guard(ev.guard) == _guard(env.vault.twapGuard()) == (factory, WINDOW, MAX_DEV)
    env.vault.setTwapGuard((env.market.factory, 0, 0), sender=env.admin)  # window 0: off again
    assert env.vault.twapGuard()[1] == 0


@pytest.mark.parametrize(
    ("window", "max_dev", "name", "lo", "hi"),
    [(299, MAX_DEV, "twapWindow", 300, 86_400), (86_401, MAX_DEV, "twapWindow", 300, 86_400),
     (WINDOW, 9, "twapMaxDeviationBps", 10, 2_000),
     (WINDOW, 2_001, "twapMaxDeviationBps", 10, 2_000)],
)
def test_guard_parameters_are_bounded(
    env: Env, window: int, max_dev: int, name: str, lo: int, hi: int
) -> None:
    with ape.reverts(env.vault.ParamOutOfRange, min=lo, max=hi) as info:
        _guard_on(env, window, max_dev)
    assert bytes(info.value.inputs["name"]).rstrip(b"\0").decode() == name


def test_deploy_helper_turns_the_guard_on_when_configured(w3: Web3, market: LocalMarket) -> None:
    acc = w3.eth.accounts
    setup = VaultSetup(twap_window_s=WINDOW, twap_max_deviation_bps=250)
    vault = deploy_vault(w3, market, admin=acc[0], keeper=acc[1], guardian=acc[2], setup=setup)
    assert _guard(vault.functions.twapGuard().call()) == (
        Web3.to_checksum_address(market.factory), WINDOW, 250)
    off = deploy_vault(w3, market, admin=acc[0], keeper=acc[1], guardian=acc[2])
    assert off.functions.twapGuard().call()[1] == 0  # off unless asked for


def test_guard_needs_a_factory_and_the_admin(env: Env) -> None:
    with ape.reverts(env.vault.ZeroAddress):
        env.vault.setTwapGuard(("0x" + "00" * 20, WINDOW, MAX_DEV), sender=env.admin)
    with ape.reverts(env.vault.AccessControlUnauthorizedAccount):
        env.vault.setTwapGuard((env.market.factory, WINDOW, MAX_DEV), sender=env.keeper)


# ─────────────────────────── rebalance ───────────────────────────


def _frozen_feed_move(env: Env, w3: Web3, push_price: Any, symbol: str, move_bps: int) -> None:
    """WETH +12% (pools and feed: the vault is out of band), then `symbol`'s pools move by
    `move_bps` while its feed keeps posting the old answer, each followed by a full window."""
    push_price("WETH", 1200)
    env.warp(3601)
    move_market(w3, env.market, symbol, move_bps, update_feed=False)
    env.warp(3601)  # feeds re-posted at their old answers: fresh and frozen


def test_rebalance_passes_when_pool_twap_agrees_with_oracle(
    balanced: Env, push_price: Any, observations: None
) -> None:
    env = balanced
    push_price("WETH", 1200)  # pools and feed move together
    env.warp(3601)  # the whole window now sits at the new price
    _guard_on(env)
    tx = env.rebalance([env.leg("WETH", "WBTC", 10 * E18)])
    assert len(tx.decode_logs(env.vault.Swapped)) == 1


def test_frozen_feed_while_pools_move_is_refused(
    balanced: Env, w3: Web3, push_price: Any, observations: None
) -> None:
    """The LUNA scenario: the feed keeps reporting (fresh, in bounds) while the market moved 20%.
    The oracle floor cannot see it (the vault would sell WETH 20% under the market); the guard
    does."""
    env = balanced
    _frozen_feed_move(env, w3, push_price, "WETH", 2000)
    legs = [env.leg("WETH", "WBTC", 10 * E18)]
    snap = chain.snapshot()
    env.rebalance(legs)  # without the guard the trade goes through
    chain.restore(snap)
    _guard_on(env)
    pool = _pool(env, "WETH", "WBTC", 3000)
    with ape.reverts(env.vault.TwapDeviationTooHigh, pool=pool, maxDeviationBps=MAX_DEV) as info:
        env.rebalance(legs)
    assert 1_800 <= info.value.inputs["deviationBps"] <= 2_200  # the 20% the pools moved


def test_limit_is_inclusive_at_the_measured_deviation(
    balanced: Env, w3: Web3, push_price: Any, observations: None
) -> None:
    env = balanced
    _frozen_feed_move(env, w3, push_price, "WETH", 1000)  # pools +10%, feed frozen
    legs = [env.leg("WETH", "WBTC", 10 * E18)]
    _guard_on(env, max_dev=10)
    with ape.reverts(env.vault.TwapDeviationTooHigh) as info:
        env.rebalance(legs)
    dev = int(info.value.inputs["deviationBps"])
    assert 900 <= dev <= 1_100
    _guard_on(env, max_dev=dev - 1)
    with ape.reverts(env.vault.TwapDeviationTooHigh, deviationBps=dev, maxDeviationBps=dev - 1):
        env.rebalance(legs)
    _guard_on(env, max_dev=dev)  # the limit itself passes
    assert len(env.rebalance(legs).decode_logs(env.vault.Swapped)) == 1


def test_every_hop_of_a_multi_hop_path_is_checked(
    balanced: Env, w3: Web3, push_price: Any, observations: None
) -> None:
    env = balanced
    _frozen_feed_move(env, w3, push_price, "WBTC", 2000)  # only the second hop's pools
    _guard_on(env)
    path = env.path("WETH", 500, "USDC", 3000, "WBTC")
    with ape.reverts(env.vault.TwapDeviationTooHigh, pool=_pool(env, "WBTC", "USDC", 3000)):
        env.rebalance([env.leg("WETH", "WBTC", 10 * E18, path=path)])


def test_pool_without_window_history_fails_closed(balanced: Env, push_price: Any) -> None:
    """One observation (the local pools' default) and a swap inside the window: no TWAP exists,
    so the guard refuses rather than guessing."""
    env = balanced
    push_price("WETH", 1200)  # swaps now: the only observation is newer than now - window
    _guard_on(env)
    with ape.reverts(env.vault.TwapUnavailable, pool=_pool(env, "WETH", "WBTC", 3000)):
        env.rebalance([env.leg("WETH", "WBTC", 10 * E18)])


def test_ripcord_is_exempt_from_the_guard(
    balanced: Env, push_price: Any, observations: None
) -> None:
    """In a crash the 30-minute TWAP lags the oracle: a routine rebalance waits, the ripcord
    still deleverages (its oracle floor and the loss cap still apply)."""
    env = balanced
    env.adjust(SUPPLY, "WETH", 100 * E18)
    env.warp(3601)
    env.adjust(BORROW, "USDC", 100_000 * USDC)
    env.warp(3601)
    push_price("WETH", -3300)  # LTV ~66%: ripcord armed; the TWAP still says the old price
    env.refresh_feeds()
    _guard_on(env)
    with ape.reverts(env.vault.TwapDeviationTooHigh):
        env.rebalance([env.leg("USDC", "WETH", 50_000 * USDC)])
    held = env.tokens["WETH"].balanceOf(env.vault)
    tx = env.vault.ripcord([env.leg("WETH", "USDC", held + 5 * E18)], 100_000 * USDC,
                           env.deadline(), env.epoch(), sender=env.keeper)
    (ev,) = tx.decode_logs(env.vault.RipcordPulled)
    assert ev.ltvAfterBps < ev.ltvBeforeBps


# ─────────────────────────── TwapLib math ───────────────────────────


@pytest.fixture(scope="module")
def harness() -> Any:
    return project.TwapLibHarness.deploy(sender=accounts.test_accounts[0])


@pytest.mark.parametrize("tick", [0, 1, -1, 60, -60, 12_345, -196_000, 196_000, 400_000,
                                  -400_000, 600_000, -600_000])
def test_price_at_tick_matches_exact_power(harness: Any, tick: int) -> None:
    getcontext().prec = 80
    exact = Decimal("1.0001") ** tick * Q96
    got = int(harness.priceX96(tick))
    # Q96 itself limits small prices: within 1 unit, and 1e-10 relative where that is finer
    assert abs(Decimal(got) - exact) <= exact * Decimal("1e-10") + 1, (tick, got, exact)


@pytest.mark.parametrize("tick", [600_001, -600_001, 887_272, -887_272])
def test_price_beyond_the_guard_range_is_zero_so_the_guard_fails_closed(
    harness: Any, tick: int
) -> None:
    assert harness.priceX96(tick) == 0
    assert harness.deviationBps(0, Q96) == 10_000  # 100%: over any allowed limit


@pytest.mark.parametrize(
    ("older", "newer", "window", "tick"),
    [(0, 3600, 1800, 2), (0, 3601, 1800, 2), (0, -3600, 1800, -2), (0, -3601, 1800, -3),
     (-5_000, -5_000, 1800, 0), (10**12, 10**12 - 1800 * 196_000, 1800, -196_000)],
)
def test_mean_tick_rounds_toward_negative_infinity(
    harness: Any, older: int, newer: int, window: int, tick: int
) -> None:
    assert harness.meanTick(older, newer, window) == tick


def test_oracle_price_and_deviation_keep_decimals_explicit(harness: Any) -> None:
    # 1 WETH (18) = 3,000 USDC (6): raw USDC per raw WETH = 3e3 * 1e6 / 1e18 = 3e-9
    px = harness.oraclePriceX96(3_000 * E18, 18, E18, 6)
    assert abs(Decimal(px) / Q96 - Decimal("3e-9")) < Decimal("1e-20")
    # 1 WBTC (8) = 60,000 USDC (6): raw USDC per raw WBTC = 6e4 * 1e6 / 1e8 = 600
    assert harness.oraclePriceX96(60_000 * E18, 8, E18, 6) == 600 * Q96
    assert harness.deviationBps(103 * Q96, 100 * Q96) == 300
    assert harness.deviationBps(97 * Q96, 100 * Q96) == 300
    assert harness.deviationBps(100 * Q96 + 1, 100 * Q96) == 1  # rounded up: never loosens
