"""The policy interface, the factory, and the helpers every policy shares.

`decide(state, forecast, costs) -> Decision` is pure: the live keeper and the backtester call
the same function. A policy reads weights and bands from `VaultState`, volatilities and breach
probabilities from `Forecast` (its `now_ts` is the clock), and gas and pool costs from
`CostInputs`. Calendar's memory is `VaultState.last_rebalance_ts`; nothing else is remembered.

Split execution: a `Decision` with `max_trade_e18` below the full trade is a parent order; the
executor (engine, or the live plan stage) keeps clipping toward the same targets, at most
`max_trade_e18` per step, until it arrives or a new decision replaces it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from keeper.costs import CostInputs, CostModel, trade_cost_usd
from keeper.errors import ConfigError
from keeper.models import CASH_SYMBOLS, Action, Decision, Forecast, VaultState
from keeper.units import BPS, ONE_E18

MAX_CLIPS = 12
RULE_COST_TOLERANCE = 2.0  # see rule_benefit_usd


class Policy(Protocol):
    name: str
    uses_forecast: bool

    def decide(self, state: VaultState, forecast: Forecast, costs: CostInputs) -> Decision: ...

    def screen(self, view: ScreenView) -> NDArray[np.bool_]:
        """Per hour of `view`: True where `decide()` provably holds (its own first test, on the
        same numbers), so a replay may skip calling it. All False is always correct."""
        ...


# ---------------------------------------------------------------- state helpers


def cash_index(state: VaultState) -> int:
    """The asset that absorbs rounding and pays for trades: a stablecoin, else the last asset."""
    for i, a in enumerate(state.assets):
        if a.symbol.upper() in CASH_SYMBOLS:
            return i
    return len(state.assets) - 1


def deviations(state: VaultState) -> list[float]:
    """Weight minus target per asset, as fractions."""
    return [a.deviation_bps / BPS for a in state.assets]


def nav_usd(state: VaultState) -> float:
    return state.nav_e18 / ONE_E18


def project_to_band(dev: Sequence[float], edge: float, cash: int) -> list[float]:
    """Smallest per-asset move into [-edge, edge]: clip each risky deviation; the cash asset takes
    the rest, and if it then lies outside, the risky clips shrink together until it fits."""
    out = [max(-edge, min(edge, d)) if i != cash else 0.0 for i, d in enumerate(dev)]
    total = sum(out)
    if abs(total) > edge and total != 0.0:
        out = [x * edge / abs(total) for x in out]
    out[cash] = -sum(out)
    return out


def drop_small_legs(dev: Sequence[float], new: Sequence[float], cash: int, nav: float,
                    min_trade_usd: float) -> list[float]:
    """Legs smaller than `min_trade_usd` are not traded (their deviation stays)."""
    out = [n if (i == cash or abs(n - d) * nav >= min_trade_usd) else d
           for i, (d, n) in enumerate(zip(dev, new, strict=True))]
    out[cash] = -sum(x for i, x in enumerate(out) if i != cash)
    return out


def trade_notionals_usd(dev: Sequence[float], new: Sequence[float], nav: float,
                        cash: int) -> list[float]:
    return [0.0 if i == cash else (n - d) * nav for i, (d, n) in enumerate(zip(dev, new,
                                                                               strict=True))]


def target_bps(state: VaultState, new_dev: Sequence[float], cash: int) -> tuple[int, ...]:
    """Post-trade weights in bps summing to BPS exactly; the cash asset absorbs rounding."""
    w = [max(0, round((a.target_bps / BPS + d) * BPS)) for a, d in zip(state.assets, new_dev,
                                                                       strict=True)]
    w[cash] = 0
    w[cash] = BPS - sum(w)
    return tuple(w)


# ---------------------------------------------------------------- decisions


def hold(reason: str, **details: float) -> Decision:
    return Decision(action=Action.HOLD, reason=reason, details=dict(details))


def rebalance(state: VaultState, new_dev: Sequence[float], reason: str, *, benefit_usd: float,
              clips: int = 1, **details: float) -> Decision:
    """A rebalance to target + new_dev worth `benefit_usd` to the policy; `clips` > 1 caps each
    step at 1/clips of the trade."""
    cash = cash_index(state)
    nav = nav_usd(state)
    total = sum(abs(q) for q in trade_notionals_usd(deviations(state), new_dev, nav, cash))
    cap = min(total / max(clips, 1), state.limits.max_trade_e18 / ONE_E18)
    details["clips"] = float(clips)
    return Decision(action=Action.REBALANCE, reason=reason,
                    target_weights_bps=target_bps(state, new_dev, cash),
                    max_trade_e18=math.ceil(cap) * ONE_E18,
                    benefit_e18=max(0, math.floor(benefit_usd * ONE_E18)), details=details)


def rule_benefit_usd(state: VaultState, new_dev: Sequence[float], costs: CostInputs,
                     clips: int = 1) -> float:
    """What a classic rule's trade is worth to it: a rule has no view of the future, only the
    premise that the trade is worth what it expects to pay. Its benefit is therefore the cost
    model's price of the trade at this hour (its first clip when split) times
    RULE_COST_TOLERANCE: the plan stage refuses a rule's trade only when the quoted cost is more
    than that multiple of the model's (a pool far thinner, or gas far dearer, than modelled)."""
    cash, nav = cash_index(state), nav_usd(state)
    q = trade_notionals_usd(deviations(state), new_dev, nav, cash)
    first = [x / max(clips, 1) for x in q]
    return RULE_COST_TOLERANCE * trade_cost_usd(first, costs, costs.gas_price_wei)


