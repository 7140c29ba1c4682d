"""The simulation's two paths (eth_simulateV1 on the node, a prefetched fork of it) give the
verdict of the transaction actually mined, on a set of plans including reverts; the simulation
follows RPC failover; a node that fails it is one line naming the node and the fix."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3RPCError

from benchmarks.latency_proxy import LatencyProxy
from keeper.app import Keeper, Mode
from keeper.chain.contracts import decode_output, encode_call
from keeper.chain.errors import name_revert, revert_data
from keeper.chain.rpc import RpcSettings
from keeper.cli import app
from keeper.localnet.market import move_market, set_feed
from keeper.localnet.node import DevNode
from keeper.models import SimulationReport
from keeper.plan import rebalance_calldata
from keeper.simulate import Outcome, SimBlock, SimJob, Simulator
from keeper.simulate.calls import amounts_out
from keeper.simulate.verdict import report
from keeper.wiring import build_keeper, load
from tests.e2e.conftest import KeeperEnv
from tests.faults.proxy import RpcProxy

pytestmark = pytest.mark.chain
FAST_RPC = RpcSettings(timeout_s=2.0, rounds=2, backoff_s=0.05, max_backoff_s=0.2, cooldown_s=2.0)
NO_SIMULATE = frozenset({"eth_simulateV1"})
HARDHAT_LIKE = frozenset({"eth_simulateV1", "eth_createAccessList"})  # Hardhat has neither
DEAD = "0x000000000000000000000000000000000000dEaD"
NAMED = re.compile(r"^[A-Z]\w*\(")  # a vault error by name, with its arguments: BadEpoch(1, 0)


@pytest.fixture
def proxy(anvil_url: str) -> Iterator[Any]:
    made: list[Any] = []

    def make(upstream: str = anvil_url, reject: frozenset[str] = frozenset()) -> LatencyProxy:
        p = LatencyProxy(upstream, reject=reject)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def set_rpc_urls(env: KeeperEnv, urls: list[str], extra: str = "") -> None:
    text = env.config.read_text()
    start = text.index("rpc_urls: [")
    end = text.index("]", start)
    quoted = ", ".join(f'"{u}"' for u in urls)
    env.config.write_text(text[:start] + f"rpc_urls: [{quoted}]{extra}" + text[end + 1 :])


def planned_jobs(keeper: Keeper) -> tuple[list[SimJob], SimBlock]:
    """What a simulating tick hands the simulator: the vault's real plan, at the snapshot."""
    got: dict[str, Any] = {}
    run = keeper.simulator.run

    def spy(jobs: list[SimJob], at: SimBlock) -> list[SimulationReport]:
        got.update(jobs=jobs, at=at)
        return run(jobs, at)

    keeper.simulator.run = spy  # type: ignore[method-assign]
    (result,) = keeper.tick(Mode.SIMULATE)
    keeper.simulator.run = run  # type: ignore[method-assign]
    assert result.verdict in ("simulated", "rejected"), result
    return got["jobs"], got["at"]


def variants(job: SimJob, at: SimBlock) -> dict[str, SimJob]:
    """The plan as planned, and as it could go wrong: reverts the vault names, an out-of-gas
    revert without data, and runs the judge rejects."""
    plan, legs = job.plan, list(job.plan.legs)

    def calldata(data: bytes) -> SimJob:
        return replace(job, plan=replace(plan, calldata=data))

    bad_router = [replace(legs[0], router=DEAD), *legs[1:]]
    deadline, epoch = plan.deadline_ts, plan.epoch
    starved = intrinsic_gas(plan.calldata) + 500  # runs out of gas in the vault's first steps
    return {
        "as planned": job,
        "wrong epoch": calldata(rebalance_calldata(legs, deadline, epoch + 1)),
        "deadline passed": calldata(rebalance_calldata(legs, at.next_ts - 1, epoch)),
        "router not allowed": calldata(rebalance_calldata(bad_router, deadline, epoch)),
        "first leg three times": calldata(rebalance_calldata([legs[0]] * 3, deadline, epoch)),
        "out of gas": replace(job, plan=replace(plan, gas_limit=starved)),
        "slippage limit 0 bps": replace(job, limits=replace(job.limits, max_slippage_bps=0)),
        "gas budget 100k": replace(job, limits=replace(job.limits, gas_budget=100_000)),
    }


