"""Replay of a collateral position (ETH collateral, USDC debt) under a policy's `decide()`.

Aave-style numbers (defaults): target LTV 50%, band 40-65%, ripcord 75%, liquidation threshold
82.5%, liquidation penalty 5% of the repaid debt, close factor 50%. The basket part of the state is
held at target so only the collateral rules act. Deleverage sells ETH for USDC and repays;
releverage borrows USDC and buys ETH; both pay the ETH pool's fee and impact, and the gas of the
vault's call from the measured gas table: `adjust_collateral` for a routine move, `ripcord` for
an urgent one (keeper/data/vault_gas.json). Equity is rescaled to the nominal size each hour
(same convention as the engine), keeping LTV. A near miss is an episode with health factor
below 1.05. Crash days are found in the data: the days of the largest daily ETH falls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from keeper.backtest.engine import VaultSpec, _costs, _limits, build_state
from keeper.backtest.market import Market
from keeper.costs import fee_cost_e18, impact_cost_e18
from keeper.models import Action, CollateralState, Decision, Forecast
from keeper.policy.base import Policy
from keeper.units import BPS, ONE_E8, ONE_E18, Bps

N_CRASH_DAYS = 6  # the worst daily ETH falls of a window, at least CRASH_GAP_D days apart
CRASH_GAP_D = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class LoanSpec:
    equity_usd: float = 10_000_000.0
    target_ltv_bps: int = 5000
    min_ltv_bps: int = 4000
    max_ltv_bps: int = 6500
    ripcord_ltv_bps: int = 7500
    liq_threshold_bps: int = 8250
    liq_penalty_frac: float = 0.05
    near_miss_hf: float = 1.05


def _coll_state(loan: LoanSpec, coll_usd: float, debt_usd: float) -> CollateralState:
    ltv = round(debt_usd / coll_usd * BPS) if coll_usd > 0 else BPS
    hf = int(loan.liq_threshold_bps / max(ltv, 1) * ONE_E18)
    return CollateralState(collateral_e8=int(coll_usd * ONE_E8), debt_e8=int(debt_usd * ONE_E8),
                           health_factor_e18=hf, ltv_bps=Bps(ltv),
                           liquidation_threshold_bps=Bps(loan.liq_threshold_bps),
                           target_ltv_bps=Bps(loan.target_ltv_bps),
                           min_ltv_bps=Bps(loan.min_ltv_bps), max_ltv_bps=Bps(loan.max_ltv_bps),
                           ripcord_ltv_bps=Bps(loan.ripcord_ltv_bps))


def _trade_to(loan: LoanSpec, coll: float, debt: float, target_bps: int) -> float:
    """USD of ETH to sell (> 0, repaying debt) or buy (< 0, new debt) to reach the target LTV."""
    t = target_bps / BPS
    return (debt - t * coll) / (1.0 - t)


def run_loan(mkt: Market, spec: VaultSpec, policy: Policy, loan: LoanSpec, i0: int, i1: int
             ) -> dict[str, Any]:
    """Hourly replay; returns liquidations, near misses, actions and costs (bps of equity), and
    the minimum health factor on each crash day of the window (`crash_day_min_hf`)."""
    eth = spec.symbols.index("ETH")
    p0 = mkt.px_rows[i0][eth]
    t0 = loan.target_ltv_bps / BPS
    units, debt = loan.equity_usd / (1 - t0) / p0, loan.equity_usd * t0 / (1 - t0)
    vals = [spec.nav_usd * w / BPS for w in spec.targets_bps]
    base = build_state(spec, vals, 0, 0, _limits(spec))
    st: dict[str, float] = {"liq": 0, "near": 0, "act": 0, "cost": 0.0, "liq_cost": 0.0}
    hf = np.zeros(i1 - i0 + 1)
    horizon = float(getattr(policy, "horizon_h", 24))
    for k, t in enumerate(range(i0, i1 + 1)):
        px = mkt.px_rows[t][eth]
        f = loan.equity_usd / max(units * px - debt, 1.0)  # equity held at nominal, as the engine
        units, debt = _liquidate(loan, units * f, debt * f, px, st)
        cs = _coll_state(loan, units * px, debt)
        hf[k] = cs.health_factor_e18 / ONE_E18
        d = policy.decide(replace(base, collateral=cs), _forecast(mkt, t, eth, horizon),
                          _costs(spec, mkt, t, ()))
        units, debt = _act(d, loan, units, debt, px, spec, mkt, t, st)
    days = crash_days(mkt, i0, i1)
    return {**_summary(st, hf, loan),
            "crash_day_min_hf": {day: float(hf[a - i0: b - i0 + 1].min())
                                 for day, (a, b) in days.items()}}


def crash_days(mkt: Market, i0: int, i1: int, n: int = N_CRASH_DAYS) -> dict[str, tuple[int, int]]:
    """The `n` UTC days of the window with the largest ETH fall (last close of the day against
    the previous day's), at least CRASH_GAP_D days apart: {date: (first row, last row)}."""
    eth = mkt.symbols.index("ETH")
    day = mkt.ts[i0: i1 + 1] // 86400
    last = np.flatnonzero(np.diff(day)) + i0  # the last row of each complete day but the final
    last = np.append(last, i1)
    close = mkt.px[last, eth]
    moves = np.log(close[1:] / close[:-1])
    out: dict[str, tuple[int, int]] = {}
    chosen: list[int] = []
    for j in np.argsort(moves):
        if len(chosen) >= n or moves[j] >= 0.0:
            break
        d = int(day[last[j + 1] - i0])
        if all(abs(d - c) >= CRASH_GAP_D for c in chosen):
            chosen.append(d)
            first = int(last[j]) + 1
            out[str(np.datetime64(d, "D"))] = (first, int(last[j + 1]))
    return dict(sorted(out.items()))


def _forecast(mkt: Market, t: int, eth: int, horizon: float) -> Forecast:
    """What a collateral decision reads: the vols, and the collateral's own vol for the LTV."""
    vols = mkt.vol_rows[t]
    return Forecast(horizon_h=horizon, vol_per_h_frac=vols, corr=mkt.corr_rows[t],
                    breach_prob=math.nan, expected_time_to_breach_h=math.nan,
                    now_ts=int(mkt.ts[t]), long_run_vol_per_h_frac=mkt.vol_lr,
                    ltv_vol_per_h_frac=vols[eth])


def _liquidate(loan: LoanSpec, units: float, debt: float, px: float,
               st: dict[str, float]) -> tuple[float, float]:
    if debt <= 0 or debt / (units * px) * BPS < loan.liq_threshold_bps:
        return units, debt
    repaid = 0.5 * debt
    seized = repaid * (1 + loan.liq_penalty_frac) / px
    st["liq"] += 1
    st["liq_cost"] += repaid * loan.liq_penalty_frac
    return units - seized, debt - repaid


def _act(d: Decision, loan: LoanSpec, units: float, debt: float, px: float, spec: VaultSpec,
         mkt: Market, t: int, st: dict[str, float]) -> tuple[float, float]:
    if d.action not in (Action.DELEVERAGE, Action.RELEVERAGE) or d.target_ltv_bps is None:
        return units, debt
    x = _trade_to(loan, units * px, debt, d.target_ltv_bps)
    pool = spec.cost_model.pools[spec.symbols.index("ETH")]
    assert pool is not None
    q = int(abs(x) * ONE_E18)
    table = spec.cost_model.gas
    gas_units = table.ripcord if d.urgent else table.adjust_collateral
    gas = gas_units * mkt.gas_wei[t] * mkt.eth_e18[t] // ONE_E18
    cost = (gas + fee_cost_e18(q, pool.fee_ppm) + impact_cost_e18(q, pool.depth_e18)) / ONE_E18
    st["act"] += 1
    st["cost"] += cost
    return units - x / px, debt - x + cost


def _summary(st: dict[str, float], hf: NDArray[np.float64], loan: LoanSpec
             ) -> dict[str, float | int]:
    low = hf < loan.near_miss_hf
    return {"liquidations": int(st["liq"]),
            "near_miss_episodes": int(np.sum(low[1:] & ~low[:-1]) + int(low[0])),
            "hours_hf_below_1_05": int(low.sum()), "min_health_factor": float(hf.min()),
            "actions": int(st["act"]),
            "deleverage_cost_bps": float(st["cost"]) / loan.equity_usd * BPS,
            "liquidation_penalty_bps": float(st["liq_cost"]) / loan.equity_usd * BPS}
