"""Plan legs against the vault's oracle floor: a leg quoted under it is re-sized (thin pool), not
allowed to sink the whole rebalance, and dropped when no size can clear the floor."""

from __future__ import annotations

import pytest

from keeper import plan
from keeper.models import AssetState, FeedState, Leg, NoPlan, VaultLimits, VaultState
from keeper.plan import Market, QuotedLegs
from keeper.units import BPS, ONE_E18

PRICES_E8 = {"WETH": 3_000 * 10**8, "WBTC": 60_000 * 10**8, "LINK": 15 * 10**8, "USDC": 10**8}
DECIMALS = {"WETH": 18, "WBTC": 8, "LINK": 18, "USDC": 6}


def _asset(i: int, symbol: str) -> AssetState:
    feed = FeedState(feed=f"0x{i + 1:040x}", answer=PRICES_E8[symbol], decimals=8,
                     updated_at_ts=0, heartbeat_s=86_400, min_answer=1, max_answer=10**18)
    return AssetState(symbol=symbol, token=f"0x{i + 0xA0:040x}", decimals=DECIMALS[symbol],
                      balance_raw=0, feed=feed, value_e18=0, weight_bps=2500, target_bps=2500,
                      inner_band_bps=200, outer_band_bps=500)


STATE = VaultState(
    address="0x" + "44" * 20, assets=tuple(_asset(i, s) for i, s in enumerate(PRICES_E8)),
    nav_e18=10_000_000 * ONE_E18, epoch=0, last_rebalance_ts=0, paused=False,
    limits=VaultLimits(max_slippage_bps=100, max_trade_e18=2_000_000 * ONE_E18, cooldown_s=3600,
                       loss_cap_bps=100, loss_period_s=86_400),
)
SLIP = STATE.limits.max_slippage_bps
MARKET = Market(
    tokens={a.symbol: (a.token, a.decimals) for a in STATE.assets},
    pools=(("WETH", "USDC", 500), ("WBTC", "USDC", 3000), ("LINK", "USDC", 10_000)),
    router="0x" + "11" * 20,
    quoter="0x" + "22" * 20,
    multicall="0x" + "33" * 20,
)


