"""Backtester: input validation, no look-ahead, engine accounting, sweep split, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from bt_helpers import SHARED_DATA, write_prices
from typer.testing import CliRunner

from keeper.backtest import defaults, engine, gas, market, sweep
from keeper.backtest.data import GasData, load_prices, parse_date, usdc_weth_depth_usd, window
from keeper.cli_backtest import register
from keeper.errors import DataError
from keeper.forecast.gas import outlook as gas_outlook
from keeper.policy import make_policy

HEADER = "timestamp,eth_usdt_close,btc_usdt_close\n"


def _cli() -> typer.Typer:
    """A typer app with `backtest` and a no-op second command (multi-command mode, as in
    keeper/cli.py)."""
    app = typer.Typer()
    register(app)

    @app.command()
    def noop() -> None:
        """Keeps typer in multi-command mode."""

    return app


def _csv(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    p = tmp_path / "p.csv"
    p.write_text(header + body)
    return p


@pytest.mark.parametrize(("body", "header", "match"), [
    ("2021-01-01 00:00:00,1,2\n2021-01-01 02:00:00,1,2\n", HEADER, "gap before data row 2"),
    ("2021-01-01 01:00:00,1,2\n2021-01-01 00:00:00,1,2\n", HEADER,
     "unsorted timestamp at data row 2"),
    ("2021-01-01 00:00:00,1,2\n2021-01-01 00:00:00,1,2\n", HEADER, "duplicate timestamp"),
    ("2021-01-01 00:00:00,1,2\n2021-01-01 01:00:00,0,2\n", HEADER,
     "non-positive price 0.0 at data row 2"),
    ("2021-01-01 00:00:00,1,2\n2021-01-01 01:00:00,,2\n2021-01-01 02:00:00,1,2\n", HEADER,
     "missing price at data row 2 .* column ETH.*--fill ffill"),
    ("2021-01-01 00:00:00,1,2,3\n", "timestamp,eth_usdt_close,btc_usdt_close,volume\n",
     "unknown column 'volume'"),
    ("2021-01-01 00:00:00,1,abc\n", HEADER, "column BTC: 'abc' is not a number"),
    ("yesterday,1,2\n", HEADER, "bad timestamp"),
])
def test_bad_price_files_raise_data_error_naming_the_fix(tmp_path: Path, body: str, header: str,
                                                         match: str) -> None:
    with pytest.raises(DataError, match=match):
        load_prices(_csv(tmp_path, body, header))


def test_ffill_fills_gaps_and_nans_and_counts_them(tmp_path: Path) -> None:
    body = ("2021-01-01 00:00:00,1,2\n2021-01-01 01:00:00,,2\n2021-01-01 03:00:00,3,4\n")
    d = load_prices(_csv(tmp_path, body), fill="ffill")
    assert d.ts.size == 4 and d.filled == 1 + 2
    assert d.prices[:, 0].tolist() == [1.0, 1.0, 1.0, 3.0]


def test_leading_empty_asset_is_allowed_and_window_starts_when_all_priced(tmp_path: Path) -> None:
    body = "2021-01-01 00:00:00,1,\n2021-01-01 01:00:00,1,2\n"
    d = window(load_prices(_csv(tmp_path, body)), None, None)
    assert d.ts.size == 1 and d.prices.tolist() == [[1.0, 2.0]]


def _market(path: Path, fit_end: int = 400) -> market.Market:
    data = window(load_prices(path, symbols=("ETH", "BTC", "LINK")), None, None)
    return market.prepare(data, defaults.SYMBOLS, fit_end=fit_end, gas=None)


def test_no_look_ahead_decisions_unchanged_when_future_truncated(tmp_path: Path) -> None:
    full_path = write_prices(tmp_path / "full.csv", n=1200)
    lines = full_path.read_text().splitlines()
    cut_path = tmp_path / "cut.csv"
    cut_path.write_text("\n".join(lines[: 1 + 900]) + "\n")
    spec = defaults.vault_spec(10_000_000.0)
    full, cut = _market(full_path), _market(cut_path)
    for name, params in [("preventative", {"width_bps": 300}), ("band", {"width_bps": 200})]:
        a = engine.run(full, spec, make_policy(name, params), 400, 899, keep_reasons=True)
        b = engine.run(cut, spec, make_policy(name, params), 400, 899, keep_reasons=True)
        assert a.reasons == b.reasons
        assert np.array_equal(a.trade_hours, b.trade_hours) and a.trade_hours.size > 0
        assert np.allclose(a.weights, b.weights, rtol=0, atol=0)


def test_gas_outlook_is_causal() -> None:
    ts = np.arange(500) * 3600
    g = np.exp(np.sin(np.arange(500) / 3.0)) * 20
    g2 = g.copy()
    g2[300:] *= 10
    a, b = gas_outlook(ts, g), gas_outlook(ts, g2)
    assert np.array_equal(a.min_ahead_gwei[:300], b.min_ahead_gwei[:300])
    assert np.array_equal(a.typical_gwei[:300], b.typical_gwei[:300])


def test_gas_outlook_learns_a_cheap_hour() -> None:
    ts = np.arange(24 * 60) * 3600
    g = np.where((ts // 3600) % 24 == 5, 10.0, 40.0)
    o = gas_outlook(ts, g)
    t = 24 * 59 + 12  # noon on the last day: the cheapest hour ahead is 05:00, 17 h away
    assert o.hours_to_min[t] == 17
    assert o.min_ahead_gwei[t] < 0.5 * o.typical_gwei[t]


def test_hourly_gas_prefers_hourly_then_daily_then_default() -> None:
    day0 = parse_date("2021-01-02")
    ts = np.array([day0 - 3600, day0, day0 + 3600])
    gd = GasData(hourly_ts=np.array([day0 + 3600]), hourly_gwei=np.array([77.0]),
                 daily_day=np.array([day0 // 86400]), daily_gwei=np.array([50.0]))
    s = gas.hourly_gas(ts, gd, profile=np.full(24, 2.0))
    assert s.gwei.tolist() == [gas.DEFAULT_GWEI, 100.0, 77.0]
    assert s.source.tolist() == [0, 2, 3]


def test_engine_accounting_and_threshold_stays_in_band(tmp_path: Path) -> None:
    mkt = _market(write_prices(tmp_path / "p.csv", n=1200))
    spec = defaults.vault_spec(1_000_000.0)
    res = engine.run(mkt, spec, make_policy("threshold", {"width_bps": 300}), 400, 1199)
    m = engine.metrics(res, spec)
    assert m["time_outside_outer_band_pct"] == 0.0 and m["n_trades"] > 0
    total = m["gas_cost_bps"] + m["fee_cost_bps"] + m["impact_cost_bps"] + \
        m["tracking_penalty_bps"]
    assert m["total_cost_bps"] == pytest.approx(total)
    assert np.allclose(res.weights.sum(axis=1), 1.0)
    assert np.allclose(res.nav, 1_000_000.0, rtol=1e-3)  # nominal NAV held, costs < 0.1%
    assert set(m) >= {"policy", "start", "end", "total_cost_bps", "gas_cost_bps", "fee_cost_bps",
                      "impact_cost_bps", "tracking_error_bps", "time_outside_outer_band_pct",
                      "n_trades", "hard_breaches"}


def test_split_orders_clip_over_consecutive_hours(tmp_path: Path) -> None:
    mkt = _market(write_prices(tmp_path / "p.csv", n=1200))
    spec = defaults.vault_spec(50_000_000.0)
    res = engine.run(mkt, spec, make_policy("band", {"width_bps": 300, "ret_frac": 1.0,
                                                     "split": True}), 400, 1199)
    assert np.any(np.diff(res.trade_hours) == 1)


def test_sweep_tunes_on_train_and_reports_test(tmp_path: Path) -> None:
    mkt = _market(write_prices(tmp_path / "p.csv", n=1200))
    grids = {"band": ("band", {"width_bps": [200, 400]}),
             "preventative": ("preventative", {"width_bps": [300]})}
    out = sweep.train_test(mkt, defaults.vault_spec(), ["band", "preventative"], (400, 799),
                           (800, 1199), workers=1, progress=False, grids=grids)
    band = out["total"]["band"]
    assert band["grid_size"] == 2 and band["chosen_params"]["width_bps"] in (200, 400)
    assert band["train"]["end"] < band["test"]["start"]
    assert "preventative-no-split" in out["total"]


def test_cli_backtest_json_and_bad_input(tmp_path: Path) -> None:
    app = _cli()
    p = write_prices(tmp_path / "p.csv", n=1000)
    r = CliRunner().invoke(app, ["backtest", "--prices", str(p), "--policy", "band+split",
                                 "--params", "width_bps=300", "--start", "2021-01-20", "--json",
                                 "--plot", str(tmp_path / "x.png")])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["policy"] == "band" and out["params"] == {"width_bps": 300, "split": True}
    assert out["start"].startswith("2021-01-20") and (tmp_path / "x.png").stat().st_size > 1000
    bad = _csv(tmp_path, "2021-01-01 00:00:00,1,2\n2021-01-01 00:00:00,1,2\n")
    r = CliRunner().invoke(app, ["backtest", "--prices", str(bad)])
    assert r.exit_code == 2 and "duplicate timestamp" in r.output


@pytest.mark.realdata
def test_real_usdc_weth_depth_matches_the_stated_range() -> None:
    f = SHARED_DATA / "uniswap_v3" / "usdc_weth_005_2024-01-05_minute.csv"
    if not f.is_file():
        pytest.fail(f"real data not found at {f}: the suite expects ../shared/data beside the "
                    "checkout, as CI has it")
    assert 250e6 < usdc_weth_depth_usd(f) < 320e6


def _crash_market(tmp_path: Path) -> market.Market:
    rng = np.random.default_rng(1)
    n = 900
    eth = 2000 * np.exp(np.cumsum(0.004 * rng.standard_normal(n)))
    eth[850:] *= np.linspace(1.0, 0.5, 50)  # a 50% slide over 50 hours
    ts = np.datetime64("2021-01-01T00:00:00") + np.arange(n) * np.timedelta64(1, "h")
    btc, link = eth * 15, eth / 130
    rows = [f"{str(t).replace('T', ' ')},{e:.4f},{b:.4f},{lk:.5f}"
            for t, e, b, lk in zip(ts, eth, btc, link, strict=True)]
    p = tmp_path / "crash.csv"
    p.write_text("timestamp,eth_usdt_close,btc_usdt_close,link_usdt_close\n" + "\n".join(rows))
    return _market(p)


def test_loan_replay_reactive_rule_avoids_liquidation(tmp_path: Path) -> None:
    from keeper.backtest.collateral import LoanSpec, run_loan

    mkt, spec = _crash_market(tmp_path), defaults.vault_spec()
    safe = run_loan(mkt, spec, make_policy("band"), LoanSpec(), 400, 899)
    assert safe["liquidations"] == 0 and safe["actions"] > 0
    assert safe["min_health_factor"] > 1.05 and safe["deleverage_cost_bps"] > 0
    # a band so loose that no rule fires before liquidation: the 50% slide liquidates
    loose = LoanSpec(max_ltv_bps=9900, ripcord_ltv_bps=9900, min_ltv_bps=0)
    bad = run_loan(mkt, spec, make_policy("band"), loose, 400, 899)
    assert bad["liquidations"] >= 1 and bad["liquidation_penalty_bps"] > 0
    assert bad["near_miss_episodes"] >= 1


def test_cli_sweep_reports_train_test_and_chosen_params(tmp_path: Path) -> None:
    app = _cli()
    p = write_prices(tmp_path / "p.csv", n=1300)
    r = CliRunner().invoke(app, ["backtest", "--prices", str(p), "--policy", "threshold",
                                 "--sweep", "--split", "2021-02-10", "--json", "--workers", "1"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["grid_size"] == 7 and "width_bps" in out["chosen_params"]
    assert out["train"]["end"] < "2021-02-10" <= out["test"]["start"]


def test_crash_days_are_the_worst_daily_eth_falls(tmp_path: Path) -> None:
    from keeper.backtest.collateral import crash_days

    mkt = _crash_market(tmp_path)  # the slide runs over hours 850-899: days 35-37
    days = crash_days(mkt, 400, 899, n=2)
    assert len(days) == 2
    worst = str(np.datetime64(int(mkt.ts[899]) // 86400, "D"))
    assert worst in days or str(np.datetime64(int(mkt.ts[880]) // 86400, "D")) in days
    for a, b in days.values():
        assert 400 <= a <= b <= 899 and mkt.ts[a] // 86400 == mkt.ts[b] // 86400


def test_loan_gas_comes_from_the_gas_table_rows(tmp_path: Path) -> None:
    """A collateral move pays the vault's adjustCollateral (routine) or ripcord (urgent) gas,
    not a swap leg's: with fees and impact at zero the cost is that gas exactly."""
    from keeper.backtest.collateral import LoanSpec, _act
    from keeper.costs import CostModel, PoolCost
    from keeper.models import Action, Decision

    mkt = _crash_market(tmp_path)
    free = defaults.vault_spec()
    pools = tuple(None if p is None else PoolCost(fee_ppm=0, depth_e18=10**40)
                  for p in free.cost_model.pools)
    spec = engine.VaultSpec(symbols=free.symbols, targets_bps=free.targets_bps,
                            cost_model=CostModel(pools=pools))
    gas = spec.cost_model.gas
    for urgent, units in ((False, gas.adjust_collateral), (True, gas.ripcord)):
        st: dict[str, float] = {"act": 0, "cost": 0.0}
        d = Decision(action=Action.DELEVERAGE, reason="test", target_ltv_bps=5000, urgent=urgent)
        _act(d, LoanSpec(), 100.0, 7000.0, 100.0, spec, mkt, 500, st)
        want = units * mkt.gas_wei[500] * mkt.eth_e18[500] // 10**18 / 10**18
        assert st["act"] == 1 and st["cost"] == pytest.approx(want, rel=1e-12)


