"""The local lending pool speaks Aave v3's IPool: oracle-based health, LTV, threshold, interest."""

from __future__ import annotations

import pytest
from web3 import Web3
from web3.exceptions import ContractLogicError

from keeper.localnet import chain
from keeper.localnet.deploy import LocalMarket
from keeper.localnet.market import set_feed

pytestmark = pytest.mark.chain
MAX_UINT = 2**256 - 1


def _setup_position(w3: Web3, market: LocalMarket, user: str, weth_amount: int) -> tuple:
    weth = chain.at(w3, "WETH9", market.tokens["WETH"].address)
    pool = chain.at(w3, "MockLendingPool", market.lending_pool)
    chain.transact(weth.functions.deposit(), user, value=weth_amount)
    chain.transact(weth.functions.approve(pool.address, weth_amount), user)
    chain.transact(pool.functions.supply(weth.address, weth_amount, user, 0), user)
    return weth, pool


def test_account_data_prices_collateral_from_the_oracle(w3: Web3, market: LocalMarket) -> None:
    user = w3.eth.accounts[7]
    _, pool = _setup_position(w3, market, user, 10 * 10**18)
    coll, debt, avail, liq_t, ltv, hf = pool.functions.getUserAccountData(user).call()
    assert coll == 10 * market.prices_e8["WETH"]  # base currency: USD with 8 decimals
    assert (debt, liq_t, ltv, hf) == (0, 8300, 8050, MAX_UINT)
    assert avail == coll * 8050 // 10_000


def test_borrow_sets_health_factor_and_caps_at_ltv(w3: Web3, market: LocalMarket) -> None:
    user = w3.eth.accounts[7]
    _, pool = _setup_position(w3, market, user, 10 * 10**18)
    usdc = market.tokens["USDC"].address
    borrow_usd = 10_000
    chain.transact(pool.functions.borrow(usdc, borrow_usd * 10**6, 2, 0, user), user)
    coll, debt, _, _, _, hf = pool.functions.getUserAccountData(user).call()
    assert debt == pytest.approx(borrow_usd * 10**8, rel=1e-9)  # a second of interest may accrue
    assert hf == coll * 8300 * 10**18 // (debt * 10_000)
    too_much = coll * 8050 // 10_000 // 100  # the remaining borrow power, in USDC raw, plus all
    with pytest.raises(ContractLogicError):
        pool.functions.borrow(usdc, too_much, 2, 0, user).call({"from": user})


def test_price_drop_lowers_health_and_blocks_withdrawal(w3: Web3, market: LocalMarket) -> None:
    user = w3.eth.accounts[7]
    weth, pool = _setup_position(w3, market, user, 10 * 10**18)
    chain.transact(
        pool.functions.borrow(market.tokens["USDC"].address, 15_000 * 10**6, 2, 0, user), user
    )
    hf_before = pool.functions.getUserAccountData(user).call()[5]
    set_feed(w3, market, "WETH", market.prices_e8["WETH"] // 2)
    hf_after = pool.functions.getUserAccountData(user).call()[5]
    assert hf_after * 2 == pytest.approx(hf_before, rel=1e-9)
    with pytest.raises(ContractLogicError):
        pool.functions.withdraw(weth.address, 5 * 10**18, user).call({"from": user})


def test_debt_accrues_interest_and_repays_in_full(w3: Web3, market: LocalMarket) -> None:
    user = w3.eth.accounts[7]
    _, pool = _setup_position(w3, market, user, 10 * 10**18)
    usdc = chain.at(w3, "MockERC20", market.tokens["USDC"].address)
    chain.transact(pool.functions.borrow(usdc.address, 10_000 * 10**6, 2, 0, user), user)
    w3.provider.make_request("evm_increaseTime", [365 * 24 * 3600])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    owed = pool.functions.debtOf(user, usdc.address).call()
    assert owed == pytest.approx(10_500 * 10**6, rel=1e-5)  # 5% a year on USDC
    chain.transact(usdc.functions.mint(user, owed * 2), user)
    chain.transact(usdc.functions.approve(pool.address, MAX_UINT), user)
    chain.transact(pool.functions.repay(usdc.address, MAX_UINT, 2, user), user)
    assert pool.functions.debtOf(user, usdc.address).call() == 0
    assert pool.functions.getUserAccountData(user).call()[5] == MAX_UINT
