"""The local market behaves like mainnet: real Uniswap v3, Chainlink feeds, Multicall3, lending."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import decode
from web3 import HTTPProvider, Web3

from keeper.localnet import chain
from keeper.localnet.deploy import MULTICALL3_ADDRESS, LocalMarket
from keeper.localnet.market import current_prices_e8, feed_answer, move_market, set_feed

pytestmark = pytest.mark.chain


def erc20(w3: Web3, address: str) -> Any:
    return chain.at(w3, "MockERC20", address)


def test_tokens_have_real_decimals(w3: Web3, market: LocalMarket) -> None:
    got = {s: erc20(w3, t.address).functions.decimals().call() for s, t in market.tokens.items()}
    assert got == {"USDC": 6, "WBTC": 8, "WETH": 18, "LINK": 18}


def test_weth_wraps_and_unwraps(w3: Web3, market: LocalMarket) -> None:
    user = w3.eth.accounts[5]
    weth = chain.at(w3, "WETH9", market.tokens["WETH"].address)
    chain.transact(weth.functions.deposit(), user, value=3 * 10**18)
    assert weth.functions.balanceOf(user).call() == 3 * 10**18
    before = w3.eth.get_balance(user)
    receipt = chain.transact(weth.functions.withdraw(10**18), user)
    gas_paid = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert w3.eth.get_balance(user) == before + 10**18 - gas_paid
    assert weth.functions.balanceOf(user).call() == 2 * 10**18


def test_feeds_answer_with_8_decimals_and_keep_history(w3: Web3, market: LocalMarket) -> None:
    feed = chain.at(w3, "MockAggregator", market.feeds["WETH"])
    assert feed.functions.decimals().call() == 8
    first_round, first_answer, _, _, _ = feed.functions.latestRoundData().call()
    assert first_answer == market.prices_e8["WETH"]
    set_feed(w3, market, "WETH", 2_000 * 10**8)
    rid, answer, _, updated, answered = feed.functions.latestRoundData().call()
    assert (rid, answer, answered) == (first_round + 1, 2_000 * 10**8, first_round + 1)
    assert updated == w3.eth.get_block("latest")["timestamp"]
    assert feed.functions.getRoundData(first_round).call()[1] == first_answer


def test_feed_can_be_backdated_to_go_stale(w3: Web3, market: LocalMarket) -> None:
    now = w3.eth.get_block("latest")["timestamp"]
    set_feed(w3, market, "WBTC", 40_000 * 10**8, updated_at=now - 2 * 3600)
    assert feed_answer(w3, market, "WBTC") == (40_000 * 10**8, now - 2 * 3600)


def _quote(w3: Web3, market: LocalMarket, t_in: str, t_out: str, amount: int, fee: int) -> int:
    quoter = chain.at(w3, "QuoterV2", market.quoter)
    params = (market.tokens[t_in].address, market.tokens[t_out].address, amount, fee, 0)
    return int(quoter.functions.quoteExactInputSingle(params).call()[0])


def test_swap_through_real_router_moves_price_and_matches_quoter(
    w3: Web3, market: LocalMarket
) -> None:
    trader = w3.eth.accounts[6]
    weth = chain.at(w3, "WETH9", market.tokens["WETH"].address)
    usdc = erc20(w3, market.tokens["USDC"].address)
    pool = chain.at(w3, "UniswapV3Pool", market.pools["WETH/USDC/500"])
    chain.transact(weth.functions.deposit(), trader, value=500 * 10**18)
    chain.transact(weth.functions.approve(market.router, 500 * 10**18), trader)
    price_before = pool.functions.slot0().call()[0]
    quoted = _quote(w3, market, "WETH", "USDC", 500 * 10**18, 500)
    router = chain.at(w3, "SwapRouter", market.router)
    params = (weth.address, usdc.address, 500, trader, 2**63, 500 * 10**18, 0, 0)
    chain.transact(router.functions.exactInputSingle(params), trader)
    received = usdc.functions.balanceOf(trader).call()
    assert received == quoted
    assert pool.functions.slot0().call()[0] != price_before
    # 500 WETH sold at ~$2,282 minus the 0.05% fee and some impact: a realistic fill.
    fair = 500 * market.prices_e8["WETH"] // 100  # USDC raw units (6 decimals)
    assert fair * 9_980 // 10_000 < received < fair * 9_995 // 10_000


def test_pools_start_at_the_oracle_price(w3: Web3, market: LocalMarket) -> None:
    out = _quote(w3, market, "WBTC", "USDC", 10**6, 3000)  # 0.01 WBTC
    fair = market.prices_e8["WBTC"] // 10**4  # 0.01 BTC in USDC raw
    assert fair * 9_960 // 10_000 < out <= fair * 9_970 // 10_000  # 0.3% fee, tiny impact


def test_move_market_moves_pools_and_feed_together(w3: Web3, market: LocalMarket) -> None:
    result = move_market(w3, market, "WETH", -1_000)
    assert result.new_price_e8 == market.prices_e8["WETH"] * 9 // 10
    assert current_prices_e8(w3, market)["WETH"] == result.new_price_e8
    out = _quote(w3, market, "WETH", "USDC", 10**18, 500)
    fair = result.new_price_e8 // 100
    assert fair * 9_990 // 10_000 < out < fair * 9_996 // 10_000


class CountingProvider(HTTPProvider):
    """An HTTP provider that counts JSON-RPC requests by method."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.counts: dict[str, int] = {}

    def make_request(self, method: Any, params: Any) -> Any:
        self.counts[method] = self.counts.get(method, 0) + 1
        return super().make_request(method, params)


def test_multicall3_aggregates_reads_in_one_eth_call(anvil_url: str, market: LocalMarket) -> None:
    provider = CountingProvider(anvil_url)
    w3 = Web3(provider, middleware=[])  # no validation middleware: it adds eth_chainId calls
    mc = chain.at(w3, "Multicall3", MULTICALL3_ADDRESS)
    feeds = [chain.at(w3, "MockAggregator", market.feeds[s]) for s in ("WETH", "WBTC", "LINK")]
    calls = [(f.address, False, f.encode_abi("latestRoundData", [])) for f in feeds]
    calls.append((mc.address, False, mc.encode_abi("getCurrentBlockTimestamp", [])))
    provider.counts.clear()
    results = mc.functions.aggregate3(calls).call(block_identifier="latest")
    assert provider.counts == {"eth_call": 1}
    answers = [
        decode(["uint80", "int256", "uint256", "uint256", "uint80"], r[1])[1] for r in results[:3]
    ]
    assert answers == [market.prices_e8[s] for s in ("WETH", "WBTC", "LINK")]
    assert all(ok for ok, _ in results)
