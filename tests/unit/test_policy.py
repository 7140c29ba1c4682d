"""Policies on scripted inputs: one interface, required reasons, targets summing to 10,000."""

from __future__ import annotations

import pytest
from bt_helpers import make_costs, make_forecast, make_state

from keeper.errors import ConfigError
from keeper.models import Action, CollateralState
from keeper.policy import make_policy
from keeper.policy.base import best_clips, project_to_band, split_cost_usd
from keeper.policy.preventative import PreventativePolicy, expected_cost_usd
from keeper.units import BPS

TARGETS = (4000, 3000, 1000, 2000)


def test_factory_rejects_unknown_names_and_params() -> None:
    with pytest.raises(ConfigError, match="unknown policy 'bands'"):
        make_policy("bands")
    with pytest.raises(ConfigError, match="no parameter"):
        make_policy("band", {"widht_bps": 3})
    assert make_policy("band", {"width_bps": 250}).decide  # type: ignore[truthy-function]


def test_project_to_band_clips_risky_and_cash_takes_rest() -> None:
    out = project_to_band([0.06, -0.01, 0.0, -0.05], 0.03, cash=3)
    assert out == pytest.approx([0.03, -0.01, 0.0, -0.02])
    out = project_to_band([0.0101, 0.022, 0.015, -0.0471], 0.03, cash=3)
    assert out[3] == pytest.approx(-0.03) and sum(out) == pytest.approx(0.0)


def test_band_holds_inside_and_trades_to_edge_outside() -> None:
    pol = make_policy("band", {"width_bps": 300, "ret_frac": 0.0})
    inside = pol.decide(make_state([4200, 3000, 1000, 1800]), make_forecast(), make_costs())
    assert inside.action == Action.HOLD and "within" in inside.reason
    d = pol.decide(make_state([4500, 3000, 1000, 1500]), make_forecast(), make_costs())
    assert d.action == Action.REBALANCE and d.reason
    assert sum(d.target_weights_bps) == BPS
    assert d.target_weights_bps == (4300, 3000, 1000, 1700)


def test_band_interior_fraction_and_threshold_to_target() -> None:
    st = make_state([4500, 3000, 1000, 1500])
    half = make_policy("band", {"width_bps": 300, "ret_frac": 0.5}).decide(
        st, make_forecast(), make_costs())
    assert half.target_weights_bps == (4150, 3000, 1000, 1850)
    thr = make_policy("threshold", {"width_bps": 300}).decide(st, make_forecast(), make_costs())
    assert thr.target_weights_bps == TARGETS and thr.reason.startswith("threshold")


def test_calendar_waits_for_its_period_using_last_rebalance_ts() -> None:
    pol = make_policy("calendar", {"period_h": 24})
    st = make_state([4300, 3000, 1000, 1700], last_ts=1_000_000)
    early = pol.decide(st, make_forecast(now_ts=1_000_000 + 23 * 3600), make_costs())
    due = pol.decide(st, make_forecast(now_ts=1_000_000 + 24 * 3600), make_costs())
    assert early.action == Action.HOLD and "in 1 h" in early.reason
    assert due.action == Action.REBALANCE and due.target_weights_bps == TARGETS


def test_preventative_holds_far_inside_and_always_acts_outside() -> None:
    pol = PreventativePolicy(width_bps=400)
    calm = pol.decide(make_state([4050, 3000, 1000, 1950]), make_forecast(), make_costs())
    assert calm.action == Action.HOLD and "far inside" in calm.reason
    out = pol.decide(make_state([4600, 3000, 1000, 1400]), make_forecast(), make_costs())
    assert out.action == Action.REBALANCE and "outside band" in out.reason
    assert sum(out.target_weights_bps) == BPS
    assert abs(out.target_weights_bps[0] - 4000) <= 400


def test_preventative_acts_earlier_when_volatility_is_high() -> None:
    pol = PreventativePolicy(width_bps=400, horizon_h=24, split=False, gas_timing=False)
    st = make_state([4340, 3000, 1000, 1660])
    low = pol.decide(st, make_forecast(vol_scale=0.5), make_costs())
    high = pol.decide(st, make_forecast(vol_scale=2.5), make_costs())
    assert low.action == Action.HOLD
    assert high.action == Action.REBALANCE
    no_scaling = PreventativePolicy(width_bps=400, split=False, gas_timing=False,
                                    vol_scaling=False)
    assert no_scaling.decide(st, make_forecast(vol_scale=2.5), make_costs()).action == Action.HOLD


