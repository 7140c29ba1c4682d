"""Policies on scripted inputs: one interface, required reasons, targets summing to 10,000."""

from __future__ import annotations

import pytest
from bt_helpers import make_costs, make_forecast, make_state

from keeper.errors import ConfigError
from keeper.models import Action, CollateralState
from keeper.policy import make_policy
from keeper.policy.base import best_clips, project_to_band, split_cost_usd
from keeper.policy.preventative import PreventativePolicy
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


def test_preventative_holds_inside_its_act_edge_and_always_acts_outside() -> None:
    pol = PreventativePolicy(width_bps=400)
    calm = pol.decide(make_state([4050, 3000, 1000, 1950]), make_forecast(), make_costs())
    assert calm.action == Action.HOLD and "would gain at most" in calm.reason
    out = pol.decide(make_state([4600, 3000, 1000, 1400]), make_forecast(), make_costs())
    assert out.action == Action.REBALANCE and "outside its trigger" in out.reason
    assert sum(out.target_weights_bps) == BPS
    assert abs(out.target_weights_bps[0] - 4000) <= 400
    assert all(abs(w - t) <= 400 for w, t in zip(out.target_weights_bps, TARGETS, strict=True))


def test_preventative_trigger_stays_inside_the_outer_band() -> None:
    # 500 bps is the outer band's edge: the trigger is 1 bps inside, so it acts at 500
    d = PreventativePolicy(width_bps=900).decide(make_state([4500, 3000, 1000, 1500]),
                                                 make_forecast(), make_costs())
    assert d.action == Action.REBALANCE and "outside its trigger" in d.reason


def test_preventative_return_point_is_shallower_when_gas_is_cheap() -> None:
    """The renewal return point: deep resets when a rebalance's gas is dear against fees,
    shallow ones when it is cheap (the parameters stay the same across gas regimes)."""
    pol = PreventativePolicy()
    st = make_state(list(TARGETS), nav_usd=100_000.0)
    dear = pol.terms(st, make_forecast(), make_costs(gas_gwei=60))
    cheap = pol.terms(st, make_forecast(), make_costs(gas_gwei=2))
    for i in dear:
        assert 0.0 <= dear[i].r < cheap[i].r < dear[i].b
    big = pol.terms(make_state(list(TARGETS), nav_usd=10_000_000.0), make_forecast(),
                    make_costs(gas_gwei=60))
    assert all(big[i].r > dear[i].r for i in big)  # at $10M gas matters less: shallower


def test_preventative_acts_early_only_when_gas_now_is_cheap() -> None:
    pol = PreventativePolicy(split=False)
    st = make_state([4400, 3000, 1000, 1600], nav_usd=100_000.0)
    cheap = pol.decide(st, make_forecast(), make_costs(gas_gwei=5, typical_gwei=60))
    typical = pol.decide(st, make_forecast(), make_costs(gas_gwei=60, typical_gwei=60))
    assert cheap.action == Action.REBALANCE and "worth its cost" in cheap.reason
    assert cheap.benefit_e18 > 0 and cheap.target_weights_bps[0] < 4400
    assert typical.action == Action.HOLD and "would gain at most" in typical.reason
    no_early = PreventativePolicy(split=False, early=False)
    assert no_early.decide(st, make_forecast(), make_costs(gas_gwei=5, typical_gwei=60)
                           ).action == Action.HOLD


def test_preventative_waits_for_a_cheaper_hour_ahead() -> None:
    pol = PreventativePolicy(split=False)
    st = make_state([4450, 3000, 1000, 1550], nav_usd=100_000.0)
    now = make_costs(gas_gwei=5, typical_gwei=60)
    later = make_costs(gas_gwei=5, typical_gwei=60, min_ahead_gwei=1, hours_to_min=2)
    assert pol.decide(st, make_forecast(), now).action == Action.REBALANCE
    d = pol.decide(st, make_forecast(), later)
    assert d.action == Action.HOLD and "cheaper gas expected in 2 h" in d.reason


def test_preventative_screen_is_decides_own_first_test() -> None:
    """Over one-hour views built from the same numbers, the vectorised screen holds exactly
    where decide() stops at its screen."""
    import numpy as np

    from keeper.policy.base import ScreenView

    pol = PreventativePolicy()
    f = make_forecast()
    for w in ([4050, 3000, 1000, 1950], [4300, 3000, 1000, 1700], [4480, 2900, 1000, 1620],
              [4600, 3000, 1000, 1400], [4000, 3000, 1000, 2000]):
        for gas in (2.0, 30.0, 300.0):
            st, costs = make_state(w, nav_usd=100_000.0), make_costs(gas_gwei=gas)
            view = ScreenView(
                dev_bps=np.array([[a.deviation_bps for a in st.assets]]), span=(0, 1),
                now_ts=np.array([0]), vols=np.array([f.vol_per_h_frac]),
                long_run_vols=f.long_run_vol_per_h_frac, corr=np.array([f.corr]),
                gas_now=np.array([float(costs.gas_price_wei)]),
                gas_typical=np.array([float(costs.gas_typical_wei)]),
                eth_e18=np.array([float(costs.eth_usd_e18)]), nav=st.nav_e18 / 10**18,
                targets_bps=TARGETS, outer_bps=tuple(a.outer_band_bps for a in st.assets),
                last_rebalance_ts=0, model=costs.model, memo={})
            screened = bool(pol.screen(view)[0])
            d = pol.decide(st, f, costs)
            assert screened == ("would gain at most" in d.reason), (w, gas, d.reason)


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

