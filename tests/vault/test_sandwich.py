"""Sandwich: an attacker moves the pool just before the keeper's rebalance. Either the oracle floor
makes the rebalance revert, or the vault's loss stays within the configured slippage."""

from __future__ import annotations

import ape
import pytest
from vaultlib import BPS, E18, Env

from keeper.localnet.market import current_prices_e8, swap_pool_to_price

pytestmark = pytest.mark.chain


def _front_run(env: Env, w3, drop_bps: int) -> None:
    """Push WETH down by drop_bps in the WETH/USDC 0.05% pool only (the feed does not move)."""
    m = env.market
    prices = current_prices_e8(w3, m)
    prices["WETH"] = prices["WETH"] * (BPS - drop_bps) // BPS
    swap_pool_to_price(w3, m, m.pools["WETH/USDC/500"], m.tokens["WETH"], m.tokens["USDC"], prices)


def _setup(balanced: Env, push_price) -> tuple[Env, list[tuple]]:
    env = balanced
    push_price("WETH", 1200)  # WETH rallies everywhere: the keeper should sell some
    env.refresh_feeds()
    return env, [env.leg("WETH", "USDC", 15 * E18)]


def test_large_sandwich_is_refused_by_the_oracle_floor(balanced: Env, push_price, w3) -> None:
    env, legs = _setup(balanced, push_price)
    nav0 = env.nav()
    _front_run(env, w3, drop_bps=300)  # 3% > the 1% floor
    with ape.reverts("Too little received"):
        env.rebalance(legs)
    assert env.nav() == nav0  # nothing left the vault


@pytest.mark.parametrize("drop_bps", [0, 30, 60])
def test_small_sandwich_costs_at_most_the_slippage(balanced: Env, push_price, w3,
                                                   drop_bps: int) -> None:
    env, legs = _setup(balanced, push_price)
    nav0, loss0 = env.nav(), int(env.vault.lossInWindowE8())
    _front_run(env, w3, drop_bps)
    tx = env.rebalance(legs)
    (swap,) = tx.decode_logs(env.vault.Swapped)
    assert swap.amountOut >= swap.minOut
    notional = 15 * E18 * env.price_e8("WETH") // 10**8
    loss = nav0 - env.nav()
    assert loss <= notional * 100 // BPS  # maxSlippageBps = 100
    # the window counts the loss as a fraction of NAV before, in 1e-8 rounded up
    assert int(env.vault.lossInWindowE8()) - loss0 == -(-max(loss, 0) * 10**8 // nav0)
