"""The verdict on a simulated plan: what ran (revert, gas, amounts out, post-trade weights and
health) against what the plan promised. Pure: the same judge serves every way of running it.
"""

from __future__ import annotations

from dataclasses import dataclass

from keeper.legs import out_value_e18
from keeper.models import RebalancePlan, SimulationReport, VaultState
from keeper.units import BPS, ONE_E18

FROZEN = {"frozen": True, "slots": True, "kw_only": True}


@dataclass(**FROZEN)
class SimLimits:
    gas_budget: int
    max_slippage_bps: int  # realised, against the oracle, per leg


@dataclass(**FROZEN)
class Outcome:
    """What the plan's transaction did when run at the snapshot state."""

    gas_used: int
    revert: str | None = None  # the revert reason (named when the vault's error is known)
    amounts_out_raw: tuple[int, ...] = ()  # one per executed swap (Swapped events)
    post_weights_bps: tuple[int, ...] = ()  # keeperView right after it
    post_ltv_bps: int | None = None


def distance_bps(weights: tuple[int, ...], targets: tuple[int, ...]) -> int:
    return sum(abs(w - t) for w, t in zip(weights, targets, strict=True))


def report(
    plan: RebalancePlan, state: VaultState, outcome: Outcome, limits: SimLimits
) -> SimulationReport:
    """The SimulationReport of one run: a revert rejects it, otherwise `judge` says why not."""
    targets = tuple(int(a.target_bps) for a in state.assets)
    pre = pre_distance_bps(state)
    if outcome.revert is not None:
        reason = f"reverts: {outcome.revert}"
        return _rejected(pre, reason, gas=outcome.gas_used, revert=outcome.revert)
    post = distance_bps(outcome.post_weights_bps, targets)
    outs = outcome.amounts_out_raw
    reasons = judge(plan, state, outcome.gas_used, outs, pre, post, limits, outcome.post_ltv_bps)
    return SimulationReport(
        ok=not reasons,
        reasons=tuple(reasons),
        gas_used=outcome.gas_used,
        amounts_out_raw=outs,
        post_weights_bps=outcome.post_weights_bps,
        post_distance_bps=post,
        pre_distance_bps=pre,
        post_ltv_bps=outcome.post_ltv_bps,
    )


def refused(state: VaultState, why: str) -> SimulationReport:
    """The node would not run the transaction at all (invalid as it stands: a gas limit under
    its intrinsic gas, say): rejected, with the node's words."""
    return _rejected(pre_distance_bps(state), f"not run: {why}", gas=0, revert=None)


def pre_distance_bps(state: VaultState) -> int:
    targets = tuple(int(a.target_bps) for a in state.assets)
    return distance_bps(tuple(int(a.weight_bps) for a in state.assets), targets)


def _rejected(pre: int, reason: str, *, gas: int, revert: str | None) -> SimulationReport:
    return SimulationReport(
        ok=False,
        reasons=(reason,),
        gas_used=gas,
        amounts_out_raw=(),
        post_weights_bps=(),
        post_distance_bps=pre,
        pre_distance_bps=pre,
        post_ltv_bps=None,
        revert=revert,
    )


def judge(
    plan: RebalancePlan,
    state: VaultState,
    gas_used: int,
    outs: tuple[int, ...],
    pre: int,
    post: int,
    limits: SimLimits,
    post_ltv_bps: int | None = None,
) -> list[str]:
    """Why the outcome is off (empty: fine). Each check mirrors one promise of the plan: a
    rebalance ends closer to target within the slippage limit, at an executed cost under its
    benefit; a deleverage or ripcord lowers the LTV; a releverage raises it without leaving the
    band."""
    reasons = []
    if gas_used > limits.gas_budget:
        reasons.append(f"gas used {gas_used} over the budget {limits.gas_budget}")
    if plan.kind == "rebalance":
        reasons += _judge_swaps(plan, outs, pre, post, limits)
    else:
        reasons += _judge_ltv(plan.kind, state, post_ltv_bps)
    return reasons


def realised_cost_e18(plan: RebalancePlan, outs: tuple[int, ...]) -> int:
    """What the swaps cost as executed: each leg's shortfall against the oracle (pool fee and
    impact, E18 USD; a fill over the oracle is a gain and lowers it), plus the plan's gas."""
    shortfall = sum(
        leg.notional_e18 - out_value_e18(leg, out)
        for leg, out in zip(plan.legs, outs, strict=False)
    )
    return shortfall + plan.cost.gas_e18


def _judge_cost(plan: RebalancePlan, outs: tuple[int, ...]) -> list[str]:
    """The planner quotes each leg alone and only estimates what legs through one pool cost in
    sequence (or what a pool that moved costs); the executed cost must still be under the
    benefit."""
    if plan.benefit_e18 is None:  # required: the planner's NAV cap applies, not a benefit
        return []
    realised = realised_cost_e18(plan, outs)
    if realised <= plan.benefit_e18:
        return []
    return [
        f"realised cost {realised / ONE_E18:.2f} USD (quoted {plan.cost.total_e18 / ONE_E18:.2f})"
        f" exceeds the expected benefit {plan.benefit_e18 / ONE_E18:.2f} USD"
    ]


def _judge_swaps(
    plan: RebalancePlan, outs: tuple[int, ...], pre: int, post: int, limits: SimLimits
) -> list[str]:
    reasons = _judge_cost(plan, outs)
    if post >= pre:
        reasons.append(f"weights not closer to target: distance {pre} -> {post} bps")
    for leg, out in zip(plan.legs, outs, strict=False):
        slip = (leg.oracle_out_raw - out) * BPS // max(leg.oracle_out_raw, 1)
        if slip > limits.max_slippage_bps:
            reasons.append(
                f"{leg.sell}->{leg.buy} realised slippage {slip} bps over {limits.max_slippage_bps}"
            )
    if len(outs) != len(plan.legs):
        reasons.append(f"{len(outs)} swaps executed for {len(plan.legs)} legs")
    return reasons


def _judge_ltv(kind: str, state: VaultState, post_ltv_bps: int | None) -> list[str]:
    if state.collateral is None or post_ltv_bps is None:
        return [f"a {kind} needs a collateral position to judge"]
    ltv, c = state.collateral.ltv_bps, state.collateral
    if kind in ("deleverage", "ripcord") and post_ltv_bps >= ltv:
        return [f"LTV not reduced: {ltv} -> {post_ltv_bps} bps"]
    if kind == "releverage" and not ltv < post_ltv_bps <= c.max_ltv_bps:
        return [f"LTV not raised inside the band: {ltv} -> {post_ltv_bps} bps, max {c.max_ltv_bps}"]
    return []
