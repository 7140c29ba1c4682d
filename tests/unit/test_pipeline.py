"""One pipeline, live and in the backtest: the same forecast from the same history, the same gas
outlook, the same cost rule, one collateral rule, and benefits the plan stage can check."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from bt_helpers import make_costs, make_forecast, make_state, write_prices

from keeper import plan
from keeper.backtest import defaults, engine, market
from keeper.backtest.data import load_prices
from keeper.costs import (
    MAX_REQUIRED_COST_BPS,
    cost_gate,
    cost_inputs,
    required_or_benefit_e18,
    trade_cost,
)
from keeper.forecast.gas import outlook, outlook_now
from keeper.forecast.live import Forecaster
from keeper.history import PriceHistory
from keeper.models import (
    Action,
    CollateralState,
    Decision,
    GasHour,
    OracleHistory,
    TradeCost,
)
from keeper.policy import make_policy
from keeper.policy.base import RULE_COST_TOLERANCE, deviations, rule_benefit_usd
from keeper.units import BPS, ONE_E8, ONE_E18, WEI_PER_GWEI, Bps

POLICIES = ("calendar", "threshold", "band", "preventative")


def _collateral(ltv_bps: int, debt: bool = True) -> CollateralState:
    coll = 1_000_000 * ONE_E8
    return CollateralState(collateral_e8=coll, debt_e8=coll * ltv_bps // BPS if debt else 0,
                           health_factor_e18=ONE_E18, ltv_bps=Bps(ltv_bps),
                           liquidation_threshold_bps=Bps(8250), target_ltv_bps=Bps(5000),
                           min_ltv_bps=Bps(4000), max_ltv_bps=Bps(6500),
                           ripcord_ltv_bps=Bps(7500))


# ---------------------------------------------------------------- one collateral rule


@pytest.mark.parametrize("name", POLICIES)
def test_every_policy_pulls_the_ripcord_urgently(name: str) -> None:
    state = make_state([4000, 3000, 1000, 2000], collateral=_collateral(7600))
    d = make_policy(name).decide(state, make_forecast(), make_costs())
    assert d.action == Action.DELEVERAGE and d.urgent and d.target_ltv_bps == 5000


@pytest.mark.parametrize("name", POLICIES)
def test_every_policy_deleverages_above_and_releverages_below_the_band(name: str) -> None:
    pol = make_policy(name)
    above = pol.decide(make_state([4000, 3000, 1000, 2000], collateral=_collateral(6800)),
                       make_forecast(), make_costs())
    assert above.action == Action.DELEVERAGE and not above.urgent
    assert above.target_ltv_bps == 5000
    idle = pol.decide(make_state([4000, 3000, 1000, 2000], collateral=_collateral(0, False)),
                      make_forecast(), make_costs())
    assert idle.action == Action.RELEVERAGE and idle.target_ltv_bps == 5000


def test_threshold_keeps_the_urgency_and_target_it_is_given() -> None:
    state = make_state([4000, 3000, 1000, 2000], collateral=_collateral(7600))
    d = make_policy("threshold", {"width_bps": 300}).decide(state, make_forecast(), make_costs())
    assert d.urgent and d.target_ltv_bps == 5000 and d.reason.startswith("ripcord")


# ---------------------------------------------------------------- benefits and the cost rule


@pytest.mark.parametrize(("name", "params"), [("band", {"width_bps": 300}),
                                              ("threshold", {"width_bps": 300}),
                                              ("calendar", {"period_h": 1})])
def test_a_rule_inside_the_outer_band_carries_a_benefit_the_gate_accepts(
    name: str, params: dict[str, object]
) -> None:
    """A band 300 bps wide with WETH 341 bps over target: inside the 500 bps outer band, so the
    trade is not required; the rule's benefit must let its own modelled trade through."""
    state = make_state([4341, 3000, 1000, 1659], nav_usd=1_000_000.0)
    costs = make_costs()
    d = make_policy(name, params).decide(state, make_forecast(now_ts=10 * 3600), costs)
    assert d.action == Action.REBALANCE
    benefit = required_or_benefit_e18(state, d)
    assert benefit is not None and benefit > 0
    new = [t / BPS - a.target_bps / BPS for t, a in zip(d.target_weights_bps, state.assets,
                                                        strict=True)]
    model_usd = rule_benefit_usd(state, new, costs) / RULE_COST_TOLERANCE
    assert benefit / ONE_E18 == pytest.approx(RULE_COST_TOLERANCE * model_usd, rel=1e-6)
    q = [int((n - dv) * 1_000_000.0 * ONE_E18) for n, dv in zip(new, deviations(state),
                                                                 strict=True)]
    q[-1] = 0
    assert cost_gate(trade_cost(q, costs), benefit, state.nav_e18, MAX_REQUIRED_COST_BPS) == ""


