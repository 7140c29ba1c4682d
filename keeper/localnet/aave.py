"""Aave v3 core on the local market, deployed from the compiled artifacts of npm @aave/core-v3
(1.19.x, the v3.0.2 protocol): PoolAddressesProvider, ACLManager, the Pool behind its proxy with
its logic libraries linked, the PoolConfigurator, an AaveOracle reading the market's Chainlink-
compatible feeds, the protocol data provider, aTokens, debt tokens and one default interest-rate
strategy per reserve. The reserves are listed with the Aave v3 Ethereum parameters quoted in
RESERVES (sources there); e-mode categories are not configured (a user's e-mode is opt-in, and
the vault never opts in). See docs/lending.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from web3 import Web3
from web3.contract import Contract

from keeper.localnet import chain
from keeper.localnet.artifacts import linked, load

RAY = 10**27
MARKET_ID = "Aave Ethereum Market"
VARIABLE = 2  # Aave's interestRateMode for variable-rate debt
# The Pool's logic libraries; FlashLoanLogic itself links BorrowLogic, so it comes after it.
POOL_LIBRARIES = (
    "BorrowLogic",
    "BridgeLogic",
    "EModeLogic",
    "LiquidationLogic",
    "PoolLogic",
    "SupplyLogic",
    "FlashLoanLogic",
)


def _ray(pct: str) -> int:
    """'2.8' (percent) -> ray."""
    whole, _, frac = pct.partition(".")
    scale: int = 10 ** len(frac)
    return (int(whole) * scale + int(frac or 0)) * RAY // (100 * scale)


@dataclass(frozen=True, slots=True, kw_only=True)
class RateStrategy:
    """DefaultReserveInterestRateStrategy's parameters, in ray."""

    optimal_usage: int
    base_variable: int
    variable_slope1: int
    variable_slope2: int
    stable_slope1: int
    stable_slope2: int
    base_stable_offset: int  # base stable rate = variable_slope1 + this
    stable_excess_offset: int = 0
    optimal_stable_to_total_debt: int = _ray("20")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReserveParams:
    """One reserve's risk parameters (bps; caps in whole tokens)."""

    ltv_bps: int
    liquidation_threshold_bps: int
    liquidation_bonus_bps: int  # 10_500 = the liquidator receives 5% more collateral value
    reserve_factor_bps: int
    liquidation_protocol_fee_bps: int
    supply_cap: int
    borrow_cap: int
    rates: RateStrategy


# Aave v3 Ethereum, reserve configuration and interest-rate strategies as of 2023-10-31: the
# on-chain snapshot BGD Labs recorded in bgd-labs/aave-proposals-v3,
# reports/AaveV3Ethereum_UpgradeAaveV3ETHPooolWETHParameters_20231031_after.json (ltv,
# liquidationThreshold, liquidationBonus, reserveFactor, liquidationProtocolFee, supplyCap,
# borrowCap; "strategies": optimalUsageRatio, baseVariableBorrowRate, variableRateSlope1/2,
# stableRateSlope1/2, baseStableBorrowRate = slope1 + offset). stable_excess_offset is not in
# that snapshot: 0 is an assumption, and a harmless one, since stable borrowing is disabled on
# all four reserves there and here.
RESERVES: dict[str, ReserveParams] = {
    "WETH": ReserveParams(
        ltv_bps=8050,
        liquidation_threshold_bps=8300,
        liquidation_bonus_bps=10500,
        reserve_factor_bps=1500,
        liquidation_protocol_fee_bps=1000,
        supply_cap=1_800_000,
        borrow_cap=1_400_000,
        rates=RateStrategy(
            optimal_usage=_ray("80"),
            base_variable=0,
            variable_slope1=_ray("2.8"),
            variable_slope2=_ray("80"),
            stable_slope1=_ray("4"),
            stable_slope2=_ray("80"),
            base_stable_offset=_ray("3"),
        ),
    ),
    "WBTC": ReserveParams(
        ltv_bps=7300,
        liquidation_threshold_bps=7800,
        liquidation_bonus_bps=10500,
        reserve_factor_bps=2000,
        liquidation_protocol_fee_bps=1000,
        supply_cap=43_000,
        borrow_cap=28_000,
        rates=RateStrategy(
            optimal_usage=_ray("45"),
            base_variable=0,
            variable_slope1=_ray("4"),
            variable_slope2=_ray("300"),
            stable_slope1=_ray("7"),
            stable_slope2=_ray("300"),
            base_stable_offset=_ray("2"),
        ),
    ),
    "LINK": ReserveParams(
        ltv_bps=5300,
        liquidation_threshold_bps=6800,
        liquidation_bonus_bps=10700,
        reserve_factor_bps=2000,
        liquidation_protocol_fee_bps=1000,
        supply_cap=15_000_000,
        borrow_cap=13_000_000,
        rates=RateStrategy(
            optimal_usage=_ray("45"),
            base_variable=0,
            variable_slope1=_ray("7"),
            variable_slope2=_ray("300"),
            stable_slope1=_ray("7"),
            stable_slope2=_ray("300"),
            base_stable_offset=_ray("2"),
        ),
    ),
    "USDC": ReserveParams(
        ltv_bps=7700,
        liquidation_threshold_bps=8000,
        liquidation_bonus_bps=10450,
        reserve_factor_bps=1000,
        liquidation_protocol_fee_bps=2000,
        supply_cap=1_760_000_000,
        borrow_cap=1_580_000_000,
        rates=RateStrategy(
            optimal_usage=_ray("90"),
            base_variable=0,
            variable_slope1=_ray("3.5"),
            variable_slope2=_ray("60"),
            stable_slope1=_ray("0.5"),
            stable_slope2=_ray("60"),
            base_stable_offset=_ray("1"),
        ),
    ),
}
# Listing order, which also sets each reserve's id (its bit in a user's configuration).
LISTING = ("WETH", "WBTC", "USDC", "LINK")