def intrinsic_gas(data: bytes) -> int:
    """What a transaction with this calldata needs before it runs (Prague: the larger of the
    standard cost and the calldata floor of EIP-7623)."""
    zeros = data.count(0)
    standard = 21_000 + 4 * zeros + 16 * (len(data) - zeros)
    return max(standard, 21_000 + 10 * (zeros + 4 * (len(data) - zeros)))


def rpc(w3: Web3, method: str, *params: Any) -> Any:
    got = w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    assert "error" not in got, got
    return got.get("result")


def mined(w3: Web3, job: SimJob, at: SimBlock) -> SimulationReport:
    """The reference: the plan's transaction sent by the impersonated keeper and mined in the
    block after the snapshot (anvil or Hardhat), judged on its receipt and the vault after it."""
    snapshot = rpc(w3, "evm_snapshot")
    node, keeper = DevNode(w3), Web3.to_checksum_address(at.keeper)
    try:
        node.impersonate(keeper)
        node.set_balance(keeper, 10**20)
        rpc(w3, "evm_setNextBlockTimestamp", at.next_ts)
        tx = {"from": keeper, "to": job.plan.vault, "data": job.plan.calldata,
              "gas": job.plan.gas_limit}
        try:
            tx_hash = w3.eth.send_transaction(tx)  # type: ignore[arg-type]
        except (ContractLogicError, Web3RPCError):  # Hardhat mines a reverting one, then says so
            tx_hash = w3.eth.get_block("latest")["transactions"][0]
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
        assert receipt["blockNumber"] == at.number + 1
        return report(job.plan, job.state, _outcome(w3, job, receipt, tx), job.limits)
    finally:
        rpc(w3, "evm_revert", snapshot)


def _outcome(w3: Web3, job: SimJob, receipt: Any, tx: dict[str, Any]) -> Outcome:
    gas = int(receipt["gasUsed"])
    if receipt["status"] != 1:
        return Outcome(gas_used=gas, revert=_mined_revert(w3, receipt, tx))
    raw = w3.eth.call({"to": job.plan.vault, "data": encode_call("RebalancingVault",
                                                                  "keeperView")})
    view = decode_output("RebalancingVault", "keeperView", raw)
    return Outcome(
        gas_used=gas,
        amounts_out_raw=amounts_out([dict(log) for log in receipt["logs"]], job.plan.vault),
        post_weights_bps=tuple(int(a["weightBps"]) for a in view["assets"]),
        post_ltv_bps=int(view["ltvBps"]),
    )


def _mined_revert(w3: Web3, receipt: Any, tx: dict[str, Any]) -> str:
    """The vault's error by name: from anvil's call tracer, or (Hardhat has none) replayed with
    eth_call at its block (it reverted: the block's end state is the one it ran on, but for the
    keeper's gas); else the tracer's or node's words."""
    trace = w3.provider.make_request(  # type: ignore[arg-type]
        "debug_traceTransaction", [receipt["transactionHash"].to_0x_hex(), {"tracer": "callTracer"}]
    ).get("result")
    if isinstance(trace, dict):
        return name_revert(trace.get("output")) or str(trace.get("error"))
    call = {**tx, "data": "0x" + tx["data"].hex(), "gas": hex(tx["gas"])}
    error = w3.provider.make_request(  # type: ignore[arg-type]
        "eth_call", [call, hex(receipt["blockNumber"])]
    ).get("error")
    return name_revert(revert_data(error)) or str((error or {}).get("message"))


def same_verdict(got: SimulationReport, want: SimulationReport) -> bool:
    """Equal, except the wording of a revert without data (the vault's errors are named and
    compared as named; an out-of-gas is worded by the tracer on one side, the node on the
    other)."""
    if want.revert is not None and not NAMED.match(want.revert):
        assert got.revert is not None and not NAMED.match(got.revert)
        got, want = replace(got, reasons=(), revert=""), replace(want, reasons=(), revert="")
    return got == want


def simulate_through(url: str, jobs: list[SimJob], at: SimBlock) -> tuple[list[Any], str]:
    sim = Simulator(Web3(Web3.HTTPProvider(url)), chain_id=31337)
    return sim.run(jobs, at), sim.last_path


