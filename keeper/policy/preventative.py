"""Preventative rebalancing: act when acting now costs less than what waiting is expected to cost.

Every quantity is priced in money from this hour's inputs (gas now and its outlook, forecast
vol, pool costs, NAV), so the policy's parameters are pure numbers that carry across gas and
volatility regimes (docs/backtest.md derives each formula).

Per risky asset i, its weight deviation d diffuses with variance rate v = (w_i sigma_i,rel)^2
per hour (sigma_i,rel: the vol of asset i against the basket, from the forecast), is penalised
a d^2 per hour (a = gamma/2 NAV vol_i^2, the tracking penalty) and must be traded back when it
crosses the trigger b (`width_bps`, at most the outer band). A forced trade from the edge to
r = b - u costs C(u) = K + fee u NAV + impact(u NAV), K the gas of a one-leg rebalance at
typical gas. The renewal argument of impulse control gives:
- the return distance u* that minimises the long-run cost rate (K + k u) v / (u (2b - u)) with
  the fee and impact linearised into k: u* = (sqrt(K^2 + 2 k b K) - K) / k, times `ret_scale`
  (1 = the formula): deep returns when gas is dear relative to fees, shallow when it is cheap;
- the long-run cost rate g = (C(u*) + a (b^4 - r^4) / 6v) / ((b^2 - r^2) / v) of that cycle;
- the value of moving from d to r now: h(d) - h(r) = g (d^2 - r^2) / v - a (d^4 - r^4) / 6v
  (time bought before the next forced trade, less the penalty it carries).
An asset is worth trading now when that value exceeds its cost now (fee, impact and its leg's
gas at this hour's price); the vault acts when the assets worth trading together also pay the
rebalance's fixed gas. Outside the trigger it always acts (required). With constant costs this
acts only at the trigger (smooth pasting); what makes it act earlier is gas cheaper now than
typical, and, with `gas_timing`, it waits when the gas outlook expects a cheaper hour soon.

An early trade must clear its fixed gas EARLY_HURDLE times over (on top of paying it): the
value above is a one-asset approximation, and on the training years early trades on thinner
margins lost money (docs/backtest.md), so without a clear gas discount the lever stays off.

The screen (`early_gain`): the gain of acting early, each asset's value less its fee, impact
and leg gas with no residual displacement counted (so at least the gain `_choose` finds), less
the fixed gas. Where it is under EARLY_HURDLE x the fixed gas, the hour holds. `decide()`
applies it first; the backtester evaluates the same function on whole spans of hours at once
(the same operations on the same numbers, so the same bits) and skips the hours it holds
(keeper/backtest/fast.py).

Collateral: the shared reactive rule first; inside the band, when the forecast gives the LTV
more than `ltv_act_prob` of reaching an edge of its band within the horizon, the policy moves
it back to where that probability is a quarter of `ltv_act_prob`: small, early trades, which
cost less than the reactive rule's large ones because price impact is convex.

Levers (for the decomposition): `early` (off: act only past the trigger), `vol_scaling` (off:
long-run vol), `gas_timing` (off: no waiting for a cheaper hour, and "now" priced at typical
gas, so no early action either), `split` (off: one clip).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from keeper.costs import CostInputs, CostModel, trade_cost_usd
from keeper.forecast.breach import first_passage_prob, norm_cdf
from keeper.models import Action, Decision, Forecast, VaultState
from keeper.policy.base import (
    ScreenView,
    best_clips,
    cash_index,
    deviations,
    drop_small_legs,
    hold,
    nav_usd,
    reactive_collateral,
    rebalance,
    rule_benefit_usd,
    trade_notionals_usd,
)
from keeper.units import BPS, ONE_E18, PPM

EARLY_HURDLE = 3.0  # an early trade must clear its own fixed gas this many times over
MIN_VAR = 1e-18  # floor on a deviation's variance rate (a constant-price asset)
LTV_TARGET_FRAC = 0.25  # early collateral moves go to where the edge probability is this x p


@dataclass(slots=True, kw_only=True)
class AssetTerms:
    """One risky asset's terms at this hour (floats), or at many hours (numpy arrays)."""

    b: Any  # trigger (fraction)
    r: Any  # return point (fraction, >= 0)
    v: Any  # variance rate of the deviation per hour
    a: Any  # penalty per hour per unit d^2 (USD)
    big_a: Any  # g / v: value per unit (d^2 - r^2)
    leg_now: Any  # gas of this asset's leg at this hour's price (USD)
    fee_ppm: Any  # int
    depth: Any  # float


