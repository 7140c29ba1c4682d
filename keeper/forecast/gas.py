"""The gas outlook a policy may know at an hour, learned only from gas up to that hour: the live
keeper runs it on the hourly gas it records from the chain, the backtester on a gas file.

An EWMA level of log gas (half-life 72 h), an hour-of-day profile (EWMA over past days,
half-life 14 days) and an AR(1) deviation (phi 0.9/h, near the observed lag-1 autocorrelation of
hourly log gas, 0.84-0.92 in the study data): the typical level, and the forecast cheapest hour
of the next day. Nothing hard-codes a cheap hour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from keeper.forecast.vol import iir1
from keeper.models import GasOutlook

LEVEL_HALF_LIFE_H = 72.0
PROFILE_HALF_LIFE_D = 14.0
AR_PHI = 0.9
AHEAD_H = 24
WEI_PER_GWEI = 10**9


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class GasOutlookPath:
    """The outlook at every hour of a series (gwei)."""

    typical_gwei: NDArray[np.float64]
    min_ahead_gwei: NDArray[np.float64]
    hours_to_min: NDArray[np.int64]

    def at(self, t: int) -> GasOutlook:
        return GasOutlook(typical_wei=_wei(self.typical_gwei[t]),
                          min_ahead_wei=_wei(self.min_ahead_gwei[t]),
                          hours_to_min_ahead=int(self.hours_to_min[t]))


def _wei(gwei: float) -> int:
    return round(float(gwei) * WEI_PER_GWEI)


def _ewma(x: NDArray[np.float64], half_life: float) -> NDArray[np.float64]:
    """y[t] = lam*y[t-1] + (1-lam)*x[t], from y[-1] = x[0] (without scipy: see iir1)."""
    lam = 0.5 ** (1.0 / half_life)
    return iir1(x, 1.0 - lam, lam, lam * x[0])


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


def outlook(ts: NDArray[np.int64], gwei: NDArray[np.float64]) -> GasOutlookPath:
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
    return GasOutlookPath(typical_gwei=typical,
                          min_ahead_gwei=np.exp(fc[np.arange(ts.size), k_min]),
                          hours_to_min=(k_min + 1).astype(int))


def outlook_now(hours_ts: NDArray[np.int64], gwei: NDArray[np.float64]) -> GasOutlook | None:
    """The outlook at the last hour of a gas history; None without history to learn from."""
    if gwei.size == 0:
        return None
    return outlook(hours_ts, np.maximum(gwei, 1e-9)).at(int(gwei.size) - 1)
