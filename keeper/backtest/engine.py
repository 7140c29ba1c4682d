"""Hour-by-hour replay of a vault under a policy, calling the same `decide()` as the live keeper.

Per hour t: mark holdings at prices[t]; build `VaultState`, `Forecast` (from vol forecasts made
with returns up to t) and `CostInputs` (gas at t, gas outlook learned from gas up to t); call
`policy.decide`; execute. Nothing at t reads t+1 (see tests/unit/test_backtest.py).

Conventions (documented in the report):
- NAV is held at the nominal size (`hold_nav`): each hour holdings are rescaled to the nominal
  NAV at no cost, so "a $10M vault" stays a $10M vault as prices move 10x; costs are in bps of it.
- Execution: a REBALANCE with `max_trade_e18` below the full trade is a parent order of
  `details["clips"]` clips toward the same targets, one per hour, each at most `max_trade_e18`;
  the last clip trades whatever remains. A new REBALANCE replaces the order in flight and a
  HOLD cancels it: the policy re-plans every hour, as it does live.
- The plan stage's cost rule (`keeper.costs.cost_gate`) applies to every clip, priced with the
  cost model: a trade that costs more than the decision's benefit is not made, as live.
- Costs: `keeper.costs` integer formulas; the fee-tier residual applies to a clip in the same
  direction as one in the previous RECOVERY_H hours (`recovery="fee_tier"`).
- Tracking penalty per hour: 0.5 gamma NAV d' Sigma_t d after trading, Sigma_t the causal EWMA
  covariance; time outside the band is measured on the post-trade weights of each hour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from keeper.backtest.market import Market
from keeper.costs import (
    MAX_REQUIRED_COST_BPS,
    CostInputs,
    CostModel,
    cost_gate,
    cost_inputs,
    next_residual_ppm,
    required_or_benefit_e18,
    trade_cost,
)
from keeper.forecast import build_forecast
from keeper.models import (
    Action,
    AssetState,
    Decision,
    FeedState,
    Forecast,
    TradeCost,
    VaultLimits,
    VaultState,
)
from keeper.policy.base import Policy
from keeper.units import BPS, E18, ONE_E18, PPM, Bps, Raw

RECOVERY_H = 3
FEED_STUB = FeedState(feed="file", answer=0, decimals=8, updated_at_ts=0, heartbeat_s=3600,
                      min_answer=1, max_answer=2**255)


@dataclass(frozen=True, slots=True, kw_only=True)
class VaultSpec:
    symbols: tuple[str, ...]
    targets_bps: tuple[int, ...]
    cost_model: CostModel
    outer_band_bps: int = 500
    inner_band_bps: int = 250
    nav_usd: float = 10_000_000.0
    max_trade_usd: float = 1e15
    max_slippage_bps: int = 100
    hold_nav: bool = True


@dataclass(slots=True)
class _Book:
    units: list[float]
    order: list[float] | None = None  # target weights of the parent order in flight
    cap_usd: float = 0.0
    clips_left: int = 0
    last_ts: int = 0
    n_trades: int = 0
    res_ppm: list[int] = field(default_factory=list)
    res_dir: list[int] = field(default_factory=list)
    res_t: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class RunResult:
    policy: str
    params: dict[str, object]
    ts: NDArray[np.int64]
    weights: NDArray[np.float64]  # post-trade weights per hour
    nav: NDArray[np.float64]
    gas_usd: NDArray[np.float64]
    fee_usd: NDArray[np.float64]
    impact_usd: NDArray[np.float64]
    penalty_usd: NDArray[np.float64]
    trade_hours: NDArray[np.int64]
    reasons: tuple[str, ...] = ()


# ---------------------------------------------------------------- state building


def _limits(spec: VaultSpec) -> VaultLimits:
    return VaultLimits(max_slippage_bps=Bps(spec.max_slippage_bps),
                       max_trade_e18=E18(int(spec.max_trade_usd) * ONE_E18), cooldown_s=0,
                       loss_cap_bps=Bps(BPS), loss_period_s=86400)


def build_state(spec: VaultSpec, values: list[float], last_ts: int, epoch: int,
                limits: VaultLimits) -> VaultState:
    nav = sum(values)
    inner, outer = spec.inner_band_bps, spec.outer_band_bps
    assets = tuple([
        AssetState(symbol=s, token=s, decimals=18, balance_raw=Raw(0), feed=FEED_STUB,
                   value_e18=E18(int(v * ONE_E18)), weight_bps=Bps(round(v / nav * BPS)),
                   target_bps=Bps(tb), inner_band_bps=Bps(inner), outer_band_bps=Bps(outer))
        for s, v, tb in zip(spec.symbols, values, spec.targets_bps, strict=True)])
    return VaultState(address="backtest", assets=assets, nav_e18=E18(int(nav * ONE_E18)),
                      epoch=epoch, last_rebalance_ts=last_ts, limits=limits, paused=False)


def _forecast(policy: Policy, state: VaultState, mkt: Market, t: int) -> Forecast:
    vols = mkt.vol_rows[t]
    if not policy.uses_forecast:
        return Forecast(horizon_h=mkt.horizon_h, vol_per_h_frac=tuple(vols), corr=(),
                        breach_prob=math.nan, expected_time_to_breach_h=math.nan,
                        now_ts=int(mkt.ts[t]), notes=("not computed: policy ignores it",))
    horizon = float(getattr(policy, "horizon_h", mkt.horizon_h))
    return build_forecast(state, vol_per_h=vols, corr=mkt.corr_rows[t],
                          horizon_h=horizon, now_ts=int(mkt.ts[t]),
                          long_run_vol_per_h=mkt.vol_lr)


def _costs(spec: VaultSpec, mkt: Market, t: int, residual: tuple[int, ...]) -> CostInputs:
    return cost_inputs(spec.cost_model, gas_price_wei=mkt.gas_wei[t], outlook=mkt.outlook[t],
                       eth_usd_e18=mkt.eth_e18[t], residual_ppm=residual)


# ---------------------------------------------------------------- execution


def _accept(book: _Book, d: Decision) -> None:
    """The hour's decision replaces the order in flight; a hold cancels it (the policy decides
    afresh every hour, live and here, so a clip goes only while the policy still wants it)."""
    if d.action != Action.REBALANCE:
        book.order = None
        return
    book.order = [x / BPS for x in d.target_weights_bps]
    book.cap_usd = d.max_trade_e18 / ONE_E18 if d.max_trade_e18 else math.inf
    book.clips_left = max(1, round(d.details.get("clips", 1.0)))


def _clip(book: _Book, w: list[float], nav: float, cash: int) -> list[float]:
    assert book.order is not None
    q = [0.0 if i == cash or abs(o - x) < 0.5 / BPS else (o - x) * nav
         for i, (o, x) in enumerate(zip(book.order, w, strict=True))]
    total = sum(abs(x) for x in q)
    book.clips_left -= 1
    if book.clips_left <= 0 or total <= book.cap_usd * (1 + 1e-9):
        book.order = None  # the last clip goes all the way: an order never lingers
        return q
    return [x * book.cap_usd / total for x in q]


def _residuals(book: _Book, q: list[float], t: int) -> tuple[int, ...]:
    return tuple(r if (x and (x > 0) == (d > 0) and t - rt <= RECOVERY_H) else 0
                 for r, d, rt, x in zip(book.res_ppm, book.res_dir, book.res_t, q, strict=True))


def _priced(book: _Book, q: list[float], spec: VaultSpec, mkt: Market, t: int) -> TradeCost:
    """The model's cost of trading `q` at hour t (the residual of recent same-way clips in)."""
    return trade_cost([int(x * ONE_E18) for x in q], _costs(spec, mkt, t, _residuals(book, q, t)))


