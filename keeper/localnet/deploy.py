"""Deploy the local market: tokens, feeds, the real Uniswap v3, Multicall3 and Aave v3.

Prices come from the caller (a replay starts at its window's first hour), else from
DEFAULT_PRICES_E8 (the last hourly close of 2023). `Parts` puts
each piece on chain wherever the node deploys it; keeper.localnet.mainnet's parts put them at
their canonical mainnet addresses instead (the mainnet replica).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from decimal import Decimal, getcontext
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.contract import Contract

from keeper.errors import ToolchainError
from keeper.localnet import aave, chain
from keeper.localnet.aave import AaveMarket
from keeper.localnet.artifacts import load
from keeper.localnet.node import DevNode
from keeper.units import ONE_E8, Q96

getcontext().prec = 60

MULTICALL3_ADDRESS = "0xcA11bde05977b3631167028862bE2a173976CA11"
# The last hourly close of 2023 (2023-12-31 23:00 UTC, Binance), in USD with 8 decimals.
DEFAULT_PRICES_E8 = {
    "WETH": 228187 * 10**6,
    "WBTC": 4228358 * 10**6,
    "LINK": 14941 * 10**5,
    "USDC": ONE_E8,
}
TOKENS = (
    ("USDC", "USD Coin", 6),
    ("WBTC", "Wrapped BTC", 8),
    ("WETH", "Wrapped Ether", 18),
    ("LINK", "ChainLink Token", 18),
)
# (base, quote, fee_ppm, usd per side of the concentrated position). Mainnet tiers: ETH/USDC 0.05%
# and 0.3%, WBTC and LINK at 0.3%.
POOLS = (
    ("WETH", "USDC", 500, 40_000_000),
    ("WETH", "USDC", 3000, 10_000_000),
    ("WBTC", "USDC", 3000, 20_000_000),
    ("WBTC", "WETH", 3000, 20_000_000),
    ("LINK", "USDC", 3000, 5_000_000),
    ("LINK", "WETH", 3000, 5_000_000),
)
TICK_SPACING = {500: 10, 3000: 60, 10000: 200}
MAX_TICK = 887272
FULL_RANGE = -1
# USDC the deployer supplies to the Aave pool, so that vaults can borrow it
LENDING_USDC_LIQUIDITY = 200_000_000
DEPLOYER_ETH = 10**9 * 10**18


@dataclass(frozen=True, slots=True)
class Token:
    symbol: str
    address: str
    decimals: int


@dataclass(frozen=True, slots=True)
class LocalMarket:
    """Addresses of everything the local market deployed."""

    chain_id: int
    deployer: str
    tokens: dict[str, Token]
    feeds: dict[str, str]
    factory: str
    router: str
    quoter: str
    position_manager: str
    pools: dict[str, str]
    lending_pool: str
    multicall3: str
    prices_e8: dict[str, int]
    vaults: dict[str, str] = field(default_factory=dict)
    aave: AaveMarket | None = None

    def to_deployments(self) -> dict[str, Any]:
        """The deployments-file shape that networks.yaml references."""
        out: dict[str, Any] = {
            "chain_id": self.chain_id,
            "deployer": self.deployer,
            "contracts": {
                "multicall3": self.multicall3,
                "router": self.router,
                "quoter": self.quoter,
                "factory": self.factory,
                "position_manager": self.position_manager,
                "lending_pool": self.lending_pool,
            },
            "tokens": {
                s: {"address": t.address, "decimals": t.decimals} for s, t in self.tokens.items()
            },
            "feeds": dict(self.feeds),
            "pools": dict(self.pools),
            "prices_e8": dict(self.prices_e8),
            "vaults": dict(self.vaults),
        }
        if self.aave is not None:
            out["aave"] = self.aave.to_json()
        return out

    @classmethod
    def from_deployments(cls, data: dict[str, Any]) -> LocalMarket:
        c = data["contracts"]
        tokens = {s: Token(s, t["address"], t["decimals"]) for s, t in data["tokens"].items()}
        return cls(
            chain_id=data["chain_id"],
            deployer=data["deployer"],
            tokens=tokens,
            feeds=data["feeds"],
            factory=c["factory"],
            router=c["router"],
            quoter=c["quoter"],
            position_manager=c["position_manager"],
            pools=data["pools"],
            lending_pool=c["lending_pool"],
            multicall3=c["multicall3"],
            prices_e8=data.get("prices_e8", {}),
            vaults=data.get("vaults", {}),
            aave=AaveMarket.from_json(data["aave"]) if "aave" in data else None,
        )

    def with_vault(self, name: str, address: str) -> LocalMarket:
        return replace(self, vaults={**self.vaults, name: address})


class Parts:
    """Puts the market's pieces on chain wherever the node deploys them (the local market)."""

    def __init__(self, w3: Web3, deployer: str) -> None:
        self.w3 = w3
        self.deployer = deployer
        self.node = DevNode(w3)

    def token(self, symbol: str, name: str, decimals: int) -> Token:
        if symbol == "WETH":
            return Token(symbol, chain.deploy(self.w3, self.deployer, "WETH9").address, decimals)
        erc20 = chain.deploy(self.w3, self.deployer, "MockERC20", name, symbol, decimals)
        return Token(symbol, erc20.address, decimals)

    def feed(self, symbol: str, answer_e8: int) -> str:
        d = self.deployer
        feed = chain.deploy(self.w3, d, "MockAggregator", 8, f"{symbol} / USD", answer_e8)
        return str(feed.address)

    def uniswap(self, weth: str) -> tuple[Contract, Contract, Contract, Contract]:
        """(factory, SwapRouter, QuoterV2, NonfungiblePositionManager)."""
        w3, d = self.w3, self.deployer
        factory = chain.deploy(w3, d, "UniswapV3Factory")
        router = chain.deploy(w3, d, "SwapRouter", factory.address, weth)
        quoter = chain.deploy(w3, d, "QuoterV2", factory.address, weth)
        npm = chain.deploy(w3, d, "NonfungiblePositionManager", factory.address, weth, d)
        return factory, router, quoter, npm

    def aave_layout(self) -> aave.Layout:
        return aave.Layout()

    def multicall3(self) -> str:
        """Multicall3's runtime code at its canonical address (it has no constructor state)."""
        self.node.set_code(MULTICALL3_ADDRESS, load("Multicall3").runtime_bytecode)
        address = Web3.to_checksum_address(MULTICALL3_ADDRESS)
        if len(self.w3.eth.get_code(address)) == 0:
            raise ToolchainError(f"{self.node.version} did not place Multicall3's code")
        return address


