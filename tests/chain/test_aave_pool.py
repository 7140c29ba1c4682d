"""The local market's lending pool is Aave v3 itself (npm @aave/core-v3): reserves listed with
mainnet parameters, health factor math with e-mode off, reserve caps, interest that accrues per
second through the liquidity and borrow indices, and liquidationCall with close factor and bonus.
"""

from __future__ import annotations

import pytest
from web3 import Web3
from web3.exceptions import ContractLogicError

from keeper.localnet import chain
from keeper.localnet.aave import RESERVES
from keeper.localnet.deploy import LocalMarket
from keeper.localnet.market import set_feed
from tests.aavekit import (
    MAX_UINT,
    RAY,
    Aave,
    compounded_interest,
    linear_interest,
    percent_div,
    percent_mul,
    ray_mul,
    wad_div,
    warp,
)

pytestmark = pytest.mark.chain
E18 = 10**18
USDC = 10**6
DAY = 24 * 3600


@pytest.fixture
def aave(w3: Web3, market: LocalMarket) -> Aave:
    return Aave(w3, market)


def _busy_usdc(aave: Aave) -> None:
    """Someone borrows 150M of the 200M USDC supplied (75% utilisation, as a busy market)."""
    whale = aave.w3.eth.accounts[8]
    aave.supply(whale, "WETH", 200_000 * E18)
    aave.borrow(whale, "USDC", 150_000_000 * USDC)


def test_reserves_are_listed_with_the_mainnet_parameters(aave: Aave) -> None:
    assert aave.market.aave is not None
    data = chain.at(aave.w3, "AaveProtocolDataProvider", aave.market.aave.data_provider)
    for symbol, p in RESERVES.items():
        token = aave.market.tokens[symbol]
        dec, ltv, lt, lb, rf, collateral, borrowing, stable, active, frozen = (
            data.functions.getReserveConfigurationData(token.address).call()
        )
        assert (dec, ltv, lt, lb, rf) == (
            token.decimals,
            p.ltv_bps,
            p.liquidation_threshold_bps,
            p.liquidation_bonus_bps,
            p.reserve_factor_bps,
        ), symbol
        assert (collateral, borrowing, stable, active, frozen) == (True, True, False, True, False)
        assert data.functions.getReserveCaps(token.address).call() == [p.borrow_cap, p.supply_cap]
        fee = data.functions.getLiquidationProtocolFee(token.address).call()
        assert fee == p.liquidation_protocol_fee_bps
        assert data.functions.getReserveEModeCategory(token.address).call() == 0  # e-mode off


def test_account_data_follows_aave_math_with_emode_off(aave: Aave) -> None:
    user = aave.w3.eth.accounts[7]
    _busy_usdc(aave)
    aave.supply(user, "WETH", 10 * E18)
    aave.supply(user, "WBTC", 10**8)
    aave.borrow(user, "USDC", 20_000 * USDC)
    warp(aave.w3, 30 * DAY)
    block = aave.w3.eth.block_number
    assert aave.pool.functions.getUserEMode(user).call() == 0
    got = aave.account(user, block)
    assert got == aave.expected_account(user, block)
    coll, debt, _avail, lt, ltv, hf = got
    # the weighted thresholds of a WETH + WBTC position, and interest on the debt
    wbtc, weth = RESERVES["WBTC"], RESERVES["WETH"]
    assert wbtc.liquidation_threshold_bps < lt < weth.liquidation_threshold_bps
    assert wbtc.ltv_bps < ltv < weth.ltv_bps
    assert debt > 20_000 * 10**8
    assert hf == wad_div(percent_mul(coll, lt), debt)


def test_debt_accrues_every_second_through_the_borrow_index(aave: Aave) -> None:
    user = aave.w3.eth.accounts[7]
    _busy_usdc(aave)
    aave.supply(user, "WETH", 10 * E18)
    aave.borrow(user, "USDC", 10_000 * USDC)
    debt = aave.debt_token("USDC").functions
    owed = []
    for _ in range(3):
        warp(aave.w3, 1)
        owed.append(debt.balanceOf(user).call())
    assert owed[0] < owed[1] < owed[2]  # no action in between: the index alone moves it
    # the next action writes the index the formula predicts from the stored rate and timestamp
    before = aave.reserve("USDC")
    warp(aave.w3, 7 * DAY)
    aave.borrow(user, "USDC", USDC)
    after = aave.reserve("USDC")
    now = aave.w3.eth.get_block("latest")["timestamp"]
    assert after[6] == now
    assert after[3] == ray_mul(compounded_interest(before[4], before[6], now), before[3])
    assert after[1] == ray_mul(linear_interest(before[2], before[6], now), before[1])
    assert after[3] > before[3] >= RAY and after[1] > before[1] >= RAY
    assert aave.account(user) == aave.expected_account(user, aave.w3.eth.block_number)


