"""Everything the replay needs per hour, precomputed once and shared by every policy in a sweep.

Vol models are fitted on [fit_start, fit_end) only (the training window, or the history before
`--start`), then run as causal filters: the forecast at hour t uses returns up to t.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

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
T = TypeVar("T")


class Rows(Generic[T]):
    """Row t of a per-hour table as the Python objects a decision needs, made on first use
    (a fast replay touches a few thousand of 43,000 hours) and kept."""

    __slots__ = ("_cache", "_make", "_n")

    def __init__(self, make: Callable[[int], T], n: int) -> None:
        self._make, self._n = make, n
        self._cache: dict[int, T] = {}

    def __getitem__(self, t: int) -> T:
        if t < 0:
            t += self._n
        if not 0 <= t < self._n:
            raise IndexError(f"hour {t} outside the market's {self._n} rows")
        row = self._cache.get(t)
        if row is None:
            row = self._cache[t] = self._make(t)
        return row

    def __len__(self) -> int:
        return self._n


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Market:
    ts: NDArray[np.int64]
    symbols: tuple[str, ...]
    px_rows: Rows[list[float]]  # (T, N) with the cash asset at 1.0
    vol_rows: Rows[tuple[float, ...]]  # average hourly vol over the forecast horizon, known at t
    vol_lr: tuple[float, ...]  # long-run (unconditional) hourly vol per asset
    cov: NDArray[np.float64]  # (T, N, N) causal EWMA covariance, hourly
    corr: NDArray[np.float64]
    corr_rows: Rows[tuple[tuple[float, ...], ...]]  # `corr` as the tuples a Forecast holds
    horizon_h: float
    gas_gwei: NDArray[np.float64]
    gas_source: NDArray[np.int8]
    gas_wei: Rows[int]
    outlook: Rows[GasOutlook]  # what the gas history up to each hour says (keeper.forecast.gas)
    eth_e18: Rows[int]
    fit_note: str
    # the same numbers as arrays, for the replay's screen over many hours (keeper/backtest/fast.py)
    px: NDArray[np.float64]  # (T, N)
    vol: NDArray[np.float64]  # (T, N)
    gas_wei_f: NDArray[np.float64]  # float(gas_wei[t])
    typical_wei_f: NDArray[np.float64]  # float(outlook[t].typical_wei)
    eth_e18_f: NDArray[np.float64]  # float(eth_e18[t])

    def index(self, ts: int) -> int:
        return int(np.searchsorted(self.ts, ts))


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
    n = prices.ts.size
    gas_wei_f = np.round(gs.gwei * WEI_PER_GWEI)  # the integers below, as floats (exact)
    eth_e18_f = eth * float(ONE_E18)  # int(x * ONE_E18) is this float's integer value
    return Market(ts=prices.ts, symbols=symbols,
                  px_rows=Rows(lambda t: all_px[t].tolist(), n),
                  vol_rows=Rows(lambda t: tuple(vols[t].tolist()), n), vol_lr=tuple(lr),
                  cov=cov, corr=corr,
                  corr_rows=Rows(lambda t: tuple(map(tuple, corr[t].tolist())), n),
                  horizon_h=float(horizon_h), gas_gwei=gs.gwei, gas_source=gs.source,
                  gas_wei=Rows(lambda t: int(gas_wei_f[t]), n), outlook=Rows(ol.at, n),
                  eth_e18=Rows(lambda t: int(eth_e18_f[t]), n), fit_note=note, px=all_px,
                  vol=vols, gas_wei_f=gas_wei_f,
                  typical_wei_f=np.round(ol.typical_gwei * WEI_PER_GWEI),
                  eth_e18_f=eth_e18_f)


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