def test_cli_collateral_reports_the_loan_keys_and_crash_days(tmp_path: Path) -> None:
    app = _cli()
    p = write_prices(tmp_path / "p.csv", n=1300)
    r = CliRunner().invoke(app, ["backtest", "--prices", str(p), "--collateral", "--policy",
                                 "preventative", "--params", "ltv_act_prob=0.1", "--start",
                                 "2021-01-20", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert {"liquidations", "near_miss_episodes", "min_health_factor", "actions",
            "deleverage_cost_bps", "crash_day_min_hf"} <= set(out)
    assert out["start"].startswith("2021-01-20") and out["params"] == {"ltv_act_prob": 0.1}
    assert out["crash_day_min_hf"] and all(v >= out["min_health_factor"]
                                           for v in out["crash_day_min_hf"].values())
    r = CliRunner().invoke(app, ["backtest", "--prices", str(p), "--collateral", "--policy",
                                 "band", "--start", "2021-01-20"])
    assert r.exit_code == 0 and "min HF on crash day" in r.output


def test_preventative_deleverages_early_and_cheaper_than_the_reactive_rule(tmp_path: Path
                                                                          ) -> None:
    from keeper.backtest.collateral import LoanSpec, run_loan

    mkt, spec = _crash_market(tmp_path), defaults.vault_spec()
    band = run_loan(mkt, spec, make_policy("band"), LoanSpec(), 400, 899)
    prev = run_loan(mkt, spec, make_policy("preventative"), LoanSpec(), 400, 899)
    assert prev["liquidations"] == 0 and prev["min_health_factor"] >= band["min_health_factor"]
    assert prev["deleverage_cost_bps"] < band["deleverage_cost_bps"]
