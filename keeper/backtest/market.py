"""Everything the replay needs per hour, precomputed once and shared by every policy in a sweep.

Vol models are fitted on [fit_start, fit_end) only (the training window, or the history before
`--start`), then run as causal filters: the forecast at hour t uses returns up to t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from keeper.backtest import gas as gasmod
from keeper.backtest.data import GasData, PriceData
from keeper.errors import DataError
from keeper.forecast import vol
from keeper.forecast.gas import outlook as gas_outlook
from keeper.forecast.model import fit_vols, vol_paths
from keeper.models import DEFAULT_VOL_MODEL, GasOutlook
from keeper.units import ONE_E18, WEI_PER_GWEI

MIN_FIT_H = 720  # 30 days


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Market:
    ts: NDArray[np.int64]
    symbols: tuple[str, ...]
    px_rows: list[list[float]]  # (T, N) with the cash asset at 1.0
    vol_rows: list[tuple[float, ...]]  # average hourly vol over the forecast horizon, known at t
    vol_lr: tuple[float, ...]  # long-run (unconditional) hourly vol per asset
    cov: NDArray[np.float64]  # (T, N, N) causal EWMA covariance, hourly
    corr: NDArray[np.float64]
    corr_rows: list[tuple[tuple[float, ...], ...]]  # `corr` as the tuples a Forecast holds
    horizon_h: float
    gas_gwei: NDArray[np.float64]
    gas_source: NDArray[np.int8]
    gas_wei: list[int]
    outlook: list[GasOutlook]  # what the gas history up to each hour says (keeper.forecast.gas)
    eth_e18: list[int]
    fit_note: str

    def index(self, ts: int) -> int:
        return int(np.searchsorted(self.ts, ts))


def _wei(gwei: NDArray[np.float64]) -> list[int]:
    return [int(x) for x in np.round(gwei * WEI_PER_GWEI)]


def prepare(prices: PriceData, symbols: tuple[str, ...], *, fit_end: int, gas: GasData | None,
            profile: NDArray[np.float64] | None = None, horizon_h: int = 24,
            model: str = DEFAULT_VOL_MODEL, cash: str = "USDC") -> Market:
    """Build the per-hour market from a validated price window. `fit_end` is a row index: the
    vol model is fitted on rows [0, fit_end) and run over every row (`keeper.forecast.model`,
    the same functions as the live keeper's forecast)."""
    risky = [s for s in symbols if s != cash]
    cols = [prices.symbols.index(s) for s in risky]
    px = prices.prices[:, cols]
    if np.isnan(px).any():
        raise DataError(f"{prices.source}: NaN prices inside the backtest window for {risky}")
    fit_end = max(fit_end, min(MIN_FIT_H, len(px) - 1))
    all_px = np.ones((len(px), len(symbols)))
    for k, s in enumerate(risky):
        all_px[:, symbols.index(s)] = px[:, k]
    r = vol.log_returns(all_px)
    fit = fit_vols(r[:fit_end], model)
    paths = vol_paths(r, fit, horizon_h)
    note = f"fit rows [1, {fit_end}), {model}: {fit.note}"
    return _with_gas(prices, symbols, all_px, paths.vol, list(paths.long_run), paths.cov,
                     horizon_h, gas, profile, note)


def _with_gas(prices: PriceData, symbols: tuple[str, ...], all_px: NDArray[np.float64],
              vols: NDArray[np.float64], lr: list[float], cov: NDArray[np.float64],
              horizon_h: int, gas: GasData | None,
              profile: NDArray[np.float64] | None, note: str) -> Market:
    gs = gasmod.hourly_gas(prices.ts, gas, profile)
    ol = gas_outlook(prices.ts, gs.gwei)
    eth_col = prices.symbols.index("ETH")
    eth = prices.prices[:, eth_col]
    corr = vol.cov_to_corr(cov)
    return Market(ts=prices.ts, symbols=symbols, px_rows=all_px.tolist(),
                  vol_rows=[tuple(r) for r in vols.tolist()], vol_lr=tuple(lr), cov=cov,
                  corr=corr, corr_rows=[tuple(map(tuple, c)) for c in corr.tolist()],
                  horizon_h=float(horizon_h),
                  gas_gwei=gs.gwei, gas_source=gs.source, gas_wei=_wei(gs.gwei),
                  outlook=[ol.at(t) for t in range(prices.ts.size)],
                  eth_e18=[int(x * ONE_E18) for x in eth], fit_note=note)


def from_files(prices_path: str, gas_paths: list[str], symbols: tuple[str, ...], *,
               start: str | None, end: str | None, fit_before: str | None,
               gas_profile: bool = False, fill: str = "error", horizon_h: int = 24
               ) -> tuple[Market, int, int]:
    """Load, validate and precompute; returns the market and the [i0, i1] rows of the window.

    Vol models are fitted on the rows before `fit_before` (default: `start`); the intraday gas
    profile, when asked for, is calibrated on hourly gas rows before the same date.
    """
    from keeper.backtest.data import load_gas, load_prices, parse_date, select, window

    raw = load_prices(prices_path, fill=fill)
    risky = tuple(s for s in symbols if s != "USDC")
    data = window(select(raw, tuple(dict.fromkeys((*risky, "ETH")))), None,
                  parse_date(end) + 86399 if end else None)
    gas = load_gas(list(gas_paths)) if gas_paths else None
    fit_from = fit_before or start
    cut = parse_date(fit_from) if fit_from else None
    profile = gasmod.intraday_profile(gas, cut) if (gas is not None and gas_profile) else None
    i0 = int(np.searchsorted(data.ts, parse_date(start))) if start else 0
    if i0 >= data.ts.size:
        raise DataError(f"--start {start} is after the last complete row of {prices_path}")
    fit_end = int(np.searchsorted(data.ts, cut)) if cut is not None else i0
    mkt = prepare(data, symbols, fit_end=fit_end, gas=gas, profile=profile, horizon_h=horizon_h)
    return mkt, i0, int(data.ts.size - 1)
