"""The local market moved to an hour's prices in one block and a handful of round trips: one
JSON-RPC batch reads every pool's price, one sends the arbitrage swaps (each pool straight to the
hour's price, with that price as the swap's limit) and the feed rounds with mining paused, and one
`evm_mine` puts them all in the hour's first block.

The same swaps as `keeper.localnet.market.move_market_to`, which moves one asset at a time with a
receipt per transaction; a replay moves every asset every hour, so it batches them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from eth_abi.abi import decode
from web3 import Web3
from web3.providers import JSONBaseProvider
from web3.types import RPCEndpoint

from keeper.errors import ChainError
from keeper.localnet import chain
from keeper.localnet.deploy import LocalMarket, Token, sqrt_price_x96
from keeper.localnet.market import MAX_UINT, arbitrage_params, token_in_for

TX_GAS = 1_000_000  # a swap that crosses a few ticks, or a feed round: well under it
MAX_FEE_WEI = 10**13  # 10,000 gwei: above any base fee a replay sets (the deployer is rich)


@dataclass(frozen=True, slots=True)
class _Pool:
    key: str
    address: str
    t0: Token
    t1: Token
    fee: int


class Mover:
    """Moves every pool and feed of a local market to given prices, as arbitrageurs and oracles
    would, from the market's deployer (an unlocked anvil account)."""

    def __init__(self, w3: Web3, market: LocalMarket) -> None:
        self.w3, self.market = w3, market
        self.pools = [self._pool(k, a) for k, a in market.pools.items()]
        self.router = chain.at(w3, "SwapRouter", market.router)
        self.slot0 = chain.at(w3, "UniswapV3Pool", self.pools[0].address).encode_abi("slot0")
        self.budget: dict[str, int] = {}
        for t in market.tokens.values():  # allow the router once; swap up to 1/8 of each stock
            erc20 = chain.at(w3, "MockERC20", t.address)
            chain.transact(erc20.functions.approve(market.router, MAX_UINT), market.deployer)
            self.budget[t.symbol] = int(erc20.functions.balanceOf(market.deployer).call()) // 8

    def _pool(self, key: str, address: str) -> _Pool:
        base, quote, fee = key.split("/")
        a, b = self.market.tokens[base], self.market.tokens[quote]
        t0, t1 = sorted((a, b), key=lambda t: int(t.address, 16))
        return _Pool(key=key, address=address, t0=t0, t1=t1, fee=int(fee))

    def prices_now(self) -> list[int]:
        """Every pool's sqrtPriceX96, in one batch."""
        reqs = [(RPCEndpoint("eth_call"), [{"to": p.address, "data": self.slot0}, "latest"])
                for p in self.pools]
        return [int(decode(["uint160"], bytes.fromhex(r[2:66]))[0])
                for r in self._batch(reqs)]

    def move(self, prices_e8: dict[str, int], at_ts: int | None = None) -> int:
        """Swap every pool to `prices_e8` and publish every feed, all in one block (at `at_ts`
        when given); then check that every pool got there. Returns the swaps made."""
        targets = [sqrt_price_x96(p.t0, p.t1, prices_e8) for p in self.pools]
        calls = [(self.market.router, self.router.encode_abi("exactInputSingle", [params]))
                 for params in self._swaps(targets)]
        calls += [(self.market.feeds[s], self._set_answer(s, answer))
                  for s, answer in prices_e8.items() if s in self.market.feeds]
        nonce = int(self.w3.eth.get_transaction_count(self.market.deployer))  # type: ignore[arg-type]
        self._call("evm_setAutomine", [False])
        try:
            self._batch([self._tx(to, data, nonce + i) for i, (to, data) in enumerate(calls)])
            if at_ts is not None:
                self._call("evm_setNextBlockTimestamp", [at_ts])
            self._call("evm_mine", [])
        finally:
            self._call("evm_setAutomine", [True])
        missed = [p.key for p, now, want in zip(self.pools, self.prices_now(), targets,
                                                 strict=True) if now != want]
        if missed:
            raise ChainError(f"the local market did not reach the hour's prices in {missed}")
        return len(calls) - len(prices_e8)

    def _swaps(self, targets: list[int]) -> list[tuple[object, ...]]:
        out = []
        for p, current, target in zip(self.pools, self.prices_now(), targets, strict=True):
            if target != current:
                token_in = token_in_for(p.t0, p.t1, current, target)
                out.append(arbitrage_params(p.t0, p.t1, p.fee, current, target,
                                            self.market.deployer, self.budget[token_in.symbol]))
        return out

    def _set_answer(self, symbol: str, answer: int) -> str:
        feed = chain.at(self.w3, "MockAggregator", self.market.feeds[symbol])
        return str(feed.encode_abi("setAnswer", [answer]))

    def _tx(self, to: str, data: str, nonce: int) -> tuple[RPCEndpoint, list[Any]]:
        tx = {"from": self.market.deployer, "to": to, "data": data, "gas": hex(TX_GAS),
              "nonce": hex(nonce), "maxFeePerGas": hex(MAX_FEE_WEI), "maxPriorityFeePerGas": "0x0"}
        return RPCEndpoint("eth_sendTransaction"), [tx]

    def _call(self, method: str, params: list[Any]) -> Any:
        return self._batch([(RPCEndpoint(method), params)])[0]

    def _batch(self, reqs: list[tuple[RPCEndpoint, list[Any]]]) -> list[Any]:
        """One JSON-RPC batch; any error answer (a reverted swap, a refused clock) raises."""
        got = cast(JSONBaseProvider, self.w3.provider).make_batch_request(reqs)
        if not isinstance(got, list) or len(got) != len(reqs):
            raise ChainError(f"the local node answered a batch with {got!r:.200}")
        bad = [(m, r["error"]) for (m, _), r in zip(reqs, got, strict=True) if r.get("error")]
        if bad:
            raise ChainError(f"moving the local market failed: {bad[0][0]}: {bad[0][1]}")
        return [r.get("result") for r in got]
