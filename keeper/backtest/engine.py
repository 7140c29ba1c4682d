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

import functools
import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from keeper.backtest.fast import held_hours, screen_context
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


@functools.lru_cache(maxsize=64)
def _limits(spec: VaultSpec) -> VaultLimits:
    return VaultLimits(max_slippage_bps=Bps(spec.max_slippage_bps),
                       max_trade_e18=E18(int(spec.max_trade_usd) * ONE_E18), cooldown_s=0,
                       loss_cap_bps=Bps(BPS), loss_period_s=86400)


def build_state(spec: VaultSpec, values: list[float], last_ts: int, epoch: int,
                limits: VaultLimits, nav_usd: float | None = None) -> VaultState:
    """The vault as the policy reads it; `nav_usd` (the nominal NAV, when held) is the NAV it
    reports, and weights are the values' shares of their sum."""
    nav = sum(values)
    inner, outer = spec.inner_band_bps, spec.outer_band_bps
    assets = tuple([
        AssetState(symbol=s, token=s, decimals=18, balance_raw=Raw(0), feed=FEED_STUB,
                   value_e18=E18(int(v * ONE_E18)), weight_bps=Bps(round(v / nav * BPS)),
                   target_bps=Bps(tb), inner_band_bps=Bps(inner), outer_band_bps=Bps(outer))
        for s, v, tb in zip(spec.symbols, values, spec.targets_bps, strict=True)])
    nav_e18 = E18(int((nav if nav_usd is None else nav_usd) * ONE_E18))
    return VaultState(address="backtest", assets=assets, nav_e18=nav_e18,
                      epoch=epoch, last_rebalance_ts=last_ts, limits=limits, paused=False)


def _forecast(policy: Policy, state: VaultState, mkt: Market, t: int) -> Forecast:
    vols = mkt.vol_rows[t]
    if not policy.uses_forecast:
        return Forecast(horizon_h=mkt.horizon_h, vol_per_h_frac=tuple(vols), corr=(),
                        breach_prob=math.nan, expected_time_to_breach_h=math.nan,
                        now_ts=int(mkt.ts[t]), notes=("not computed: policy ignores it",))
    if not getattr(policy, "needs_breach_prob", True):
        return Forecast(horizon_h=mkt.horizon_h, vol_per_h_frac=vols, corr=mkt.corr_rows[t],
                        breach_prob=math.nan, expected_time_to_breach_h=math.nan,
                        now_ts=int(mkt.ts[t]), long_run_vol_per_h_frac=mkt.vol_lr,
                        notes=("breach probability not computed: the policy does not read it",))
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

FIRST_SPAN = 16  # hours the fast path screens at once after a decision; doubles while all hold
MAX_SPAN = 4096
MAX_BACKOFF = 16  # after a span whose first hour is not held, hours before screening again


@dataclass(slots=True)
class _Out:
    gas: NDArray[np.float64]
    fee: NDArray[np.float64]
    imp: NDArray[np.float64]
    nav: NDArray[np.float64]
    weights: NDArray[np.float64]
    trades: list[int] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def run(mkt: Market, spec: VaultSpec, policy: Policy, i0: int, i1: int,
        params: dict[str, object] | None = None, keep_reasons: bool = False,
        fast: bool = True) -> RunResult:
    """Replay hours [i0, i1] of the market under `policy`.

    `fast` skips the hours the policy's own screen provably holds (keeper/backtest/fast.py);
    `fast=False` (and `keep_reasons`, which records every hour's reason) is the plain
    hour-by-hour replay, the reference the fast path is tested against."""
    n_h, n_a = i1 - i0 + 1, len(spec.symbols)
    tw = [x / BPS for x in spec.targets_bps]
    p0 = mkt.px_rows[i0]
    book = _Book(units=[spec.nav_usd * w / p for w, p in zip(tw, p0, strict=True)],
                 last_ts=int(mkt.ts[i0]), res_ppm=[0] * n_a, res_dir=[0] * n_a,
                 res_t=[-(10**9)] * n_a)
    out = _Out(gas=np.zeros(n_h), fee=np.zeros(n_h), imp=np.zeros(n_h), nav=np.zeros(n_h),
               weights=np.zeros((n_h, n_a)))
    skip = fast and not keep_reasons and spec.hold_nav and \
        callable(getattr(policy, "screen", None))
    run_view = screen_context(mkt, spec, i0, i1) if skip else None
    t, span, wait, backoff = i0, FIRST_SPAN, 0, 1
    while t <= i1:
        if skip and book.order is None and wait == 0:
            b = min(i1 + 1, t + span)
            assert run_view is not None
            n, m = held_hours(run_view, mkt, spec, policy, book.units, i0, (t - i0, b - i0),
                              book.last_ts)
            out.weights[t - i0: t - i0 + n] = m.weights[:n]
            out.nav[t - i0: t - i0 + n] = m.nav[:n]
            t += n
            if t == b:
                span = min(2 * span, MAX_SPAN)
                continue
            span = FIRST_SPAN
            wait, backoff = (backoff, min(2 * backoff, MAX_BACKOFF)) if n == 0 else (0, 1)
        elif wait:
            wait -= 1
        _hour(mkt, spec, policy, book, t, t - i0, out, keep_reasons)
        t += 1
    return _result(policy, params, mkt, spec, i0, i1, out)


