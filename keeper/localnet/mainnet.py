"""The mainnet replica: the local market with its contracts at their canonical Ethereum mainnet
addresses, so a config written for mainnet (networks.yaml's `mainnet-fork`) runs unchanged
against a local chain. See docs/mainnet-fork.md.

How each contract gets there:
- deployed from its mainnet deployer at its mainnet nonce (the deployer impersonated, its nonce
  set): the Uniswap v3 factory, SwapRouter and NonfungiblePositionManager. Their constructors
  run as on mainnet, and every pool the factory creates lands at its mainnet address (CREATE2
  from the factory, the tokens and the pool's init code hash);
- deployed anywhere, then its runtime code and constructor storage copied to the address (the
  node's setCode/setStorageAt): the tokens, the Chainlink-compatible feeds, QuoterV2 and the
  Aave PoolAddressesProvider. The provider then creates the Pool and PoolConfigurator proxies at
  their mainnet addresses (its nonces 1 and 2), and the configurator each aToken and debt token
  at its mainnet address (its nonce set before each listing);
- Multicall3's runtime code at its address (it has no constructor state).

`mainnet_market` reads the same addresses from a chain that already has them (an anvil fork of
mainnet), so a vault is deployed and funded the same way on the replica and on a real fork.
"""

from __future__ import annotations

from typing import Any

from web3 import Web3
from web3.contract import Contract

from keeper.errors import ToolchainError
from keeper.localnet import aave, chain
from keeper.localnet.aave import AaveMarket
from keeper.localnet.deploy import (
    DEPLOYER_ETH,
    MULTICALL3_ADDRESS,
    POOLS,
    TOKENS,
    LocalMarket,
    Parts,
    Token,
    deploy_market,
)

# Ethereum mainnet. Tokens: the Aave v3 Ethereum reserve list (docs/lending.md's snapshot).
TOKEN_ADDRESSES = {
    "USDC": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
    "WBTC": "0x2260FAC5E5542a773Aa44fBCfeDf7C193bc2C599",
    "WETH": "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
    "LINK": "0x514910771AF9Ca656af840dff83E8264EcF986CA",
}
# Chainlink USD feed proxies (ETH/USD, BTC/USD, LINK/USD, USDC/USD); 8 decimals.
FEED_ADDRESSES = {
    "WETH": "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419",
    "WBTC": "0xF4030086522a5bEEa4988F8cA5B36dbC97BeE88c",
    "LINK": "0x2c1d072e956AFFC0D435Cb7AC38EF18d24d9127c",
    "USDC": "0x8fFfFfd4AfB6115b954Bd326cbe7B4BA576818f6",
}
# Uniswap v3: the deployer's nonce for each of its contracts (CREATE address = f(deployer, nonce)).
UNISWAP_DEPLOYER = "0x6C9FC64A53c1b71FB3f9Af64d1ae3A4931A5f4E9"
UNISWAP_NONCES = {"factory": 0, "router": 4, "position_manager": 8}
UNISWAP_FACTORY = "0x1F98431c8aD98523631AE4a59f267346ea31F984"
SWAP_ROUTER = "0xE592427A0AEce92De3Edee1F18E0157C05861564"  # not SwapRouter02 (0x68b3...Fc45)
POSITION_MANAGER = "0xC36442b4a4522E871399CD717aBDD847Ab11FE88"
POSITION_DESCRIPTOR = "0xEe6A57eC80ea46401049E92587E52f5Ec1c24785"  # (its nonce 7; no code here)
QUOTER_V2 = "0x61fFE014bA17989E743c5F6cB21bF9697530B21e"
FEE_TIERS = {500: 10, 3000: 60, 10000: 200, 100: 1}  # 100: enabled by governance in Nov 2021
# Aave v3 Ethereum: the provider creates the Pool proxy at its nonce 1 and the configurator at 2.
AAVE_PROVIDER = "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e"
AAVE_POOL = "0x87870Bca3F3fD6335C3F4ce8392D69350B4fA4E2"
AAVE_CONFIGURATOR = "0x64b761D848206f447Fe2dd461b0c635Ec39EbB27"
AAVE_COLLECTOR = "0x464C71f6c2F760DdA6093dCB91C24c39e5d6e18c"  # the market's treasury
# The configurator's nonce when it created each reserve's aToken (stable and variable debt
# tokens follow at +1 and +2): the mainnet listing order WETH, wstETH, WBTC, USDC, DAI, LINK.
AAVE_LISTING_NONCES = {"WETH": 1, "WBTC": 7, "USDC": 10, "LINK": 16}
CONSTRUCTOR_SLOTS = tuple(range(8))  # owner, name, symbol, description... of the mocks here