@dataclass(frozen=True, slots=True)
class AaveMarket:
    """Addresses of the deployed Aave v3 market."""

    provider: str
    pool: str
    configurator: str
    acl_manager: str
    oracle: str
    data_provider: str
    treasury: str
    a_tokens: dict[str, str] = field(default_factory=dict)
    variable_debt_tokens: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "pool": self.pool,
            "configurator": self.configurator,
            "acl_manager": self.acl_manager,
            "oracle": self.oracle,
            "data_provider": self.data_provider,
            "treasury": self.treasury,
            "a_tokens": dict(self.a_tokens),
            "variable_debt_tokens": dict(self.variable_debt_tokens),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AaveMarket:
        return cls(**d)


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    """Where the market's own contracts go. The default deploys them anywhere; the mainnet
    replica places the provider at its canonical address (`place_provider`) and sets the
    configurator's nonce before each listing (`before_listing`), so the Pool, the configurator
    and each aToken and debt token derive the addresses they have on mainnet."""

    place_provider: Callable[[Contract], Contract] = lambda provider: provider
    before_listing: Callable[[str, str], None] = lambda configurator, symbol: None
    treasury: str | None = None


def deploy_aave(
    w3: Web3,
    deployer: str,
    tokens: dict[str, tuple[str, int]],
    feeds: dict[str, str],
    layout: Layout | None = None,
) -> AaveMarket:
    """Deploy and configure Aave v3 for `tokens` (symbol -> (address, decimals)) priced by
    `feeds` (symbol -> Chainlink-compatible USD feed, 8 decimals); `deployer` becomes the
    market's owner, ACL admin and pool admin."""
    lay = layout or Layout()
    d = deployer
    provider = lay.place_provider(chain.deploy(w3, d, "PoolAddressesProvider", MARKET_ID, d))
    chain.transact(provider.functions.setACLAdmin(d), d)
    acl = chain.deploy(w3, d, "ACLManager", provider.address)
    chain.transact(provider.functions.setACLManager(acl.address), d)
    chain.transact(acl.functions.addPoolAdmin(d), d)
    pool = _deploy_pool(w3, d, provider)
    configurator = _deploy_configurator(w3, d, provider)
    symbols = [s for s in LISTING if s in tokens]
    oracle = chain.deploy(
        w3,
        d,
        "AaveOracle",
        provider.address,
        [tokens[s][0] for s in symbols],
        [feeds[s] for s in symbols],
        "0x" + "00" * 20,  # no fallback oracle: a bad feed makes the pool revert, as on mainnet
        "0x" + "00" * 20,  # base currency USD ...
        10**8,  # ... with 8 decimals, as Aave v3 Ethereum
    )
    chain.transact(provider.functions.setPriceOracle(oracle.address), d)
    data = chain.deploy(w3, d, "AaveProtocolDataProvider", provider.address)
    chain.transact(provider.functions.setPoolDataProvider(data.address), d)
    treasury = lay.treasury or d
    impls = [str(chain.deploy(w3, d, n, pool.address).address) for n in TOKEN_IMPLS]
    for s in symbols:
        lay.before_listing(configurator.address, s)
        _list(w3, d, provider.address, configurator, impls, tokens[s], s, treasury)
    a_tokens, debt_tokens = reserve_tokens(data, {s: tokens[s][0] for s in symbols})
    return AaveMarket(
        provider=provider.address,
        pool=pool.address,
        configurator=configurator.address,
        acl_manager=acl.address,
        oracle=oracle.address,
        data_provider=data.address,
        treasury=treasury,
        a_tokens=a_tokens,
        variable_debt_tokens=debt_tokens,
    )


