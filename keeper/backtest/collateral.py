"""Replay of a collateral position (ETH collateral, USDC debt) under a policy's `decide()`.

Aave-style numbers (defaults): target LTV 50%, band 40-65%, ripcord 75%, liquidation threshold
82.5%, liquidation penalty 5% of the repaid debt, close factor 50%. The basket part of the state is
held at target so only the collateral rules act. Deleverage sells ETH for USDC and repays;
releverage borrows USDC and buys ETH; both pay the ETH pool's fee and impact plus one leg of gas.
Equity is rescaled to the nominal size each hour (same convention as the engine), keeping LTV.
A near miss is an episode with health factor below 1.05.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from keeper.backtest.engine import VaultSpec, _limits, build_state
from keeper.backtest.market import Market
from keeper.costs import CostInputs, trade_cost
from keeper.forecast import build_forecast
from keeper.models import Action, CollateralState, Decision, Forecast, VaultState
from keeper.policy.base import Policy
from keeper.units import BPS, ONE_E8, ONE_E18, Bps

CRASH_DAYS = ("2020-03-12", "2021-05-19", "2022-06-13", "2022-06-18", "2022-11-09")


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
             ) -> dict[str, float | int]:
    """Hourly replay; returns liquidations, near misses, actions and costs (bps of equity)."""
    eth = spec.symbols.index("ETH")
    p0 = mkt.px_rows[i0][eth]
    t0 = loan.target_ltv_bps / BPS
    units, debt = loan.equity_usd / (1 - t0) / p0, loan.equity_usd * t0 / (1 - t0)
    limits, vals = _limits(spec), [spec.nav_usd * w / BPS for w in spec.targets_bps]
    base = build_state(spec, vals, 0, 0, limits)
    st = {"liq": 0, "near": 0, "act": 0, "cost": 0.0, "liq_cost": 0.0}
    hf = np.zeros(i1 - i0 + 1)
    for k, t in enumerate(range(i0, i1 + 1)):
        px = mkt.px_rows[t][eth]
        f = loan.equity_usd / max(units * px - debt, 1.0)  # equity held at nominal, as the engine
        units, debt = _liquidate(loan, units * f, debt * f, px, st)
        cs = _coll_state(loan, units * px, debt)
        hf[k] = cs.health_factor_e18 / ONE_E18
        d = policy.decide(replace(base, collateral=cs), _forecast(mkt, base, t, eth, policy),
                          _costs_at(mkt, spec, t))
        units, debt = _act(d, loan, units, debt, px, spec, mkt, t, st)
    return _summary(st, hf, loan)


def _forecast(mkt: Market, base: VaultState, t: int, eth: int, policy: Policy) -> Forecast:
    vols = mkt.vol_rows[t]
    return build_forecast(base, vol_per_h=vols, corr=mkt.corr[t].tolist(),
                          horizon_h=float(getattr(policy, "horizon_h", 24)),
                          now_ts=int(mkt.ts[t]), ltv_vol_per_h=vols[eth])


def _costs_at(mkt: Market, spec: VaultSpec, t: int) -> CostInputs:
    from keeper.backtest.engine import _costs

    return _costs(spec, mkt, t, ())


def _liquidate(loan: LoanSpec, units: float, debt: float, px: float,
               st: dict[str, float | int]) -> tuple[float, float]:
    if debt <= 0 or debt / (units * px) * BPS < loan.liq_threshold_bps:
        return units, debt
    repaid = 0.5 * debt
    seized = repaid * (1 + loan.liq_penalty_frac) / px
    st["liq"] += 1
    st["liq_cost"] += repaid * loan.liq_penalty_frac
    return units - seized, debt - repaid


def _act(d: Decision, loan: LoanSpec, units: float, debt: float, px: float, spec: VaultSpec,
         mkt: Market, t: int, st: dict[str, float | int]) -> tuple[float, float]:
    if d.action not in (Action.DELEVERAGE, Action.RELEVERAGE) or d.target_ltv_bps is None:
        return units, debt
    x = _trade_to(loan, units * px, debt, d.target_ltv_bps)
    q = [0] * len(spec.symbols)
    q[spec.symbols.index("ETH")] = int(abs(x) * ONE_E18)
    from keeper.backtest.engine import _costs

    cost = trade_cost(q, _costs(spec, mkt, t, ())).total_e18 / ONE_E18
    st["act"] += 1
    st["cost"] += cost
    return units - x / px, debt - x + cost


def _summary(st: dict[str, float | int], hf: NDArray[np.float64], loan: LoanSpec
             ) -> dict[str, float | int]:
    low = hf < loan.near_miss_hf
    return {"liquidations": int(st["liq"]),
            "near_miss_episodes": int(np.sum(low[1:] & ~low[:-1]) + int(low[0])),
            "hours_hf_below_1_05": int(low.sum()), "min_health_factor": float(hf.min()),
            "actions": int(st["act"]),
            "deleverage_cost_bps": float(st["cost"]) / loan.equity_usd * BPS,
            "liquidation_penalty_bps": float(st["liq_cost"]) / loan.equity_usd * BPS}


def crash_day_min_hf(mkt: Market, spec: VaultSpec, policy: Policy, loan: LoanSpec,
                     i0: int, i1: int) -> dict[str, float]:
    """Minimum health factor on each crash day (replaying from i0 so the position is real)."""
    from keeper.backtest.data import parse_date

    out = {}
    for day in CRASH_DAYS:
        end = int(np.searchsorted(mkt.ts, parse_date(day) + 86400)) - 1
        if not i0 < end <= i1:
            continue
        start = max(i0, end - 24 * 30)
        out[day] = run_loan(mkt, spec, policy, loan, start, end)["min_health_factor"]
    return out
