"""Cost formulas pinned against hand-computed numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keeper.costs import (
    GAS_TABLE,
    CostInputs,
    CostModel,
    PoolCost,
    depth_from_liquidity,
    fee_cost_e18,
    gas_cost_e18,
    impact_cost_e18,
    load_gas_table,
    next_residual_ppm,
    price_move_ppm,
    tracking_penalty_usd_per_h,
    trade_cost,
    trade_cost_usd,
)
from keeper.errors import ConfigError
from keeper.units import ONE_E18, Q96, WEI_PER_GWEI

USD = ONE_E18
MODEL = CostModel(pools=(PoolCost(fee_ppm=500, depth_e18=276_000_000 * USD),
                         PoolCost(fee_ppm=3000, depth_e18=10_000_000 * USD), None))


def _inputs(gwei: int = 20, eth: int = 2000, residual: tuple[int, ...] = ()) -> CostInputs:
    g = gwei * WEI_PER_GWEI
    return CostInputs(model=MODEL, gas_price_wei=g, gas_typical_wei=g, gas_min_ahead_wei=g,
                      hours_to_min_ahead=1, eth_usd_e18=eth * USD, residual_ppm=residual)


@pytest.mark.parametrize(("hops", "gwei", "eth"), [
    ([1], 20, 2000),
    ([1, 1], 20, 2000),
    ([1, 2, 2], 100, 3000),
    ([], 100, 3000),
])
def test_gas_cost_follows_the_vault_gas_table(hops: list[int], gwei: int, eth: int) -> None:
    g = MODEL.gas
    units = (g.rebalance_fixed + len(hops) * g.rebalance_per_leg
             + sum(h - 1 for h in hops) * g.rebalance_per_extra_hop) if hops else 0
    got = gas_cost_e18(hops, gwei * WEI_PER_GWEI, eth * USD, MODEL)
    assert got == units * gwei * WEI_PER_GWEI * eth


def test_gas_table_is_the_vault_measurement() -> None:
    """The shipped table (a least-squares line through the 1-, 2- and 4-leg rows) reproduces
    the gas report's rows within 4% (the rows are not quite a line: the 4-leg plan trades one
    pool twice, and a leg into a pool already touched in the call is cheaper)."""
    data = json.loads(GAS_TABLE.read_text())
    rows = {r["call"]: r["gas"] for r in data["rows"]}
    g = load_gas_table()
    assert g.rebalance_units([1]) == pytest.approx(rows["rebalance, 1 single-hop swap"], rel=0.04)
    assert g.rebalance_units([1, 1, 1, 1]) == pytest.approx(
        rows["rebalance, 4 single-hop swaps"], rel=0.04)
    assert g.rebalance_units([2]) == pytest.approx(
        rows["rebalance, 1 two-hop swap (exactInput)"], rel=0.04)


def test_gas_table_broken_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "gas.json"
    bad.write_text('{"rebalance_fixed": 1}')
    with pytest.raises(ConfigError, match=r"gas table .* is unreadable"):
        load_gas_table(bad)


def test_fee_is_tier_times_notional() -> None:
    assert fee_cost_e18(1_000_000 * USD, 500) == 500 * USD
    assert fee_cost_e18(-200_000 * USD, 3000) == 600 * USD


def test_impact_matches_v3_in_range_formula() -> None:
    # q^2 / (2D + q): $1M into $276M depth -> 1e12 / 553e6 = $1808.32
    got = impact_cost_e18(1_000_000 * USD, 276_000_000 * USD)
    assert got / USD == pytest.approx(1e12 / 553e6, rel=1e-12)
    assert got / USD == pytest.approx(1808.318, abs=1e-3)
    # small-trade limit: average impact q / (2D)
    assert impact_cost_e18(10_000 * USD, 10_000_000 * USD) / USD == pytest.approx(
        10_000 * 10_000 / 20_010_000, rel=1e-12)
    # a residual displacement of 30 bps on $100k adds $300
    base = impact_cost_e18(100_000 * USD, 10_000_000 * USD)
    assert impact_cost_e18(100_000 * USD, 10_000_000 * USD, 3000) - base == 300 * USD


def test_price_move_and_fee_tier_recovery() -> None:
    # mid moves (1 + q/2D)^2 - 1: $100k in $10M depth -> 1.0025 ppm-exact
    assert price_move_ppm(100_000 * USD, 10_000_000 * USD) == 10_025
    assert next_residual_ppm(100_000 * USD, 10_000_000 * USD, 3000, "fee_tier") == 3000
    assert next_residual_ppm(1_000 * USD, 10_000_000 * USD, 3000, "fee_tier") == 100
    assert next_residual_ppm(100_000 * USD, 10_000_000 * USD, 3000, "fresh") == 0


def test_trade_cost_adds_legs_and_skips_cash() -> None:
    tc = trade_cost([1_000_000 * USD, -50_000 * USD, 950_000 * USD], _inputs())
    assert tc.gas_e18 == gas_cost_e18([1, 1], 20 * WEI_PER_GWEI, 2000 * USD, MODEL)
    assert tc.fee_e18 == 500 * USD + 150 * USD
    assert tc.impact_e18 == impact_cost_e18(1_000_000 * USD, 276_000_000 * USD) + \
        impact_cost_e18(50_000 * USD, 10_000_000 * USD)
    assert tc.total_e18 == tc.gas_e18 + tc.fee_e18 + tc.impact_e18


def test_float_twin_agrees_with_integer_costs() -> None:
    inp = _inputs(residual=(0, 2000, 0))
    q = [1_234_567.0, -98_765.0, 0.0]
    ints = trade_cost([int(x * USD) for x in q], inp).total_e18 / USD
    assert trade_cost_usd(q, inp, inp.gas_price_wei) == pytest.approx(ints, abs=1e-6)


def test_tracking_penalty_hand_computed() -> None:
    # d = (+0.05, -0.05), vols 1%/h and 0, gamma 2, NAV $1M: 0.5*2*1e6*(0.05^2 * 1e-4) = $0.25/h
    cov = [[1e-4, 0.0], [0.0, 0.0]]
    assert tracking_penalty_usd_per_h(1e6, [0.05, -0.05], cov, 2.0) == pytest.approx(0.25)


def test_depth_from_liquidity_is_half_virtual_reserve() -> None:
    # sqrtP = 2 (Q96) and L = 1e18 raw -> y = 2e18 raw = 2 token1 at $1000 -> depth $1000
    assert depth_from_liquidity(10**18, 2 * Q96, 18, 18, 1000.0) == pytest.approx(1000.0)