def deploy_market(
    w3: Web3, deployer: str, prices_e8: dict[str, int] | None = None, parts: Parts | None = None
) -> LocalMarket:
    """Deploy the whole local market from `deployer` (an unlocked account of the dev node)."""
    prices = prices_e8 or dict(DEFAULT_PRICES_E8)
    p = parts or Parts(w3, deployer)
    p.node.set_balance(deployer, DEPLOYER_ETH)
    tokens = {s: p.token(s, name, decimals) for s, name, decimals in TOKENS}
    feeds = {s: p.feed(s, prices[s]) for s in tokens}
    factory, router, quoter, npm = p.uniswap(tokens["WETH"].address)
    _fund_deployer(w3, deployer, tokens)
    pools = {
        f"{b}/{q}/{fee}": _create_pool(
            w3, deployer, factory, npm, tokens[b], tokens[q], fee, usd, prices
        )
        for b, q, fee, usd in POOLS
    }
    lending = _deploy_lending(w3, deployer, tokens, feeds, p.aave_layout())
    return LocalMarket(
        chain_id=w3.eth.chain_id,
        deployer=deployer,
        tokens=tokens,
        feeds=feeds,
        factory=factory.address,
        router=router.address,
        quoter=quoter.address,
        position_manager=npm.address,
        pools=pools,
        lending_pool=lending.pool,
        multicall3=p.multicall3(),
        prices_e8=dict(prices),
        aave=lending,
    )


def _fund_deployer(w3: Web3, deployer: str, tokens: dict[str, Token]) -> None:
    for t in tokens.values():
        if t.symbol == "WETH":
            chain.transact(
                chain.at(w3, "WETH9", t.address).functions.deposit(),
                deployer,
                value=DEPLOYER_ETH // 2,
            )
        else:
            amount = 10**12 * 10**t.decimals
            chain.transact(
                chain.at(w3, "MockERC20", t.address).functions.mint(deployer, amount), deployer
            )