def _hour(mkt: Market, spec: VaultSpec, policy: Policy, book: _Book, t: int, k: int, out: _Out,
          keep_reasons: bool) -> None:
    """One hour the plain way: mark, build the state, decide, execute. Holdings are rescaled to
    the nominal NAV only when they trade (a common factor changes no weight), so between trades
    they stay constant and the fast path can mark hours ahead from prices alone."""
    px = mkt.px_rows[t]
    vals = [u * p for u, p in zip(book.units, px, strict=True)]
    nav = sum(vals)
    scale = nav
    if spec.hold_nav:
        vals, nav = [v * spec.nav_usd / scale for v in vals], spec.nav_usd
    state = build_state(spec, vals, book.last_ts, book.n_trades, _limits(spec),
                        spec.nav_usd if spec.hold_nav else None)
    d = policy.decide(state, _forecast(policy, state, mkt, t),
                      _costs(spec, mkt, t, tuple(book.res_ppm)))
    if keep_reasons:
        out.reasons.append(d.reason)
    _accept(book, d)
    w = [v / nav for v in vals]
    if book.order is not None:
        cash = _cash(spec)
        q = _clip(book, w, nav, cash)
        tc = _priced(book, q, spec, mkt, t)
        refused = cost_gate(tc, required_or_benefit_e18(state, d), state.nav_e18,
                            MAX_REQUIRED_COST_BPS) if any(q) else ""
        if refused:  # the plan stage's own rule: the live keeper would not send it either
            book.order = None
            if keep_reasons:
                out.reasons[-1] = f"{d.reason}; not sent: {refused}"
        elif any(q):
            if spec.hold_nav:
                book.units = [u * spec.nav_usd / scale for u in book.units]
            g, f, im = _execute(book, q, tc, px, cash, spec, mkt, t)
            out.gas[k], out.fee[k], out.imp[k] = g / ONE_E18, f / ONE_E18, im / ONE_E18
            out.trades.append(k)
            vals = [u * p for u, p in zip(book.units, px, strict=True)]
            nav = sum(vals)
            w = [v / nav for v in vals]
    out.weights[k] = w
    out.nav[k] = nav


def _cash(spec: VaultSpec) -> int:
    return spec.symbols.index("USDC") if "USDC" in spec.symbols else len(spec.symbols) - 1


def _result(policy: Policy, params: dict[str, object] | None, mkt: Market, spec: VaultSpec,
            i0: int, i1: int, out: _Out) -> RunResult:
    dev = out.weights - np.asarray(spec.targets_bps) / BPS
    cov = mkt.cov[i0: i1 + 1]
    quad = np.einsum("ti,tij,tj->t", dev, cov, dev)
    pen = 0.5 * spec.cost_model.tracking_gamma * out.nav * np.maximum(quad, 0.0)
    return RunResult(policy=policy.name, params=dict(params or {}), ts=mkt.ts[i0: i1 + 1],
                     weights=out.weights, nav=out.nav, gas_usd=out.gas, fee_usd=out.fee,
                     impact_usd=out.imp, penalty_usd=pen,
                     trade_hours=np.asarray(out.trades, dtype=int), reasons=tuple(out.reasons))


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