def _execute(book: _Book, q: list[float], tc: TradeCost, px: list[float], cash: int,
             spec: VaultSpec, mkt: Market, t: int) -> tuple[int, int, int]:
    q_e18 = [int(x * ONE_E18) for x in q]
    for i, x in enumerate(q):
        if x and i != cash:
            book.units[i] += x / px[i]
            pool = spec.cost_model.pools[i]
            assert pool is not None
            book.res_ppm[i] = next_residual_ppm(q_e18[i], pool.depth_e18, pool.fee_ppm,
                                                spec.cost_model.recovery)
            book.res_dir[i], book.res_t[i] = (1 if x > 0 else -1), t
    book.units[cash] -= (sum(q) + tc.total_e18 / ONE_E18) / px[cash]
    book.n_trades += 1
    book.last_ts = int(mkt.ts[t])
    return tc.gas_e18, tc.fee_e18, tc.impact_e18


# ---------------------------------------------------------------- the replay


def run(mkt: Market, spec: VaultSpec, policy: Policy, i0: int, i1: int,
        params: dict[str, object] | None = None, keep_reasons: bool = False) -> RunResult:
    """Replay hours [i0, i1] of the market under `policy`."""
    n_h, n_a = i1 - i0 + 1, len(spec.symbols)
    cash = spec.symbols.index("USDC") if "USDC" in spec.symbols else n_a - 1
    tw = [x / BPS for x in spec.targets_bps]
    p0 = mkt.px_rows[i0]
    book = _Book(units=[spec.nav_usd * w / p for w, p in zip(tw, p0, strict=True)],
                 last_ts=int(mkt.ts[i0]), res_ppm=[0] * n_a, res_dir=[0] * n_a,
                 res_t=[-(10**9)] * n_a)
    out = {k: np.zeros(n_h) for k in ("gas", "fee", "imp", "nav")}
    weights, trades, reasons = np.zeros((n_h, n_a)), [], []
    limits = _limits(spec)
    for k, t in enumerate(range(i0, i1 + 1)):
        px = mkt.px_rows[t]
        vals = [u * p for u, p in zip(book.units, px, strict=True)]
        nav = sum(vals)
        if spec.hold_nav:
            book.units = [u * spec.nav_usd / nav for u in book.units]
            vals, nav = [v * spec.nav_usd / nav for v in vals], spec.nav_usd
        state = build_state(spec, vals, book.last_ts, book.n_trades, limits)
        d = policy.decide(state, _forecast(policy, state, mkt, t),
                          _costs(spec, mkt, t, tuple(book.res_ppm)))
        if keep_reasons:
            reasons.append(d.reason)
        _accept(book, d)
        w = [v / nav for v in vals]
        if book.order is not None:
            q = _clip(book, w, nav, cash)
            tc = _priced(book, q, spec, mkt, t)
            refused = cost_gate(tc, required_or_benefit_e18(state, d), state.nav_e18,
                                MAX_REQUIRED_COST_BPS) if any(q) else ""
            if refused:  # the plan stage's own rule: the live keeper would not send it either
                book.order = None
                if keep_reasons:
                    reasons[-1] = f"{d.reason}; not sent: {refused}"
            elif any(q):
                g, f, im = _execute(book, q, tc, px, cash, spec, mkt, t)
                out["gas"][k], out["fee"][k], out["imp"][k] = g / ONE_E18, f / ONE_E18, im / ONE_E18
                trades.append(k)
                vals = [u * p for u, p in zip(book.units, px, strict=True)]
                nav = sum(vals)
                w = [v / nav for v in vals]
        weights[k] = w
        out["nav"][k] = nav
    return _result(policy, params, mkt, spec, i0, i1, weights, out, trades, reasons)


