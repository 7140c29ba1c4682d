"""Preventative rebalancing: act when the expected cost of waiting exceeds the cost of acting now.

For a candidate post-trade deviation d' the expected cost over the horizon H is
    J(d') = C_now(d -> d') + H x penalty(d') + P(breach within H | d') x C_late
- C_now: gas at this hour's price (cheap hours make acting cheaper), pool fee, v3 impact;
- penalty: the tracking penalty in the same money (0.5 gamma NAV d' Sigma d per hour);
- P(breach): closed-form band exit with the forecast's vol (GARCH: vol clustering);
- C_late: a forced rebalance from the band edge at typical gas.
Holding is J(d); the trade size minimises J over the band edge with scipy (bounded), under the
minimum-trade rule; the per-step and slippage limits decide how many clips (`split`). With
`gas_timing`, acting now is also compared with acting at the forecast cheapest hour of the
next day. Outside `width_bps` it always acts. A collateral position gets a ripcord: at or over
the ripcord LTV it deleverages regardless of cost, and it deleverages early when
P(LTV reaches the ripcord within H) > `ltv_act_prob`.

Levers (for the decomposition): `vol_scaling` (off: long-run vol), `gas_timing` (off: typical
gas for every hour), `split` (off: one clip).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from keeper.costs import CostInputs, tracking_penalty_usd_per_h, trade_cost_usd
from keeper.forecast.breach import band_breach_prob, ltv_breach_prob
from keeper.models import Action, Decision, Forecast, VaultState
from keeper.policy.base import (
    best_clips,
    cash_index,
    deviations,
    drop_small_legs,
    hold,
    minimize_bounded,
    nav_usd,
    project_to_band,
    reactive_collateral,
    rebalance,
    rule_benefit_usd,
    trade_notionals_usd,
)
from keeper.units import BPS

EDGE_MARGIN = 0.98
SCREEN_FRAC = 0.35  # below this share of the band, neither breach nor penalty can pay for a trade


@dataclass(slots=True, kw_only=True)
class _Ctx:  # per-call scratch, never shared: not frozen (a frozen __init__ is slow, every hour)
    dev: list[float]
    targets: list[float]
    bands: list[float]
    vols: Sequence[float]
    corr: Sequence[Sequence[float]]
    cov: list[list[float]]
    nav: float
    cash: int
    gamma: float
    c_late: float
    p_hold: float | None  # the forecast's own breach probability, when it fits the policy


@dataclass(frozen=True, slots=True, kw_only=True)
class PreventativePolicy:
    width_bps: int = 400
    horizon_h: int = 24
    ret_frac: float = 0.5
    min_trade_usd: float = 100.0
    ltv_act_prob: float = 0.05
    vol_scaling: bool = True
    gas_timing: bool = True
    split: bool = True
    name: ClassVar[str] = "preventative"
    uses_forecast: ClassVar[bool] = True

    def decide(self, state: VaultState, forecast: Forecast, costs: CostInputs) -> Decision:
        d = self._collateral(state, forecast)
        if d is not None:
            return d
        worst = state.max_abs_deviation_bps
        if worst < SCREEN_FRAC * self.width_bps:
            return hold(f"preventative: deviation {worst} bps, far inside {self.width_bps} bps")
        ctx = self._context(state, forecast, costs)
        return self._choose(state, ctx, costs, hard=worst > self.width_bps)

    # ------------------------------------------------------------ cost of a candidate

    def _gas(self, costs: CostInputs) -> int:
        return costs.gas_price_wei if self.gas_timing else costs.gas_typical_wei

    def _expected(self, new: list[float], ctx: _Ctx, costs: CostInputs, gas_wei: float,
                  horizon: float) -> float:
        """J(new) = C_now + H x penalty + P(breach) x C_late, evaluated in that order."""
        return self._certain(new, ctx, costs, gas_wei, horizon) + \
            self._breach_prob(new, ctx, horizon) * ctx.c_late

    def _certain(self, new: list[float], ctx: _Ctx, costs: CostInputs, gas_wei: float,
                 horizon: float) -> float:
        """The breach-free part of J: C_now + H x penalty (a lower bound on J, see `_choose`)."""
        if new is ctx.dev:
            c_now = 0.0  # q = (d - d) x nav = 0.0 for every leg (d, nav finite): nothing trades
        else:
            q = trade_notionals_usd(ctx.dev, new, ctx.nav, ctx.cash)
            c_now = trade_cost_usd(q, costs, gas_wei) if any(q) else 0.0
        pen = tracking_penalty_usd_per_h(ctx.nav, new, ctx.cov, ctx.gamma)
        return c_now + horizon * pen

    def _breach_prob(self, new: list[float], ctx: _Ctx, horizon: float) -> float:
        if new is ctx.dev and ctx.p_hold is not None and horizon == self.horizon_h:
            return ctx.p_hold
        w = [t + d for t, d in zip(ctx.targets, new, strict=True)]
        return band_breach_prob(w, ctx.targets, ctx.bands, ctx.vols, ctx.corr, horizon)

    def _candidate(self, edge: float, ctx: _Ctx) -> list[float]:
        return drop_small_legs(ctx.dev, project_to_band(ctx.dev, edge, ctx.cash), ctx.cash,
                               ctx.nav, self.min_trade_usd)

    # ------------------------------------------------------------ the choice

    def _choose(self, state: VaultState, ctx: _Ctx, costs: CostInputs, hard: bool) -> Decision:
        h, gas = float(self.horizon_h), self._gas(costs)
        j_hold = self._expected(ctx.dev, ctx, costs, gas, h)
        width = self.width_bps / BPS
        if not hard:
            guess = self._candidate(width * (1.0 - self.ret_frac), ctx)
            # Exact screen: J(guess) = certain + P x C_late with P x C_late >= 0 (P in [0, 1],
            # C_late a cost >= 0), and float addition of a non-negative term never decreases
            # (rounding is monotone), so certain >= J_hold already implies J(guess) >= J_hold:
            # the breach probability of the guess (the costly part) is not needed to hold.
            certain = self._certain(guess, ctx, costs, gas, h)
            if certain >= j_hold or \
                    certain + self._breach_prob(guess, ctx, h) * ctx.c_late >= j_hold:
                return hold(f"preventative: waiting is cheaper (J_hold {j_hold:.2f} USD)",
                            j_hold_usd=j_hold)
        # stay a little inside the band edge, so bps rounding cannot leave a weight on it
        hi = min(EDGE_MARGIN * width, max(abs(x) for x in ctx.dev))
        edge, j_act = self._optimise(ctx, costs, gas, hi)
        new = self._candidate(edge, ctx)
        if new == ctx.dev:
            return hold("preventative: every leg is under the minimum trade")
        if not hard and self.gas_timing and self._later_is_cheaper(new, ctx, costs):
            return hold(f"preventative: cheaper gas expected in {costs.hours_to_min_ahead} h",
                        j_act_usd=j_act)
        if not hard and j_act >= j_hold:
            return hold("preventative: no trade size beats waiting", j_hold_usd=j_hold)
        q = trade_notionals_usd(ctx.dev, new, ctx.nav, ctx.cash)
        clips = best_clips(q, costs, state) if self.split else 1
        # worth acting while its cost stays under J_hold minus what remains expected after it
        benefit = j_hold - (j_act - trade_cost_usd(q, costs, gas))
        if hard:  # past its own width the policy acts like a rule: its trade is required of it
            benefit = max(benefit, rule_benefit_usd(state, new, costs, clips))
        why = "outside band" if hard else "expected cost of waiting exceeds acting"
        return rebalance(state, new, f"preventative: {why} (J_hold {j_hold:.2f} > J_act "
                         f"{j_act:.2f} USD), edge {edge * BPS:.0f} bps", clips=clips,
                         benefit_usd=benefit, j_hold_usd=j_hold, j_act_usd=j_act)

    def _optimise(self, ctx: _Ctx, costs: CostInputs, gas: float, hi: float
                  ) -> tuple[float, float]:
        h = float(self.horizon_h)
        x, fx = minimize_bounded(
            lambda e: self._expected(self._candidate(e, ctx), ctx, costs, gas, h), 0.0, hi, 2e-4)
        return float(x), float(fx)

    def _later_is_cheaper(self, new: list[float], ctx: _Ctx, costs: CostInputs) -> bool:
        """Acting at the forecast cheapest hour k instead: the gas saved must beat k hours of
        penalty plus the chance of a breach before then."""
        if costs.gas_min_ahead_wei >= costs.gas_price_wei:
            return False
        q = trade_notionals_usd(ctx.dev, new, ctx.nav, ctx.cash)
        saving = trade_cost_usd(q, costs, costs.gas_price_wei) - trade_cost_usd(
            q, costs, costs.gas_min_ahead_wei)
        wait = self._expected(ctx.dev, ctx, costs, 0.0, float(costs.hours_to_min_ahead))
        return wait < saving

    # ------------------------------------------------------------ context

    def _context(self, state: VaultState, forecast: Forecast, costs: CostInputs) -> _Ctx:
        vols = forecast.vol_per_h_frac if self.vol_scaling else forecast.long_run_vol_per_h_frac
        # vols[a] * vols[b] * corr[a][b], the same products as an index loop
        cov = [[va * vb * c for vb, c in zip(vols, row, strict=True)]
               for va, row in zip(vols, forecast.corr, strict=True)]
        dev = deviations(state)
        targets = [a.target_bps / BPS for a in state.assets]
        bands = [a.outer_band_bps / BPS for a in state.assets]
        cash, nav = cash_index(state), nav_usd(state)
        fits = self.vol_scaling and forecast.horizon_h == self.horizon_h and \
            forecast.breach_prob == forecast.breach_prob  # not NaN
        return _Ctx(p_hold=forecast.breach_prob if fits else None, dev=dev, targets=targets,
                    bands=bands, vols=vols, corr=forecast.corr,
                    cov=cov, nav=nav, cash=cash, gamma=costs.model.tracking_gamma,
                    c_late=self._late_cost(dev, nav, cash, costs))

    def _late_cost(self, dev: list[float], nav: float, cash: int, costs: CostInputs) -> float:
        """A forced rebalance from the band edge (current direction) at typical gas."""
        worst = max(abs(x) for x in dev)
        width = self.width_bps / BPS
        at_edge = [x * width / worst for x in dev] if worst > 0 else dev
        after = project_to_band(at_edge, width * (1.0 - self.ret_frac), cash)
        q = trade_notionals_usd(at_edge, after, nav, cash)
        return trade_cost_usd(q, costs, costs.gas_typical_wei)

    # ------------------------------------------------------------ collateral ripcord

    def _collateral(self, state: VaultState, forecast: Forecast) -> Decision | None:
        """The shared collateral rule first; inside its band, deleverage early when the
        forecast puts the ripcord within reach of the horizon."""
        reactive = reactive_collateral(state, self.name)
        c = state.collateral
        if reactive is not None or c is None or c.debt_e8 == 0 or c.target_ltv_bps == 0:
            return reactive
        p = ltv_breach_prob(c.ltv_bps / BPS, c.ripcord_ltv_bps / BPS,
                            forecast.ltv_vol_per_h_frac, float(self.horizon_h))
        if p > self.ltv_act_prob:
            return Decision(action=Action.DELEVERAGE, target_ltv_bps=c.target_ltv_bps,
                            reason=f"deleverage early: LTV {c.ltv_bps} bps, P(ripcord within "
                            f"{self.horizon_h} h) = {p:.3f}", details={"ltv_ripcord_prob": p})
        return None


def expected_cost_usd(policy: PreventativePolicy, state: VaultState, forecast: Forecast,
                      costs: CostInputs, new_dev: list[float]) -> float:
    """J(new_dev) as the policy sees it: for tests and reports."""
    ctx = policy._context(state, forecast, costs)
    return policy._expected(new_dev, ctx, costs, policy._gas(costs), float(policy.horizon_h))