def _tx_units(m: CostModel) -> int:
    """Gas of a rebalance that trades every risky asset: a forced trade resets the vault, so
    each asset's return point is sized against the whole transaction's gas."""
    return m.gas.rebalance_units([p.hops for p in m.pools if p is not None])


def _usd_gas(units: float, gas_wei: Any, eth_e18: Any) -> Any:
    return units * gas_wei * eth_e18 / ONE_E18 / ONE_E18


def asset_terms(*, w: Any, b: Any, rel_var: Any, vol: Any, nav: Any, fee_frac: float,
                depth: float, fixed_units: float, leg_units: float, tx_units: float,
                gas_now: Any, gas_typ: Any,
                eth_e18: Any, gamma: float, ret_scale: float,
                sqrt: Callable[[Any], Any], lo: Callable[[Any, Any], Any],
                hi: Callable[[Any, Any], Any]) -> AssetTerms:
    """The renewal terms of one asset (module docstring), in + - x / and sqrt only, so floats
    (decide) and numpy arrays (the backtester's screen over many hours) give the same bits."""
    wd = w * w * rel_var
    v = hi(wd, MIN_VAR)
    a = 0.5 * gamma * nav * (vol * vol)
    big_k = _usd_gas(tx_units, gas_typ, eth_e18)
    fee = nav * fee_frac
    k = fee + nav * nav * b / (4.0 * depth)
    u0 = (sqrt(big_k * big_k + 2.0 * k * b * big_k) - big_k) / k
    u = lo(b, hi(ret_scale * u0, 0.0))
    r = b - u
    q = u * nav
    c_forced = big_k + q * fee_frac + q * q / (2.0 * depth + q)
    b2, r2 = b * b, r * r
    pen = a * (b2 * b2 - r2 * r2) / (6.0 * v)
    span = hi((b2 - r2) / v, 1e-12)
    big_a = (c_forced + pen) / span / v
    return AssetTerms(b=b, r=r, v=v, a=a, big_a=big_a,
                      leg_now=_usd_gas(leg_units, gas_now, eth_e18),
                      fee_ppm=round(fee_frac * PPM), depth=depth)


def _fields(t: AssetTerms) -> dict[str, Any]:
    return {f: getattr(t, f) for f in AssetTerms.__dataclass_fields__}


def _must_clear(fixed: float) -> str:
    """The early-action hurdle, as the hold reasons state it."""
    return (f"after its gas, fees and impact; it must clear {EARLY_HURDLE * fixed:.2f} USD "
            f"({EARLY_HURDLE:g} x the fixed gas)")


def early_gain(dev: Sequence[Any], terms: dict[int, AssetTerms], nav: Any, fixed: Any,
               pick: Callable[[Any, Any, Any], Any]) -> Any:
    """What acting early would gain at most (module docstring): floats, or per-hour arrays
    with `pick` = numpy.where; the same operations either way."""
    total: Any = 0.0
    for i, t in terms.items():
        d = dev[i]
        aq = abs((_copysign(t.r, d) - d) * nav)
        var = aq * t.fee_ppm / PPM + aq * aq / (2.0 * t.depth + aq)
        net = _value(d, t) - var - t.leg_now
        total = total + pick((abs(d) > t.r) & (net > 0.0), net, 0.0)
    return total - fixed


def _copysign(x: Any, y: Any) -> Any:
    return np.copysign(x, y) if isinstance(y, np.ndarray) else math.copysign(x, y)


def _pick(cond: bool, x: float, y: float) -> float:
    return x if cond else y


def rel_var(i: int, w: Sequence[float], vols: Sequence[Any], corr: Any) -> Any:
    """Variance per hour of asset i's return against the basket held at weights w
    (c' Sigma c, c = e_i - w), over floats or per-hour arrays (corr[a][b] either way)."""
    n = len(w)
    c = [((1.0 if j == i else 0.0) - w[j]) * vols[j] for j in range(n)]
    var: Any = 0.0
    for x in range(n):
        for y in range(n):
            var = var + c[x] * c[y] * corr[x][y]
    return var