def _result(policy: Policy, params: dict[str, object] | None, mkt: Market, spec: VaultSpec,
            i0: int, i1: int, weights: NDArray[np.float64], out: dict[str, NDArray[np.float64]],
            trades: list[int], reasons: list[str]) -> RunResult:
    dev = weights - np.asarray(spec.targets_bps) / BPS
    cov = mkt.cov[i0: i1 + 1]
    quad = np.einsum("ti,tij,tj->t", dev, cov, dev)
    pen = 0.5 * spec.cost_model.tracking_gamma * out["nav"] * np.maximum(quad, 0.0)
    return RunResult(policy=policy.name, params=dict(params or {}), ts=mkt.ts[i0: i1 + 1],
                     weights=weights, nav=out["nav"], gas_usd=out["gas"], fee_usd=out["fee"],
                     impact_usd=out["imp"], penalty_usd=pen,
                     trade_hours=np.asarray(trades, dtype=int), reasons=tuple(reasons))


def metrics(res: RunResult, spec: VaultSpec) -> dict[str, float | int | str]:
    """The `--json` numbers: costs in bps of mean NAV over the window (not annualised)."""
    nav = float(res.nav.mean())
    bps = BPS / nav
    dev = res.weights - np.asarray(spec.targets_bps) / BPS
    outside = (np.abs(dev) > spec.outer_band_bps / BPS).any(axis=1)
    gas, fee, imp, pen = (float(x.sum()) * bps for x in (res.gas_usd, res.fee_usd,
                                                          res.impact_usd, res.penalty_usd))
    return {
        "policy": res.policy,
        "start": _iso(res.ts[0]), "end": _iso(res.ts[-1]),
        "hours": int(res.ts.size),
        "total_cost_bps": gas + fee + imp + pen,
        "trading_cost_bps": gas + fee + imp,
        "gas_cost_bps": gas, "fee_cost_bps": fee, "impact_cost_bps": imp,
        "tracking_penalty_bps": pen,
        "tracking_error_bps": float(np.sqrt(np.mean(dev**2))) * BPS,
        "time_outside_outer_band_pct": float(outside.mean()) * 100.0,
        "n_trades": int(res.trade_hours.size),
        "hard_breaches": int(np.sum(outside[1:] & ~outside[:-1]) + int(outside[0])),
        "max_abs_deviation_bps": float(np.abs(dev).max()) * BPS,
    }


def _iso(t: int) -> str:
    return str(np.datetime64(int(t), "s")).replace("T", " ")


__all__ = ["PPM", "RunResult", "VaultSpec", "build_state", "metrics", "run"]
