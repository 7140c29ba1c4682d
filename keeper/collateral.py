"""The collateral position: a decision rule (pure) and its plan (adjustCollateral or ripcord).

The weight policy handles the basket; this rule keeps the lending position's LTV inside its
band and pulls the ripcord near liquidation regardless of cost.
"""

from __future__ import annotations

from keeper.chain.contracts import encode_call
from keeper.models import Action, CollateralState, Decision, VaultState
from keeper.units import ONE_E8

SUPPLY, WITHDRAW, BORROW, REPAY = range(4)


def collateral_decision(state: VaultState) -> Decision | None:
    """DELEVERAGE / RELEVERAGE toward the target LTV when outside the band, else None."""
    c = state.collateral
    if c is None or c.target_ltv_bps == 0:
        return None
    if c.in_danger:
        return Decision(
            action=Action.DELEVERAGE,
            urgent=True,
            target_ltv_bps=c.target_ltv_bps,
            reason=f"ripcord: LTV {c.ltv_bps} bps >= {c.ripcord_ltv_bps} bps",
        )
    if c.ltv_bps > c.max_ltv_bps:
        return Decision(
            action=Action.DELEVERAGE,
            target_ltv_bps=c.target_ltv_bps,
            reason=f"LTV {c.ltv_bps} bps above band max {c.max_ltv_bps} bps",
        )
    if c.collateral_e8 > 0 and c.ltv_bps < c.min_ltv_bps:
        return Decision(
            action=Action.RELEVERAGE,
            target_ltv_bps=c.target_ltv_bps,
            reason=f"LTV {c.ltv_bps} bps below band min {c.min_ltv_bps} bps",
        )
    return None


def debt_change_e8(c: CollateralState, target_ltv_bps: int) -> int:
    """Signed change in debt (base currency, 8 decimals) that puts the LTV at target."""
    return c.collateral_e8 * target_ltv_bps // 10_000 - c.debt_e8


def collateral_calldata(
    state: VaultState, decision: Decision, debt_symbol: str, deadline: int
) -> tuple[bytes, str]:
    """Calldata for the collateral action, and a description. Repays come from the wallet."""
    c = state.collateral
    assert c is not None and decision.target_ltv_bps is not None
    debt = state.asset(debt_symbol)
    delta_e8 = debt_change_e8(c, decision.target_ltv_bps)
    raw = abs(delta_e8) * 10**debt.decimals * 10**debt.feed.decimals // (debt.feed.answer * ONE_E8)
    if decision.urgent:
        args: tuple[list[tuple[object, ...]], int, int, int] = ([], raw, deadline, state.epoch)
        return encode_call(
            "RebalancingVault", "ripcord", args
        ), f"ripcord: repay {raw} {debt_symbol}"
    action = BORROW if delta_e8 > 0 else REPAY
    args2 = (action, debt.token, raw, deadline, state.epoch)
    verb = "borrow" if action == BORROW else "repay"
    return encode_call("RebalancingVault", "adjustCollateral", args2), f"{verb} {raw} {debt_symbol}"
