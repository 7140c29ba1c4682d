"""Deploy and configure a RebalancingVault on the local market (demo, keeper tests, scripts)."""

from __future__ import annotations

from dataclasses import dataclass, field

from web3 import Web3
from web3.contract import Contract

from keeper.localnet import chain
from keeper.localnet.deploy import LocalMarket
from keeper.units import ONE_E18

HOUR = 3600
DEFAULT_TARGETS = {"WETH": 4000, "WBTC": 3000, "LINK": 1000, "USDC": 2000}


@dataclass(frozen=True, slots=True, kw_only=True)
class VaultSetup:
    """How to configure the vault; every limit is enforced on chain."""

    targets_bps: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_TARGETS))
    inner_band_bps: int = 200
    outer_band_bps: int = 500
    heartbeats_s: dict[str, int] = field(default_factory=lambda: {"USDC": 24 * HOUR})
    default_heartbeat_s: int = HOUR
    bounds_pct: int = 90  # feeds must stay within [price/10, price*10] of deployment
    max_trade_e18: int = 5_000_000 * ONE_E18
    ripcord_max_trade_e18: int = 1_000_000 * ONE_E18
    cooldown_s: int = 0
    max_slippage_bps: int = 100
    loss_cap_bps: int = 200
    loss_period_s: int = 24 * HOUR
    target_ltv_bps: int = 0  # 0: no collateral position
    min_ltv_bps: int = 0
    max_ltv_bps: int = 0
    ripcord_ltv_bps: int = 9000
    min_health_factor_e18: int = 11 * ONE_E18 // 10
    # oracle-vs-TWAP guard of rebalance legs (0: off). Needs pools that keep observations over the
    # window (mainnet pools do; the local ones keep one until increaseObservationCardinalityNext).
    twap_window_s: int = 0
    twap_max_deviation_bps: int = 300


def deploy_vault(
    w3: Web3,
    market: LocalMarket,
    *,
    admin: str,
    keeper: str,
    guardian: str,
    setup: VaultSetup | None = None,
) -> Contract:
    """Deploy, configure basket, router, limits and roles; returns the bound vault."""
    s = setup or VaultSetup()
    vault = chain.deploy(
        w3,
        admin,
        "RebalancingVault",
        admin,
        market.tokens["USDC"].address,
        market.lending_pool,
        "Vault Keeper Basket",
        "vkBASKET",
    )
    chain.transact(vault.functions.setBasket(basket_configs(market, s)), admin)
    chain.transact(vault.functions.setRouter(market.router, True), admin)
    limits = (
        s.max_trade_e18,
        s.ripcord_max_trade_e18,
        s.cooldown_s,
        s.max_slippage_bps,
        s.loss_cap_bps,
        s.loss_period_s,
        2**256 - 1,
    )
    chain.transact(vault.functions.setLimits(limits), admin)
    if s.target_ltv_bps:
        params = (
            market.tokens["USDC"].address,
            s.target_ltv_bps,
            s.min_ltv_bps,
            s.max_ltv_bps,
            s.ripcord_ltv_bps,
            s.min_health_factor_e18,
        )
        chain.transact(vault.functions.setCollateralParams(params), admin)
    if s.twap_window_s:
        guard = (market.factory, s.twap_window_s, s.twap_max_deviation_bps)
        chain.transact(vault.functions.setTwapGuard(guard), admin)
    for role, who in (("KEEPER_ROLE", keeper), ("GUARDIAN_ROLE", guardian)):
        role_id = getattr(vault.functions, role)().call()
        chain.transact(vault.functions.grantRole(role_id, who), admin)
    return vault


def basket_configs(market: LocalMarket, s: VaultSetup) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for symbol, target in s.targets_bps.items():
        price = market.prices_e8[symbol]
        heartbeat = s.heartbeats_s.get(symbol, s.default_heartbeat_s)
        lo, hi = price * (100 - s.bounds_pct) // 100, price * 100 // (100 - s.bounds_pct)
        out.append(
            (
                market.tokens[symbol].address,
                market.feeds[symbol],
                target,
                s.inner_band_bps,
                s.outer_band_bps,
                heartbeat,
                lo,
                hi,
            )
        )
    return out


