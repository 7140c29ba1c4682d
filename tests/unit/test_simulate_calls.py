"""The simulation's pure parts: the eth_simulateV1 request, reading its answer, telling a node
without the method from a failing request, and the fork's state cache against a scripted node."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import encode
from web3 import Web3
from web3.providers import JSONBaseProvider

from keeper.chain.contracts import encode_call
from keeper.chain.errors import method_missing
from keeper.errors import RpcUnavailable, SimulationError
from keeper.models import RebalancePlan, TradeCost
from keeper.simulate import SimBlock, SimJob, SimLimits
from keeper.simulate.calls import SWAPPED_TOPIC, amounts_out, outcome_of, simulate_params
from keeper.simulate.statecache import StateCache
from tests.unit.test_plan_floor import STATE

VAULT = STATE.address
KEEPER = "0x00000000000000000000000000000000000000Aa"
AT = SimBlock(number=100, next_ts=1_700_000_012, keeper=KEEPER)
PLAN = RebalancePlan(
    vault=VAULT, kind="rebalance", epoch=3, deadline_ts=1_700_000_300, legs=(),
    calldata=b"\x12\x34", gas_limit=500_000,
    cost=TradeCost(gas_e18=0, fee_e18=0, impact_e18=0), benefit_e18=None,
)
JOB = SimJob(state=STATE, plan=PLAN, limits=SimLimits(gas_budget=10**6, max_slippage_bps=100))


def test_one_block_after_the_snapshot_with_the_plan_then_the_view() -> None:
    options, block = simulate_params(JOB, AT)
    assert block == hex(100)
    (sim,) = options["blockStateCalls"]
    assert sim["blockOverrides"] == {"number": hex(101), "time": hex(1_700_000_012)}
    tx, view = sim["calls"]
    assert tx == {"from": Web3.to_checksum_address(KEEPER), "to": VAULT, "data": "0x1234",
                  "gas": hex(500_000)}
    assert view["data"] == "0x" + encode_call("RebalancingVault", "keeperView").hex()
    assert options["validation"] is False


def _call(status: int, gas: int, **kw: Any) -> dict[str, Any]:
    return {"status": hex(status), "gasUsed": hex(gas), "returnData": "0x", "logs": [], **kw}


def _swapped(vault: str, amount_out: int) -> dict[str, Any]:
    data = encode(["address", "address", "uint256", "uint256", "uint256"],
                  [KEEPER, KEEPER, 5, amount_out, 0])
    return {"address": vault.lower(), "topics": ["0x" + SWAPPED_TOPIC.hex(), "0x" + "00" * 32],
            "data": "0x" + data.hex()}


def test_a_revert_names_the_vault_error() -> None:
    selector = Web3.keccak(text="BadEpoch(uint256,uint256)")[:4]
    data = "0x" + (selector + encode(["uint256", "uint256"], [4, 3])).hex()
    tx = _call(0, 42_000, error={"code": 3, "message": "execution reverted", "data": data})
    out = outcome_of(JOB, [{"calls": [tx, _call(1, 1)]}])
    assert (out.revert, out.gas_used) == ("BadEpoch(4, 3)", 42_000)


def test_an_unknown_error_keeps_its_selector_and_out_of_gas_is_named() -> None:
    tx = _call(0, 50_000, error={"code": 3, "message": "execution reverted",
                                  "data": "0xdeadbeef" + "00" * 32})
    assert outcome_of(JOB, [{"calls": [tx, _call(1, 1)]}]).revert == (
        "unknown error 0xdeadbeef (1 words)"
    )
    oog = _call(0, 500_000, error={"code": -32015, "message": "execution failed"})
    assert outcome_of(JOB, [{"calls": [oog, _call(1, 1)]}]).revert == (
        "out of gas (gas limit 500000)"
    )


def test_amounts_come_from_the_vaults_swapped_events_only() -> None:
    logs = [_swapped(VAULT, 77), _swapped(KEEPER, 1), _swapped(VAULT, 88)]
    assert amounts_out(logs, VAULT) == (77, 88)


def test_an_unreadable_view_after_the_plan_is_an_error_not_a_verdict() -> None:
    with pytest.raises(SimulationError, match="keeperView after the plan is unreadable"):
        outcome_of(JOB, [{"calls": [_call(1, 300_000), _call(1, 1)]}])
    with pytest.raises(SimulationError, match="keeperView after the plan reverted"):
        outcome_of(JOB, [{"calls": [_call(1, 300_000), _call(0, 1)]}])


def test_an_answer_of_another_shape_is_a_simulation_error() -> None:
    with pytest.raises(SimulationError, match="eth_simulateV1 answered"):
        outcome_of(JOB, [{"calls": []}])


@pytest.mark.parametrize(
    ("error", "missing"),
    [
        ({"code": -32601, "message": "Method eth_simulateV1 is not supported"}, True),  # Hardhat
        ({"code": -32601, "message": "the method eth_simulateV1 does not exist/is not available"},
         True),  # geth before 1.14.9
        ({"code": -32000, "message": "method not found"}, True),
        ({"code": -32602, "message": "invalid argument 0: too many blocks"}, False),
        ({"code": -32000, "message": "header not found"}, False),
        ("oops", False),
    ],
)
def test_a_node_without_the_method_is_told_from_a_failed_request(error: Any, missing: bool) -> None:
    assert method_missing(error) is missing


# ------------------------------------------------------------------ the fork's state cache


class ScriptedNode(JSONBaseProvider):
    """Answers state requests from a table, counting every HTTP round trip."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.trips = 0
        self.fail = fail
        self.seen: list[str] = []

    def _one(self, method: str, params: list[Any]) -> dict[str, Any]:
        self.seen.append(method)
        table = {"eth_getBalance": "0x64", "eth_getTransactionCount": "0x2",
                 "eth_getCode": "0x6001", "eth_getStorageAt": "0x" + "00" * 31 + "07",
                 "eth_getBlockByNumber": {"number": "0x64", "baseFeePerGas": "0x3b9aca00"}}
        if method not in table:
            return {"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "no"}}
        return {"jsonrpc": "2.0", "id": 1, "result": table[method]}

    def make_request(self, method: Any, params: Any) -> Any:
        self.trips += 1
        if self.fail:
            raise RpcUnavailable("every RPC endpoint failed: https://node.example/***: HTTP 503")
        return self._one(method, params)

    def make_batch_request(self, reqs: Any) -> Any:
        self.trips += 1
        if self.fail:
            raise RpcUnavailable("every RPC endpoint failed: https://node.example/***: HTTP 503")
        return [self._one(m, p) for m, p in reqs]


def _cache(node: ScriptedNode) -> StateCache:
    cache = StateCache(Web3(node), block=100, chain_id=31337)
    cache.ready()
    return cache


def _ask(cache: StateCache, method: str, *params: Any) -> dict[str, Any]:
    return cache.answer({"jsonrpc": "2.0", "id": 9, "method": method, "params": list(params)})


def test_prefetched_state_is_served_without_a_round_trip() -> None:
    node = ScriptedNode()
    cache = _cache(node)
    assert cache.prefetch([VAULT, KEEPER], [(VAULT, 1), (VAULT, 2)]) == 4
    assert node.trips == 1  # one batch for 2 accounts (3 requests each) and 2 slots
    assert _ask(cache, "eth_getBalance", VAULT, hex(100))["result"] == "0x64"
    assert _ask(cache, "eth_getCode", VAULT.lower(), hex(100))["result"] == "0x6001"
    assert _ask(cache, "eth_getStorageAt", VAULT, hex(2), hex(100))["result"].endswith("07")
    assert _ask(cache, "eth_getAccountInfo", KEEPER, hex(100))["result"] == {
        "balance": "0x64", "nonce": "0x2", "code": "0x6001"
    }
    assert _ask(cache, "eth_chainId")["result"] == hex(31337)
    assert (node.trips, cache.misses) == (1, 0)


def test_a_miss_costs_one_round_trip_and_is_kept() -> None:
    node = ScriptedNode()
    cache = _cache(node)
    other = "0x00000000000000000000000000000000000000bB"
    assert _ask(cache, "eth_getTransactionCount", other, hex(100))["result"] == "0x2"
    assert _ask(cache, "eth_getBalance", other, hex(100))["result"] == "0x64"  # same batch
    assert _ask(cache, "eth_getStorageAt", other, hex(5), hex(100))["id"] == 9
    assert _ask(cache, "eth_getStorageAt", other, hex(5), hex(100))["result"].endswith("07")
    assert (node.trips, cache.misses) == (2, 2)
    # another block, or a method the cache does not hold, goes to the node as asked
    assert _ask(cache, "eth_getBalance", other, hex(99))["result"] == "0x64"
    assert _ask(cache, "debug_whatever")["error"]["code"] == -32601
    assert node.trips == 4


def test_a_failing_node_is_an_error_answer_and_a_recorded_line() -> None:
    cache = _cache(ScriptedNode(fail=True))
    assert cache.prefetch([VAULT], [(VAULT, 1)]) == 2
    assert cache.accounts == {} and cache.slots == {}
    got = _ask(cache, "eth_getStorageAt", VAULT, hex(1), hex(100))
    assert "HTTP 503" in got["error"]["message"]
    assert all("https://node.example/***" in f for f in cache.failures) and cache.failures
