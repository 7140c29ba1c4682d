"""A. RPC faults (fault tests 1-5): failover, all down, mid-send timeout, 429 bursts, lag."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from keeper.app import Mode
from keeper.chain.rpc import RpcSettings, failover_of
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