@dataclass(frozen=True, slots=True, kw_only=True)
class PreventativePolicy:
    width_bps: int = 500
    ret_scale: float = 1.0
    horizon_h: int = 24
    min_trade_usd: float = 100.0
    ltv_act_prob: float = 0.05
    vol_scaling: bool = True
    gas_timing: bool = True
    split: bool = True
    early: bool = True
    name: ClassVar[str] = "preventative"
    uses_forecast: ClassVar[bool] = True
    needs_breach_prob: ClassVar[bool] = False

    def decide(self, state: VaultState, forecast: Forecast, costs: CostInputs) -> Decision:
        d = self._collateral(state, forecast)
        if d is not None:
            return d
        terms = self.terms(state, forecast, costs)
        dev = deviations(state)
        hard = [i for i, a in enumerate(state.assets) if abs(a.deviation_bps) > self._width(a)]
        if not hard:
            if not self.early:
                return hold("preventative: every weight inside its trigger (early action off)")
            fixed = _usd_gas(costs.model.gas.rebalance_fixed, float(self._gas_now(costs)),
                             float(costs.eth_usd_e18))
            gain = early_gain(dev, terms, nav_usd(state), fixed, _pick)
            if gain <= EARLY_HURDLE * fixed:  # the screen
                return hold(f"preventative: acting early would gain at most {gain:.2f} USD "
                            f"{_must_clear(fixed)}")
        return self._choose(state, dev, terms, costs, hard)

    # ------------------------------------------------------------ per-asset terms

    def _width(self, asset: Any) -> int:
        """The trigger: at most 1 bps inside the outer band, so that a weight the state rounds
        down to the band's edge is never left outside it."""
        return min(self.width_bps, int(asset.outer_band_bps) - 1)

    def _gas_now(self, costs: CostInputs) -> int:
        return costs.gas_price_wei if self.gas_timing else costs.gas_typical_wei

    def terms(self, state: VaultState, forecast: Forecast, costs: CostInputs
              ) -> dict[int, AssetTerms]:
        vols = forecast.vol_per_h_frac if self.vol_scaling else forecast.long_run_vol_per_h_frac
        w = [a.target_bps / BPS for a in state.assets]
        m, nav = costs.model, nav_usd(state)
        tx = _tx_units(m)
        out: dict[int, AssetTerms] = {}
        for i, (a, pool) in enumerate(zip(state.assets, m.pools, strict=True)):
            if pool is None:
                continue
            out[i] = asset_terms(
                w=w[i], b=self._width(a) / BPS, rel_var=rel_var(i, w, vols, forecast.corr),
                vol=vols[i], nav=nav, fee_frac=pool.fee_ppm / PPM, depth=pool.depth_e18 / ONE_E18,
                fixed_units=m.gas.rebalance_fixed, leg_units=m.gas.rebalance_units([pool.hops])
                - m.gas.rebalance_fixed, tx_units=tx, gas_now=float(self._gas_now(costs)),
                gas_typ=float(costs.gas_typical_wei), eth_e18=float(costs.eth_usd_e18),
                gamma=m.tracking_gamma, ret_scale=self.ret_scale, sqrt=math.sqrt, lo=min, hi=max)
        return out

    def screen(self, view: ScreenView) -> NDArray[np.bool_]:
        """`decide()`'s own first test over a span of hours: `asset_terms` and `early_gain` on
        per-hour arrays (the same operations on the same numbers as `terms` and `decide`, so
        the same bits). The terms depend on the run's inputs alone: computed once per run."""
        key = ("preventative terms", self.width_bps, self.ret_scale, self.vol_scaling,
               self.gas_timing)
        run_terms = view.memo.get(key)
        if run_terms is None:
            run_terms = view.memo[key] = self._run_terms(view)
        terms = {i: AssetTerms(**{f: view.rows(x) if isinstance(x, np.ndarray) else x
                                  for f, x in _fields(t).items()})
                 for i, t in run_terms.items()}
        n, m = len(view.targets_bps), view.model
        held: NDArray[np.bool_] = np.ones(view.dev_bps.shape[0], dtype=bool)
        for i in range(n):
            held &= np.abs(view.dev_bps[:, i]) <= min(self.width_bps, view.outer_bps[i] - 1)
        if self.early:
            devs = [view.dev_bps[:, j] / BPS for j in range(n)]
            gas_now = view.rows(view.gas_now if self.gas_timing else view.gas_typical)
            fixed = _usd_gas(m.gas.rebalance_fixed, gas_now, view.rows(view.eth_e18))
            held &= early_gain(devs, terms, view.nav, fixed, np.where) <= EARLY_HURDLE * fixed
        return held

    def _run_terms(self, view: ScreenView) -> dict[int, AssetTerms]:
        m, n = view.model, len(view.targets_bps)
        w = [t / BPS for t in view.targets_bps]
        vols: list[Any] = [view.vols[:, j] for j in range(n)] if self.vol_scaling else \
            list(view.long_run_vols)
        corr = [[view.corr[:, x, y] for y in range(n)] for x in range(n)]
        gas_now = view.gas_now if self.gas_timing else view.gas_typical
        tx = _tx_units(m)
        out: dict[int, AssetTerms] = {}
        for i, pool in enumerate(m.pools):
            if pool is None:
                continue
            out[i] = asset_terms(
                w=w[i], b=min(self.width_bps, view.outer_bps[i] - 1) / BPS,
                rel_var=rel_var(i, w, vols, corr), vol=vols[i], nav=view.nav,
                fee_frac=pool.fee_ppm / PPM, depth=pool.depth_e18 / ONE_E18,
                fixed_units=m.gas.rebalance_fixed, leg_units=m.gas.rebalance_units([pool.hops])
                - m.gas.rebalance_fixed, tx_units=tx, gas_now=gas_now,
                gas_typ=view.gas_typical, eth_e18=view.eth_e18, gamma=m.tracking_gamma,
                ret_scale=self.ret_scale, sqrt=np.sqrt, lo=np.minimum, hi=np.maximum)
            # a constant-vol asset gives scalars: make every field per hour
            out[i] = AssetTerms(**{f: np.broadcast_to(x, view.now_ts.shape)
                                   if not isinstance(x, int) else x
                                   for f, x in _fields(out[i]).items()})
        return out

    # ------------------------------------------------------------ the choice

    def _choose(self, state: VaultState, dev: list[float], terms: dict[int, AssetTerms],
                costs: CostInputs, hard: list[int]) -> Decision:
        cash, nav, gas = cash_index(state), nav_usd(state), self._gas_now(costs)
        value, net, new = {}, {}, list(dev)
        for i, t in terms.items():
            if abs(dev[i]) <= t.r:
                continue
            target = math.copysign(t.r, dev[i])
            value[i] = _value(dev[i], t)
            var = trade_cost_usd([0.0 if j != i else (target - dev[i]) * nav
                                  for j in range(len(dev))], costs, 0.0)
            net[i] = value[i] - var - t.leg_now
            if net[i] > 0.0:
                new[i] = target
        if hard:  # a weight is past its trigger: every deviation goes back within its r
            new = _cash_back(dev, terms, cash)
        fixed = _usd_gas(costs.model.gas.rebalance_fixed, float(gas), float(costs.eth_usd_e18))
        chosen = [i for i in terms if new[i] != dev[i]]
        gain = sum(net.get(i, 0.0) for i in chosen) - fixed
        if not hard and gain <= EARLY_HURDLE * fixed:
            return hold(f"preventative: acting now would gain {gain:.2f} USD "
                        f"{_must_clear(fixed)}: wait", net_usd=gain)
        new[cash] = 0.0
        new[cash] = -sum(new)
        new = drop_small_legs(dev, new, cash, nav, self.min_trade_usd)
        if new == dev:
            return hold("preventative: every leg is under the minimum trade")
        q = trade_notionals_usd(dev, new, nav, cash)
        if not hard and self.gas_timing and self._later_is_cheaper(q, dev, terms, costs):
            return hold(f"preventative: cheaper gas expected in {costs.hours_to_min_ahead} h")
        clips = best_clips(q, costs, state) if self.split else 1
        benefit = sum(value[i] for i in chosen if i in value)
        if hard:  # past its trigger the policy acts like a rule: its trade is required of it
            benefit = max(benefit, rule_benefit_usd(state, new, costs, clips))
        why = "outside its trigger" if hard else "acting now is worth its cost"
        return rebalance(state, new, f"preventative: {why} (value {benefit:.2f} USD, net "
                         f"{gain:.2f} USD)", clips=clips, benefit_usd=benefit, net_usd=gain)

    def _later_is_cheaper(self, q: list[float], dev: list[float], terms: dict[int, AssetTerms],
                          costs: CostInputs) -> bool:
        """Acting at the forecast cheapest hour k instead: the gas saved must beat k hours of
        penalty plus the chance that a weight reaches its trigger before then."""
        k = costs.hours_to_min_ahead
        if costs.gas_min_ahead_wei >= costs.gas_price_wei or k <= 0:
            return False
        saving = trade_cost_usd(q, costs, costs.gas_price_wei) - trade_cost_usd(
            q, costs, costs.gas_min_ahead_wei)
        wait = 0.0
        for i, t in terms.items():
            d = abs(dev[i])
            wait += k * t.a * d * d
            p = 2.0 * norm_cdf(-(t.b - d) / math.sqrt(t.v * k)) if t.b > d else 1.0
            wait += p * trade_cost_usd(q, costs, costs.gas_typical_wei)
        return wait < saving

    # ------------------------------------------------------------ collateral

    def _collateral(self, state: VaultState, forecast: Forecast) -> Decision | None:
        """The shared collateral rule first; inside its band, move the LTV back early when the
        forecast gives it more than `ltv_act_prob` of reaching a band edge within the horizon."""
        reactive = reactive_collateral(state, self.name)
        c = state.collateral
        if reactive is not None or c is None or c.debt_e8 == 0 or c.target_ltv_bps == 0:
            return reactive
        ltv, vol, h = c.ltv_bps / BPS, forecast.ltv_vol_per_h_frac, float(self.horizon_h)
        top, bottom, goal = c.max_ltv_bps / BPS, c.min_ltv_bps / BPS, c.target_ltv_bps / BPS
        p_up = ltv_edge_prob(ltv, top, vol, h)
        if p_up > self.ltv_act_prob:
            to = ltv_at_prob(top, vol, h, LTV_TARGET_FRAC * self.ltv_act_prob, up=True)
            to = max(to, goal)
            if to < ltv:
                return _ltv_move(Action.DELEVERAGE, to, ltv, top, p_up, h)
        p_down = ltv_edge_prob(ltv, bottom, vol, h) if bottom > 0 else 0.0
        if p_down > self.ltv_act_prob:
            to = min(ltv_at_prob(bottom, vol, h, LTV_TARGET_FRAC * self.ltv_act_prob, up=False),
                     goal)
            if to > ltv:
                return _ltv_move(Action.RELEVERAGE, to, ltv, bottom, p_down, h)
        return None