def test_supply_and_borrow_caps_hold_at_their_mainnet_values(aave: Aave) -> None:
    user, whale = aave.w3.eth.accounts[7], aave.w3.eth.accounts[8]
    cap = RESERVES["WBTC"]
    aave.supply(user, "WBTC", cap.supply_cap * 10**8)  # the whole cap fits
    wbtc = aave.market.tokens["WBTC"].address
    token = chain.at(aave.w3, "MockERC20", wbtc)
    chain.transact(token.functions.mint(user, 1), user)
    chain.transact(token.functions.approve(aave.pool.address, 1), user)
    with pytest.raises(ContractLogicError, match="51"):  # SUPPLY_CAP_EXCEEDED
        aave.pool.functions.supply(wbtc, 1, user, 0).call({"from": user})
    aave.supply(whale, "WETH", 1_000_000 * E18)
    aave.borrow(whale, "WBTC", cap.borrow_cap * 10**8)  # the whole borrow cap fits
    with pytest.raises(ContractLogicError, match="50"):  # BORROW_CAP_EXCEEDED
        aave.pool.functions.borrow(wbtc, 1, 2, 0, whale).call({"from": whale})


def test_borrow_is_capped_at_the_ltv_and_withdraw_at_health_one(aave: Aave) -> None:
    user = aave.w3.eth.accounts[7]
    aave.supply(user, "WETH", 10 * E18)
    _coll, _debt, available, *_ = aave.account(user)
    usdc = aave.market.tokens["USDC"].address
    with pytest.raises(ContractLogicError, match="36"):  # COLLATERAL_CANNOT_COVER_NEW_BORROW
        aave.pool.functions.borrow(usdc, available // 100 + 1, 2, 0, user).call({"from": user})
    aave.borrow(user, "USDC", available // 100)
    weth = aave.market.tokens["WETH"].address
    with pytest.raises(ContractLogicError, match="35"):  # HEALTH_FACTOR_LOWER_THAN_LIQ...
        aave.pool.functions.withdraw(weth, E18, user).call({"from": user})


@pytest.mark.parametrize(("drop_bps", "close_factor_bps"), [(500, 5_000), (1_500, 10_000)])
def test_liquidation_call_pays_the_bonus_within_the_close_factor(
    aave: Aave, drop_bps: int, close_factor_bps: int
) -> None:
    """HF in (0.95, 1): half the debt may be repaid; at or under 0.95: all of it. The liquidator
    gets the debt's worth of collateral plus the 5% bonus, less the protocol's 10% of that
    bonus."""
    w3, m = aave.w3, aave.market
    user, liquidator = w3.eth.accounts[7], w3.eth.accounts[9]
    aave.supply(user, "WETH", 10 * E18)
    available = aave.account(user)[2]
    aave.borrow(user, "USDC", available // 100)  # at the 80.5% LTV
    warp(w3, 60)
    price = m.prices_e8["WETH"] * (10_000 - drop_bps) // 10_000
    set_feed(w3, m, "WETH", price)
    hf = aave.account(user)[5]
    assert (0.95e18 < hf < E18) if close_factor_bps == 5_000 else hf <= 0.95e18
    usdc = chain.at(w3, "MockERC20", m.tokens["USDC"].address)
    weth = chain.at(w3, "WETH9", m.tokens["WETH"].address)
    chain.transact(usdc.functions.mint(liquidator, 10**12), liquidator)
    chain.transact(usdc.functions.approve(aave.pool.address, MAX_UINT), liquidator)
    owed = aave.debt_token("USDC").functions.balanceOf(user).call()
    fns = aave.pool.functions
    call = fns.liquidationCall(weth.address, usdc.address, user, MAX_UINT, False)
    chain.transact(call, liquidator)
    repaid = owed - aave.debt_token("USDC").functions.balanceOf(user).call()
    covered = percent_mul(owed, close_factor_bps)
    assert abs(repaid - covered) <= 1  # one second of interest accrues before the call
    seized = repaid * 10**8 * E18 // (price * USDC)  # USDC at exactly $1
    seized = min(percent_mul(seized, RESERVES["WETH"].liquidation_bonus_bps), 10 * E18)
    bonus = seized - percent_div(seized, RESERVES["WETH"].liquidation_bonus_bps)
    fee = percent_mul(bonus, RESERVES["WETH"].liquidation_protocol_fee_bps)
    assert weth.functions.balanceOf(liquidator).call() == seized - fee
    assert aave.a_token("WETH").functions.balanceOf(user).call() == 10 * E18 - seized