def test_both_paths_give_the_verdict_of_the_mined_transaction(
    keeper_env: KeeperEnv, anvil_url: str, proxy: Any
) -> None:
    w3 = keeper_env.w3
    move_market(w3, keeper_env.market, "WETH", 3_000)
    keeper = build_keeper(load(keeper_env.config), can_send=False)
    (job,), at = planned_jobs(keeper)
    cases = variants(job, at)
    jobs = list(cases.values())
    direct, path = simulate_through(anvil_url, jobs, at)
    assert path == "eth_simulateV1"
    forked, path = simulate_through(proxy(reject=NO_SIMULATE).url, jobs, at)
    assert path == "fork"
    unaided, path = simulate_through(proxy(reject=HARDHAT_LIKE).url, jobs, at)
    assert path == "fork"
    for (name, case), d, f, u in zip(cases.items(), direct, forked, unaided, strict=True):
        want = mined(w3, case, at)
        assert d == f == u, name
        assert same_verdict(d, want), (name, d, want)
    verdicts = {name: (r.ok, r.revert) for name, r in zip(cases, direct, strict=True)}
    assert verdicts["as planned"] == (True, None)
    assert str(verdicts["wrong epoch"][1]).startswith("BadEpoch(")
    assert str(verdicts["deadline passed"][1]).startswith("DeadlinePassed(")
    assert str(verdicts["router not allowed"][1]).startswith("RouterNotAllowed(")
    assert verdicts["first leg three times"][0] is False
    assert verdicts["out of gas"][0] is False and verdicts["out of gas"][1]
    for judged in ("slippage limit 0 bps", "gas budget 100k"):
        assert verdicts[judged] == (False, None)


def test_a_transaction_the_node_refuses_is_rejected_on_both_paths(
    keeper_env: KeeperEnv, anvil_url: str, proxy: Any
) -> None:
    """A gas limit under the intrinsic gas: no node runs it (nor would one mine it); the plan
    is rejected with the node's words, and the other plans of the tick are judged as usual."""
    move_market(keeper_env.w3, keeper_env.market, "WETH", 3_000)
    keeper = build_keeper(load(keeper_env.config), can_send=False)
    (job,), at = planned_jobs(keeper)
    jobs = [replace(job, plan=replace(job.plan, gas_limit=21_000)), job]
    direct, _ = simulate_through(anvil_url, jobs, at)
    forked, path = simulate_through(proxy(reject=NO_SIMULATE).url, jobs, at)
    assert path == "fork" and direct == forked
    assert (direct[0].ok, direct[0].revert, direct[1].ok) == (False, None, True)
    assert direct[0].reasons[0].startswith("not run: ") and "gas" in direct[0].reasons[0]


def test_both_paths_run_the_plan_in_the_next_block(
    keeper_env: KeeperEnv, anvil_url: str, proxy: Any
) -> None:
    """A feed exactly one heartbeat old at the snapshot is stale one block later, when the
    transaction can land: both paths run at that time and see the vault refuse it."""
    w3, market = keeper_env.w3, keeper_env.market
    move_market(w3, market, "WETH", 3_000)
    ts = w3.eth.get_block("latest")["timestamp"] + 100
    rpc(w3, "evm_setNextBlockTimestamp", ts)
    set_feed(w3, market, "WBTC", market.prices_e8["WBTC"], updated_at=ts - 3600)
    keeper = build_keeper(load(keeper_env.config), can_send=False)
    jobs, at = planned_jobs(keeper)
    direct, _ = simulate_through(anvil_url, jobs, at)
    forked, path = simulate_through(proxy(reject=NO_SIMULATE).url, jobs, at)
    assert path == "fork"
    assert direct == forked == [mined(w3, jobs[0], at)]
    assert str(direct[0].revert).startswith("StaleFeed(")


def _tick_with_first_endpoint_down(keeper: Keeper, first: RpcProxy) -> tuple[Any, float]:
    run = keeper.simulator.run

    def first_fails(jobs: list[SimJob], at: SimBlock) -> list[SimulationReport]:
        first.mode = "down"  # the endpoint the tick read and planned through goes away
        return run(jobs, at)

    keeper.simulator.run = first_fails  # type: ignore[method-assign]
    started = time.monotonic()
    (result,) = keeper.tick(Mode.SIMULATE)
    return result, time.monotonic() - started