def sqrt_price_x96(token0: Token, token1: Token, prices_e8: dict[str, int]) -> int:
    """Uniswap sqrtPriceX96 for raw token1 per raw token0 at the given USD prices."""
    raw_ratio = (
        Decimal(prices_e8[token0.symbol])
        / Decimal(prices_e8[token1.symbol])
        * Decimal(10) ** (token1.decimals - token0.decimals)
    )
    return int(raw_ratio.sqrt() * Q96)


def price_to_tick(sqrt_x96: int) -> int:
    ratio = (Decimal(sqrt_x96) / Q96) ** 2
    return int((ratio.ln() / Decimal("1.0001").ln()).to_integral_value(rounding="ROUND_FLOOR"))


def _create_pool(
    w3: Web3,
    deployer: str,
    factory: Contract,
    npm: Contract,
    a: Token,
    b: Token,
    fee: int,
    usd_per_side: int,
    prices: dict[str, int],
) -> str:
    t0, t1 = sorted((a, b), key=lambda t: int(t.address, 16))
    sqrt_x96 = sqrt_price_x96(t0, t1, prices)
    chain.transact(
        npm.functions.createAndInitializePoolIfNecessary(t0.address, t1.address, fee, sqrt_x96),
        deployer,
    )
    tick = price_to_tick(sqrt_x96)
    # A concentrated position of +-10% around the price (most of the depth), a wide one of
    # +-60%, and a full-range one (as on mainnet) so no move ever leaves the pool empty.
    _mint(npm, deployer, t0, t1, fee, tick, 953, usd_per_side, prices)
    _mint(npm, deployer, t0, t1, fee, tick, 4700, usd_per_side // 4, prices)
    _mint(npm, deployer, t0, t1, fee, tick, FULL_RANGE, usd_per_side // 10, prices)
    return str(factory.functions.getPool(t0.address, t1.address, fee).call())


def _mint(
    npm: Contract,
    deployer: str,
    t0: Token,
    t1: Token,
    fee: int,
    tick: int,
    half_width_ticks: int,
    usd: int,
    prices: dict[str, int],
) -> None:
    spacing = TICK_SPACING[fee]
    if half_width_ticks == FULL_RANGE:
        lower, upper = -(MAX_TICK // spacing) * spacing, MAX_TICK // spacing * spacing
    else:
        lower = (tick - half_width_ticks) // spacing * spacing
        upper = (tick + half_width_ticks) // spacing * spacing + spacing
    amounts = [usd * ONE_E8 * 10**t.decimals // prices[t.symbol] for t in (t0, t1)]
    for t, amount in zip((t0, t1), amounts, strict=True):
        erc20 = chain.at(npm.w3, "MockERC20", t.address)
        chain.transact(erc20.functions.approve(npm.address, amount), deployer)
    params = (
        t0.address,
        t1.address,
        fee,
        lower,
        upper,
        amounts[0],
        amounts[1],
        0,
        0,
        deployer,
        2**63,
    )
    chain.transact(npm.functions.mint(params), deployer)


def _deploy_lending(
    w3: Web3,
    deployer: str,
    tokens: dict[str, Token],
    feeds: dict[str, str],
    layout: aave.Layout,
) -> AaveMarket:
    """Aave v3 with the four reserves, and USDC liquidity for vaults to borrow."""
    listed = {s: (t.address, t.decimals) for s, t in tokens.items()}
    market = aave.deploy_aave(w3, deployer, listed, feeds, layout)
    usdc = tokens["USDC"]
    aave.supply_liquidity(
        w3, market, deployer, usdc.address, LENDING_USDC_LIQUIDITY * 10**usdc.decimals
    )
    return market


def write_deployments(market: LocalMarket, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(market.to_deployments(), indent=2) + "\n")


def read_deployments(path: Path) -> LocalMarket:
    if not path.exists():
        raise ToolchainError(
            f"{path} not found. Fix: deploy first (`make demo` or `ape run deploy_local`)"
        )
    return LocalMarket.from_deployments(json.loads(path.read_text()))
