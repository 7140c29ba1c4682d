"""The collateral position's plan: a policy's deleverage, releverage or ripcord decision
(the rule lives once, in keeper.policy.base.reactive_collateral) as adjustCollateral or ripcord
calldata."""

from __future__ import annotations

from keeper.chain.contracts import encode_call
from keeper.models import CollateralState, Decision, VaultState
from keeper.units import ONE_E8

SUPPLY, WITHDRAW, BORROW, REPAY = range(4)


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