def test_preventative_cheap_gas_lowers_cost_of_acting_now() -> None:
    pol = PreventativePolicy(width_bps=400, split=False)
    st = make_state([4360, 3000, 1000, 1640], nav_usd=100_000.0)
    f = make_forecast(vol_scale=1.5)
    cheap = make_costs(gas_gwei=5, typical_gwei=60)
    dear = make_costs(gas_gwei=200, typical_gwei=60, min_ahead_gwei=20)
    assert pol.decide(st, f, cheap).action == Action.REBALANCE
    d = pol.decide(st, f, dear)
    assert d.action == Action.HOLD
    new = [0.0, 0.0, 0.0, 0.0]
    assert expected_cost_usd(pol, st, f, cheap, new) < expected_cost_usd(pol, st, f, dear, new)


def test_ripcord_deleverages_regardless_of_cost() -> None:
    coll = CollateralState(collateral_e8=100, debt_e8=78, health_factor_e18=1, ltv_bps=7800,
                           liquidation_threshold_bps=8250, target_ltv_bps=5000, min_ltv_bps=4000,
                           max_ltv_bps=6500, ripcord_ltv_bps=7500)
    d = PreventativePolicy().decide(make_state(list(TARGETS), collateral=coll), make_forecast(),
                                    make_costs(gas_gwei=5000))
    assert d.action == Action.DELEVERAGE and d.urgent and d.target_ltv_bps == 5000
    assert "ripcord" in d.reason


def test_preventative_deleverages_early_when_ltv_breach_is_likely() -> None:
    def coll(ltv: int) -> CollateralState:
        return CollateralState(collateral_e8=100, debt_e8=ltv, health_factor_e18=1, ltv_bps=ltv,
                               liquidation_threshold_bps=8250, target_ltv_bps=5000,
                               min_ltv_bps=4000, max_ltv_bps=7200, ripcord_ltv_bps=7500)
    pol = PreventativePolicy(ltv_act_prob=0.05)
    calm = pol.decide(make_state(list(TARGETS), collateral=coll(5000)), make_forecast(),
                      make_costs())
    near = pol.decide(make_state(list(TARGETS), collateral=coll(7000)), make_forecast(),
                      make_costs())
    assert calm.action == Action.HOLD
    assert near.action == Action.DELEVERAGE and not near.urgent


def test_split_prefers_clips_for_large_thin_pool_trades() -> None:
    st = make_state(list(TARGETS))
    costs = make_costs()
    small = [10_000.0, 0.0, 0.0, 0.0]
    big_link = [0.0, 0.0, 2_000_000.0, 0.0]
    assert best_clips(small, costs, st) == 1
    n = best_clips(big_link, costs, st)
    assert n > 1
    assert split_cost_usd(big_link, n, costs) < split_cost_usd(big_link, 1, costs)
    # hand check, fee-tier residual: n=1 pays q^2/(2D+q) = 4e12/22e6 = $181,818 impact + fee
    assert split_cost_usd(big_link, 1, costs) == pytest.approx(
        4e12 / 22e6 + 2e6 * 0.0035 + split_cost_usd([0, 0, 1.0, 0], 1, costs) - 1.0 * 0.0035
        - 1.0 / (20e6 + 1.0), rel=1e-9)


def test_every_decision_has_a_reason() -> None:
    states = [make_state(list(TARGETS)), make_state([4600, 3000, 1000, 1400])]
    for name in ("calendar", "threshold", "band", "preventative"):
        for st in states:
            assert make_policy(name).decide(st, make_forecast(now_ts=10**7), make_costs()).reason


def test_minimize_bounded_is_scipys_bounded_brent_bit_for_bit() -> None:
    import math
    import random

    from scipy import optimize

    from keeper.policy.base import minimize_bounded

    rnd = random.Random(0)
    for it in range(400):
        c = [rnd.uniform(-2, 2) for _ in range(3)]
        f = [lambda x, c=c: (x - c[0]) ** 2 + c[1] * math.sin(5 * x),
             lambda x, c=c: round((x - c[0]) ** 2 * 10) / 10 + c[2],  # flat steps: ties
             lambda x, c=c: abs(x - c[0]) + c[1] * x,
             lambda x, c=c: math.cos(7 * c[0] * x) + c[1] * x * x][it % 4]
        lo = rnd.uniform(-1.0, 0.5)
        hi = lo + rnd.choice([0.0, 1e-6, 0.04, 1.0, 11.0])
        tol = rnd.choice([2e-4, 0.05, 1e-5])
        ref = optimize.minimize_scalar(f, bounds=(lo, hi), method="bounded",
                                       options={"xatol": tol})
        assert minimize_bounded(f, lo, hi, tol) == (float(ref.x), float(ref.fun))