def deposit_usdc(w3: Web3, market: LocalMarket, vault: Contract, depositor: str, usd: int) -> None:
    """Mint `usd` of USDC to `depositor` and deposit it into the vault."""
    usdc = chain.at(w3, "MockERC20", market.tokens["USDC"].address)
    amount = usd * 10**6
    chain.transact(usdc.functions.mint(depositor, amount), depositor)
    chain.transact(usdc.functions.approve(vault.address, amount), depositor)
    chain.transact(vault.functions.deposit(amount, depositor), depositor)


def seed_basket(
    w3: Web3, market: LocalMarket, vault: Contract, usd: int, skip: tuple[str, ...] = ()
) -> None:
    """Fill the vault at its target weights of `usd` by minting/wrapping tokens straight into it
    (the assets in `skip` excepted: a deposit brought those).

    Used to start demos and tests from a balanced vault (a donation at oracle prices);
    a real vault gets there by deposits and the keeper's rebalances.
    """
    targets = {a[0]: a[2] for a in vault.functions.assetConfigs().call()}
    for symbol, token in market.tokens.items():
        target = targets.get(token.address)
        if not target or symbol in skip:
            continue
        raw = usd * target * 10**8 * 10**token.decimals // (10_000 * market.prices_e8[symbol])
        _give(w3, market, symbol, vault.address, raw)


def _give(w3: Web3, market: LocalMarket, symbol: str, to: str, raw: int) -> None:
    token = market.tokens[symbol]
    if symbol == "WETH":
        weth = chain.at(w3, "WETH9", token.address)
        chain.transact(weth.functions.transfer(to, raw), market.deployer)
    else:
        chain.transact(
            chain.at(w3, "MockERC20", token.address).functions.mint(to, raw), market.deployer
        )


def buy_with_eth(w3: Web3, market: LocalMarket, who: str, usd: dict[str, int]) -> dict[str, int]:
    """Give `who` about `usd[symbol]` dollars of each token the way a user gets them on a
    mainnet fork, where tokens cannot be minted: ETH (the node's balance cheat), wrapped to
    WETH, swapped through the market's SwapRouter in the cheapest WETH pool. Returns the raw
    amounts received."""
    from keeper.localnet.node import DevNode

    weth = market.tokens["WETH"]
    price = market.prices_e8["WETH"]
    wei = {s: v * 10**8 * 10**18 // price for s, v in usd.items()}
    DevNode(w3).set_balance(who, sum(wei.values()) + 10**21)  # and 1,000 ETH for gas
    chain.transact(chain.at(w3, "WETH9", weth.address).functions.deposit(), who, sum(wei.values()))
    chain.transact(
        chain.at(w3, "WETH9", weth.address).functions.approve(market.router, sum(wei.values())), who
    )
    router = chain.at(w3, "SwapRouter", market.router)
    got = {"WETH": wei.pop("WETH", 0)}
    for symbol, amount in wei.items():
        token = chain.at(w3, "MockERC20", market.tokens[symbol].address)
        before = int(token.functions.balanceOf(who).call())
        fee = min(int(k.split("/")[2]) for k in market.pools if set(k.split("/")[:2]) == {
            "WETH", symbol})
        params = (weth.address, token.address, fee, who, 2**63, amount, 0, 0)
        chain.transact(router.functions.exactInputSingle(params), who)
        got[symbol] = int(token.functions.balanceOf(who).call()) - before
    return got


def fund_by_swaps(
    w3: Web3, market: LocalMarket, vault: Contract, funder: str, nav_usd: int, deposit_usd: int
) -> None:
    """Fill the vault near its target weights with tokens bought for ETH (see buy_with_eth):
    `deposit_usd` of USDC deposited by `funder`, the rest of `nav_usd` transferred in (a
    donation at market prices, as seed_basket does with minted tokens on the local market)."""
    targets = {a[0]: a[2] for a in vault.functions.assetConfigs().call()}
    usd = {s: nav_usd * targets[t.address] // 10_000 for s, t in market.tokens.items()}
    usd["USDC"] += deposit_usd
    got = buy_with_eth(w3, market, funder, usd)
    usdc = chain.at(w3, "MockERC20", market.tokens["USDC"].address)
    deposit_raw = deposit_usd * 10 ** market.tokens["USDC"].decimals
    chain.transact(usdc.functions.approve(vault.address, deposit_raw), funder)
    chain.transact(vault.functions.deposit(deposit_raw, funder), funder)
    got["USDC"] -= deposit_raw
    for symbol, raw in got.items():
        erc20 = chain.at(w3, "MockERC20", market.tokens[symbol].address)
        chain.transact(erc20.functions.transfer(vault.address, raw), funder)
