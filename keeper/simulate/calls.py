"""The `eth_simulateV1` request that runs a plan, and the Outcome read from its answer.

One simulated block, one block time after the snapshot, on top of the snapshot block's state,
holds two calls from the keeper: the plan's exact transaction (its calldata and gas limit), then
`keeperView`, which reads the post-trade weights and health in the state the first call left.
`validation: false` runs them as the node would run an impersonated transaction (no signature,
no fee or nonce checks), so the node needs nothing of the keeper's but its address. The same
request goes to the network's node or, where that node lacks the method, to a local fork of it:
one request shape and one reading of the answer for both paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError
from eth_utils.crypto import keccak
from web3 import Web3

from keeper.chain.contracts import decode_output, encode_call
from keeper.chain.errors import name_revert, revert_data
from keeper.errors import SimulationError
from keeper.models import RebalancePlan, VaultState
from keeper.simulate.verdict import Outcome, SimLimits

FROZEN = {"frozen": True, "slots": True, "kw_only": True}
SWAPPED_TOPIC = keccak(text="Swapped(uint256,address,address,address,uint256,uint256,uint256)")
SIMULATE = "eth_simulateV1"


@dataclass(**FROZEN)
class SimJob:
    """One vault's plan to run, with the state it was planned on and the limits it must meet."""

    state: VaultState
    plan: RebalancePlan
    limits: SimLimits


@dataclass(**FROZEN)
class SimBlock:
    """Where every plan of a tick runs: on the snapshot block, in the next block."""

    number: int  # the snapshot block
    next_ts: int  # the simulated block's time: the earliest the real transaction can land
    keeper: str  # the sender


@dataclass(**FROZEN)
class Refused:
    """A node's error answer to one plan's request: it would not run the transaction."""

    message: str


def refusal(error: Any) -> Refused:
    message = error.get("message") if isinstance(error, dict) else error
    return Refused(message=" ".join(str(message or "no reason given").split())[:300])


def view_data() -> str:
    return "0x" + encode_call("RebalancingVault", "keeperView").hex()


def tx_of(job: SimJob, at: SimBlock) -> dict[str, str]:
    """The plan's transaction as JSON-RPC call parameters."""
    return {
        "from": Web3.to_checksum_address(at.keeper),
        "to": Web3.to_checksum_address(job.plan.vault),
        "data": "0x" + job.plan.calldata.hex(),
        "gas": hex(job.plan.gas_limit),
    }


def view_of(job: SimJob, at: SimBlock) -> dict[str, str]:
    return {
        "from": Web3.to_checksum_address(at.keeper),
        "to": Web3.to_checksum_address(job.plan.vault),
        "data": view_data(),
    }


def simulate_params(job: SimJob, at: SimBlock) -> list[Any]:
    """eth_simulateV1's parameters for one plan."""
    block = {
        "blockOverrides": {"number": hex(at.number + 1), "time": hex(at.next_ts)},
        "calls": [tx_of(job, at), view_of(job, at)],
    }
    options = {"blockStateCalls": [block], "validation": False, "traceTransfers": False}
    return [options, hex(at.number)]


def outcome_of(job: SimJob, result: Any) -> Outcome:
    """Read one eth_simulateV1 result (a list of one simulated block). SimulationError when the
    answer is not the shape the method defines."""
    try:
        tx, view = result[0]["calls"]
        gas = int(tx["gasUsed"], 16)
        ok = int(tx["status"], 16) == 1
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise SimulationError(f"{SIMULATE} answered {str(result)[:200]}") from err
    if not ok:
        return Outcome(gas_used=gas, revert=revert_reason(tx, job.plan.gas_limit))
    state = _view(view)
    weights = tuple(int(a["weightBps"]) for a in state["assets"])
    return Outcome(
        gas_used=gas,
        amounts_out_raw=amounts_out(tx.get("logs") or [], job.plan.vault),
        post_weights_bps=weights,
        post_ltv_bps=int(state["ltvBps"]),
    )


def revert_reason(call: dict[str, Any], gas_limit: int | None = None) -> str:
    """The vault's error by name when its data is known, out of gas when the call used all of
    its gas limit without revert data, else the node's message."""
    error = call.get("error") or {}
    data = revert_data(error) or call.get("returnData")
    if isinstance(data, str) and len(data) >= 10:
        return name_revert(data) or f"unknown error {data[:10]} ({(len(data) - 10) // 64} words)"
    if gas_limit is not None and int(call.get("gasUsed", "0x0"), 16) >= gas_limit:
        return f"out of gas (gas limit {gas_limit})"
    message = error.get("message") if isinstance(error, dict) else None
    return str(message or "status 0 (no reason)")


def _view(call: dict[str, Any]) -> dict[str, Any]:
    if int(call.get("status", "0x0"), 16) != 1:
        raise SimulationError(f"keeperView after the plan reverted: {revert_reason(call)}")
    try:
        raw = bytes.fromhex(str(call["returnData"]).removeprefix("0x"))
        return dict(decode_output("RebalancingVault", "keeperView", raw))
    except (KeyError, ValueError, DecodingError) as err:
        raise SimulationError(f"keeperView after the plan is unreadable: {err}") from err


def amounts_out(logs: Sequence[dict[str, Any]], vault: str) -> tuple[int, ...]:
    """Each swap's amount out, from the vault's Swapped events (hex or bytes fields)."""
    outs = []
    for log in logs:
        topics = log.get("topics") or []
        if str(log.get("address", "")).lower() != vault.lower() or not topics:
            continue
        if _bytes(topics[0]) == SWAPPED_TOPIC:
            _, _, _amount_in, amount_out, _ = decode(
                ["address", "address", "uint256", "uint256", "uint256"], _bytes(log["data"])
            )
            outs.append(int(amount_out))
    return tuple(outs)


def _bytes(v: Any) -> bytes:
    return bytes.fromhex(v.removeprefix("0x")) if isinstance(v, str) else bytes(v)