def _cash_back(dev: list[float], terms: dict[int, AssetTerms], cash: int) -> list[float]:
    """Every risky deviation at most its return point, shrunk together until the cash weight
    is back within the smallest of them (the cash asset takes the rest)."""
    new = [math.copysign(min(abs(dev[i]), terms[i].r), dev[i]) if i in terms else 0.0
           for i in range(len(dev))]
    limit = min(t.r for t in terms.values())
    total = sum(new)
    if abs(total) > limit > 0.0:
        new = [x * limit / abs(total) for x in new]
    new[cash] = -sum(new)
    return new


def _value(d: Any, t: AssetTerms) -> Any:
    """h(d) - h(r): what moving this asset from d back to r is worth (module docstring)."""
    d2, r2 = d * d, t.r * t.r
    return t.big_a * (d2 - r2) - t.a * (d2 * d2 - r2 * r2) / (6.0 * t.v)


def _ltv_move(action: Action, to: float, ltv: float, edge: float, p: float, h: float
              ) -> Decision:
    target = round(to * BPS)
    return Decision(action=action, target_ltv_bps=target,
                    reason=f"preventative: LTV {ltv * BPS:.0f} bps, P(reaching {edge * BPS:.0f} "
                    f"bps within {h:.0f} h) = {p:.3f}: move to {target} bps early",
                    details={"ltv_edge_prob": p})


def ltv_edge_prob(ltv: float, edge: float, vol_per_h: float, horizon_h: float) -> float:
    """P(the LTV reaches `edge` within the horizon): stable debt against a GBM collateral, so
    log LTV is a Brownian motion with drift +sigma^2/2 (first passage up or down)."""
    if ltv <= 0.0:
        return 0.0
    dist = math.log(edge / ltv)
    if dist >= 0.0:
        return first_passage_prob(dist, 0.5 * vol_per_h**2, vol_per_h, horizon_h)
    return first_passage_prob(-dist, -0.5 * vol_per_h**2, vol_per_h, horizon_h)


def ltv_at_prob(edge: float, vol_per_h: float, horizon_h: float, p: float, up: bool) -> float:
    """The LTV from which the edge is reached within the horizon with probability p (bisection
    on the log distance: the probability falls as the distance grows)."""
    lo_d, hi_d = 0.0, 2.0
    for _ in range(50):
        mid = 0.5 * (lo_d + hi_d)
        ltv = edge * math.exp(-mid if up else mid)
        if ltv_edge_prob(ltv, edge, vol_per_h, horizon_h) > p:
            lo_d = mid
        else:
            hi_d = mid
    return edge * math.exp(-hi_d if up else hi_d)
