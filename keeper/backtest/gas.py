"""Hourly gas for the backtest, and the causal gas outlook the policies see.

Gas per hour, in order of preference:
1. real hourly gas (`gas_hourly_2021_2023.csv` windows);
2. the day's real average gas (Etherscan daily), optionally times an intraday profile (a MODEL,
   calibrated on hourly rows before a cutoff, normalised to mean 1 so the daily average holds);
3. the default gas model: DEFAULT_GWEI flat, when no file covers the day.

The outlook a policy sees at each hour is learned from gas up to that hour by
`keeper.forecast.gas`, the same function the live keeper runs on the gas it records.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from keeper.backtest.data import GasData

FROZEN = {"frozen": True, "slots": True, "kw_only": True}
DEFAULT_GWEI = 30.0  # flat default when no file covers a day (documented in the report)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class GasSeries:
    gwei: NDArray[np.float64]  # per hour
    source: NDArray[np.int8]  # 0 default, 1 daily, 2 daily x profile, 3 hourly


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