TOKEN_IMPLS = ("AToken", "StableDebtToken", "VariableDebtToken")


def _deploy_pool(w3: Web3, d: str, provider: Contract) -> Contract:
    """The Pool implementation with its libraries linked, behind the provider's proxy."""
    libraries: dict[str, str] = {}
    for name in POOL_LIBRARIES:
        libraries[name] = chain.deploy(w3, d, linked(load(name), libraries)).address
    impl = chain.deploy(w3, d, linked(load("Pool"), libraries), provider.address)
    chain.transact(provider.functions.setPoolImpl(impl.address), d)
    return chain.at(w3, "Pool", provider.functions.getPool().call())


def _deploy_configurator(w3: Web3, d: str, provider: Contract) -> Contract:
    logic = chain.deploy(w3, d, "ConfiguratorLogic").address
    impl = chain.deploy(w3, d, linked(load("PoolConfigurator"), {"ConfiguratorLogic": logic}))
    chain.transact(provider.functions.setPoolConfiguratorImpl(impl.address), d)
    return chain.at(w3, "PoolConfigurator", provider.functions.getPoolConfigurator().call())


def _list(
    w3: Web3,
    d: str,
    provider: str,
    configurator: Contract,
    impls: list[str],
    token: tuple[str, int],
    symbol: str,
    treasury: str,
) -> None:
    """initReserve with its own rate strategy, then the reserve's risk parameters."""
    p = RESERVES[symbol]
    r = p.rates
    strategy = chain.deploy(
        w3,
        d,
        "DefaultReserveInterestRateStrategy",
        provider,
        r.optimal_usage,
        r.base_variable,
        r.variable_slope1,
        r.variable_slope2,
        r.stable_slope1,
        r.stable_slope2,
        r.base_stable_offset,
        r.stable_excess_offset,
        r.optimal_stable_to_total_debt,
    )
    address, decimals = token
    init = (
        *impls,
        decimals,
        strategy.address,
        address,
        treasury,
        "0x" + "00" * 20,  # no incentives controller
        f"Aave Ethereum {symbol}",
        f"aEth{symbol}",
        f"Aave Ethereum Variable Debt {symbol}",
        f"variableDebtEth{symbol}",
        f"Aave Ethereum Stable Debt {symbol}",
        f"stableDebtEth{symbol}",
        b"",
    )
    fns = configurator.functions
    calls = (
        fns.initReserves([init]),
        fns.configureReserveAsCollateral(
            address, p.ltv_bps, p.liquidation_threshold_bps, p.liquidation_bonus_bps
        ),
        fns.setReserveBorrowing(address, True),
        fns.setReserveFlashLoaning(address, True),
        fns.setReserveFactor(address, p.reserve_factor_bps),
        fns.setLiquidationProtocolFee(address, p.liquidation_protocol_fee_bps),
        fns.setSupplyCap(address, p.supply_cap),
        fns.setBorrowCap(address, p.borrow_cap),
    )
    for call in calls:
        chain.transact(call, d)


def reserve_tokens(
    data: Contract, tokens: dict[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """(aToken, variable debt token) of each symbol -> underlying, from the data provider."""
    a_tokens, debt = {}, {}
    for symbol, address in tokens.items():
        a_token, _stable, variable = data.functions.getReserveTokensAddresses(address).call()
        a_tokens[symbol], debt[symbol] = str(a_token), str(variable)
    return a_tokens, debt


def supply_liquidity(w3: Web3, market: AaveMarket, who: str, token: str, amount: int) -> None:
    """Supply `amount` (raw) of `token` to the pool from `who`, so others can borrow it."""
    erc20 = chain.at(w3, "MockERC20", token)
    chain.transact(erc20.functions.approve(market.pool, amount), who)
    pool = chain.at(w3, "Pool", market.pool)
    chain.transact(pool.functions.supply(token, amount, who, 0), who)
