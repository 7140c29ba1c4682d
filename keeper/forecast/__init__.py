"""The forecast stage: volatility models and breach probabilities -> `Forecast`.

`build_forecast` is what the live keeper and the backtester both call: it takes the vault state
and per-asset volatility forecasts (from `vol.py`, fitted on oracle or file price history) and
returns the `Forecast` the policies read. The cash asset (USDC) has vol 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from keeper.forecast import breach, vol
from keeper.forecast.breach import band_breach, ltv_breach_prob
from keeper.models import Forecast, VaultState
from keeper.units import BPS

__all__ = ["band_breach", "breach", "build_forecast", "ltv_breach_prob", "vol"]


def state_weights(state: VaultState) -> tuple[list[float], list[float], list[float]]:
    """(weights, targets, outer bands) of a vault as fractions."""
    w = [a.weight_bps / BPS for a in state.assets]
    t = [a.target_bps / BPS for a in state.assets]
    b = [a.outer_band_bps / BPS for a in state.assets]
    return w, t, b


def _tuple_rows(corr: Sequence[Sequence[float]]) -> tuple[tuple[float, ...], ...]:
    """`corr` as a tuple of tuples; passed through when it already is one (the backtester
    precomputes them once per market)."""
    if isinstance(corr, tuple) and all(type(row) is tuple for row in corr):
        return corr
    return tuple(tuple(row) for row in corr)


def _ltv_part(state: VaultState, ltv_vol: float, horizon_h: float) -> float:
    c = state.collateral
    if c is None or c.debt_e8 == 0:
        return 0.0
    return ltv_breach_prob(c.ltv_bps / BPS, c.max_ltv_bps / BPS, ltv_vol, horizon_h)


def build_forecast(state: VaultState, *, vol_per_h: Sequence[float],
                   corr: Sequence[Sequence[float]], horizon_h: float, now_ts: int,
                   long_run_vol_per_h: Sequence[float] = (), ltv_vol_per_h: float = 0.0
                   ) -> Forecast:
    """Forecast for one vault at one hour.

    `vol_per_h` is the average hourly vol expected over the horizon (GARCH term structure);
    `now_ts` is the hour the forecast is for: policies use it for the time of day.
    """
    w, t, b = state_weights(state)
    p, et = band_breach(w, t, b, vol_per_h, corr, horizon_h)
    return Forecast(
        horizon_h=horizon_h,
        vol_per_h_frac=tuple(vol_per_h),
        corr=_tuple_rows(corr),
        breach_prob=p,
        expected_time_to_breach_h=et if et > 0 else 0.0,
        ltv_breach_prob=_ltv_part(state, ltv_vol_per_h, horizon_h),
        now_ts=now_ts,
        long_run_vol_per_h_frac=tuple(long_run_vol_per_h) or tuple(vol_per_h),
        ltv_vol_per_h_frac=ltv_vol_per_h,
    )


def forecast_from_history(state: VaultState, prices: Sequence[Sequence[float]], *,
                          horizon_h: float, now_ts: int, model: str = "garch") -> Forecast:
    """Fit a vol model on an hourly price history (rows = hours, columns = the vault's assets,
    constant 1.0 for cash) and build the forecast: the live keeper's path from oracle history."""
    import numpy as np

    px = np.asarray(prices, dtype=float)
    r = vol.log_returns(px)
    vols, lr = [], []
    for j in range(px.shape[1]):
        if float(np.var(r[:, j])) == 0.0:
            vols.append(0.0)
            lr.append(0.0)
            continue
        v_h, v_lr = _one_asset(r[:, j], horizon_h, model)
        vols.append(v_h)
        lr.append(v_lr)
    lam = vol.fit_ewma(r[:, int(np.argmax(vols))]).lam
    corr = vol.cov_to_corr(vol.ewma_cov(r, lam, np.cov(r.T))[-1]).tolist()
    return build_forecast(state, vol_per_h=vols, corr=corr, horizon_h=horizon_h, now_ts=now_ts,
                          long_run_vol_per_h=lr)


def _one_asset(r: object, horizon_h: float, model: str) -> tuple[float, float]:
    if model == "ewma":
        p = vol.fit_ewma(r)  # type: ignore[arg-type]
        v = float(vol.ewma_var(r, p.lam, p.var0)[-1])  # type: ignore[arg-type]
        return math.sqrt(v), math.sqrt(p.var0)
    g = vol.fit_garch(r)  # type: ignore[arg-type]
    v_next = float(vol.garch_var(r, g)[-1])  # type: ignore[arg-type]
    h = max(1, round(horizon_h))
    return math.sqrt(float(vol.garch_horizon_var(v_next, g, h)) / h), math.sqrt(g.long_run_var)