def _leg(sell: str, notional_usd: int, fee_ppm: int, shortfall_bps: int) -> Leg:
    """A single-hop leg to USDC whose quote is `shortfall_bps` under the oracle (fee included)."""
    a_in, a_out = STATE.asset(sell), STATE.asset("USDC")
    n = notional_usd * ONE_E18
    oracle_out = plan.raw_for_value(n, a_out)
    return Leg(router=MARKET.router, sell=sell, buy="USDC", token_in=a_in.token,
               token_out=a_out.token, fee_ppm=fee_ppm, path=b"",
               amount_in_raw=plan.raw_for_value(n, a_in), notional_e18=n,
               oracle_out_raw=oracle_out,
               quoted_out_raw=oracle_out * (BPS - shortfall_bps) // BPS, quote_gas=100_000)


def test_split_keeps_legs_at_or_above_the_floor() -> None:
    at_floor = _leg("WETH", 100_000, 500, SLIP)
    under = _leg("WBTC", 100_000, 3000, SLIP + 1)
    ok, bad = plan.split_on_floor(STATE, [at_floor, under])
    assert ok == [at_floor] and bad == [under]


def test_shrunk_trade_aims_the_impact_at_the_room_left_by_fees() -> None:
    # fee 30 bps, shortfall 230 bps -> impact 200 bps; room = SLIP - 30
    leg = _leg("WBTC", 400_000, 3000, 230)
    t = plan.shrunk_trade(STATE, leg)
    assert t is not None and (t.sell, t.buy) == ("WBTC", "USDC")
    room = SLIP - 30
    expected = 400_000 * ONE_E18 * room * plan.SHRINK_AIM_BPS // (200 * BPS)
    assert t.notional_e18 == expected
    assert t.notional_e18 < leg.notional_e18


@pytest.mark.parametrize(
    ("fee_ppm", "shortfall_bps", "notional_usd", "why"),
    [
        (10_000, 150, 100_000, "the 1% fee alone is over the slippage allowance"),
        (3000, 9_000, 1_000, "a $1,000 leg 90% under the oracle: shrunk under the dust size"),
    ],
)
def test_shrunk_trade_is_none_when_no_size_can_clear(
    fee_ppm: int, shortfall_bps: int, notional_usd: int, why: str
) -> None:
    assert plan.shrunk_trade(STATE, _leg("WBTC", notional_usd, fee_ppm, shortfall_bps)) is None, why


def _quoted(legs: list[Leg]) -> list[tuple[int, int] | None]:
    return [(leg.quoted_out_raw, leg.quote_gas) for leg in legs]


def test_a_thin_leg_is_requoted_smaller_and_the_rest_of_the_plan_stands() -> None:
    good = _leg("WETH", 200_000, 500, 10)
    thin = _leg("WBTC", 400_000, 3000, 230)
    req = plan.request_for(STATE, MARKET, [plan.Trade(sell=x.sell, buy=x.buy,
                                                     notional_e18=x.notional_e18)
                                          for x in (good, thin)])
    # every candidate route of a trade gets that trade's quote (one route per pair here)
    by_trade = {0: good, 1: thin}
    results = [(by_trade[t].quoted_out_raw, 100_000) for t, _r in req.index]
    quoted = plan.legs_from_quotes(STATE, MARKET, req, results)
    assert isinstance(quoted, QuotedLegs)
    assert [x.sell for x in quoted.ok] == ["WETH"]
    assert quoted.retry is not None and len(quoted.retry.trades) == 1
    smaller = quoted.retry.trades[0]
    assert smaller.sell == "WBTC" and smaller.notional_e18 < thin.notional_e18
    assert "re-quoted at" in quoted.notes[0]

    # the smaller size clears the floor: it joins the plan
    small_oracle = plan.raw_for_value(smaller.notional_e18, STATE.asset("USDC"))
    retry_ok = [(small_oracle * (BPS - SLIP + 5) // BPS, 100_000) for _ in quoted.retry.index]
    legs = plan.merge_retry(STATE, MARKET, quoted, retry_ok)
    assert isinstance(legs, list) and [x.sell for x in legs] == ["WETH", "WBTC"]
    assert legs[1].notional_e18 == smaller.notional_e18

    # it still does not: only the good leg is sent
    retry_bad = [(small_oracle * (BPS - SLIP - 5) // BPS, 100_000) for _ in quoted.retry.index]
    legs = plan.merge_retry(STATE, MARKET, quoted, retry_bad)
    assert isinstance(legs, list) and [x.sell for x in legs] == ["WETH"]


def test_no_plan_when_the_only_leg_cannot_clear_even_smaller() -> None:
    thin = _leg("WBTC", 400_000, 3000, 230)
    quoted = QuotedLegs(ok=(), retry=plan.request_for(STATE, MARKET, [
        plan.Trade(sell="WBTC", buy="USDC", notional_e18=thin.notional_e18 // 2)]),
        notes=("WBTC->USDC $400,000 quoted under the oracle floor, re-quoted at $200,000",))
    assert quoted.retry is not None
    legs = plan.merge_retry(STATE, MARKET, quoted, [None] * len(quoted.retry.calls))
    assert isinstance(legs, NoPlan) and "even at a smaller size" in legs.reason


def test_a_leg_that_fees_alone_sink_is_dropped_with_a_reason() -> None:
    hopeless = _leg("LINK", 100_000, 10_000, 150)
    req = plan.request_for(STATE, MARKET, [plan.Trade(sell="LINK", buy="USDC",
                                                      notional_e18=hopeless.notional_e18)])
    got = plan.legs_from_quotes(STATE, MARKET, req, [(hopeless.quoted_out_raw, 1)] * len(req.calls))
    assert isinstance(got, NoPlan) and "under the vault's oracle floor" in got.reason
