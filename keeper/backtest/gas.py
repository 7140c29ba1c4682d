"""Hourly gas for the backtest, and the causal gas outlook the policies see.

Gas per hour, in order of preference:
1. real hourly gas (`gas_hourly_2021_2023.csv` windows);
2. the day's real average gas (Etherscan daily), optionally times an intraday profile (a MODEL,
   calibrated on hourly rows before a cutoff, normalised to mean 1 so the daily average holds);
3. the default gas model: DEFAULT_GWEI flat, when no file covers the day.

The outlook (what a policy may know at hour t) is learned only from gas up to t, as the live
keeper would learn it from recent blocks: an EWMA level of log gas (half-life 72 h), an
hour-of-day profile (EWMA over past days, half-life 14 days) and an AR(1) deviation (phi 0.9/h,
near the observed lag-1 autocorrelation of 0.84-0.92). Nothing hard-codes a cheap hour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from keeper.backtest.data import GasData

FROZEN = {"frozen": True, "slots": True, "kw_only": True}
DEFAULT_GWEI = 30.0  # flat default when no file covers a day (documented in the report)
LEVEL_HALF_LIFE_H = 72.0
PROFILE_HALF_LIFE_D = 14.0
AR_PHI = 0.9
AHEAD_H = 24


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class GasSeries:
    gwei: NDArray[np.float64]  # per hour
    source: NDArray[np.int8]  # 0 default, 1 daily, 2 daily x profile, 3 hourly


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class GasOutlook:
    typical_gwei: NDArray[np.float64]
    min_ahead_gwei: NDArray[np.float64]
    hours_to_min: NDArray[np.int64]


def intraday_profile(gas: GasData, before_ts: int | None) -> NDArray[np.float64]:
    """24 multipliers (mean 1): median hour-of-day gas relative to its day's median."""
    ts, g = gas.hourly_ts, gas.hourly_gwei
    if before_ts is not None:
        keep = ts < before_ts
        ts, g = ts[keep], g[keep]
    if ts.size < 24 * 7:
        return np.ones(24)
    day, hod = ts // 86400, (ts // 3600) % 24
    logg = np.log(g)
    rel = np.empty_like(logg)
    for d in np.unique(day):
        m = day == d
        rel[m] = logg[m] - np.median(logg[m])
    prof = np.exp(np.array([np.median(rel[hod == h]) for h in range(24)]))
    norm: NDArray[np.float64] = prof / prof.mean()
    return norm


def hourly_gas(ts: NDArray[np.int64], gas: GasData | None,
               profile: NDArray[np.float64] | None = None,
               default_gwei: float = DEFAULT_GWEI) -> GasSeries:
    """Gas price (gwei) for each hour in `ts`, with its source code."""
    out = np.full(ts.size, default_gwei)
    src = np.zeros(ts.size, dtype=np.int8)
    if gas is None:
        return GasSeries(gwei=out, source=src)
    if gas.daily_day.size:
        pos = np.searchsorted(gas.daily_day, ts // 86400)
        pos_c = np.clip(pos, 0, gas.daily_day.size - 1)
        hit = gas.daily_day[pos_c] == ts // 86400
        out[hit] = gas.daily_gwei[pos_c[hit]]
        src[hit] = 1
        if profile is not None:
            out[hit] *= profile[(ts[hit] // 3600) % 24]
            src[hit] = 2
    if gas.hourly_ts.size:
        order = np.argsort(gas.hourly_ts)
        hts, hg = gas.hourly_ts[order], gas.hourly_gwei[order]
        pos_c = np.clip(np.searchsorted(hts, ts), 0, hts.size - 1)
        hit = hts[pos_c] == ts
        out[hit] = hg[pos_c[hit]]
        src[hit] = 3
    return GasSeries(gwei=out, source=src)


def _ewma(x: NDArray[np.float64], half_life: float) -> NDArray[np.float64]:
    lam = 0.5 ** (1.0 / half_life)
    y: NDArray[np.float64]  # scipy is untyped
    y, _ = signal.lfilter([1.0 - lam], [1.0, -lam], x, zi=np.array([lam * x[0]]))
    return y


def _profile_matrix(dev: NDArray[np.float64], hod: NDArray[np.int64]) -> NDArray[np.float64]:
    """prof[t, h]: EWMA (over days) of the level-relative log gas at hour h, as known at t."""
    t_n = dev.size
    prof = np.zeros((t_n, 24))
    for h in range(24):
        idx = np.flatnonzero(hod == h)
        if idx.size == 0:
            continue
        vals = _ewma(dev[idx], PROFILE_HALF_LIFE_D)
        col = np.full(t_n, np.nan)
        col[idx] = vals
        known = np.where(~np.isnan(col), np.arange(t_n), -1)
        np.maximum.accumulate(known, out=known)
        prof[:, h] = np.where(known >= 0, col[np.maximum(known, 0)], 0.0)
    return prof


def outlook(ts: NDArray[np.int64], gwei: NDArray[np.float64]) -> GasOutlook:
    """Causal typical level and next-24h minimum forecast for each hour."""
    logg = np.log(gwei)
    level = _ewma(logg, LEVEL_HALF_LIFE_H)
    hod = ((ts // 3600) % 24).astype(int)
    prof = _profile_matrix(logg - level, hod)
    prof -= prof.mean(axis=1, keepdims=True)
    resid = logg - level - prof[np.arange(ts.size), hod]
    ks = np.arange(1, AHEAD_H + 1)
    fut_h = (hod[:, None] + ks[None, :]) % 24
    fc = level[:, None] + np.take_along_axis(prof, fut_h, axis=1) + resid[:, None] * AR_PHI**ks
    k_min = np.argmin(fc, axis=1)
    typical = np.exp(level) * np.exp(prof).mean(axis=1)
    return GasOutlook(typical_gwei=typical, min_ahead_gwei=np.exp(fc[np.arange(ts.size), k_min]),
                      hours_to_min=(k_min + 1).astype(int))
