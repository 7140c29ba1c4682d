"""The live forecast stage: each vault's hourly oracle history -> `Forecast`.

It fits the shared volatility model (`keeper.forecast.model`) on the history once, keeps the fit
for `refit_h` hours of new history, and runs the fitted filters over the history at every tick:
the same two functions the backtester runs over a price file. Until the history holds
`MIN_HISTORY_H` hours, documented default vols stand in (`DEFAULT_VOL_PER_H`), and the
forecast says so in its notes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from keeper.errors import ForecastError
from keeper.forecast import build_forecast, vol
from keeper.forecast.model import VolFit, check_model, fit_vols, vol_paths
from keeper.forecast.model import portfolio_vol as _portfolio_vol
from keeper.models import DEFAULT_VOL_MODEL, Forecast, OracleHistory, VaultState

# Hourly vol per asset (fractions) until the history is long enough to fit: typical 2019-2023
# levels of the study data (ETH about 0.75%/h, BTC 0.6%/h, LINK 1.1%/h), and 0.5 correlation.
DEFAULT_VOL_PER_H = {"WETH": 0.0075, "WBTC": 0.0060, "LINK": 0.0110, "USDC": 0.0}
DEFAULT_VOL_OTHER = 0.01
DEFAULT_CORR = 0.5
MIN_HISTORY_H = 240  # a three-parameter fit needs >= 200 hourly returns
REFIT_H = 168  # refit weekly: the parameters move slowly, the filters every hour
SHARED_FITS = 64  # fits (and filter runs) kept for vaults on the same feeds
LatestVols = tuple[tuple[float, ...], NDArray[np.float64], tuple[float, ...]]


@dataclass(slots=True)
class Forecaster:
    """Fits per vault, kept between ticks; the only state of the forecast stage."""

    model: str = DEFAULT_VOL_MODEL
    refit_h: int = REFIT_H
    _fits: dict[str, tuple[int, VolFit]] = field(default_factory=dict)
    _shared: dict[tuple[object, ...], VolFit] = field(default_factory=dict)
    _latest_runs: dict[tuple[object, ...], tuple[VolFit, LatestVols]] = field(
        default_factory=dict)

    def __post_init__(self) -> None:
        check_model(self.model)

    def forecast(self, state: VaultState, history: OracleHistory, *, horizon_h: float,
                 now_ts: int) -> Forecast:
        if len(history) < MIN_HISTORY_H:
            return default_forecast(state, horizon_h=horizon_h, now_ts=now_ts,
                                    have_h=len(history))
        r = vol.log_returns(history.prices)
        fit = self._fit(state, history, r)
        vols, corr, long_run = self._latest(history, r, fit, horizon_h)
        return build_forecast(state, vol_per_h=vols, corr=corr.tolist(), horizon_h=horizon_h,
                              now_ts=now_ts, long_run_vol_per_h=long_run,
                              ltv_vol_per_h=collateral_vol(state, vols, corr))

    def _latest(self, history: OracleHistory, r: NDArray[np.float64], fit: VolFit,
                horizon_h: float) -> LatestVols:
        """The filters' last row: vols, correlation, long-run vols. Vaults on the same prices
        with the same fit share one run per tick (the key holds the prices' digest, so equal
        keys mean equal inputs; the entry keeps its fit, so the fit's id is not reused)."""
        digest = hashlib.blake2b(np.ascontiguousarray(history.prices).tobytes(),
                                 digest_size=16).digest()
        key = (digest, id(fit), horizon_h)
        held = self._latest_runs.get(key)
        if held is not None:
            return held[1]
        paths = vol_paths(r, fit, horizon_h)
        got = (tuple(float(x) for x in paths.vol[-1]), vol.cov_to_corr(paths.cov[-1]),
               paths.long_run)
        kept = dict(list(self._latest_runs.items())[-SHARED_FITS:])
        self._latest_runs = {key: (fit, got), **kept}
        return got

    def prime(self, state: VaultState, history: OracleHistory) -> None:
        """Fit on `history` now, as the backtester fits on the rows before its window: a replay
        starts the live keeper from the same fit (later refits follow `refit_h` as usual)."""
        r = vol.log_returns(np.asarray(history.prices, dtype=float))
        self._fits.pop(state.address, None)
        self._fit(state, history, r)

    def _fit(self, state: VaultState, history: OracleHistory, r: NDArray[np.float64]) -> VolFit:
        """The vault's fit, refitted once `refit_h` new hours have come in. Vaults on the same
        feeds with the same history share one fit (the same rows give the same parameters)."""
        last = int(history.hours_ts[-1])
        held = self._fits.get(state.address)
        usable = held is not None and len(held[1].params) == r.shape[1]
        if held is not None and usable and last - held[0] < self.refit_h * 3600:
            return held[1]
        key = (tuple(a.feed.feed for a in state.assets), int(history.hours_ts[0]), last, len(r))
        fit = self._shared.get(key)
        if fit is None:
            try:
                fit = fit_vols(r, self.model)
            except ForecastError:
                if held is not None and usable:
                    return held[1]  # keep the last good fit rather than lose the forecast
                raise
            self._shared = {key: fit, **dict(list(self._shared.items())[-SHARED_FITS:])}
        self._fits[state.address] = (last, fit)
        return fit


def collateral_vol(state: VaultState, vols: tuple[float, ...], corr: NDArray[np.float64]) -> float:
    """Hourly vol of log(LTV): the vol of the basket's risky assets held at their targets (the
    collateral a vault posts), against a stable debt."""
    if state.collateral is None:
        return 0.0
    w = [float(a.target_bps) if v > 0 else 0.0 for a, v in zip(state.assets, vols, strict=True)]
    return _portfolio_vol(vols, corr, w)


def default_forecast(state: VaultState, *, horizon_h: float, now_ts: int,
                     have_h: int = 0) -> Forecast:
    """The forecast from documented default vols, while the history is too short to fit."""
    vols = tuple(DEFAULT_VOL_PER_H.get(a.symbol, DEFAULT_VOL_OTHER) for a in state.assets)
    n = len(vols)
    corr = np.array([[1.0 if i == j else DEFAULT_CORR for j in range(n)] for i in range(n)])
    f = build_forecast(state, vol_per_h=vols, corr=corr.tolist(), horizon_h=horizon_h,
                       now_ts=now_ts, ltv_vol_per_h=collateral_vol(state, vols, corr))
    note = f"default vols: {have_h} h of history, a fit needs {MIN_HISTORY_H}"
    return replace(f, notes=(note,))
