"""Shared builders for the issue-5 unit tests (synthetic, seeded)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from keeper.backtest import defaults
from keeper.backtest.engine import _limits, build_state
from keeper.costs import CostInputs
from keeper.models import CollateralState, Forecast, VaultState
from keeper.units import ONE_E18, WEI_PER_GWEI

# ../shared/data beside the checkout (as CI has it), or where VAULT_SHARED_DATA points
SHARED_DATA = Path(os.environ.get("VAULT_SHARED_DATA",
                                  Path(__file__).resolve().parents[2].parent / "shared" / "data"))


def make_state(weights_bps: list[int], nav_usd: float = 10_000_000.0, last_ts: int = 0,
               collateral: CollateralState | None = None) -> VaultState:
    spec = defaults.vault_spec(nav_usd)
    vals = [w / sum(weights_bps) * nav_usd for w in weights_bps]
    s = build_state(spec, vals, last_ts, 0, _limits(spec))
    if collateral is None:
        return s
    return VaultState(address=s.address, assets=s.assets, nav_e18=s.nav_e18, epoch=0,
                      last_rebalance_ts=last_ts, limits=s.limits, paused=False,
                      collateral=collateral)


def make_forecast(vol_scale: float = 1.0, now_ts: int = 0, horizon_h: float = 24.0
                  ) -> Forecast:
    vols = tuple(v * vol_scale for v in (0.008, 0.007, 0.012, 0.0))
    corr = ((1.0, 0.8, 0.6, 0.0), (0.8, 1.0, 0.6, 0.0), (0.6, 0.6, 1.0, 0.0),
            (0.0, 0.0, 0.0, 1.0))
    return Forecast(horizon_h=horizon_h, vol_per_h_frac=vols, corr=corr, breach_prob=float("nan"),
                    expected_time_to_breach_h=float("nan"), now_ts=now_ts,
                    long_run_vol_per_h_frac=(0.008, 0.007, 0.012, 0.0), ltv_vol_per_h_frac=0.01)


def make_costs(gas_gwei: float = 30.0, typical_gwei: float | None = None,
               min_ahead_gwei: float | None = None, hours_to_min: int = 6,
               eth_usd: float = 2000.0) -> CostInputs:
    g = int(gas_gwei * WEI_PER_GWEI)
    typ = int((typical_gwei or gas_gwei) * WEI_PER_GWEI)
    mn = int((min_ahead_gwei or gas_gwei) * WEI_PER_GWEI)
    return CostInputs(model=defaults.cost_model(), gas_price_wei=g, gas_typical_wei=typ,
                      gas_min_ahead_wei=mn, hours_to_min_ahead=hours_to_min,
                      eth_usd_e18=int(eth_usd) * ONE_E18)


def write_prices(path: Path, n: int = 1500, seed: int = 0, start: str = "2021-01-01") -> Path:
    """Hourly GBM prices for ETH, BTC, LINK with a volatile second half."""
    rng = np.random.default_rng(seed)
    vol = np.where(np.arange(n) < n // 2, 0.006, 0.015)[:, None]
    z = rng.standard_normal((n, 3)) @ np.linalg.cholesky(
        np.array([[1, 0.8, 0.6], [0.8, 1, 0.6], [0.6, 0.6, 1]])).T
    px = np.exp(np.cumsum(z * vol, axis=0)) * np.array([2000.0, 30000.0, 15.0])
    ts = np.datetime64(start + "T00:00:00") + np.arange(n) * np.timedelta64(1, "h")
    lines = ["timestamp,btc_usdt_close,eth_usdt_close,link_usdt_close,ffilled_assets"]
    for t, (e, b, lk) in zip(ts, px, strict=True):
        lines.append(f"{str(t).replace('T', ' ')},{b:.4f},{e:.4f},{lk:.5f},")
    path.write_text("\n".join(lines) + "\n")
    return path