def test_the_gate_refuses_a_trade_dearer_than_its_benefit_unless_required() -> None:
    state = make_state([4341, 3000, 1000, 1659])
    d = Decision(action=Action.REBALANCE, reason="r", target_weights_bps=(4000, 3000, 1000, 2000),
                 benefit_e18=10 * ONE_E18)
    dear = TradeCost(gas_e18=11 * ONE_E18, fee_e18=0, impact_e18=0)
    why = cost_gate(dear, required_or_benefit_e18(state, d), state.nav_e18, 200)
    assert why == "cost 11.00 USD exceeds the expected benefit 10.00 USD"
    outside = make_state([4600, 3000, 1000, 1400])  # 600 bps over: the outer band is breached
    assert required_or_benefit_e18(outside, d) is None
    assert cost_gate(dear, None, outside.nav_e18, 200) == ""


def test_preventative_benefit_is_its_break_even() -> None:
    """Acting early beats waiting exactly while the trade costs less than the benefit it reports:
    the benefit is the value of the moves (h(d) - h(r) per asset moved), so benefit - C_now is
    the net gain the policy weighed against waiting."""
    pol = make_policy("preventative", {"split": False})
    state = make_state([4400, 3000, 1000, 1600], nav_usd=100_000.0)
    costs = make_costs(gas_gwei=5.0, typical_gwei=60.0)  # gas now well under its typical level
    d = pol.decide(state, make_forecast(), costs)
    assert d.action == Action.REBALANCE, d.reason
    benefit = d.benefit_e18 / ONE_E18
    new = [t / BPS - a.target_bps / BPS for t, a in zip(d.target_weights_bps, state.assets,
                                                        strict=True)]
    c_now = rule_benefit_usd(state, new, costs) / RULE_COST_TOLERANCE
    assert benefit - c_now == pytest.approx(d.details["net_usd"], rel=0.02)
    assert benefit > c_now > 0


def test_the_backtest_applies_the_plan_stage_rule(tmp_path: object) -> None:
    """A benefit of zero means every trade is refused, in the backtest as live."""
    path = write_prices(tmp_path / "p.csv", n=1200)  # type: ignore[operator]
    data = load_prices(str(path))
    spec = defaults.vault_spec(1_000_000.0)
    mkt = market.prepare(data, defaults.SYMBOLS, fit_end=800, gas=None)

    class Stingy:
        name = "band"
        uses_forecast = False

        def decide(self, state: object, forecast: object, costs: object) -> Decision:
            d = make_policy("band", {"width_bps": 150}).decide(state, forecast, costs)  # type: ignore[arg-type]
            return replace(d, benefit_e18=0)

    band = make_policy("band", {"width_bps": 150})
    generous = engine.run(mkt, spec, band, 800, 1199, keep_reasons=True)
    stingy = engine.run(mkt, spec, Stingy(), 800, 1199, keep_reasons=True)  # type: ignore[arg-type]
    refused = [r for r in stingy.reasons if "not sent: cost" in r]
    assert generous.trade_hours.size > 0
    assert not any("not sent" in r for r in generous.reasons)  # its own benefit covers it
    # only trades the vault requires (a weight past the outer band) may still go
    assert len(refused) > 0 and stingy.trade_hours.size < generous.trade_hours.size


# ---------------------------------------------------------------- the planner


def test_assets_the_decision_leaves_alone_make_no_dust_legs() -> None:
    """WETH 400 bps over at $1.9M NAV: WBTC and LINK sit under target but inside the band, so
    the policy leaves them; their exact values differ from their rounded bps by a fraction of a
    bp of NAV (here about $60), which must not become a leg."""
    state = make_state([44_000, 28_003, 9_004, 18_993], nav_usd=1_900_000.0)
    d = make_policy("band", {"width_bps": 300}).decide(state, make_forecast(), make_costs())
    assert d.action == Action.REBALANCE
    assert d.target_weights_bps[1:3] == (2800, 900)  # left where they are
    trades = plan.trades_for(state, d)
    assert [(t.sell, t.buy) for t in trades] == [("ETH", "USDC")]


# ---------------------------------------------------------------- one forecast, one gas outlook


def test_live_forecast_equals_the_backtest_forecast_on_the_same_history(tmp_path: object) -> None:
    path = write_prices(tmp_path / "p.csv", n=900)  # type: ignore[operator]
    data = load_prices(str(path))
    symbols = defaults.SYMBOLS
    fit_end = 760  # past the backtester's minimum fit window (720 rows)
    mkt = market.prepare(data, symbols, fit_end=fit_end, gas=None, horizon_h=24)
    state = make_state([4000, 3000, 1000, 2000])
    cols = [data.symbols.index(s) for s in ("ETH", "BTC", "LINK")]
    for t in (fit_end - 1, 850):
        px = np.ones((t + 1, 4))
        px[:, :3] = data.prices[: t + 1, cols]
        hist = OracleHistory(hours_ts=data.ts[: t + 1].astype(np.int64), prices=px)
        fc = Forecaster(model="garch", refit_h=10_000)
        fc._fits[state.address] = (int(data.ts[fit_end - 1]), _fit_of(data, cols, fit_end))
        live = fc.forecast(state, hist, horizon_h=24.0, now_ts=int(data.ts[t]))
        assert live.vol_per_h_frac == pytest.approx(mkt.vol_rows[t], rel=1e-9, abs=1e-15)
        assert np.asarray(live.corr) == pytest.approx(mkt.corr[t], rel=1e-9, abs=1e-12)
        assert live.long_run_vol_per_h_frac == pytest.approx(mkt.vol_lr, rel=1e-12)


