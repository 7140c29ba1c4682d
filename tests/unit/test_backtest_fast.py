"""The replay's fast path (keeper/backtest/fast.py) against the plain hour-by-hour replay: the
same metrics, the same trade hours and the same weights, bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bt_helpers import SHARED_DATA, write_prices

from keeper.backtest import defaults, engine, market
from keeper.backtest.data import load_prices, window
from keeper.policy import make_policy

FAMILIES = [("calendar", {"period_h": 48}), ("threshold", {"width_bps": 300}),
            ("band", {"width_bps": 250, "ret_frac": 0.5}),
            ("band", {"width_bps": 300, "ret_frac": 0.25, "split": True}),
            ("preventative", {}), ("preventative", {"width_bps": 400, "ret_scale": 0.5}),
            ("preventative", {"gas_timing": False, "vol_scaling": False, "split": False})]


def assert_same(mkt: market.Market, spec: engine.VaultSpec, name: str, params: dict[str, object],
                i0: int, i1: int) -> None:
    pol = make_policy(name, params)
    fast = engine.run(mkt, spec, pol, i0, i1, params)
    ref = engine.run(mkt, spec, pol, i0, i1, params, fast=False)
    assert fast.trade_hours.tolist() == ref.trade_hours.tolist()
    assert engine.metrics(fast, spec) == engine.metrics(ref, spec)
    for a in ("weights", "nav", "gas_usd", "fee_usd", "impact_usd", "penalty_usd"):
        assert np.array_equal(getattr(fast, a), getattr(ref, a)), a


@pytest.mark.parametrize(("name", "params"), FAMILIES)
@pytest.mark.parametrize("nav", [100_000.0, 10_000_000.0])
def test_fast_path_equals_the_hour_by_hour_replay(tmp_path: Path, name: str,
                                                  params: dict[str, object], nav: float) -> None:
    path = write_prices(tmp_path / "p.csv", n=3000, seed=3)
    data = window(load_prices(path, symbols=("ETH", "BTC", "LINK")), None, None)
    mkt = market.prepare(data, defaults.SYMBOLS, fit_end=500, gas=None)
    spec = defaults.vault_spec(nav)
    ref = engine.run(mkt, spec, make_policy(name, params), 500, 2999, fast=False)
    assert ref.trade_hours.size > 0  # the comparison covers trades, not only holds
    assert_same(mkt, spec, name, params, 500, 2999)


@pytest.mark.realdata
@pytest.mark.parametrize(("name", "params"), FAMILIES[:5])
def test_fast_path_equals_reference_on_five_real_years(name: str, params: dict[str, object]
                                                       ) -> None:
    prices = SHARED_DATA / "prices_hourly_2019_2023.csv"
    if not prices.is_file():
        pytest.fail(f"real data not found at {prices}: the suite expects ../shared/data beside "
                    "the checkout, as CI has it")
    gas = [str(SHARED_DATA / "daily_prices_gas_2018_2023.csv"),
           str(SHARED_DATA / "gas_hourly_2021_2023.csv")]
    mkt, i0, i1 = market.from_files(str(prices), gas, defaults.SYMBOLS, start=None, end=None,
                                    fit_before="2020-01-01")
    # splitting and the preventative's terms depend on size: those at both sizes
    navs = (100_000.0, 10_000_000.0) if name == "preventative" or params.get("split") else \
        (100_000.0,)
    for nav in navs:
        assert_same(mkt, defaults.vault_spec(nav), name, params, i0, i1)