def reactive_collateral(state: VaultState, who: str) -> Decision | None:
    """The collateral rule every policy applies first, live and in the backtest: the ripcord
    (urgent) at or over the ripcord LTV, deleverage above the band, releverage below it, all
    back to the target LTV. No collateral target configured: no rule."""
    c = state.collateral
    if c is None or c.target_ltv_bps == 0:
        return None
    if c.in_danger:
        return Decision(action=Action.DELEVERAGE, urgent=True, target_ltv_bps=c.target_ltv_bps,
                        reason=f"ripcord: LTV {c.ltv_bps} bps >= {c.ripcord_ltv_bps} bps, "
                        "deleverage regardless of cost")
    if c.debt_e8 > 0 and c.ltv_bps > c.max_ltv_bps:
        return Decision(action=Action.DELEVERAGE, target_ltv_bps=c.target_ltv_bps,
                        reason=f"{who}: LTV {c.ltv_bps} bps above band {c.max_ltv_bps} bps")
    if c.collateral_e8 > 0 and c.ltv_bps < c.min_ltv_bps:
        return Decision(action=Action.RELEVERAGE, target_ltv_bps=c.target_ltv_bps,
                        reason=f"{who}: LTV {c.ltv_bps} bps below band {c.min_ltv_bps} bps")
    return None


# ---------------------------------------------------------------- scalar minimiser


_SQRT_EPS = math.sqrt(2.2e-16)
_GOLDEN = 0.5 * (3.0 - math.sqrt(5.0))


def _sign(x: float) -> float:
    """np.sign for a float: -1, 0 or 1 (NaN stays NaN)."""
    return 1.0 if x > 0.0 else (-1.0 if x < 0.0 else (0.0 if x == 0.0 else x))


