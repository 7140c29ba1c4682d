"""Move the local market realistically: swaps in the pools plus matching oracle updates.

An external price move is modelled as arbitrage: every pool that holds the asset is swapped to
the new price (with a price limit, so the swap stops exactly there) and the asset's feed
publishes the new answer in the same step.
"""

from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3

from keeper.localnet import chain
from keeper.localnet.deploy import LocalMarket, Token, sqrt_price_x96
from keeper.units import BPS

MAX_UINT = 2**256 - 1


@dataclass(frozen=True, slots=True)
class MoveResult:
    symbol: str
    old_price_e8: int
    new_price_e8: int
    swaps: int


def feed_answer(w3: Web3, market: LocalMarket, symbol: str) -> tuple[int, int]:
    """(answer, updatedAt) of the asset's feed."""
    _, answer, _, updated, _ = (
        chain.at(w3, "MockAggregator", market.feeds[symbol]).functions.latestRoundData().call()
    )
    return int(answer), int(updated)


def set_feed(
    w3: Web3, market: LocalMarket, symbol: str, answer: int, updated_at: int | None = None
) -> None:
    """Publish a feed answer (8 decimals); with `updated_at`, backdate it (stale feed tests)."""
    feed = chain.at(w3, "MockAggregator", market.feeds[symbol])
    fn = (
        feed.functions.setAnswer(answer)
        if updated_at is None
        else feed.functions.setRoundData(answer, updated_at)
    )
    chain.transact(fn, market.deployer)


def current_prices_e8(w3: Web3, market: LocalMarket) -> dict[str, int]:
    return {s: feed_answer(w3, market, s)[0] for s in market.feeds}


def move_market(
    w3: Web3, market: LocalMarket, symbol: str, move_bps: int, update_feed: bool = True
) -> MoveResult:
    """Move `symbol` by `move_bps` (e.g. -1000 = -10%) in every pool, then in its feed."""
    old = feed_answer(w3, market, symbol)[0]
    return move_market_to(w3, market, symbol, old * (BPS + move_bps) // BPS, update_feed)


def move_market_to(
    w3: Web3, market: LocalMarket, symbol: str, new_e8: int, update_feed: bool = True
) -> MoveResult:
    """Move `symbol` to the USD price `new_e8` (8 decimals) in every pool, then in its feed."""
    prices = current_prices_e8(w3, market)
    old, new = prices[symbol], new_e8
    prices[symbol] = new
    swaps = 0
    for key, pool in market.pools.items():
        base, quote, _fee = key.split("/")
        if symbol in (base, quote):
            swaps += swap_pool_to_price(
                w3, market, pool, market.tokens[base], market.tokens[quote], prices
            )
    if update_feed:
        set_feed(w3, market, symbol, new)
    return MoveResult(symbol, old, new, swaps)


def keep_observations(w3: Web3, market: LocalMarket, count: int) -> None:
    """Let every local pool keep `count` price observations from its next swap on (they keep
    one after deployment), so a TWAP over a window can be read, as on a mainnet pool."""
    for address in market.pools.values():
        pool = chain.at(w3, "UniswapV3Pool", address)
        chain.transact(pool.functions.increaseObservationCardinalityNext(count), market.deployer)


def swap_pool_to_price(
    w3: Web3, market: LocalMarket, pool_address: str, a: Token, b: Token, prices_e8: dict[str, int]
) -> int:
    """Swap in one pool until its price matches `prices_e8`; returns 1 if a swap was made."""
    t0, t1 = sorted((a, b), key=lambda t: int(t.address, 16))
    pool = chain.at(w3, "UniswapV3Pool", pool_address)
    current = int(pool.functions.slot0().call()[0])
    target = sqrt_price_x96(t0, t1, prices_e8)
    if target == current:
        return 0
    token_in = token_in_for(t0, t1, current, target)
    _approve(w3, market, token_in, market.router)
    amount_in = _balance(w3, token_in, market.deployer) // 4
    fee = int(pool.functions.fee().call())
    params = arbitrage_params(t0, t1, fee, current, target, market.deployer, amount_in)
    router = chain.at(w3, "SwapRouter", market.router)
    chain.transact(router.functions.exactInputSingle(params), market.deployer)
    return 1


def token_in_for(t0: Token, t1: Token, current: int, target: int) -> Token:
    """The token an arbitrageur sells to move a pool's sqrtPriceX96 from `current` to `target`:
    token1 raises the price (token1 per token0), token0 lowers it."""
    return t1 if target > current else t0


def arbitrage_params(t0: Token, t1: Token, fee: int, current: int, target: int, recipient: str,
                     amount_in: int) -> tuple[object, ...]:
    """SwapRouter.exactInputSingle params that swap up to `amount_in` and stop exactly at the
    `target` sqrtPriceX96 (the price limit)."""
    token_in = token_in_for(t0, t1, current, target)
    token_out = t0 if token_in is t1 else t1
    return (token_in.address, token_out.address, fee, recipient, 2**63, amount_in, 0, target)


def _balance(w3: Web3, token: Token, owner: str) -> int:
    return int(chain.at(w3, "MockERC20", token.address).functions.balanceOf(owner).call())


def _approve(w3: Web3, market: LocalMarket, token: Token, spender: str) -> None:
    erc20 = chain.at(w3, "MockERC20", token.address)
    if erc20.functions.allowance(market.deployer, spender).call() < MAX_UINT // 2:
        chain.transact(erc20.functions.approve(spender, MAX_UINT), market.deployer)
