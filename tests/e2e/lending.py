"""A vault with a collateral position on the local market's Aave pool, for the keeper's lending
tests: WETH supplied, USDC borrowed to the target LTV, through the vault's own adjustCollateral
(an operator account holds the keeper role for the setup)."""

from __future__ import annotations

from pathlib import Path

from web3 import Web3

from keeper.localnet import chain
from keeper.localnet.deploy import LocalMarket
from keeper.localnet.market import feed_answer, set_feed
from keeper.localnet.vault import VaultSetup
from tests.aavekit import warp
from tests.e2e.conftest import KeeperEnv, setup_keeper_env

SUPPLY, WITHDRAW, BORROW, REPAY = range(4)
# A 50% target against WETH's 83% liquidation threshold (health factor 1.66): the band is
# 40-55%, the ripcord opens at 65% (health factor 1.28).
LEVERED = VaultSetup(
    cooldown_s=1800,
    target_ltv_bps=5000,
    min_ltv_bps=4000,
    max_ltv_bps=5500,
    ripcord_ltv_bps=6500,
)


def refresh_feeds(w3: Web3, market: LocalMarket) -> None:
    for symbol in market.feeds:
        set_feed(w3, market, symbol, feed_answer(w3, market, symbol)[0])


def levered_env(
    w3: Web3,
    market: LocalMarket,
    rpc_url: str,
    tmp: Path,
    *,
    supply_frac_bps: int = 8000,
    policy: str = "preventative",
) -> KeeperEnv:
    """A $1M vault that supplied `supply_frac_bps` of its WETH and borrowed USDC to its target
    LTV; the keeper's config uses `policy`."""
    env = setup_keeper_env(w3, market, rpc_url, tmp, setup=LEVERED, policy=policy)
    admin, operator = w3.eth.accounts[0], w3.eth.accounts[1]
    vault = chain.at(w3, "RebalancingVault", env.vault)
    role = vault.functions.KEEPER_ROLE().call()
    chain.transact(vault.functions.grantRole(role, operator), admin)
    weth = market.tokens["WETH"].address
    held = chain.at(w3, "WETH9", weth).functions.balanceOf(env.vault).call()
    _adjust(w3, vault, operator, SUPPLY, weth, held * supply_frac_bps // 10_000)
    warp(w3, LEVERED.cooldown_s + 1)
    refresh_feeds(w3, market)
    pool = chain.at(w3, "Pool", market.lending_pool)
    coll_e8 = pool.functions.getUserAccountData(env.vault).call()[0]
    usdc = market.tokens["USDC"]
    debt_raw = coll_e8 * LEVERED.target_ltv_bps // 10_000 * 10**usdc.decimals // 10**8
    _adjust(w3, vault, operator, BORROW, usdc.address, debt_raw)
    chain.transact(vault.functions.revokeRole(role, operator), admin)
    return env


def _adjust(w3: Web3, vault: object, who: str, action: int, token: str, amount: int) -> None:
    deadline = w3.eth.get_block("latest")["timestamp"] + 600
    fns = vault.functions  # type: ignore[attr-defined]
    epoch = fns.epoch().call()
    chain.transact(fns.adjustCollateral(action, token, amount, deadline, epoch), who)