def test_vaults_on_the_same_prices_share_one_filter_run_and_get_the_same_forecast(
        tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """100 vaults on the same feeds run the vol filters once per tick, not 100 times; a vault
    whose prices differ in one hour gets its own run and its own forecast."""
    import keeper.forecast.live as live_mod

    path = write_prices(tmp_path / "p.csv", n=400)  # type: ignore[operator]
    data = load_prices(str(path))
    px = np.ones((400, 4))
    px[:, :3] = data.prices[:, [data.symbols.index(s) for s in ("ETH", "BTC", "LINK")]]
    hist = OracleHistory(hours_ts=data.ts.astype(np.int64), prices=px)
    runs: list[int] = []
    real = live_mod.vol_paths
    monkeypatch.setattr(live_mod, "vol_paths", lambda *a: runs.append(1) or real(*a))
    fc = Forecaster(model="ewma")
    states = [replace(make_state([4000, 3000, 1000, 2000]), address=f"0x{i:040x}")
              for i in range(3)]
    got = [fc.forecast(s, hist, horizon_h=24.0, now_ts=int(data.ts[-1])) for s in states]
    assert len(runs) == 1 and got[0] == got[1] == got[2]
    moved = px.copy()
    moved[200, 0] *= 1.05
    other = fc.forecast(states[0], OracleHistory(hours_ts=hist.hours_ts, prices=moved),
                        horizon_h=24.0, now_ts=int(data.ts[-1]))
    assert len(runs) == 2 and other.vol_per_h_frac != got[0].vol_per_h_frac


def _fit_of(data: object, cols: list[int], fit_end: int) -> object:
    from keeper.forecast import vol
    from keeper.forecast.model import fit_vols

    px = np.ones((fit_end, 4))
    px[:, :3] = data.prices[:fit_end, cols]  # type: ignore[attr-defined]
    return fit_vols(vol.log_returns(px), "garch")


def test_live_gas_outlook_is_the_backtest_outlook_on_the_same_hours(tmp_path: object) -> None:
    hours = 24 * 20
    ts = np.arange(hours, dtype=np.int64) * 3600 + 1_700_000_000 // 3600 * 3600
    gwei = 20.0 * (1.0 + 0.5 * np.sin(2 * np.pi * ((ts // 3600) % 24) / 24.0))
    history = PriceHistory(tmp_path / "h.sqlite")  # type: ignore[operator]
    history.record_gas(1, [GasHour(hour_ts=int(t), base_fee_wei=int(g * WEI_PER_GWEI) - 10**9,
                                   tip_wei=10**9) for t, g in zip(ts, gwei, strict=True)])
    rows = history.gas_history(1)
    live = outlook_now(np.array([g.hour_ts for g in rows]),
                       np.array([g.price_wei / WEI_PER_GWEI for g in rows]))
    backtest = outlook(ts, gwei).at(hours - 1)
    assert live == backtest
    assert live is not None and live.min_ahead_wei < live.typical_wei < 30 * WEI_PER_GWEI
    costs = cost_inputs(defaults.cost_model(), gas_price_wei=25 * WEI_PER_GWEI, outlook=live,
                        eth_usd_e18=2000 * ONE_E18)
    assert costs.gas_min_ahead_wei < costs.gas_price_wei and costs.hours_to_min_ahead > 0


def test_without_gas_history_no_policy_waits_for_gas() -> None:
    costs = cost_inputs(defaults.cost_model(), gas_price_wei=25 * WEI_PER_GWEI, outlook=None,
                        eth_usd_e18=2000 * ONE_E18)
    assert costs.gas_min_ahead_wei == costs.gas_typical_wei == costs.gas_price_wei
    assert costs.hours_to_min_ahead == 0


def test_oracle_history_reads_new_and_rewritten_hours_from_its_cache(tmp_path: object) -> None:
    history = PriceHistory(tmp_path / "h.sqlite")  # type: ignore[operator]
    history.seed_prices("v", [(h * 3600, (float(h), 1.0)) for h in range(10)])
    first = history.oracle_history("v", 2)
    assert first.prices[:, 0].tolist() == [float(h) for h in range(10)]
    history.seed_prices("v", [(9 * 3600, (99.0, 1.0)), (10 * 3600, (10.0, 1.0))])
    again = history.oracle_history("v", 2)
    assert again.hours_ts.tolist() == [h * 3600 for h in range(11)]
    assert again.prices[-2:, 0].tolist() == [99.0, 10.0]
    other = PriceHistory(tmp_path / "h.sqlite")  # type: ignore[operator]  # another process
    other.seed_prices("v", [(11 * 3600, (11.0, 1.0))])
    assert history.oracle_history("v", 2).prices[-1, 0] == 11.0
    assert len(history.oracle_history("v", 3)) == 0  # another basket size: none of these rows
