"""Simulate stage: run the exact transaction on an anvil fork pinned at the snapshot block.

The keeper is impersonated on the fork, the plan's calldata is sent as is, and the outcome is
read back: status or revert reason, gas used, amounts out (Swapped events), and the post-trade
weights and collateral ratio from keeperView. A "reject" verdict is a value with reasons;
SimulationError means the fork itself could not be driven.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode
from eth_utils.crypto import keccak
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3Exception

from keeper.chain import raw
from keeper.chain.anvil import Anvil
from keeper.chain.contracts import decode_output, encode_call
from keeper.chain.errors import name_revert
from keeper.errors import SimulationError, ToolchainError
from keeper.legs import out_value_e18
from keeper.models import RebalancePlan, SimulationReport, VaultState
from keeper.units import BPS, ONE_E18

FROZEN = {"frozen": True, "slots": True, "kw_only": True}
SWAPPED_TOPIC = keccak(text="Swapped(uint256,address,address,address,uint256,uint256,uint256)")


@dataclass(**FROZEN)
class SimLimits:
    gas_budget: int
    max_slippage_bps: int  # realised, against the oracle, per leg


class Fork:
    """anvil --fork-url <rpc> --fork-block-number <block>, as a context manager."""

    def __init__(self, rpc_url: str, block: int) -> None:
        self.anvil = Anvil(
            fork_url=rpc_url,
            fork_block=block,
            extra_args=("--no-storage-caching", "--code-size-limit", "60000"),
        )
        self.w3: Web3 | None = None

    def __enter__(self) -> Web3:
        try:
            self.anvil.start()
        except ToolchainError as err:
            raise SimulationError(f"fork could not start: {err}") from err
        self.w3 = Web3(Web3.HTTPProvider(self.anvil.url, request_kwargs={"timeout": 30}))
        return self.w3

    def __exit__(self, *exc: object) -> None:
        self.anvil.stop()


def distance_bps(weights: tuple[int, ...], targets: tuple[int, ...]) -> int:
    return sum(abs(w - t) for w, t in zip(weights, targets, strict=True))


def simulate(
    rpc_url: str,
    state: VaultState,
    plan: RebalancePlan,
    block: int,
    keeper: str,
    limits: SimLimits,
    next_block_ts: int | None = None,
) -> SimulationReport:
    """Fork at `block`, send the plan as `keeper` in a block stamped `next_block_ts` (the
    earliest the real transaction can land: one block time after the snapshot), and judge it."""
    with Fork(rpc_url, block) as w3:
        if next_block_ts is not None:
            raw.request(w3, "evm_setNextBlockTimestamp", [next_block_ts])
        return run_on(w3, state, plan, keeper, limits)


def run_on(
    w3: Web3, state: VaultState, plan: RebalancePlan, keeper: str, limits: SimLimits
) -> SimulationReport:
    """Send the plan on an already-forked chain and judge it."""
    targets = tuple(int(a.target_bps) for a in state.assets)
    pre = distance_bps(tuple(int(a.weight_bps) for a in state.assets), targets)
    try:
        receipt = _send_impersonated(w3, keeper, plan)
    except ContractLogicError as err:
        why = name_revert(err.data if isinstance(err.data, str) else None) or str(err)
        return _rejected(pre, f"reverts: {why}", revert=why)
    if receipt["status"] != 1:
        why = _trace_reason(w3, receipt["transactionHash"])
        return _rejected(pre, f"reverts: {why}", revert=why, gas=receipt["gasUsed"])
    outs = _amounts_out(receipt, plan.vault)
    view = _view(w3, plan.vault)
    weights = tuple(int(a["weightBps"]) for a in view["assets"])
    post = distance_bps(weights, targets)
    post_ltv = int(view["ltvBps"])
    reasons = judge(plan, state, receipt["gasUsed"], outs, pre, post, limits, post_ltv)
    return SimulationReport(
        ok=not reasons,
        reasons=tuple(reasons),
        gas_used=receipt["gasUsed"],
        amounts_out_raw=outs,
        post_weights_bps=weights,
        post_distance_bps=post,
        pre_distance_bps=pre,
        post_ltv_bps=post_ltv,
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


def _rejected(pre: int, reason: str, *, revert: str, gas: int = 0) -> SimulationReport:
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


def _send_impersonated(w3: Web3, keeper: str, plan: RebalancePlan) -> dict[str, Any]:
    sender = Web3.to_checksum_address(keeper)
    try:
        raw.request(w3, "anvil_impersonateAccount", [sender])
        raw.request(w3, "anvil_setBalance", [sender, hex(10**20)])
        tx = {
            "from": sender,
            "to": Web3.to_checksum_address(plan.vault),
            "data": plan.calldata,
            "gas": plan.gas_limit,
        }
        tx_hash = w3.eth.send_transaction(tx)  # type: ignore[arg-type]
        return dict(w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.01))
    except ContractLogicError:
        raise
    except (Web3Exception, OSError) as err:
        raise SimulationError(f"sending on the fork failed: {err}") from err


def _trace_reason(w3: Web3, tx_hash: object) -> str:
    """The revert reason of a mined failed transaction, from anvil's call tracer."""
    h = tx_hash.hex() if isinstance(tx_hash, bytes) else str(tx_hash)
    h = h if h.startswith("0x") else "0x" + h
    trace = (
        raw.request(w3, "debug_traceTransaction", [h, {"tracer": "callTracer"}]).get("result")
        or {}
    )
    output = trace.get("output")
    return name_revert(output) or trace.get("error") or "status 0 (no reason)"


def _amounts_out(receipt: dict[str, Any], vault: str) -> tuple[int, ...]:
    outs = []
    for log in receipt["logs"]:
        if log["address"].lower() == vault.lower() and bytes(log["topics"][0]) == SWAPPED_TOPIC:
            _, _, _amount_in, amount_out, _ = decode(
                ["address", "address", "uint256", "uint256", "uint256"], bytes(log["data"])
            )
            outs.append(int(amount_out))
    return tuple(outs)


def _view(w3: Web3, vault: str) -> dict[str, Any]:
    data = encode_call("RebalancingVault", "keeperView")
    raw = w3.eth.call({"to": Web3.to_checksum_address(vault), "data": data})
    return dict(decode_output("RebalancingVault", "keeperView", raw))
