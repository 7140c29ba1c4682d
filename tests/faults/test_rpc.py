"""A. RPC faults (fault tests 1-5): failover, all down, mid-send timeout, 429 bursts, lag."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from keeper.app import Mode
from keeper.chain.rpc import RpcSettings, failover_of
from keeper.cli import app
from keeper.config import load_config
from keeper.errors import WrongChain
from keeper.metrics import Metrics
from keeper.runtime import Runtime
from keeper.wiring import connect
from tests.faults.conftest import (
    FAST_RPC,
    ChainCtl,
    Kit,
    epoch,
    in_band,
    push_out_of_band,
    set_rpc_urls,
    ticks,
    txs,
)
from tests.faults.proxy import RpcProxy

pytestmark = pytest.mark.chain


def _anvil(kit: Kit) -> str:
    return str(kit.env.w3.provider.endpoint_uri)  # type: ignore[attr-defined]


def test_primary_rpc_down_fails_over_and_tick_completes(
    kit: Kit, proxies: Callable[[], RpcProxy], chain: ChainCtl
) -> None:
    primary = proxies()
    set_rpc_urls(kit.env, [primary.url, _anvil(kit)])
    keeper = kit.keeper()
    primary.mode = "down"  # goes down after start-up
    push_out_of_band(kit.env)
    e0 = epoch(kit.env)
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "sent", r.reason
    assert primary.outcomes["down"] >= 1
    rpc = failover_of(keeper.deps.w3)
    assert rpc is not None and rpc.stats.failovers >= 1
    assert chain.sent_count(kit.env.keeper) == 1 and epoch(kit.env) == e0 + 1
    assert [t[0] for t in ticks(kit.env)] == ["sent"]
    assert [t[1] for t in txs(kit.env)] == ["confirmed"]
    assert in_band(kit.env)


def test_all_rpcs_down_skips_and_records_then_recovers(
    kit: Kit, proxies: Callable[[], RpcProxy], chain: ChainCtl
) -> None:
    a, b = proxies(), proxies()
    set_rpc_urls(kit.env, [a.url, b.url])
    keeper = kit.keeper()
    push_out_of_band(kit.env)
    a.mode = b.mode = "down"
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "skipped" and "RpcUnavailable" in r.reason
    assert ticks(kit.env)[-1][0] == "skipped" and txs(kit.env) == []
    assert chain.sent_count(kit.env.keeper) == 0
    a.mode = b.mode = "ok"  # the nodes come back: the next tick acts by itself
    (r2,) = keeper.tick(Mode.SEND)
    assert r2.verdict == "sent", r2.reason
    assert [t[0] for t in ticks(kit.env)] == ["skipped", "sent"]
    assert chain.sent_count(kit.env.keeper) == 1 and in_band(kit.env)


def test_rpc_timeout_mid_send_does_not_duplicate(
    kit: Kit, proxies: Callable[[], RpcProxy], chain: ChainCtl
) -> None:
    flaky = proxies()
    flaky.stall_s = FAST_RPC.timeout_s + 1.5
    set_rpc_urls(kit.env, [flaky.url, _anvil(kit)])
    keeper = kit.keeper()
    push_out_of_band(kit.env)
    flaky.mode = "send_timeout"  # the send reaches anvil, the answer never comes back
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "sent", r.reason
    assert flaky.seen["eth_sendRawTransaction"] == 1
    rpc = failover_of(keeper.deps.w3)
    assert rpc is not None and rpc.stats.send_reconciled == 1  # "already known"/"nonce too low"
    ((tx_id, status, *_),) = txs(kit.env)
    assert status == "confirmed"
    assert len(keeper.deps.ledger.get_tx(tx_id).attempts) == 1  # never re-signed
    assert chain.sent_count(kit.env.keeper) == 1


def test_http_429_and_5xx_bursts_are_retried_with_backoff(
    kit: Kit, proxies: Callable[[], RpcProxy], chain: ChainCtl
) -> None:
    only = proxies()
    set_rpc_urls(kit.env, [only.url])
    pauses: list[float] = []
    keeper = kit.keeper(
        rpc=RpcSettings(timeout_s=2.0, rounds=6, backoff_s=0.02, max_backoff_s=0.1, cooldown_s=0.5)
    )
    rpc = failover_of(keeper.deps.w3)
    assert rpc is not None
    rpc._sleep = pauses.append  # record the backoff instead of sleeping
    push_out_of_band(kit.env)
    only.fail_next = ["http:429"] * 3 + ["ok"] * 2 + ["http:503"] * 2
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "sent", r.reason
    assert only.outcomes["http:429"] == 3 and only.outcomes["http:503"] == 2
    assert len(pauses) == 5
    assert pauses[1] > pauses[0] * 1.2  # exponential (x2, jitter +-20%)
    assert chain.sent_count(kit.env.keeper) == 1


def test_lagging_node_old_block_is_rejected_and_another_used(
    kit: Kit, proxies: Callable[[], RpcProxy], chain: ChainCtl
) -> None:
    lag = proxies()
    set_rpc_urls(kit.env, [lag.url, _anvil(kit)])
    keeper = kit.keeper()
    (first,) = keeper.tick(Mode.SEND)
    assert first.verdict == "hold" and first.block is not None
    push_out_of_band(kit.env)
    lag.stale_block = first.block - 1  # older than the snapshot the keeper already saw
    lag.mode = "stale"
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "sent", r.reason
    assert r.block is not None and r.block > first.block
    rpc = failover_of(keeper.deps.w3)
    assert rpc is not None and rpc.stats.lagging_marked == 1
    assert rpc.endpoints[0].lagging  # tried last from now on
    assert rpc.check_health() == [] and "behind best" in str(rpc.endpoints[0].lagging)
    assert [t[0] for t in ticks(kit.env)] == ["hold", "sent"]
    assert chain.sent_count(kit.env.keeper) == 1


def test_lagging_node_that_hides_the_receipt_does_not_abandon_the_mined_tx(
    kit: Kit, proxies: Callable[[], RpcProxy], chain: ChainCtl
) -> None:
    """The first endpoint stops at the block before ours: no receipt, an old nonce count. The
    keeper must find the receipt on another endpoint, not replace into "nonce too low" and
    give up with the row left pending."""
    lag = proxies()
    set_rpc_urls(kit.env, [lag.url, _anvil(kit)])
    push_out_of_band(kit.env)
    e0 = epoch(kit.env)

    def before(call: int) -> None:
        if call == 1:  # broadcast, not yet mined: the lagging node freezes here
            lag.stale_block, lag.mode = int(kit.env.w3.eth.block_number), "stale"

    keeper = kit.keeper(waiter=chain.waiter(before), replace_after_blocks=1)
    chain.automine(False)
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "sent", r.reason
    ((tx_id, status, *_),) = txs(kit.env)
    assert status == "confirmed" and len(keeper.deps.ledger.get_tx(tx_id).attempts) == 1
    rpc = failover_of(keeper.deps.w3)
    assert rpc is not None and rpc.endpoints[0].lagging  # tried last from now on
    assert chain.sent_count(kit.env.keeper) == 1 and epoch(kit.env) == e0 + 1


def test_steady_lag_is_caught_before_the_next_tick(
    kit: Kit, proxies: Callable[[], RpcProxy], chain: ChainCtl
) -> None:
    lag = proxies()
    set_rpc_urls(kit.env, [lag.url, _anvil(kit)])
    metrics = Metrics()
    keeper = kit.keeper(metrics=metrics)
    for _ in range(8):
        chain.mine()
    lag.lag_blocks, lag.mode = 5, "stale"  # always 5 blocks behind, answering everything
    rt = Runtime(keeper.cfg, keeper, Mode.CHECK, runtime_id=f"lag-{os.getpid()}")
    try:
        rt.run_once("main")
    finally:
        rt.stop()
    rpc = failover_of(keeper.deps.w3)
    assert rpc is not None and "behind best" in str(rpc.endpoints[0].lagging)
    assert rpc.endpoints[1].lagging is None
    lag_gauge = metrics.registry.get_sample_value(
        "keeper_rpc_lag_blocks", {"endpoint": rpc.endpoints[0].name}
    )
    assert lag_gauge == 5
    (t,) = ticks(kit.env)
    assert t[2] == int(kit.env.w3.eth.block_number)  # the tick read the node at the head


def test_node_switching_to_another_chain_mid_run_is_dropped_and_the_send_goes_on(
    kit: Kit, proxies: Callable[[], RpcProxy], chain: ChainCtl
) -> None:
    bad = proxies()
    set_rpc_urls(kit.env, [bad.url, _anvil(kit)])
    keeper = kit.keeper()
    bad.chain_id = 1  # after start-up, the first node answers for mainnet
    push_out_of_band(kit.env)
    (r,) = keeper.tick(Mode.SEND)
    assert r.verdict == "sent", r.reason
    rpc = failover_of(keeper.deps.w3)
    assert rpc is not None and [e.url for e in rpc.endpoints] == [_anvil(kit)]
    assert rpc.dropped and "chain id 1, expected 31337" in rpc.dropped[0]
    assert chain.sent_count(kit.env.keeper) == 1


def test_startup_probe_is_retried_and_a_wrong_chain_or_http_error_is_named(
    kit: Kit, proxies: Callable[[], RpcProxy]
) -> None:
    only = proxies()
    set_rpc_urls(kit.env, [only.url])
    cfg = load_config(kit.env.config)
    settings = RpcSettings(timeout_s=2.0, rounds=3, backoff_s=0.01, max_backoff_s=0.02)
    only.fail_next = ["down", "down"]  # a transient fault at start-up
    w3 = connect(cfg, settings)
    assert only.outcomes["down"] == 2 and int(w3.eth.block_number) > 0
    rpc = failover_of(w3)
    assert rpc is not None
    only.mode = "http:503"
    assert rpc.check_health(31337) == [f"{rpc.endpoints[0].name}: HTTP 503"]
    only.mode, only.chain_id = "ok", 5
    with pytest.raises(WrongChain) as info:
        connect(cfg, settings)
    msg = info.value.message
    assert "chain id 5, expected 31337" in msg and "networks.local.chain_id" in msg
    assert "start the node" not in msg
    out = CliRunner().invoke(app, ["check", "--config", str(kit.env.config)])
    assert out.exit_code == 1 and "chain id 5, expected 31337" in " ".join(out.stderr.split())


def test_a_long_rpc_outage_backs_off_with_one_alert_and_resumes_by_itself(
    kit: Kit,
    proxies: Callable[[], RpcProxy],
    chain: ChainCtl,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """75 s of every node down on a 1 s schedule: the vault backs off (one ALERT), is never
    halted, and sends within the backoff cap once the node is back."""
    only = proxies()
    set_rpc_urls(kit.env, [only.url])
    metrics = Metrics()
    keeper = kit.keeper(metrics=metrics)
    now = [0.0]
    rt = Runtime(
        keeper.cfg, keeper, Mode.SEND, runtime_id=f"outage-{os.getpid()}", clock=lambda: now[0]
    )
    push_out_of_band(kit.env)
    only.mode = "down"
    sent_at = None
    try:
        while now[0] < 120 and sent_at is None:
            if now[0] >= 75:
                only.mode = "ok"  # the fault heals
            rt.run_once("main")
            if ticks(kit.env) and ticks(kit.env)[-1][0] == "sent":
                sent_at = now[0]
            now[0] += 1.0
    finally:
        rt.stop()
    assert rt.halted == {}
    assert sent_at is not None and 75 <= sent_at <= 75 + 8  # the cap: 8 ticks
    attempted = len(ticks(kit.env))
    assert 8 <= attempted <= 20  # backed off: far fewer than the 75 scheduled ticks
    said = [r.getMessage() for r in caplog.records]
    alerts = [m for m in said if m.startswith("ALERT") and "backing off" in m]
    assert len(alerts) == 1
    assert rt.failures["main"] == 0 and metrics.registry.get_sample_value(
        "keeper_backoff_seconds", {"vault": "main"}
    ) == 0
    assert chain.sent_count(kit.env.keeper) == 1 and in_band(kit.env)