@pytest.mark.parametrize("node", ["eth_simulateV1", "fork"])
def test_simulation_follows_rpc_failover(
    node: str, keeper_env: KeeperEnv, proxy: Any
) -> None:
    upstream = proxy(reject=NO_SIMULATE if node == "fork" else frozenset())
    first, second = RpcProxy(upstream.url), RpcProxy(upstream.url)
    try:
        set_rpc_urls(keeper_env, [first.url, second.url])
        move_market(keeper_env.w3, keeper_env.market, "WETH", 3_000)
        keeper = build_keeper(load(keeper_env.config), can_send=False, rpc=FAST_RPC)
        result, seconds = _tick_with_first_endpoint_down(keeper, first)
        assert result.verdict == "simulated", result
        assert keeper.simulator.last_path == node
        assert second.seen["eth_simulateV1"] == 1
        if node == "fork":  # the fork's state came from the endpoint that is still up
            assert second.seen["eth_createAccessList"] >= 2 and second.seen["eth_getStorageAt"]
        assert seconds < 10, f"the tick stalled {seconds:.1f} s on the failed endpoint"
    finally:
        first.close()
        second.close()


def test_a_node_that_fails_the_fork_is_one_line_naming_it(
    keeper_env: KeeperEnv, proxy: Any
) -> None:
    upstream = proxy(reject=NO_SIMULATE)
    only = RpcProxy(upstream.url)
    try:
        set_rpc_urls(keeper_env, [only.url])
        move_market(keeper_env.w3, keeper_env.market, "WETH", 3_000)
        keeper = build_keeper(load(keeper_env.config), can_send=False, rpc=FAST_RPC)
        result, _ = _tick_with_first_endpoint_down(keeper, only)
    finally:
        only.close()
    assert result.verdict == "error", result
    reason = result.reason
    assert reason.startswith("SimulationError: ") and "\n" not in reason
    assert "127.0.0.1" in reason and "Fix:" in reason
    assert "reqwest" not in reason and "hyper" not in reason


def test_cli_simulate_names_an_unreachable_node_and_hides_its_key(
    keeper_env: KeeperEnv, tmp_path: Path
) -> None:
    move_market(keeper_env.w3, keeper_env.market, "WETH", 3_000)
    source = "http://operator:hunter22@127.0.0.1:9/v2/SECRETKEY"  # port 9: nothing listens
    text = keeper_env.config.read_text()
    keeper_env.config.write_text(
        text.replace("    block_time_s: 1\n", f'    block_time_s: 1\n    fork_source: "{source}"\n')
    )
    out = CliRunner().invoke(app, ["simulate", "--json", "--config", str(keeper_env.config)])
    assert out.exit_code == 0, out.output
    assert "Traceback" not in out.output
    (result,) = json.loads(out.stdout)
    assert result["verdict"] == "error"
    reason = result["reason"]
    assert "127.0.0.1" in reason and "Fix:" in reason and "\n" not in reason
    assert "hunter22" not in out.output and "SECRETKEY" not in out.output


def test_a_node_without_access_lists_is_prefetched_from_what_earlier_forks_needed(
    keeper_env: KeeperEnv, proxy: Any
) -> None:
    """Hardhat has neither eth_simulateV1 nor eth_createAccessList: the first fork fetches the
    plan's state one item at a time, later forks prefetch it in one batch."""
    move_market(keeper_env.w3, keeper_env.market, "WETH", 3_000)
    keeper = build_keeper(load(keeper_env.config), can_send=False)
    jobs, at = planned_jobs(keeper)
    node = proxy(reject=HARDHAT_LIKE)
    sim = Simulator(Web3(Web3.HTTPProvider(node.url)), chain_id=31337)
    first = sim.run(jobs, at)
    assert sim.last_fork is not None and sim.last_fork.cache.misses > 20
    node.reset()
    assert sim.run(jobs, at) == first
    assert sim.last_fork.cache.misses == 0
    assert node.rounds == 2  # the failed access lists with the block header, then the state
