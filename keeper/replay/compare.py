"""Hour by hour, the live keeper's action against the backtester's, the reason for every
disagreement, and the replay's summary (`keeper replay --json`)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import numpy as np

from keeper.costs import CostModel, traded_hops
from keeper.replay.live import LiveHour
from keeper.replay.twin import TwinRun, penalty_usd
from keeper.units import BPS

REFUSED = "; not sent: "  # how the backtester marks a decision its cost rule refused
# How the two sides still differ, by construction: printed with every replay.
DIFFERENCES = (
    "live trades are real Uniswap v3 swaps on the local pools; the backtester charges the cost "
    "model (fee tier, impact at the measured depth, the gas table)",
    "live, the plan stage checks the quoted cost against the decision's benefit; the backtester "
    "checks the modelled cost, plus the fee-tier residual of its own recent clips",
    "the keeper pays gas from its own account; the backtester takes it from the vault's cash",
    "the live vault's weights come from on-chain balances after real swaps, so after a trade the "
    "two vaults drift apart by the difference between real and modelled costs",
    "the cost model charges gas for one leg per traded asset on its route to USDC; the planner "
    "pairs sells with buys, so a leg between two risky assets may take two hops (more gas) or "
    "a direct pool (less)",
    "the vault refuses a rebalance while every weight is inside its inner band "
    "(NothingToRebalance); the backtester does not model that guard (it matters to calendar)",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class HourRow:
    """One hour of the replay: what each side saw and did."""

    k: int
    ts: int
    live: LiveHour
    live_taken: str
    bt_taken: str
    bt_reason: str
    bt_weights_bps: tuple[int, ...]
    why: str | None  # None when both took the same action

    @property
    def agree(self) -> bool:
        return self.why is None


def taken_live(h: LiveHour) -> str:
    """The action the live keeper carried out: its decision when it sent it, else hold."""
    return h.result.action if h.sent else "hold"


def compare_hour(k: int, h: LiveHour, twin: TwinRun) -> HourRow:
    """Hour k of the window (0-based) on both sides."""
    bt_taken = "rebalance" if twin.traded(k) else "hold"
    bt_w = tuple(round(float(x) * BPS) for x in twin.pre_weights[k])
    reason = twin.res.reasons[k] if k < len(twin.res.reasons) else ""
    lt = taken_live(h)
    why = None if lt == bt_taken else explain(h, bt_reason=reason, bt_weights=bt_w)
    return HourRow(k=k, ts=h.ts, live=h, live_taken=lt, bt_taken=bt_taken, bt_reason=reason,
                   bt_weights_bps=bt_w, why=why)


def explain(h: LiveHour, *, bt_reason: str, bt_weights: tuple[int, ...]) -> str:
    """Why the two sides took different actions this hour, from what each saw and said."""
    r = h.result
    parts = []
    gap, sym, lw, bw = _weight_gap(r.symbols, r.weights_bps, bt_weights)
    if gap > 0:
        parts.append(f"the vaults' weights differ by up to {gap} bps ({sym} live {lw / 100:.2f}% "
                     f"vs backtest {bw / 100:.2f}%) after earlier trades' real and modelled costs")
    else:
        parts.append("same weights")
    if r.action != "hold" and not h.sent:
        parts.append(f"live decided {r.action} but did not send it ({r.verdict}): {r.reason}")
    elif r.action == "hold":
        parts.append(f"live held: {r.reason}")
    if REFUSED in bt_reason:
        refused = bt_reason.split(REFUSED, 1)[1]
        parts.append(f"backtest decided rebalance but its cost rule refused it: {refused}")
    else:
        parts.append(f"backtest: {bt_reason}")
    return "; ".join(parts)


def _weight_gap(symbols: tuple[str, ...], live: tuple[int, ...], bt: tuple[int, ...]
                ) -> tuple[int, str, int, int]:
    gaps = [(abs(a - b), s, a, b) for s, a, b in zip(symbols, live, bt, strict=True)]
    return max(gaps, default=(0, "", 0, 0))


# ------------------------------------------------------------------ numbers


def model_gas(h: LiveHour, model: CostModel) -> int:
    """The gas the cost model (and so the backtester) charges for the trade the keeper sent:
    one leg per traded asset at its modelled route."""
    legs = h.result.details.get("legs", [])
    traded = {leg[k] for leg in legs for k in ("sell", "buy")}
    symbols = h.result.symbols
    return model.gas.rebalance_units(traded_hops(model, [s in traded for s in symbols]))


def live_costs(hours: list[LiveHour]) -> dict[str, float]:
    """Gas paid (receipts, at the hour's ETH price), pool fees of the legs as planned, and the
    measured slippage: the vault's NAV lost in the trade beyond those fees (same oracle prices
    before and after)."""
    gas = fees = loss = 0.0
    for h in hours:
        if not h.sent:
            continue
        gas += h.gas_used * h.gas_price_wei / 1e18 * h.eth_usd
        fees += float(h.result.details.get("cost", {}).get("fee_usd", 0.0))
        loss += (h.before.nav_e18 - h.after.nav_e18) / 1e18
    return {"gas": gas, "fees": fees, "slippage": loss - fees, "total": gas + loss}


def outside_outer(h: LiveHour) -> bool:
    return any(a.outside_outer for a in h.after.assets)


def summary(rows: list[HourRow], twin: TwinRun, threshold: TwinRun, model: CostModel
            ) -> dict[str, Any]:
    """The replay's numbers: the `--json` keys."""
    live = [r.live for r in rows]
    sent = [h for h in live if h.sent]
    measured = statistics.fmean(h.gas_used for h in sent) if sent else 0.0
    modelled = statistics.fmean(model_gas(h, model) for h in sent) if sent else 0.0
    agree = sum(r.agree for r in rows)
    return {
        "hours": len(rows),
        "rebalances_sent": len(sent),
        "gas_used_per_rebalance": round(measured),
        "model_gas_per_rebalance": round(modelled),
        "gas_model_error_pct": round((modelled / measured - 1) * 100, 2) if measured else None,
        "action_agreement_pct": round(100.0 * agree / max(len(rows), 1), 2),
        "hours_outside_outer_band": sum(outside_outer(h) for h in live),
        "cost_usd": {k: round(v, 2) for k, v in live_costs(live).items()},
        "tracking_penalty_usd": round(penalty_usd(
            twin, [tuple(int(a.weight_bps) for a in h.after.assets) for h in live],
            [h.after.nav_e18 / 1e18 for h in live], model.tracking_gamma), 2),
        "backtest": side(twin),
        "threshold_backtest": side(threshold),
        "disagreements": [{"hour": _iso(r.ts), "live": r.live_taken, "backtest": r.bt_taken,
                           "why": r.why} for r in rows if not r.agree],
        "differences": list(DIFFERENCES),
    }


def side(run: TwinRun) -> dict[str, Any]:
    m = run.metrics
    outside = round(m["time_outside_outer_band_pct"] * m["hours"] / 100.0)
    return {"policy": run.name, "params": run.params, "rebalances": int(m["n_trades"]),
            "hours_outside_outer_band": outside,
            "cost_usd": {k: round(v, 2) for k, v in run.cost_usd().items()}}


def _iso(ts: int) -> str:
    return str(np.datetime64(int(ts), "s")).replace("T", " ")
