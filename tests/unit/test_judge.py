"""The simulation's verdict on a rebalance's executed cost: the planner quotes each leg on its
own and only estimates what legs through one pool cost in sequence; the fork run is what counts.
The plans here carry each leg's own quoted cost (as if the estimate had missed the sequence)."""

from __future__ import annotations

from dataclasses import replace

from keeper import simulate
from keeper.costs import TradeCost
from keeper.legs import leg_costs
from keeper.models import Leg, RebalancePlan
from keeper.units import BPS, ONE_E18
from tests.unit.test_plan_floor import STATE, _leg

LIMITS = simulate.SimLimits(gas_budget=2_000_000, max_slippage_bps=100)
GAS_E18 = 20 * ONE_E18


def _plan(legs: list[Leg], benefit_usd: int | None) -> RebalancePlan:
    per_leg = [leg_costs(STATE, [leg]) for leg in legs]
    fee, impact = sum(f for f, _ in per_leg), sum(i for _, i in per_leg)
    return RebalancePlan(
        vault=STATE.address, kind="rebalance", epoch=0, deadline_ts=0, legs=tuple(legs),
        calldata=b"", gas_limit=500_000,
        cost=TradeCost(gas_e18=GAS_E18, fee_e18=fee, impact_e18=impact),
        benefit_e18=None if benefit_usd is None else benefit_usd * ONE_E18,
    )


def _out(leg: Leg, shortfall_bps: int) -> int:
    return leg.oracle_out_raw * (BPS - shortfall_bps) // BPS


# two $100k WETH->USDC legs through one pool, each quoted 40 bps under the oracle (fee + impact)
LEGS = [_leg("WETH", 100_000, 500, 40), _leg("WETH", 100_000, 500, 40)]


def test_quoted_costs_under_the_benefit_pass() -> None:
    p = _plan(LEGS, benefit_usd=1_000)  # quoted: 2 x $400 + $20 gas = $820
    outs = tuple(leg.quoted_out_raw for leg in LEGS)
    assert simulate.realised_cost_e18(p, outs) == p.cost.total_e18
    assert simulate.judge(p, STATE, 300_000, outs, pre=500, post=100, limits=LIMITS) == []


def test_second_leg_through_the_same_pool_costs_more_and_is_refused() -> None:
    p = _plan(LEGS, benefit_usd=1_000)
    outs = (LEGS[0].quoted_out_raw, _out(LEGS[1], 80))  # the first leg moved the pool
    realised = simulate.realised_cost_e18(p, outs)
    assert realised == 400 * ONE_E18 + 800 * ONE_E18 + GAS_E18
    reasons = simulate.judge(p, STATE, 300_000, outs, pre=500, post=100, limits=LIMITS)
    assert reasons == [
        "realised cost 1220.00 USD (quoted 820.00) exceeds the expected benefit 1000.00 USD"
    ]


def test_a_required_rebalance_is_not_held_to_a_benefit() -> None:
    p = _plan(LEGS, benefit_usd=None)  # outer band breached: acting is required
    outs = (_out(LEGS[0], 80), _out(LEGS[1], 80))
    assert simulate.judge(p, STATE, 300_000, outs, pre=500, post=100, limits=LIMITS) == []


def test_a_better_fill_than_the_oracle_counts_for_the_plan() -> None:
    p = replace(_plan(LEGS[:1], benefit_usd=0), cost=TradeCost(gas_e18=GAS_E18, fee_e18=0,
                                                                impact_e18=0))
    outs = (_out(LEGS[0], -10),)  # 10 bps over the oracle: a $100 gain pays for the $20 gas
    assert simulate.realised_cost_e18(p, outs) == GAS_E18 - 100 * ONE_E18
    assert simulate.judge(p, STATE, 300_000, outs, pre=500, post=100, limits=LIMITS) == []
