"""Aave v3's account math written out in Python (v3.0.2: GenericLogic, ReserveLogic, MathUtils,
WadRayMath, PercentageMath, with their rounding), and helpers to open positions on the local
market's Aave pool. The tests hold the pool to these numbers to the last unit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import Web3

from keeper.localnet import chain
from keeper.localnet.deploy import LocalMarket
from keeper.localnet.node import DevNode

WAD, RAY = 10**18, 10**27
PCT = 10_000
SECONDS_PER_YEAR = 365 * 24 * 3600
MAX_UINT = 2**256 - 1
VARIABLE = 2


def ray_mul(a: int, b: int) -> int:
    return (a * b + RAY // 2) // RAY


def wad_div(a: int, b: int) -> int:
    return (a * WAD + b // 2) // b


def percent_mul(value: int, pct: int) -> int:
    return (value * pct + PCT // 2) // PCT


def percent_div(value: int, pct: int) -> int:
    return (value * PCT + pct // 2) // pct


def linear_interest(rate: int, last_ts: int, now: int) -> int:
    return RAY + rate * (now - last_ts) // SECONDS_PER_YEAR


def compounded_interest(rate: int, last_ts: int, now: int) -> int:
    """MathUtils.calculateCompoundedInterest: the binomial expansion to the third term."""
    exp = now - last_ts
    if exp == 0:
        return RAY
    exp1, exp2 = exp - 1, max(exp - 2, 0)
    p2 = ray_mul(rate, rate) // (SECONDS_PER_YEAR * SECONDS_PER_YEAR)
    p3 = ray_mul(p2, rate) // SECONDS_PER_YEAR
    return RAY + rate * exp // SECONDS_PER_YEAR + exp * exp1 * p2 // 2 + exp * exp1 * exp2 * p3 // 6


@dataclass(frozen=True)
class Aave:
    """Bound contracts of the local market's Aave v3."""

    w3: Web3
    market: LocalMarket

    @property
    def pool(self) -> Any:
        return chain.at(self.w3, "Pool", self.market.lending_pool)

    def a_token(self, symbol: str) -> Any:
        assert self.market.aave is not None
        return chain.at(self.w3, "AToken", self.market.aave.a_tokens[symbol])

    def debt_token(self, symbol: str) -> Any:
        assert self.market.aave is not None
        return chain.at(self.w3, "VariableDebtToken", self.market.aave.variable_debt_tokens[symbol])

    def reserve(self, symbol: str, block: int | str = "latest") -> Any:
        return self.pool.functions.getReserveData(self.market.tokens[symbol].address).call(
            block_identifier=block
        )

    def account(self, user: str, block: int | str = "latest") -> tuple[int, ...]:
        return tuple(self.pool.functions.getUserAccountData(user).call(block_identifier=block))

    def price_e8(self, symbol: str, block: int | str = "latest") -> int:
        feed = chain.at(self.w3, "MockAggregator", self.market.feeds[symbol])
        return int(feed.functions.latestAnswer().call(block_identifier=block))

    # -------------------------------------------------------------- expected values

    def expected_account(self, user: str, block: int) -> tuple[int, ...]:
        """getUserAccountData as GenericLogic computes it (e-mode off), at `block`."""
        from keeper.localnet.aave import RESERVES

        now = self.w3.eth.get_block(block)["timestamp"]
        coll = debt = ltv_sum = lt_sum = 0
        for symbol, p in RESERVES.items():
            r = self.reserve(symbol, block)
            unit = 10 ** self.market.tokens[symbol].decimals
            price = self.price_e8(symbol, block)
            scaled = self.a_token(symbol).functions.scaledBalanceOf(user).call(
                block_identifier=block
            )
            income = r[1] if r[6] == now else ray_mul(linear_interest(r[2], r[6], now), r[1])
            value = ray_mul(scaled, income) * price // unit
            coll, ltv_sum, lt_sum = coll + value, ltv_sum + value * p.ltv_bps, lt_sum + value * (
                p.liquidation_threshold_bps
            )
            owed = self.debt_token(symbol).functions.scaledBalanceOf(user).call(
                block_identifier=block
            )
            index = r[3] if r[6] == now else ray_mul(compounded_interest(r[4], r[6], now), r[3])
            debt += ray_mul(owed, index) * price // unit if owed else 0
        ltv, lt = (ltv_sum // coll, lt_sum // coll) if coll else (0, 0)
        available = max(percent_mul(coll, ltv) - debt, 0)
        hf = wad_div(percent_mul(coll, lt), debt) if debt else MAX_UINT
        return coll, debt, available, lt, ltv, hf

    # -------------------------------------------------------------- positions

    def supply(self, user: str, symbol: str, amount: int) -> None:
        token = self.market.tokens[symbol].address
        erc20 = chain.at(self.w3, "MockERC20", token)
        if symbol == "WETH":
            DevNode(self.w3).set_balance(user, amount + 10**21)  # and 1,000 ETH for gas
            chain.transact(chain.at(self.w3, "WETH9", token).functions.deposit(), user, amount)
        else:
            chain.transact(erc20.functions.mint(user, amount), user)
        chain.transact(erc20.functions.approve(self.pool.address, amount), user)
        chain.transact(self.pool.functions.supply(token, amount, user, 0), user)

    def borrow(self, user: str, symbol: str, amount: int) -> None:
        token = self.market.tokens[symbol].address
        chain.transact(self.pool.functions.borrow(token, amount, VARIABLE, 0, user), user)


def warp(w3: Web3, seconds: int) -> None:
    w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
