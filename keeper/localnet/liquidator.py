"""A third-party liquidator on the local market's Aave pool, and an account's value as Aave holds
it. The liquidator does what liquidation bots do on mainnet: whenever an account's health factor
is under 1 it repays as much debt as the close factor allows (Aave caps an oversized
`debtToCover`) and takes the collateral plus the liquidation bonus.

`account_value_e8` is what an account is worth with its Aave position as the pool holds it
(wallet + aTokens - debt tokens, interest and liquidations included), in the pool's base
currency: the measure of what a liquidation cost it.
"""

from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3
from web3.logs import DISCARD

from keeper.errors import ToolchainError
from keeper.localnet import chain
from keeper.localnet.aave import AaveMarket
from keeper.localnet.deploy import LocalMarket

MAX_UINT = 2**256 - 1
ONE_HF = 10**18
MAX_ROUNDS = 8  # liquidations per sweep: each one at least halves the debt


@dataclass(frozen=True, slots=True)
class Liquidation:
    """One liquidationCall, valued at the pool's oracle prices of its block (base currency)."""

    block: int
    health_factor_e18: int  # the account's, just before the call
    debt_repaid_raw: int
    # the account's collateral before minus after the call: the liquidator's share plus the
    # protocol's fee on the bonus (LiquidationCall's liquidatedCollateralAmount is the first)
    collateral_seized_raw: int
    to_liquidator_raw: int
    debt_value_e8: int
    collateral_value_e8: int

    @property
    def loss_e8(self) -> int:
        """What the liquidated account lost: collateral given up beyond the debt repaid."""
        return self.collateral_value_e8 - self.debt_value_e8


def _aave(market: LocalMarket) -> AaveMarket:
    if market.aave is None:
        raise ToolchainError("this market has no Aave deployment: redeploy it")
    return market.aave


def price_e8(w3: Web3, market: LocalMarket, symbol: str) -> int:
    """The Aave oracle's price of `symbol` (USD, 8 decimals)."""
    oracle = chain.at(w3, "AaveOracle", _aave(market).oracle)
    return int(oracle.functions.getAssetPrice(market.tokens[symbol].address).call())


def account_value_e8(w3: Web3, market: LocalMarket, owner: str) -> int:
    """Wallet + supplied - borrowed, every token at the Aave oracle's price."""
    aave = _aave(market)
    total = 0
    for symbol, token in market.tokens.items():
        held = chain.at(w3, "MockERC20", token.address).functions.balanceOf(owner).call()
        supplied = chain.at(w3, "AToken", aave.a_tokens[symbol]).functions.balanceOf(owner).call()
        debt = aave.variable_debt_tokens[symbol]
        owed = chain.at(w3, "VariableDebtToken", debt).functions.balanceOf(owner).call()
        total += (held + supplied - owed) * price_e8(w3, market, symbol) // 10**token.decimals
    return total


class Liquidator:
    """Liquidates `collateral` against `debt` for anyone under health factor 1."""

    def __init__(
        self,
        w3: Web3,
        market: LocalMarket,
        account: str,
        *,
        collateral: str = "WETH",
        debt: str = "USDC",
    ) -> None:
        self.w3, self.market, self.account = w3, market, account
        self.collateral, self.debt = collateral, debt
        self.pool = chain.at(w3, "Pool", market.lending_pool)
        token = chain.at(w3, "MockERC20", market.tokens[debt].address)
        chain.transact(token.functions.mint(account, 10**15 * 10**6), account)  # local only
        chain.transact(token.functions.approve(self.pool.address, MAX_UINT), account)

    def health_factor(self, user: str) -> int:
        return int(self.pool.functions.getUserAccountData(user).call()[5])

    def sweep(self, user: str) -> list[Liquidation]:
        """Liquidate `user` until its health factor is back at 1 or above."""
        done = []
        for _ in range(MAX_ROUNDS):
            hf = self.health_factor(user)
            if hf >= ONE_HF:
                break
            done.append(self._liquidate(user, hf))
        return done

    def _liquidate(self, user: str, hf: int) -> Liquidation:
        m = self.market
        c, d = m.tokens[self.collateral], m.tokens[self.debt]
        a_token = chain.at(self.w3, "AToken", _aave(m).a_tokens[self.collateral]).functions
        held = int(a_token.balanceOf(user).call())
        call = self.pool.functions.liquidationCall(c.address, d.address, user, MAX_UINT, False)
        receipt = chain.transact(call, self.account)
        (event,) = self.pool.events.LiquidationCall().process_receipt(receipt, errors=DISCARD)
        repaid = int(event.args.debtToCover)
        seized = held - int(a_token.balanceOf(user).call())
        return Liquidation(
            block=int(receipt["blockNumber"]),
            health_factor_e18=hf,
            debt_repaid_raw=repaid,
            collateral_seized_raw=seized,
            to_liquidator_raw=int(event.args.liquidatedCollateralAmount),
            debt_value_e8=repaid * price_e8(self.w3, m, self.debt) // 10**d.decimals,
            collateral_value_e8=seized * price_e8(self.w3, m, self.collateral) // 10**c.decimals,
        )