class MainnetParts(Parts):
    """Puts the local market's pieces at their canonical mainnet addresses."""

    def token(self, symbol: str, name: str, decimals: int) -> Token:
        deployed = super().token(symbol, name, decimals)
        contract = chain.at(self.w3, "WETH9" if symbol == "WETH" else "MockERC20", deployed.address)
        placed = self.node.relocate(contract, TOKEN_ADDRESSES[symbol], CONSTRUCTOR_SLOTS)
        return Token(symbol, placed.address, decimals)

    def feed(self, symbol: str, answer_e8: int) -> str:
        deployed = chain.at(self.w3, "MockAggregator", super().feed(symbol, answer_e8))
        placed = self.node.relocate(deployed, FEED_ADDRESSES[symbol], CONSTRUCTOR_SLOTS)
        # the round history is a mapping, not copied: publish the answer as the next round
        chain.transact(placed.functions.setAnswer(answer_e8), self.deployer)
        return str(placed.address)

    def uniswap(self, weth: str) -> tuple[Contract, Contract, Contract, Contract]:
        w3, node, d = self.w3, self.node, UNISWAP_DEPLOYER
        node.impersonate(d)
        node.set_balance(d, DEPLOYER_ETH // 10**6)
        try:
            factory = self._at_nonce("factory", "UniswapV3Factory")
            for fee, spacing in FEE_TIERS.items():
                if factory.functions.feeAmountTickSpacing(fee).call() == 0:
                    chain.transact(factory.functions.enableFeeAmount(fee, spacing), d)
            router = self._at_nonce("router", "SwapRouter", factory.address, weth)
            npm_args = (factory.address, weth, POSITION_DESCRIPTOR)
            npm = self._at_nonce("position_manager", "NonfungiblePositionManager", *npm_args)
        finally:
            node.stop_impersonating(d)
        quoter = chain.deploy(w3, self.deployer, "QuoterV2", factory.address, weth)
        return factory, router, node.relocate(quoter, QUOTER_V2), npm

    def _at_nonce(self, key: str, name: str, *args: Any) -> Contract:
        self.node.set_nonce(UNISWAP_DEPLOYER, UNISWAP_NONCES[key])
        return chain.deploy(self.w3, UNISWAP_DEPLOYER, name, *args)

    def aave_layout(self) -> aave.Layout:
        def place_provider(provider: Contract) -> Contract:
            placed = self.node.relocate(provider, AAVE_PROVIDER, CONSTRUCTOR_SLOTS)
            self.node.set_nonce(AAVE_PROVIDER, 1)  # a contract's first CREATE uses nonce 1
            return placed

        def before_listing(configurator: str, symbol: str) -> None:
            self.node.set_nonce(configurator, AAVE_LISTING_NONCES[symbol])

        return aave.Layout(
            place_provider=place_provider, before_listing=before_listing, treasury=AAVE_COLLECTOR
        )


def deploy_replica(
    w3: Web3, deployer: str, prices_e8: dict[str, int] | None = None
) -> LocalMarket:
    """The local market at the canonical mainnet addresses; checks each one landed there."""
    market = deploy_market(w3, deployer, prices_e8, parts=MainnetParts(w3, deployer))
    check_addresses(market)
    return market


def market_for(w3: Web3, deployer: str, prices_e8: dict[str, int] | None = None) -> LocalMarket:
    """The market at the canonical addresses: read from a fork of mainnet, or the replica
    placed on a fresh chain (with `prices_e8`, else the local market's default prices)."""
    if has_mainnet_contracts(w3):
        return mainnet_market(w3, deployer)
    return deploy_replica(w3, deployer, prices_e8)


def check_addresses(market: LocalMarket) -> None:
    """Raise ToolchainError unless every contract the mainnet config names is where it is on
    mainnet (a node that ignored a nonce or a setCode would leave it elsewhere)."""
    got = {
        "multicall3": market.multicall3,
        "router": market.router,
        "quoter": market.quoter,
        "factory": market.factory,
        "lending_pool": market.lending_pool,
        **{f"token {s}": t.address for s, t in market.tokens.items()},
        **{f"feed {s}": a for s, a in market.feeds.items()},
    }
    want = {
        "multicall3": MULTICALL3_ADDRESS,
        "router": SWAP_ROUTER,
        "quoter": QUOTER_V2,
        "factory": UNISWAP_FACTORY,
        "lending_pool": AAVE_POOL,
        **{f"token {s}": a for s, a in TOKEN_ADDRESSES.items()},
        **{f"feed {s}": a for s, a in FEED_ADDRESSES.items()},
    }
    wrong = [f"{k} at {got[k]}, not {v}" for k, v in want.items() if got[k].lower() != v.lower()]
    if wrong:
        raise ToolchainError("the mainnet replica is off: " + "; ".join(wrong))


def has_mainnet_contracts(w3: Web3) -> bool:
    """True on a chain that already holds the mainnet contracts (a fork of mainnet)."""
    addresses = (TOKEN_ADDRESSES["USDC"], UNISWAP_FACTORY, AAVE_POOL)
    return all(len(w3.eth.get_code(Web3.to_checksum_address(a))) > 0 for a in addresses)


def mainnet_market(w3: Web3, deployer: str) -> LocalMarket:
    """The market as it stands at the canonical addresses of this chain (a fork of mainnet, or
    the replica): pools from the factory, prices from the feeds, Aave from its provider."""
    tokens = {s: Token(s, TOKEN_ADDRESSES[s], decimals) for s, _name, decimals in TOKENS}
    factory = chain.at(w3, "UniswapV3Factory", UNISWAP_FACTORY)
    pools = {}
    for base, quote, fee, _usd in POOLS:
        a, b = TOKEN_ADDRESSES[base], TOKEN_ADDRESSES[quote]
        pool = str(factory.functions.getPool(a, b, fee).call())
        if int(pool, 16):
            pools[f"{base}/{quote}/{fee}"] = pool
    prices = {
        s: int(chain.at(w3, "MockAggregator", f).functions.latestRoundData().call()[1])
        for s, f in FEED_ADDRESSES.items()
    }
    return LocalMarket(
        chain_id=w3.eth.chain_id,
        deployer=deployer,
        tokens=tokens,
        feeds=dict(FEED_ADDRESSES),
        factory=UNISWAP_FACTORY,
        router=SWAP_ROUTER,
        quoter=QUOTER_V2,
        position_manager=POSITION_MANAGER,
        pools=pools,
        lending_pool=AAVE_POOL,
        multicall3=Web3.to_checksum_address(MULTICALL3_ADDRESS),
        prices_e8=prices,
        aave=read_aave(w3, tokens),
    )


def read_aave(w3: Web3, tokens: dict[str, Token]) -> AaveMarket:
    """The Aave v3 market's addresses, from its PoolAddressesProvider."""
    provider = chain.at(w3, "PoolAddressesProvider", AAVE_PROVIDER).functions
    data = chain.at(w3, "AaveProtocolDataProvider", provider.getPoolDataProvider().call())
    a_tokens, debt = aave.reserve_tokens(data, {s: t.address for s, t in tokens.items()})
    return AaveMarket(
        provider=AAVE_PROVIDER,
        pool=str(provider.getPool().call()),
        configurator=str(provider.getPoolConfigurator().call()),
        acl_manager=str(provider.getACLManager().call()),
        oracle=str(provider.getPriceOracle().call()),
        data_provider=str(data.address),
        treasury=AAVE_COLLECTOR,
        a_tokens=a_tokens,
        variable_debt_tokens=debt,
    )
