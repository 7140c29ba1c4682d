"""Plain-data summaries of a plan and a simulation, as the ledger records them and `--json`
prints them (USD as floats for reading; the integer amounts stay in the stage objects)."""

from __future__ import annotations

from typing import Any

from keeper.models import RebalancePlan, SimulationReport
from keeper.units import ONE_E18

PATH_HOP_BYTES = 23  # a v3 path is token (20) | fee (3) | token (20) ...


def plan_details(plan: RebalancePlan) -> dict[str, Any]:
    return {
        "kind": plan.kind,
        "epoch": plan.epoch,
        "gas_limit": plan.gas_limit,
        "legs": [
            {
                "sell": leg.sell,
                "buy": leg.buy,
                "fee_ppm": leg.fee_ppm,
                "hops": max(1, len(leg.path) // PATH_HOP_BYTES),
                "amount_in_raw": leg.amount_in_raw,
                "quoted_out_raw": leg.quoted_out_raw,
                "notional_usd": leg.notional_e18 / ONE_E18,
            }
            for leg in plan.legs
        ],
        "cost": {
            "gas_usd": plan.cost.gas_e18 / ONE_E18,
            "fee_usd": plan.cost.fee_e18 / ONE_E18,
            "impact_usd": plan.cost.impact_e18 / ONE_E18,
        },
        "benefit_usd": None if plan.benefit_e18 is None else plan.benefit_e18 / ONE_E18,
        "notes": list(plan.notes),
    }


def report_details(r: SimulationReport) -> dict[str, Any]:
    return {
        "ok": r.ok,
        "reasons": list(r.reasons),
        "gas_used": r.gas_used,
        "distance_bps": [r.pre_distance_bps, r.post_distance_bps],
        "post_weights_bps": list(r.post_weights_bps),
        "revert": r.revert,
    }