def minimize_bounded(f: Callable[[float], float], lo: float, hi: float,  # noqa: C901 (port)
                     xatol: float,
                     maxiter: int = 500) -> tuple[float, float]:
    """(x, f(x)) of `scipy.optimize.minimize_scalar(f, bounds=(lo, hi), method="bounded",
    options={"xatol": xatol})`: a line-for-line port of scipy's `_minimize_scalar_bounded`
    (Brent's method, scipy 1.17) on plain floats instead of numpy scalars, which is where most
    of scipy's per-step time goes. Same steps, same points, same result bit for bit
    (tests/unit/test_policy.py compares the two); only the bounds checks and the result object
    are left out."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"minimize_bounded: bad bounds ({lo}, {hi})")
    a, b = lo, hi
    fulc = a + _GOLDEN * (b - a)
    nfc, xf = fulc, fulc
    rat = e = 0.0
    x = xf
    fx = f(x)
    num = 1
    ffulc = fnfc = fx
    xm = 0.5 * (a + b)
    tol1 = _SQRT_EPS * abs(xf) + xatol / 3.0
    tol2 = 2.0 * tol1
    while abs(xf - xm) > (tol2 - 0.5 * (b - a)):
        golden = True
        if abs(e) > tol1:  # parabolic fit
            golden = False
            r = (xf - nfc) * (fx - ffulc)
            q = (xf - fulc) * (fx - fnfc)
            p = (xf - fulc) * q - (xf - nfc) * r
            q = 2.0 * (q - r)
            if q > 0.0:
                p = -p
            q = abs(q)
            r = e
            e = rat
            if abs(p) < abs(0.5 * q * r) and p > q * (a - xf) and p < q * (b - xf):
                rat = (p + 0.0) / q
                x = xf + rat
                if (x - a) < tol2 or (b - x) < tol2:
                    rat = tol1 * (_sign(xm - xf) + ((xm - xf) == 0))
            else:
                golden = True
        if golden:
            e = (a - xf) if xf >= xm else (b - xf)
            rat = _GOLDEN * e
        step = abs(rat)
        if not (step >= tol1 or step != step):  # np.maximum(|rat|, tol1), NaN propagating
            step = tol1
        x = xf + (_sign(rat) + (rat == 0)) * step
        fu = f(x)
        num += 1
        if fu <= fx:
            if x >= xf:
                a = xf
            else:
                b = xf
            fulc, ffulc = nfc, fnfc
            nfc, fnfc = xf, fx
            xf, fx = x, fu
        else:
            if x < xf:
                a = x
            else:
                b = x
            if fu <= fnfc or nfc == xf:
                fulc, ffulc = nfc, fnfc
                nfc, fnfc = x, fu
            elif fu <= ffulc or fulc == xf or fulc == nfc:  # noqa: SIM109 (`in` is not == for NaN)
                fulc, ffulc = x, fu
        xm = 0.5 * (a + b)
        tol1 = _SQRT_EPS * abs(xf) + xatol / 3.0
        tol2 = 2.0 * tol1
        if num >= maxiter:
            break
    return xf, fx


# ---------------------------------------------------------------- splitting (execution lever)


def split_cost_usd(q: Sequence[float], n: float, costs: CostInputs) -> float:
    """Expected cost of trading q in n clips: n x gas, fees once, impact q^2/n (per clip
    (q/n)^2 / (2D + q/n)), plus the fee-tier residual paid by every clip after the first."""
    m = costs.model
    per_leg = 0.0
    hops: list[int] = []
    for i, qi in enumerate(q):
        pool = m.pools[i]
        if pool is None or qi == 0.0:
            continue
        hops.append(pool.hops)
        a, depth, fee = abs(qi) / n, pool.depth_e18 / ONE_E18, pool.fee_ppm / 1e6
        res = 0.0 if m.recovery == "fresh" else min(a / depth, fee)
        per_leg += n * (a * fee + a * a / (2 * depth + a)) + (n - 1) * a * res
    units = m.gas.rebalance_units(hops)
    gas = n * units * costs.gas_price_wei * costs.eth_usd_e18 / ONE_E18 / ONE_E18
    return gas + per_leg


def best_clips(q: Sequence[float], costs: CostInputs, state: VaultState) -> int:
    """Number of clips minimising `split_cost_usd`, at least enough for the per-step and
    slippage limits (impact of one clip <= max_slippage_bps). No optional splitting while a
    weight is outside its outer band."""
    total = sum(abs(x) for x in q)
    if total <= 0.0:
        return 1
    n_min = max(1, math.ceil(total / max(state.limits.max_trade_e18 / ONE_E18, 1.0)))
    if any(a.outside_outer for a in state.assets):
        return n_min  # outside the outer band, risk comes first: only the vault limits split
    x, _ = minimize_bounded(lambda n: split_cost_usd(q, n, costs), 1.0, float(MAX_CLIPS), 0.05)
    cands = {max(1, math.floor(x)), math.ceil(x)}
    n = min(cands, key=lambda k: split_cost_usd(q, k, costs))
    return min(MAX_CLIPS, max(n, n_min, _slippage_clips(q, costs, state)))


def _slippage_clips(q: Sequence[float], costs: CostInputs, state: VaultState) -> int:
    lim = state.limits.max_slippage_bps / BPS
    n = 1
    for i, qi in enumerate(q):
        pool = costs.model.pools[i]
        if pool is None or qi == 0.0 or lim <= 0.0:
            continue
        depth = pool.depth_e18 / ONE_E18
        n = max(n, math.ceil(abs(qi) / (2.0 * depth * lim)))  # avg impact q/(2D) <= limit
    return n


# ---------------------------------------------------------------- factory


def make_policy(name: str, params: dict[str, Any] | None = None) -> Policy:
    """Build a policy by name: calendar, threshold, band, preventative."""
    from keeper.policy.band import BandPolicy
    from keeper.policy.calendar import CalendarPolicy
    from keeper.policy.preventative import PreventativePolicy
    from keeper.policy.threshold import ThresholdPolicy

    table: dict[str, Any] = {"calendar": CalendarPolicy, "threshold": ThresholdPolicy,
                             "band": BandPolicy, "preventative": PreventativePolicy}
    if name not in table:
        raise ConfigError(f"unknown policy '{name}'; choose one of {sorted(table)}", key="policy")
    cls = table[name]
    allowed = {k for k, f in cls.__dataclass_fields__.items() if f.init}
    bad = sorted(set(params or {}) - allowed)
    if bad:
        raise ConfigError(f"policy '{name}' has no parameter(s) {bad}; allowed: {sorted(allowed)}",
                          key="params")
    return cls(**(params or {}))  # type: ignore[no-any-return]


# ---------------------------------------------------------------- the screen over many hours


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ScreenView:
    """What a policy would see over a span of hours in which the vault does not trade (the
    backtester's fast path). The per-hour market inputs cover the whole run and `span` picks
    this span's rows of them (`rows()`); `dev_bps` is the span's own: the state's deviations.
    Gas and the ETH price are the floats of the integers `CostInputs` carries, and `nav` is
    `nav_usd(state)` (the run's nominal NAV). `memo` lives as long as the run: a policy may
    keep there what it derives from the run's inputs alone."""

    dev_bps: NDArray[np.int64]  # (span, N)
    span: tuple[int, int]  # rows [a, b) of the run
    now_ts: NDArray[np.int64]  # (T,) the run's hours
    vols: NDArray[np.float64]  # (T, N)
    long_run_vols: tuple[float, ...]
    corr: NDArray[np.float64]  # (T, N, N)
    gas_now: NDArray[np.float64]  # wei
    gas_typical: NDArray[np.float64]  # wei
    eth_e18: NDArray[np.float64]
    nav: float
    targets_bps: tuple[int, ...]
    outer_bps: tuple[int, ...]
    last_rebalance_ts: int
    model: CostModel
    memo: dict[Any, Any]

    def at(self, span: tuple[int, int], dev_bps: NDArray[np.int64], last_ts: int
           ) -> ScreenView:
        """The same run, another span."""
        return replace(self, span=span, dev_bps=dev_bps, last_rebalance_ts=last_ts)

    def rows(self, x: NDArray[Any]) -> NDArray[Any]:
        return x[self.span[0]: self.span[1]]


def deviation_screen(view: ScreenView, width_bps: int) -> NDArray[np.bool_]:
    """Hours in which every |deviation| is at most `width_bps` (a band rule's hold)."""
    held: NDArray[np.bool_] = np.abs(view.dev_bps).max(axis=1) <= width_bps
    return held
