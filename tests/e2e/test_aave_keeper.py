"""The vault's collateral position on the real Aave v3 Pool, as the keeper sees it: the keeper's
LTV and health factor are the pool's to the last unit while interest accrues, and with the
keeper stopped a price crash lets a third party liquidate the vault (what that costs is measured
here; the crash path with the keeper running is tests/e2e/test_crash_path.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from web3 import Web3

from keeper.localnet.deploy import LocalMarket
from keeper.localnet.liquidator import Liquidator, account_value_e8
from keeper.localnet.market import move_market
from keeper.read import ReadTarget, read_snapshot
from tests.aavekit import Aave, warp
from tests.e2e.lending import levered_env, refresh_feeds

pytestmark = pytest.mark.chain
DAY = 24 * 3600
USDC = 10**6
E18 = 10**18


def _keeper_view(w3: Web3, market: LocalMarket, vault: str):  # type: ignore[no-untyped-def]
    symbols = {t.address.lower(): s for s, t in market.tokens.items()}
    snap = read_snapshot(
        w3, market.multicall3, [ReadTarget(address=vault, symbols=symbols)], chain_id=31337
    )
    return snap.block_number, snap.vaults[0].collateral


def test_keeper_ltv_and_health_factor_are_the_pools_as_interest_accrues(
    w3: Web3, market: LocalMarket, anvil_url: str, tmp_path: Path
) -> None:
    aave = Aave(w3, market)
    whale = w3.eth.accounts[8]
    aave.supply(whale, "WETH", 200_000 * E18)
    aave.borrow(whale, "USDC", 150_000_000 * USDC)  # 75% utilisation: USDC pays ~2.9% a year
    env = levered_env(w3, market, anvil_url, tmp_path)
    seen = []
    for _ in range(3):
        warp(w3, 7 * DAY)
        refresh_feeds(w3, market)  # the vault's feeds have 1 h heartbeats
        block, c = _keeper_view(w3, market, env.vault)
        assert c is not None
        coll, debt, _avail, lt, _ltv, hf = aave.account(env.vault, block)
        assert (c.collateral_e8, c.debt_e8, c.health_factor_e18) == (coll, debt, hf)
        assert c.liquidation_threshold_bps == lt == 8300  # WETH alone, e-mode off
        assert c.ltv_bps == -(-debt * 10_000 // coll)  # debt / collateral, rounded up
        assert aave.account(env.vault, block) == aave.expected_account(env.vault, block)
        seen.append((debt, hf))
    # interest: the debt grows and the health factor falls with the prices unchanged
    assert seen[0][0] < seen[1][0] < seen[2][0]
    assert seen[0][1] > seen[1][1] > seen[2][1]


def test_with_the_keeper_stopped_a_crash_gets_the_vault_liquidated(
    w3: Web3, market: LocalMarket, anvil_url: str, tmp_path: Path
) -> None:
    """WETH -45% in the pools and the feed at once: the 50% LTV becomes 91% (health factor 0.91,
    under 0.95, so the whole debt may be repaid). A third party's liquidationCall succeeds; the
    vault loses the liquidation bonus on the repaid debt."""
    env = levered_env(w3, market, anvil_url, tmp_path)
    liquidator = Liquidator(w3, market, w3.eth.accounts[9])
    assert liquidator.sweep(env.vault) == []  # healthy: nothing to take
    move_market(w3, market, "WETH", -4_500)
    hf = liquidator.health_factor(env.vault)
    assert hf < 0.95e18
    before = account_value_e8(w3, market, env.vault)
    (done,) = liquidator.sweep(env.vault)
    after = account_value_e8(w3, market, env.vault)
    assert done.health_factor_e18 == hf
    # WETH's bonus is 5%: the collateral taken is worth 1.05 x the debt repaid; the liquidator
    # gets it less the protocol's 10% of the bonus
    assert done.loss_e8 > 0
    assert abs(done.collateral_value_e8 * 10_000 - done.debt_value_e8 * 10_500) <= 10_500 * 10
    bonus = done.collateral_seized_raw - done.collateral_seized_raw * 10_000 // 10_500
    assert abs(done.collateral_seized_raw - done.to_liquidator_raw - bonus // 10) <= 2
    # the vault's value falls by that much (to the cent: the debt's interest over one block)
    assert abs((before - after) - done.loss_e8) <= 10**6
    print(
        f"\nkeeper stopped, WETH -45%: 1 liquidation repaid ${done.debt_value_e8 / 1e8:,.0f} of "
        f"debt, took ${done.collateral_value_e8 / 1e8:,.0f} of WETH: the vault lost "
        f"${done.loss_e8 / 1e8:,.0f} ({done.loss_e8 * 10_000 // before} bps of its value)"
    )
